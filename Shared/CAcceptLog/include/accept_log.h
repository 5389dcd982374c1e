#ifndef RINGSTORE_ACCEPT_LOG_H
#define RINGSTORE_ACCEPT_LOG_H

#include <stddef.h>

/// The peer address of every TCP connection the process accepts, kept at the
/// moment of `accept4(2)`.
///
/// libzmq (4.3, without its draft API) reports an accepted connection to a
/// socket monitor only by descriptor, and a peer refused at the handshake (a
/// plaintext client at a CURVE socket) is closed before the monitor's
/// reader can ask `getpeername(2)`. This file defines `accept4` itself,
/// which the dynamic linker binds libzmq's calls to (an executable's symbols
/// come first), records the address the kernel returned, and calls the C
/// library's `accept4`.
///
/// Addresses are kept per descriptor and listening port in accept order:
/// each ACCEPTED event of a socket bound to `port` takes the oldest address
/// recorded for its descriptor on that port, so a descriptor closed and
/// reused before the monitor was read still gets the right one, and accepts
/// of other listeners (which nobody claims) are never taken for its own.
/// At most 4096 unclaimed addresses are kept (the oldest are forgotten).

/// Copies the oldest unclaimed address accepted on `descriptor` by the
/// listener on local `port` (`a.b.c.d:port` or `[v6]:port`) into `buffer` and
/// forgets it; 1 when there was one, else 0.
int ringstore_accepted_address(int descriptor, unsigned port, char *buffer, size_t size);

/// `buffer` gets the TCP peer address of `descriptor` (same format) from
/// `getpeername(2)`; 1 on success, 0 when it is not a connected TCP socket.
int ringstore_peer_address(int descriptor, char *buffer, size_t size);

/// `buffer` gets the local address of socket `descriptor` (same format) from
/// `getsockname(2)`; 1 on success, 0 when it is not a TCP socket.
int ringstore_local_address(int descriptor, char *buffer, size_t size);

/// How many accepts went through this file's `accept4` (0 means libzmq's
/// calls are not bound to it, and addresses come from `getpeername` only).
unsigned long ringstore_accepts_seen(void);

#endif
