/*
 * zmq-floor: the transport floor under Ringstore's benchmarks, in C on raw
 * libzmq. One thread serves a ROUTER socket and echoes every request (as a
 * storage node's reactor thread serves its ROUTER); --in-flight client threads
 * each own a REQ socket and make one round trip after another, so exactly
 * that many requests are in flight. With --mode dealer, one client thread
 * keeps --in-flight requests outstanding on one DEALER socket instead (as
 * the project's RPC client multiplexes its calls): the transport's best case.
 * Loopback TCP, --payload bytes each way.
 *
 *   zmq-floor [--mode req|dealer] [--in-flight N] [--payload BYTES] [--seconds S]
 *
 * Prints one JSON line: {"bench":"zmq_floor","mode":M,"in_flight":N,"payload":B,
 * "seconds":S,"round_trips":R,"round_trips_per_s":X}. Exits 1 on any error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static void *context;
static char endpoint[256];
static int payload = 100;
static atomic_int stopping;        /* clients: stop after the round trip in hand */
static atomic_int server_stopping; /* the server: every client has finished */
static atomic_long round_trips;
static atomic_int failed;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what) {
    fprintf(stderr, "zmq-floor: %s: %s\n", what, zmq_strerror(zmq_errno()));
    atomic_store(&failed, 1);
}

/* Echo every multipart message back, frame by frame, until every client is done. */
static void *serve(void *router) {
    int timeout = 100;
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (!atomic_load(&server_stopping)) {
        int more = 1;
        while (more) {
            zmq_msg_t frame;
            zmq_msg_init(&frame);
            if (zmq_msg_recv(&frame, router, 0) < 0) {
                zmq_msg_close(&frame);
                if (zmq_errno() == EAGAIN || zmq_errno() == ETERM) goto next;
                fail("router receive");
                return NULL;
            }
            more = zmq_msg_more(&frame);
            if (zmq_msg_send(&frame, router, more ? ZMQ_SNDMORE : 0) < 0) {
                zmq_msg_close(&frame);
                fail("router send");
                return NULL;
            }
        }
    next:;
    }
    return NULL;
}

/* A client socket connected to the server, with its request and reply buffers. */
struct client_socket {
    void *socket;
    char *request, *reply;
};

/* Opens a client socket of `type`; 0 (after reporting) when it cannot connect. */
static int open_client(int type, struct client_socket *client) {
    client->socket = zmq_socket(context, type);
    int linger = 0, timeout = 5000, hwm = 0;
    zmq_setsockopt(client->socket, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(client->socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    /* No high-water mark: a pipelined client may have every request queued at once. */
    zmq_setsockopt(client->socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(client->socket, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(client->socket, endpoint) != 0) {
        fail("connect");
        zmq_close(client->socket);
        return 0;
    }
    client->request = malloc((size_t)payload + 1);
    client->reply = malloc((size_t)payload + 1);
    memset(client->request, 'Z', (size_t)payload);
    return 1;
}

/* Adds a client's round trips to the total and closes it. */
static void close_client(struct client_socket *client, long done) {
    atomic_fetch_add(&round_trips, done);
    free(client->request);
    free(client->reply);
    zmq_close(client->socket);
}

/* One synchronous client: a round trip after another until told to stop. */
static void *client(void *unused) {
    (void)unused;
    struct client_socket c;
    if (!open_client(ZMQ_REQ, &c)) return NULL;
    long done = 0;
    while (!atomic_load(&stopping)) {
        if (zmq_send(c.socket, c.request, (size_t)payload, 0) < 0) { fail("send"); break; }
        int got = zmq_recv(c.socket, c.reply, (size_t)payload + 1, 0);
        if (got != payload) { fail("receive"); break; }
        done++;
    }
    close_client(&c, done);
    return NULL;
}

/* One DEALER keeping `in_flight` requests outstanding until told to stop, then draining them. */
static int pipelined_in_flight;
static void *pipelined_client(void *unused) {
    (void)unused;
    struct client_socket c;
    if (!open_client(ZMQ_DEALER, &c)) return NULL;
    long done = 0;
    int outstanding = 0;
    for (; outstanding < pipelined_in_flight; outstanding++) {
        if (zmq_send(c.socket, c.request, (size_t)payload, 0) < 0) { fail("send"); goto out; }
    }
    while (outstanding > 0) {
        int got = zmq_recv(c.socket, c.reply, (size_t)payload + 1, 0);
        if (got != payload) { fail("receive"); break; }
        outstanding--;
        done++;
        if (!atomic_load(&stopping)) {
            if (zmq_send(c.socket, c.request, (size_t)payload, 0) < 0) { fail("send"); break; }
            outstanding++;
        }
    }
out:
    close_client(&c, done);
    return NULL;
}

int main(int argc, char **argv) {
    int in_flight = 32;
    int dealer = 0;
    double seconds = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--in-flight") == 0) in_flight = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--payload") == 0) payload = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "req") == 0) dealer = 0, i++;
        else if (i + 1 < argc && strcmp(argv[i], "--mode") == 0 && strcmp(argv[i + 1], "dealer") == 0) dealer = 1, i++;
        else {
            fprintf(stderr, "usage: zmq-floor [--mode req|dealer] [--in-flight N] [--payload BYTES] [--seconds S]\n");
            return 2;
        }
    }
    if (in_flight < 1 || in_flight > 4096 || payload < 0 || payload > (1 << 20) || !(seconds > 0)) {
        fprintf(stderr, "zmq-floor: --in-flight must be 1...4096, --payload 0...1048576, --seconds above 0\n");
        return 2;
    }
    context = zmq_ctx_new();
    void *router = zmq_socket(context, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    size_t size = sizeof endpoint;
    if (zmq_bind(router, "tcp://127.0.0.1:*") != 0 || zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, endpoint, &size) != 0) {
        fail("bind");
        return 1;
    }
    pthread_t server;
    pthread_create(&server, NULL, serve, router);
    int threads = dealer ? 1 : in_flight;
    pipelined_in_flight = in_flight;
    pthread_t *clients = calloc((size_t)threads, sizeof(pthread_t));
    double started = now();
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&clients[i], NULL, dealer ? pipelined_client : client, NULL) != 0) {
            fprintf(stderr, "zmq-floor: cannot start client thread %d\n", i);
            return 1;
        }
    }
    struct timespec pause = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&pause, NULL);
    atomic_store(&stopping, 1);
    for (int i = 0; i < threads; i++) pthread_join(clients[i], NULL);
    double elapsed = now() - started;
    atomic_store(&server_stopping, 1);
    pthread_join(server, NULL);
    zmq_close(router);
    zmq_ctx_term(context);
    free(clients);
    if (atomic_load(&failed)) return 1;
    long total = atomic_load(&round_trips);
    printf("{\"bench\":\"zmq_floor\",\"mode\":\"%s\",\"in_flight\":%d,\"payload\":%d,\"seconds\":%.3f,\"round_trips\":%ld,\"round_trips_per_s\":%ld}\n",
           dealer ? "dealer" : "req", in_flight, payload, elapsed, total, (long)((double)total / elapsed));
    return 0;
}
