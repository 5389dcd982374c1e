#ifndef RINGSTORE_SIGNAL_PIPE_H
#define RINGSTORE_SIGNAL_PIPE_H

/// The self-pipe trick: a signal caught by `ringstore_signal_catch` writes its
/// number, one byte, to a pipe whose read end `ringstore_signal_pipe` returns.
/// Everything else happens outside the handler, on a thread reading the pipe.

/// The read end of the process's signal pipe (created on the first call, close
/// on exec); -1 with errno set if the pipe cannot be made.
int ringstore_signal_pipe(void);

/// Installs the pipe-writing handler for `signo` (with SA_RESTART); once this
/// returns, a `signo` sent to the process is caught, whichever thread it hits.
/// 0, or -1 with errno set.
int ringstore_signal_catch(int signo);

/// Puts `signo` back to its default action. 0, or -1 with errno set.
int ringstore_signal_default(int signo);

#endif
