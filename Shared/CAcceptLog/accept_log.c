#define _GNU_SOURCE
#include "accept_log.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define SLOTS 4096
#define ADDRESS_SIZE 64

struct slot {
    int descriptor;
    unsigned local_port;
    unsigned long sequence; /* 0: empty or claimed */
    char address[ADDRESS_SIZE];
};

static struct slot slots[SLOTS];
static unsigned long next_sequence = 1;
static unsigned long accepts_seen = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int format_address(const struct sockaddr *address, char *buffer, size_t size) {
    char host[INET6_ADDRSTRLEN];
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)address;
        if (!inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host)) return 0;
        snprintf(buffer, size, "%s:%u", host, (unsigned)ntohs(v4->sin_port));
        return 1;
    }
    if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)address;
        if (!inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host)) return 0;
        snprintf(buffer, size, "[%s]:%u", host, (unsigned)ntohs(v6->sin6_port));
        return 1;
    }
    return 0;
}

static unsigned local_port(int descriptor) {
    struct sockaddr_storage local;
    socklen_t length = sizeof local;
    if (getsockname(descriptor, (struct sockaddr *)&local, &length) != 0) return 0;
    if (local.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&local)->sin_port);
    if (local.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
    return 0;
}

static void record(int descriptor, const struct sockaddr *address) {
    char text[ADDRESS_SIZE];
    if (!format_address(address, text, sizeof text)) return;
    unsigned port = local_port(descriptor);
    pthread_mutex_lock(&lock);
    unsigned long sequence = next_sequence++;
    struct slot *slot = &slots[sequence % SLOTS];
    slot->descriptor = descriptor;
    slot->local_port = port;
    slot->sequence = sequence;
    memcpy(slot->address, text, sizeof text);
    accepts_seen++;
    pthread_mutex_unlock(&lock);
}

typedef int (*accept4_function)(int, struct sockaddr *, socklen_t *, int);

int accept4(int listener, struct sockaddr *address, socklen_t *length, int flags) {
    static accept4_function real;
    if (!real) {
        real = (accept4_function)dlsym(RTLD_NEXT, "accept4");
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
    }
    struct sockaddr_storage own;
    socklen_t own_length = sizeof own;
    struct sockaddr *where = address ? address : (struct sockaddr *)&own;
    socklen_t *where_length = address ? length : &own_length;
    int descriptor = real(listener, where, where_length, flags);
    if (descriptor >= 0) {
        int saved = errno;
        record(descriptor, where);
        errno = saved;
    }
    return descriptor;
}

int ringstore_accepted_address(int descriptor, unsigned port, char *buffer, size_t size) {
    int found = 0;
    pthread_mutex_lock(&lock);
    struct slot *oldest = NULL;
    for (int index = 0; index < SLOTS; index++) {
        struct slot *slot = &slots[index];
        if (slot->sequence != 0 && slot->descriptor == descriptor && slot->local_port == port &&
            (!oldest || slot->sequence < oldest->sequence)) {
            oldest = slot;
        }
    }
    if (oldest) {
        snprintf(buffer, size, "%s", oldest->address);
        oldest->sequence = 0;
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

int ringstore_peer_address(int descriptor, char *buffer, size_t size) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getpeername(descriptor, (struct sockaddr *)&address, &length) != 0) return 0;
    return format_address((const struct sockaddr *)&address, buffer, size);
}

int ringstore_local_address(int descriptor, char *buffer, size_t size) {
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    if (getsockname(descriptor, (struct sockaddr *)&address, &length) != 0) return 0;
    return format_address((const struct sockaddr *)&address, buffer, size);
}

unsigned long ringstore_accepts_seen(void) {
    pthread_mutex_lock(&lock);
    unsigned long seen = accepts_seen;
    pthread_mutex_unlock(&lock);
    return seen;
}
