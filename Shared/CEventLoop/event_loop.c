#define _GNU_SOURCE
#include "event_loop.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

int ringstore_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int ringstore_epoll_watch(int epoll, int fd, int interest, int add) {
    struct epoll_event event = {0};
    if (interest & RINGSTORE_READABLE) event.events |= EPOLLIN;
    if (interest & RINGSTORE_WRITABLE) event.events |= EPOLLOUT;
    event.data.fd = fd;
    return epoll_ctl(epoll, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event);
}

int ringstore_epoll_forget(int epoll, int fd) {
    return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL);
}

int ringstore_epoll_ready(int epoll, int *fds, int *events, int capacity) {
    struct epoll_event ready[64];
    if (capacity > 64) capacity = 64;
    int count;
    do {
        count = epoll_wait(epoll, ready, capacity, 0);
    } while (count < 0 && errno == EINTR);
    for (int index = 0; index < count; index++) {
        int bits = 0;
        if (ready[index].events & EPOLLIN) bits |= RINGSTORE_READABLE;
        if (ready[index].events & EPOLLOUT) bits |= RINGSTORE_WRITABLE;
        if (ready[index].events & (EPOLLERR | EPOLLHUP)) bits |= RINGSTORE_CLOSED;
        fds[index] = ready[index].data.fd;
        events[index] = bits;
    }
    return count;
}

int ringstore_accept_nonblocking(int listener) {
    int fd;
    do {
        fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (fd >= 0) {
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
    return fd;
}
