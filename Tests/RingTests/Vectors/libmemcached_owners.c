// Reference owners from libmemcached's weighted Ketama mode, for RingTests.
//
// Usage: libmemcached_owners HOST:PORT[=WEIGHT] ... < keys
// stdin: one key per line, hex-encoded (so keys may hold any byte);
// stdout: one line per key, "HEXKEY HOST:PORT" naming the server that
// libmemcached picks for the key (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, which
// selects MD5 for both the continuum and the key hash).
//
// Build (one line):
//   cc -O2 -o /tmp/libmemcached_owners libmemcached_owners.c $(pkg-config --cflags --libs libmemcached)
// (Debian: apt-get install -y libmemcached-dev). ketama_vectors.py drives it.
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s HOST:PORT[=WEIGHT] ... < hexkeys\n", argv[0]);
        return 2;
    }
    memcached_st *memc = memcached_create(NULL);
    if (memc == NULL) return 1;
    if (memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) != MEMCACHED_SUCCESS) {
        fprintf(stderr, "cannot select weighted ketama\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        char host[256];
        unsigned port = 0, weight = 1;
        char *colon = strrchr(argv[i], ':');
        if (colon == NULL || (size_t)(colon - argv[i]) >= sizeof host) {
            fprintf(stderr, "bad server %s\n", argv[i]);
            return 2;
        }
        memcpy(host, argv[i], (size_t)(colon - argv[i]));
        host[colon - argv[i]] = '\0';
        if (sscanf(colon + 1, "%u=%u", &port, &weight) < 1) {
            fprintf(stderr, "bad server %s\n", argv[i]);
            return 2;
        }
        if (memcached_server_add_with_weight(memc, host, (in_port_t)port, weight) != MEMCACHED_SUCCESS) {
            fprintf(stderr, "cannot add %s\n", argv[i]);
            return 1;
        }
    }

    char line[4096];
    unsigned char key[2048];
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (n % 2 != 0 || n / 2 > sizeof key) {
            fprintf(stderr, "bad hex key %s\n", line);
            return 2;
        }
        for (size_t j = 0; j < n / 2; j++) {
            int hi = hexval(line[2 * j]), lo = hexval(line[2 * j + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "bad hex key %s\n", line);
                return 2;
            }
            key[j] = (unsigned char)(hi * 16 + lo);
        }
        uint32_t index = memcached_generate_hash(memc, (const char *)key, n / 2);
        const memcached_instance_st *server = memcached_server_instance_by_position(memc, index);
        printf("%s %s:%u\n", line, memcached_server_name(server), (unsigned)memcached_server_port(server));
    }
    memcached_free(memc);
    return 0;
}
