#ifndef RINGSTORE_CZEROMQ_SHIM_H
#define RINGSTORE_CZEROMQ_SHIM_H

#include <zmq.h>
#include <errno.h>
#include <sys/eventfd.h>

/* Macros and errno values that Swift cannot import directly. */
static inline int ringstore_zmq_errno_eagain(void) { return EAGAIN; }
static inline int ringstore_zmq_errno_eintr(void) { return EINTR; }
static inline int ringstore_zmq_errno_eterm(void) { return ETERM; }
static inline int ringstore_zmq_errno_ehostunreach(void) { return EHOSTUNREACH; }
static inline short ringstore_zmq_pollin(void) { return ZMQ_POLLIN; }
static inline short ringstore_zmq_pollout(void) { return ZMQ_POLLOUT; }

/* A non-blocking, close-on-exec eventfd for waking a poll loop. */
static inline int ringstore_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

#endif
