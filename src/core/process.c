/*
 * Child processes on a libuv loop, with their output delivered line by line.
 *
 * Each output stream reads straight into its own line buffer: bytes are appended after whatever
 * partial line is left from the previous read, complete lines are handed to the callback in
 * place, and the remainder moves to the front. A buffer full without a newline is handed over as
 * one piece, so memory stays fixed whatever the child writes.
 */
#include "ddialab/process.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

typedef struct {
    uv_pipe_t pipe;
    dl_process_t *process;
    dl_process_stream_t which;
    int reading; /* until end of file or a read error */
    size_t len;  /* bytes of a partial line at the start of buf */
    char buf[DL_PROCESS_LINE_MAX + 1];
} stream_t;

struct dl_process_s {
    uv_process_t handle;
    stream_t out;
    stream_t err;
    dl_process_line_cb on_line;
    dl_process_exit_cb on_exit;
    void *ctx;
    int pid;
    int exited;
    int exit_status;
    int term_signal;
    int reported; /* on_exit has been called */
    int closing;  /* dl_process_close() has been called, or spawning failed */
    int open_handles;
};

/* Frees the process once libuv has closed its last handle. */
static void release(dl_process_t *p)
{
    assert(p->open_handles > 0);
    if (--p->open_handles == 0)
        free(p);
}

static void on_process_closed(uv_handle_t *handle)
{
    release(handle->data);
}

static void on_pipe_closed(uv_handle_t *handle)
{
    stream_t *s = handle->data;
    release(s->process);
}

static void close_handles(dl_process_t *p)
{
    p->closing = 1;
    uv_close((uv_handle_t *)&p->handle, on_process_closed);
    uv_close((uv_handle_t *)&p->out.pipe, on_pipe_closed);
    uv_close((uv_handle_t *)&p->err.pipe, on_pipe_closed);
}

/* Reports the end once the child has exited and all its output has been delivered. */
static void maybe_report_exit(dl_process_t *p)
{
    if (p->closing || p->reported || !p->exited || p->out.reading || p->err.reading)
        return;
    p->reported = 1;
    if (p->on_exit != NULL)
        p->on_exit(p->ctx, p, p->exit_status, p->term_signal);
}

static void on_child_exit(uv_process_t *handle, int64_t exit_status, int term_signal)
{
    dl_process_t *p = handle->data;
    p->exited = 1;
    p->exit_status = (int)exit_status;
    p->term_signal = term_signal;
    maybe_report_exit(p);
}

/* Hands buf[0..len) to the callback as one line, dropping a trailing '\r'. Returns non-zero when
 * the callback closed the process, so the caller must stop touching it. */
static int deliver(stream_t *s, char *line, size_t len)
{
    dl_process_t *p = s->process;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    if (p->on_line != NULL)
        p->on_line(p->ctx, p, s->which, line, len);
    return p->closing;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    stream_t *s = handle->data;
    assert(s->len < DL_PROCESS_LINE_MAX);
    *buf = uv_buf_init(s->buf + s->len, (unsigned int)(DL_PROCESS_LINE_MAX - s->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *unused)
{
    stream_t *s = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        /* End of file, or an error that ends the stream just the same. */
        uv_read_stop(stream);
        s->reading = 0;
        if (s->len > 0) {
            size_t len = s->len;
            s->len = 0;
            if (deliver(s, s->buf, len))
                return;
        }
        maybe_report_exit(s->process);
        return;
    }
    char *start = s->buf;
    char *scan = s->buf + s->len; /* the partial line before the new bytes has no newline */
    char *end = scan + nread;
    char *newline;
    while ((newline = memchr(scan, '\n', (size_t)(end - scan))) != NULL) {
        if (deliver(s, start, (size_t)(newline - start)))
            return;
        start = scan = newline + 1;
    }
    s->len = (size_t)(end - start);
    if (start != s->buf)
        memmove(s->buf, start, s->len);
    if (s->len == DL_PROCESS_LINE_MAX) {
        s->len = 0;
        deliver(s, s->buf, DL_PROCESS_LINE_MAX);
    }
}

/* Builds environ with the additions, which replace variables of the same name. The strings are
 * borrowed; only the array is allocated. */
static char **merge_environment(const char *const *additions)
{
    size_t nenv = 0, nadd = 0;
    while (environ[nenv] != NULL)
        nenv++;
    while (additions[nadd] != NULL)
        nadd++;
    char **env = malloc((nenv + nadd + 1) * sizeof(*env));
    if (env == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nenv; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int replaced = 0;
        for (size_t j = 0; j < nadd && !replaced; j++)
            replaced =
                strncmp(additions[j], environ[i], name_len) == 0 && additions[j][name_len] == '=';
        if (!replaced)
            env[n++] = environ[i];
    }
    for (size_t j = 0; j < nadd; j++)
        env[n++] = (char *)additions[j];
    env[n] = NULL;
    return env;
}

static void init_stream(uv_loop_t *loop, dl_process_t *p, stream_t *s, dl_process_stream_t which)
{
    uv_pipe_init(loop, &s->pipe, 0); /* cannot fail for a pipe that is not yet opened */
    s->pipe.data = s;
    s->process = p;
    s->which = which;
}

int dl_process_spawn(uv_loop_t *loop, const dl_process_options_t *opts, dl_process_t **out)
{
    int rv;
    assert(opts->argv != NULL && opts->argv[0] != NULL);
    dl_process_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->on_line = opts->on_line;
    p->on_exit = opts->on_exit;
    p->ctx = opts->ctx;

    char **env = NULL;
    if (opts->env != NULL) {
        env = merge_environment(opts->env);
        if (env == NULL) {
            rv = -ENOMEM;
            goto err_after_alloc;
        }
    }

    init_stream(loop, p, &p->out, DL_PROCESS_STDOUT);
    init_stream(loop, p, &p->err, DL_PROCESS_STDERR);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err.pipe;
    uv_process_options_t options = {
        .exit_cb = on_child_exit,
        .file = opts->argv[0],
        .args = (char **)opts->argv,
        .env = env,
        .cwd = opts->cwd,
        .flags = opts->detached ? UV_PROCESS_DETACHED : 0,
        .stdio_count = 3,
        .stdio = stdio,
    };
    p->handle.data = p;
    p->open_handles = 3;
    rv = uv_spawn(loop, &p->handle, &options);
    free(env);
    if (rv != 0)
        goto err_after_handles;
    p->pid = p->handle.pid;

    /* Reading a freshly created pipe does not fail; if it ever did, the stream just counts as
     * ended so the exit is still reported. */
    p->out.reading = uv_read_start((uv_stream_t *)&p->out.pipe, on_alloc, on_read) == 0;
    p->err.reading = uv_read_start((uv_stream_t *)&p->err.pipe, on_alloc, on_read) == 0;
    *out = p;
    return 0;

err_after_handles:
    /* libuv has initialised the handles even when spawning failed; they free p once closed. */
    close_handles(p);
    return rv;
err_after_alloc:
    free(p);
    return rv;
}

int dl_process_kill(dl_process_t *p, int signum)
{
    assert(!p->closing);
    if (p->exited)
        return -ESRCH;
    return uv_process_kill(&p->handle, signum);
}

int dl_process_pid(const dl_process_t *p)
{
    return p->pid;
}

int dl_process_exited(const dl_process_t *p)
{
    return p->exited;
}

void dl_process_close(dl_process_t *p)
{
    if (p == NULL)
        return;
    assert(!p->closing);
    close_handles(p);
}
