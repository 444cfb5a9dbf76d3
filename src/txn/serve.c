/*
 * "ddialab txn serve": the txn engine over HTTP on one libuv loop, for replaying scenarios by
 * hand from two terminals with curl. This file has the flags, the start, the reset and the
 * shutdown; serve.h says how the pieces fit.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/flags.h"
#include "ddialab/logging.h"
#include "txn/cli.h"
#include "txn/serve.h"

static const char usage[] =
    "ddialab txn serve [--listen 127.0.0.1:7070] [--setup '1=10 2=20'] [flags]\n\n"
    "Serves the txn engine over HTTP so that two terminals with curl can replay any scenario, as\n"
    "two psql sessions would: POST /sessions opens a session, POST /sessions/ID/begin a\n"
    "transaction, GET|PUT|DELETE /sessions/ID/kv/KEY reads and writes, GET "
    "/sessions/ID/scan?where=\n"
    "scans. A statement that must wait for another transaction hangs until it can go on (or\n"
    "--lock-timeout passes). docs/txn.md has a walk-through.";

/* Starts over from fresh data: a new engine, every session idle. */
int dl__txn_serve_reset(dl_txn_server_t *s, const char *text, char *err, size_t errlen)
{
    dl_txn_engine_t *engine = dl_txn_engine_new();
    if (engine == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rv = dl__txn_serve_load_setup(engine, text ? text : s->setup ? s->setup : "", err, errlen);
    if (rv != 0) {
        dl_txn_engine_free(engine);
        return rv;
    }
    /* The old engine's transactions end with it: waiting statements are answered first (they
       point into it), then every session is idle. */
    dl__txn_serve_fail_parked(s, 409, "reset", "the server was reset while this statement waited");
    for (dl_txn_session_t *session = s->sessions; session != NULL; session = session->next) {
        session->txn = 0;
        session->failed = 0;
    }
    dl_txn_engine_free(s->engine);
    s->engine = engine;
    DL_INFO("reset: fresh data (%s), %zu sessions idle",
            text       ? text
            : s->setup ? s->setup
                       : "",
            s->n_sessions);
    return 0;
}

static void on_http_stopped(void *ctx)
{
    dl_txn_server_t *s = ctx;
    s->http = NULL;
}

static void stop(dl_txn_server_t *s, const char *why)
{
    if (s->stopping)
        return;
    DL_INFO("%s: shutting down", why);
    s->stopping = 1;
    dl__txn_serve_fail_parked(s, 503, "shutting_down", "the server is shutting down");
    uv_timer_stop(&s->lock_timer);
    uv_signal_stop(&s->sigint);
    uv_signal_stop(&s->sigterm);
    uv_close((uv_handle_t *)&s->lock_timer, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    dl_http_server_stop(s->http, 2000, on_http_stopped, s);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    stop(handle->data, signum == SIGINT ? "interrupted" : "terminated");
}

/* Checks the flags into s; 0, or -EINVAL with a message in err. */
static int configure(dl_txn_server_t *s, const char *listen, const char *isolation,
                     const char *log_level, char *host, size_t hostlen, int *port, char *err,
                     size_t errlen)
{
    if (dl_parse_host_port(listen, host, hostlen, port) != 0) {
        snprintf(err, errlen, "--listen must be HOST:PORT, not '%s'", listen);
        return -EINVAL;
    }
    if (dl_txn_level_parse(isolation, &s->isolation) != 0) {
        snprintf(err, errlen,
                 "--isolation must be read-uncommitted, read-committed, snapshot "
                 "(repeatable-read), serial, 2pl or ssi (serializable), not '%s'",
                 isolation);
        return -EINVAL;
    }
    if (s->lock_timeout_ms < 0) {
        snprintf(err, errlen, "--lock-timeout must be 0 (wait forever) or more");
        return -EINVAL;
    }
    dl_log_level_t level;
    if (log_level != NULL) {
        if (dl_log_parse_level(log_level, &level) != 0) {
            snprintf(err, errlen, "--log-level must be debug, info, warn or error");
            return -EINVAL;
        }
        dl_log_set_level(level);
    }
    return 0;
}

/* "ddialab txn serve": parses the flags, serves until SIGINT or SIGTERM. */
int dl_txn_serve_main(int argc, char **argv)
{
    static dl_txn_server_t server;
    dl_txn_server_t *s = &server;
    char *listen_addr = DL_TXN_SERVE_DEFAULT_HOST ":7070", *isolation = "read-committed";
    char *setup = NULL, *log_level = NULL;
    int64_t lock_timeout_ms = 60000;
    dl_flag_t flags[] = {
        {"listen", DL_FLAG_STRING, &listen_addr, "HTTP listen address, HOST:PORT"},
        {"lock-timeout", DL_FLAG_DURATION, &lock_timeout_ms,
         "how long a statement waits for another transaction before it fails and its "
         "transaction is rolled back (0 = forever)"},
        {"setup", DL_FLAG_STRING, &setup,
         "committed data to start from (and to reset to), e.g. '1=10 2=20'"},
        {"isolation", DL_FLAG_STRING, &isolation,
         "the level of sessions that name none (PostgreSQL's default is read-committed)"},
        {"log-level", DL_FLAG_STRING, &log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    char err[512] = "", host[256] = DL_TXN_SERVE_DEFAULT_HOST;
    int port = DL_TXN_SERVE_DEFAULT_PORT, next, rv;

    memset(s, 0, sizeof(*s));
    rv = dl_flags_parse(usage, flags, argc, argv, 1, &next, err, sizeof(err));
    if (rv == 1)
        return 0;
    if (rv == 0 && next < argc) {
        snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", argv[next]);
        rv = -EINVAL;
    }
    s->lock_timeout_ms = lock_timeout_ms;
    s->setup = setup;
    if (rv == 0)
        rv = configure(s, listen_addr, isolation, log_level, host, sizeof(host), &port, err,
                       sizeof(err));
    if (rv == 0 && (s->engine = dl_txn_engine_new()) == NULL) {
        fprintf(stderr, "ddialab txn serve: out of memory\n");
        return 1;
    }
    if (rv == 0 && setup != NULL)
        rv = dl__txn_serve_load_setup(s->engine, setup, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "ddialab txn serve: %s\n", err);
        dl_txn_engine_free(s->engine);
        return 2;
    }
    dl_log_set_prefix("txn-serve");

    uv_loop_t loop;
    if ((rv = uv_loop_init(&loop)) != 0) {
        fprintf(stderr, "ddialab txn serve: %s\n", uv_strerror(rv));
        goto err_after_engine;
    }
    s->loop = &loop;
    dl_http_server_options_t opts = {
        .host = host, .port = port, .max_body_bytes = DL_TXN_SERVE_MAX_BODY_BYTES};
    if ((rv = dl_http_server_start(&loop, &opts, &s->http, err, sizeof(err))) != 0 ||
        (rv = dl__txn_serve_routes(s, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddialab txn serve: %s\n", err);
        goto err_after_loop;
    }
    uv_timer_init(&loop, &s->lock_timer);
    uv_signal_init(&loop, &s->sigint);
    uv_signal_init(&loop, &s->sigterm);
    s->lock_timer.data = s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);

    DL_INFO("serving transactions on http://%s:%d (new sessions: %s; lock timeout %" PRId64
            " ms; setup: %s)",
            host, dl_http_server_port(s->http), dl_txn_level_name(s->isolation), s->lock_timeout_ms,
            setup ? setup : "none");
    DL_INFO("try: curl -X POST http://%s:%d/sessions", host, dl_http_server_port(s->http));
    uv_run(&loop, UV_RUN_DEFAULT);

    while (s->sessions != NULL) {
        dl_txn_session_t *session = s->sessions;
        s->sessions = session->next;
        free(session);
    }
    dl_txn_engine_free(s->engine);
    if (uv_loop_close(&loop) != 0)
        DL_WARN("the loop still had handles at exit");
    DL_INFO("stopped");
    return 0;

err_after_loop:
    if (s->http != NULL) {
        s->stopping = 1;
        dl_http_server_stop(s->http, 0, on_http_stopped, s);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* lets the server's handles close */
    uv_loop_close(&loop);
err_after_engine:
    dl_txn_engine_free(s->engine);
    return 1;
}
