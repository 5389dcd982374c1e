#ifndef RINGSTORE_EVENT_LOOP_H
#define RINGSTORE_EVENT_LOOP_H

/// epoll and non-blocking accept for Swift (whose Glibc module leaves out
/// <sys/epoll.h>, and whose import of the packed `epoll_event` is awkward).

enum {
    RINGSTORE_READABLE = 1,
    RINGSTORE_WRITABLE = 2,
    /// Error or hang-up.
    RINGSTORE_CLOSED = 4,
};

/// A new epoll set (close on exec); -1 with errno.
int ringstore_epoll_create(void);

/// Watches `fd` for `interest` (READABLE | WRITABLE, level-triggered); `add`
/// 1 to add, 0 to change. 0, or -1 with errno.
int ringstore_epoll_watch(int epoll, int fd, int interest, int add);

/// Stops watching `fd`.
int ringstore_epoll_forget(int epoll, int fd);

/// Ready descriptors without waiting: up to `capacity` into `fds` with their
/// READABLE | WRITABLE | CLOSED bits in `events`; their count, or -1 with errno.
int ringstore_epoll_ready(int epoll, int *fds, int *events, int capacity);

/// accept4 of a non-blocking, close-on-exec connection with TCP_NODELAY on;
/// -1 with errno (EAGAIN when none is waiting).
int ringstore_accept_nonblocking(int listener);

#endif
