/*
 * Child processes on a libuv loop: spawn a program with its stdout and stderr piped back to us,
 * receive its output line by line, send it signals, and learn how it ended.
 *
 *     static const char *argv[] = {"/bin/sh", "-c", "echo hello; exit 3", NULL};
 *     dl_process_options_t opts = {.argv = argv, .on_line = print_line, .on_exit = gone};
 *     dl_process_t *p;
 *     int rv = dl_process_spawn(loop, &opts, &p);
 *     ...  print_line(ctx, p, DL_PROCESS_STDOUT, "hello", 5), then gone(ctx, p, 3, 0)
 *     dl_process_close(p);   (for instance inside gone())
 *
 * All calls and callbacks happen on the loop's thread.
 *
 * Ownership: dl_process_spawn() allocates the dl_process_t; the caller owns it and must call
 * dl_process_close() exactly once, at any time (also from inside on_line or on_exit). After
 * dl_process_close() no callback is made and the pointer must not be used; the memory is freed
 * by the loop once libuv has closed the handles, so the loop must run on for that.
 * dl_process_close() does not stop the child: to stop it, dl_process_kill() it and close it in
 * on_exit. A child still running when it is closed is left running and is not reaped.
 */
#ifndef DDIALAB_PROCESS_H
#define DDIALAB_PROCESS_H

#include <stddef.h>

#include <uv.h>

/* Lines longer than this are delivered in pieces of this many bytes. */
#define DL_PROCESS_LINE_MAX 8192

typedef struct dl_process_s dl_process_t;

typedef enum {
    DL_PROCESS_STDOUT = 1,
    DL_PROCESS_STDERR = 2,
} dl_process_stream_t;

/*
 * One line of the child's output on `stream`, without its "\n" (and without a "\r" before it).
 * line is NUL-terminated and valid only during the call. A last line without a newline is
 * delivered when the stream ends.
 */
typedef void (*dl_process_line_cb)(void *ctx, dl_process_t *process, dl_process_stream_t stream,
                                   const char *line, size_t len);

/*
 * The child has ended: exit_status is its exit code when it exited (term_signal 0), or
 * term_signal is the signal that killed it (exit_status 0). Called once, after every line of its
 * output has been delivered, i.e. when the child has exited and both pipes have reached end of
 * file (so a grandchild that inherited the pipes and outlives the child delays this call).
 */
typedef void (*dl_process_exit_cb)(void *ctx, dl_process_t *process, int exit_status,
                                   int term_signal);

typedef struct dl_process_options_s {
    /* The program and its arguments, NULL-terminated; argv[0] is looked up in PATH when it has no
     * slash. Read during dl_process_spawn() only. */
    const char *const *argv;
    /* "NAME=value" strings added to (or replacing in) this process's environment for the child,
     * NULL-terminated; NULL for none. Read during dl_process_spawn() only. */
    const char *const *env;
    /* Working directory of the child; NULL for ours. */
    const char *cwd;
    /* Runs the child in a session of its own (setsid), so that a terminal's Ctrl-C reaches only
     * us and we decide how the child stops. */
    int detached;
    dl_process_line_cb on_line; /* may be NULL: output is read and dropped */
    dl_process_exit_cb on_exit; /* may be NULL */
    void *ctx;                  /* passed to the callbacks */
} dl_process_options_t;

/*
 * Starts the child, with stdin from /dev/null and stdout/stderr piped to us. On success returns 0
 * and sets *out. On failure returns a negative errno (-ENOENT when the program does not exist,
 * -EACCES, -ENOMEM, ...), *out is untouched and nothing needs closing.
 */
int dl_process_spawn(uv_loop_t *loop, const dl_process_options_t *opts, dl_process_t **out);

/* Sends signum to the child. Returns 0, or -ESRCH once the child has exited (its pid may already
 * belong to another process, so no signal is sent then), or another negative errno. */
int dl_process_kill(dl_process_t *process, int signum);

/* The child's process id (still returned after it exited). */
int dl_process_pid(const dl_process_t *process);

/* Non-zero once the child has exited (on_exit may still be waiting for the end of its output). */
int dl_process_exited(const dl_process_t *process);

/* Stops all callbacks and releases the process; see the ownership rules above. */
void dl_process_close(dl_process_t *process);

#endif
