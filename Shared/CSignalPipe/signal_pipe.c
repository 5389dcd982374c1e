#define _GNU_SOURCE
#include "signal_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int pipe_fds[2] = {-1, -1};
static int pipe_error = 0;
static pthread_once_t pipe_once = PTHREAD_ONCE_INIT;

static void make_pipe(void) {
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        pipe_error = errno;
        return;
    }
    // A full pipe (nobody reading) drops the signal instead of blocking the handler.
    fcntl(pipe_fds[1], F_SETFL, fcntl(pipe_fds[1], F_GETFL) | O_NONBLOCK);
}

int ringstore_signal_pipe(void) {
    pthread_once(&pipe_once, make_pipe);
    if (pipe_fds[0] < 0) {
        errno = pipe_error;
        return -1;
    }
    return pipe_fds[0];
}

static void on_signal(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    ssize_t ignored = write(pipe_fds[1], &byte, 1);
    (void)ignored;
    errno = saved;
}

int ringstore_signal_catch(int signo) {
    if (ringstore_signal_pipe() < 0) return -1;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int ringstore_signal_default(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}
