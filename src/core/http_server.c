/*
 * The HTTP server: listener, connections, routing, cancellation and graceful stop, on libh2o 2.2
 * (libuv flavour). http_request.c has what a handler sees (accessors and replies).
 *
 * How it sits on libh2o. One host configuration whose fallback path carries three objects:
 *   - a handler (on_req) that routes every request that libh2o has read completely;
 *   - a filter that rewrites the error responses libh2o makes itself (413 for a body over the
 *     limit, 400 for a broken chunked body, 417) into our JSON error body;
 *   - a logger, which libh2o calls from h2o_dispose_request() for every request it processed,
 *     just before it frees the request's pool. That is how we learn that a request is gone, both
 *     after its response was written and when its connection closes.
 *
 * What libh2o 2.2 does not do, and we do here:
 *   - Notice a client that closes its connection while its request waits for an asynchronous
 *     reply: HTTP/1 stops reading the socket while a request is processed, so the close goes
 *     unseen until the response is written. A timer polls the sockets of waiting requests
 *     (poll(2) with POLLRDHUP, all in one call) and cancels those whose peer has closed.
 *   - Close idle keep-alive connections on shutdown: libh2o's shutdown flag only stops
 *     keep-alive for requests parsed afterwards. We shut such sockets down ourselves, and libh2o
 *     then sees EOF (or a failed write) and closes the connection through its own code path.
 *   - Dispose the context from inside a loop callback: h2o_context_dispose() ends with
 *     uv_run(loop, UV_RUN_NOWAIT), and uv_run must not be re-entered, so dispose_h2o_context()
 *     below is the same function without that call.
 */
#include "http_internal.h"

#include "ddialab/error.h"
#include "ddialab/logging.h"

#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How often the sockets of requests waiting for an asynchronous reply are checked. */
#define DISCONNECT_CHECK_MS 100
/* Request objects kept for reuse. */
#define MAX_FREE_REQS  1024
#define LISTEN_BACKLOG 1024

/* libh2o objects that need to find their server. */
typedef struct {
    h2o_handler_t super;
    dl_http_server_t *server;
} glue_handler_t;

typedef struct {
    h2o_filter_t super;
    dl_http_server_t *server;
} glue_filter_t;

typedef struct {
    h2o_logger_t super;
    dl_http_server_t *server;
} glue_logger_t;

typedef struct {
    h2o_ostream_t super;
    dl_http_server_t *server;
} error_ostream_t;

struct dl_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t check_timer;  /* disconnect checks while requests wait */
    uv_timer_t grace_timer;  /* end of the stop grace period */
    uv_timer_t final_handle; /* never started; its close is the last step of the teardown */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;

    size_t max_body;
    int port;
    void (*on_complete)(void *ctx, const char *method, const char *route_pattern, int status,
                        double seconds);
    void *on_complete_ctx;

    dl__http_routes_t routes;

    h2o_linklist_t conns; /* dl__http_conn_t.link */
    size_t nconns;
    h2o_linklist_t pending; /* dl_http_req_t.pending_link, PENDING requests */
    dl_http_req_t *free_reqs;
    size_t nfree;

    struct pollfd *poll_fds; /* disconnect checks, reused */
    dl__http_conn_t **poll_conns;
    size_t poll_cap;
    char *scratch; /* JSON serialisation, reused */
    size_t scratch_cap;

    int stopping;
    int listener_open;
    int finishing;
    int closes_left;
    void (*done)(void *ctx);
    void *done_ctx;
};

static void maybe_finish(dl_http_server_t *s);
static void on_check_timer(uv_timer_t *timer);

/* ---- small helpers ----------------------------------------------------------------------- */

int dl__http_server_stopping(const dl_http_server_t *s)
{
    return s->stopping;
}

char *dl__http_server_scratch(dl_http_server_t *s, size_t need)
{
    if (need > s->scratch_cap) {
        char *p = realloc(s->scratch, need);
        if (p == NULL)
            return NULL;
        s->scratch = p;
        s->scratch_cap = need;
    }
    return s->scratch;
}

void dl__http_server_unpend(dl_http_req_t *r)
{
    if (h2o_linklist_is_linked(&r->pending_link))
        h2o_linklist_unlink(&r->pending_link);
}

/* Our connection for a libh2o request: libh2o leaves the socket's on_close slot to its owner. */
static dl__http_conn_t *conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    return sock != NULL ? sock->on_close.data : NULL;
}

static int conn_fd(dl__http_conn_t *conn)
{
    uv_os_fd_t fd;
    if (conn->sock == NULL || uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0)
        return -1;
    return fd;
}

/* Makes libh2o close conn through its own paths: a pending read sees EOF, a write fails. */
static void shutdown_conn(dl__http_conn_t *conn)
{
    int fd = conn_fd(conn);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* ---- request objects --------------------------------------------------------------------- */

static dl_http_req_t *req_alloc(dl_http_server_t *s)
{
    dl_http_req_t *r = s->free_reqs;
    if (r != NULL) {
        s->free_reqs = r->next_free;
        s->nfree--;
    } else {
        r = h2o_mem_alloc(sizeof(*r)); /* aborts on OOM, like libh2o's own allocations */
    }
    memset(r, 0, sizeof(*r));
    return r;
}

static void req_release(dl_http_server_t *s, dl_http_req_t *r)
{
    if (s->nfree >= MAX_FREE_REQS) {
        free(r);
        return;
    }
    r->next_free = s->free_reqs;
    s->free_reqs = r;
    s->nfree++;
}

static void fire_cancel(dl_http_req_t *r)
{
    void (*fn)(void *) = r->cancel_fn;
    if (fn != NULL) {
        r->cancel_fn = NULL;
        fn(r->cancel_ctx);
    }
}

/*
 * Cancels a PENDING request whose connection is still open: runs the cancel callback, then
 * answers the request ourselves with Connection: close, so that libh2o writes, closes the
 * connection and disposes the request (499 to a client that is gone, 503 shutting_down when the
 * server stops).
 */
static void cancel_request(dl_http_req_t *r, int status)
{
    dl_http_server_t *s = r->server;
    h2o_req_t *req = r->req;

    assert(r->state == DL__HTTP_PENDING);
    r->state = DL__HTTP_CANCELLED;
    r->status = status;
    dl__http_server_unpend(r);
    fire_cancel(r);

    h2o_iovec_t body = {NULL, 0};
    if (status == 503) {
        json_t *e = dl_http_error_body(DL_ESHUTDOWN, "the server is shutting down");
        if (e != NULL)
            body = dl__http_json_in_pool(s, &req->pool, e);
        json_decref(e);
    }
    dl__http_send(req, status, body.base != NULL ? "application/json" : NULL, body, NULL,
                  r->is_head, 1);
}

/*
 * libh2o is disposing r's request (its pool is about to be freed): report it, then recycle r,
 * or keep it as an orphan when it was cancelled and nobody was told (no cancel callback), so that
 * the late reply finds it.
 */
static void req_finished(dl_http_server_t *s, dl_http_req_t *r)
{
    /* Nothing that points into the pool survives this call. */
    r->req = NULL;
    r->conn = NULL;
    r->method = r->metric_method;
    r->path = "";
    r->query = NULL;
    r->query_len = 0;
    r->wildcard = "";
    r->wildcard_len = 0;

    if (r->state == DL__HTTP_PENDING) {
        /* Not expected with libh2o 2.2 (it neither reads nor times out while a request is being
           processed), but if the request goes away under us, cancel it all the same. */
        r->state = DL__HTTP_CANCELLED;
        r->status = 499;
        dl__http_server_unpend(r);
        fire_cancel(r);
    }
    if (s->on_complete != NULL)
        s->on_complete(s->on_complete_ctx, r->metric_method, r->pattern, r->status,
                       (double)(uv_hrtime() - r->dispatched_ns) / 1e9);
    if (r->state == DL__HTTP_CANCELLED && !r->had_cancel_fn) {
        r->server = NULL; /* orphan: freed by the late reply */
        return;
    }
    req_release(s, r);
}

void dl_http_req_on_cancel(dl_http_req_t *r, void (*fn)(void *ctx), void *ctx)
{
    if (r->state == DL__HTTP_CANCELLED && r->server == NULL) {
        /* Already gone (an orphan): tell at once; r dies with the call. */
        if (fn != NULL) {
            fn(ctx);
            free(r);
        }
        return;
    }
    r->cancel_fn = fn;
    r->cancel_ctx = ctx;
    r->had_cancel_fn = fn != NULL;
}

/* ---- libh2o callbacks -------------------------------------------------------------------- */

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    dl_http_server_t *s = ((glue_handler_t *)self)->server;
    dl__http_conn_t *conn = conn_of(req);
    assert(conn != NULL && conn->active == NULL);

    dl_http_req_t *r = req_alloc(s);
    r->server = s;
    r->conn = conn;
    r->req = req;
    r->state = DL__HTTP_PENDING;
    r->dispatched_ns = uv_hrtime();
    h2o_linklist_insert(&s->pending, &r->pending_link);
    conn->active = r;

    dl__http_dispatch(&s->routes, r, s->max_body);

    /* Replied or not, r stays valid here: libh2o disposes a request only once its response has
       been written, which happens in a later callback. */
    if (r->state == DL__HTTP_PENDING && !uv_is_active((uv_handle_t *)&s->check_timer))
        uv_timer_start(&s->check_timer, on_check_timer, DISCONNECT_CHECK_MS, DISCONNECT_CHECK_MS);
    return 0;
}

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
    dl_http_server_t *s = ((glue_logger_t *)self)->server;
    dl__http_conn_t *conn = conn_of(req);
    dl_http_req_t *r = conn != NULL ? conn->active : NULL;
    if (r != NULL && r->req == req) {
        conn->active = NULL;
        req_finished(s, r);
        return;
    }
    /* A response libh2o made itself, before any handler (413, 400, 417). */
    if (s->on_complete != NULL) {
        struct timeval now = *h2o_get_timestamp(&s->ctx, NULL, NULL);
        struct timeval begin = req->timestamps.request_begin_at;
        double seconds = (double)(now.tv_sec - begin.tv_sec) + (now.tv_usec - begin.tv_usec) / 1e6;
        s->on_complete(s->on_complete_ctx,
                       dl__http_metric_method(req->input.method.base, req->input.method.len), NULL,
                       req->res.status, seconds > 0 ? seconds : 0);
    }
}

static int status_error_code(int status)
{
    switch (status) {
    case 404:
        return DL_ENOTFOUND;
    case 405:
        return DL_EMETHOD;
    case 413:
        return DL_ETOOLARGE;
    case 503:
        return DL_EBUSY;
    default:
        return status >= 500 ? DL_EINTERNAL : DL_EBADREQUEST;
    }
}

/* Replaces the plain-text body of one of libh2o's own error responses by our JSON error body. */
static void rewrite_error_body(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                               size_t bufcnt, h2o_send_state_t state)
{
    dl_http_server_t *s = ((error_ostream_t *)self)->server;
    h2o_iovec_t body = {NULL, 0};

    if (state == H2O_SEND_STATE_FINAL && req->res.status >= 400) {
        char message[256];
        if (req->res.status == 413) {
            snprintf(message, sizeof(message),
                     "the request body is larger than the limit of %zu bytes", s->max_body);
        } else {
            size_t n = 0;
            for (size_t i = 0; i < bufcnt && n < sizeof(message) - 1; i++) {
                size_t take =
                    bufs[i].len < sizeof(message) - 1 - n ? bufs[i].len : sizeof(message) - 1 - n;
                memcpy(message + n, bufs[i].base, take);
                n += take;
            }
            message[n] = '\0';
            if (n == 0)
                snprintf(message, sizeof(message), "%s", req->res.reason);
        }
        json_t *e = dl_http_error_body(status_error_code(req->res.status), message);
        if (e != NULL)
            body = dl__http_json_in_pool(s, &req->pool, e);
        json_decref(e);
    }
    if (body.base == NULL) {
        h2o_ostream_send_next(self, req, bufs, bufcnt, state);
        return;
    }
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   H2O_STRLIT("application/json"), 1);
    req->res.content_length = body.len;
    int is_head = h2o_memis(req->input.method.base, req->input.method.len, H2O_STRLIT("HEAD"));
    h2o_ostream_send_next(self, req, &body, is_head ? 0 : 1, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    if (req->_generator != &dl__http_generator) {
        error_ostream_t *o = (error_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = rewrite_error_body;
        o->server = ((glue_filter_t *)self)->server;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

/* ---- connections ------------------------------------------------------------------------- */

/* libh2o closed the socket (after disposing the connection's request). */
static void on_sock_close(void *data)
{
    dl__http_conn_t *conn = data;
    conn->sock = NULL;
    if (conn->active != NULL) {
        /* Not expected: the logger has normally finished the request already. */
        dl_http_req_t *r = conn->active;
        conn->active = NULL;
        req_finished(conn->server, r);
    }
}

/* The libuv handle of a connection is closed: the last we hear of it. */
static void on_conn_closed(uv_handle_t *handle)
{
    dl__http_conn_t *conn = (dl__http_conn_t *)handle;
    dl_http_server_t *s = conn->server;
    h2o_linklist_unlink(&conn->link);
    s->nconns--;
    free(conn);
    maybe_finish(s);
}

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

static void on_connection(uv_stream_t *listener, int status)
{
    dl_http_server_t *s = listener->data;
    if (status < 0) {
        DL_WARN("http: accept on port %d failed: %s", s->port, uv_strerror(status));
        return;
    }
    dl__http_conn_t *conn = h2o_mem_alloc(sizeof(*conn));
    memset(conn, 0, sizeof(*conn));
    uv_tcp_init(s->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, free_handle);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->server = s;
    conn->sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_conn_closed);
    conn->sock->on_close.cb = on_sock_close;
    conn->sock->on_close.data = conn;
    h2o_linklist_insert(&s->conns, &conn->link);
    s->nconns++;
    h2o_accept(&s->accept_ctx, conn->sock);
}

/*
 * Cancels the waiting requests whose client has closed its connection. libh2o does not read a
 * connection while its request is processed, so we ask the kernel: POLLRDHUP is set once the
 * peer's FIN has arrived (even with unread bytes queued), POLLHUP/POLLERR after a reset. Like
 * nginx, a client that half-closes after sending its request counts as gone.
 */
static void on_check_timer(uv_timer_t *timer)
{
    dl_http_server_t *s = timer->data;
    if (h2o_linklist_is_empty(&s->pending)) {
        uv_timer_stop(timer);
        return;
    }
    size_t n = 0;
    for (h2o_linklist_t *node = s->pending.next; node != &s->pending; node = node->next) {
        dl_http_req_t *r = H2O_STRUCT_FROM_MEMBER(dl_http_req_t, pending_link, node);
        int fd = r->conn != NULL ? conn_fd(r->conn) : -1;
        if (fd < 0)
            continue;
        if (n == s->poll_cap) {
            size_t cap = s->poll_cap ? s->poll_cap * 2 : 64;
            struct pollfd *fds = realloc(s->poll_fds, cap * sizeof(*fds));
            if (fds == NULL)
                break;
            s->poll_fds = fds;
            dl__http_conn_t **conns = realloc(s->poll_conns, cap * sizeof(*conns));
            if (conns == NULL)
                break;
            s->poll_conns = conns;
            s->poll_cap = cap;
        }
        s->poll_fds[n] = (struct pollfd){.fd = fd, .events = POLLRDHUP};
        s->poll_conns[n] = r->conn;
        n++;
    }
    if (n == 0 || poll(s->poll_fds, n, 0) <= 0)
        return;
    /* Connections are freed only in libuv close callbacks, never during this one, so the
       pointers stay valid even when a cancel callback replies to other requests. */
    for (size_t i = 0; i < n; i++) {
        if (!(s->poll_fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            continue;
        dl_http_req_t *r = s->poll_conns[i]->active;
        if (r != NULL && r->state == DL__HTTP_PENDING)
            cancel_request(r, 499);
    }
}

/* ---- start ------------------------------------------------------------------------------- */

static int resolve(const char *host, int port, struct sockaddr_storage *addr, socklen_t *len,
                   char *err, size_t errlen)
{
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *res;
    int rv = getaddrinfo(host, service, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(rv));
        return -EINVAL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A listening socket, made with plain system calls so that every failure is reported here,
   before any libuv handle exists. Returns the fd or a negative errno. */
static int listen_socket(const dl_http_server_options_t *opts, int *port, char *err, size_t errlen)
{
    const char *host = opts->host != NULL ? opts->host : "127.0.0.1";
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int rv = resolve(host, opts->port, &addr, &addrlen, err, errlen);
    if (rv != 0)
        return rv;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rv = -errno;
        snprintf(err, errlen, "cannot create a socket for %s:%d: %s", host, opts->port,
                 strerror(errno));
        return rv;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        rv = -errno;
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, opts->port, strerror(errno));
        close(fd);
        return rv;
    }
    struct sockaddr_storage bound;
    socklen_t boundlen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &boundlen) != 0) {
        rv = -errno;
        snprintf(err, errlen, "getsockname on %s:%d: %s", host, opts->port, strerror(errno));
        close(fd);
        return rv;
    }
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

int dl_http_server_start(uv_loop_t *loop, const dl_http_server_options_t *opts,
                         dl_http_server_t **out, char *err, size_t errlen)
{
    int rv;
    *out = NULL;
    if (opts->port < 0 || opts->port > 65535 || opts->idle_timeout_ms < 0) {
        snprintf(err, errlen, "bad HTTP server options (port %d, idle timeout %lld ms)", opts->port,
                 (long long)opts->idle_timeout_ms);
        return -EINVAL;
    }
    dl_http_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int fd = listen_socket(opts, &s->port, err, errlen);
    if (fd < 0) {
        free(s);
        return fd;
    }

    /* A client that closes early must not kill the process with SIGPIPE on our next write. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    s->loop = loop;
    s->max_body = opts->max_body_bytes ? opts->max_body_bytes : DL_HTTP_DEFAULT_MAX_BODY_BYTES;
    s->on_complete = opts->on_complete;
    s->on_complete_ctx = opts->on_complete_ctx;
    h2o_linklist_init_anchor(&s->conns);
    h2o_linklist_init_anchor(&s->pending);

    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("ddialab"));
    s->config.max_request_entity_size = s->max_body < SIZE_MAX ? s->max_body + 1 : SIZE_MAX;
    s->config.http1.req_timeout =
        (uint64_t)(opts->idle_timeout_ms ? opts->idle_timeout_ms : DL_HTTP_DEFAULT_IDLE_TIMEOUT_MS);
    s->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    glue_handler_t *handler =
        (glue_handler_t *)h2o_create_handler(&host->fallback_path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = s;
    glue_filter_t *filter =
        (glue_filter_t *)h2o_create_filter(&host->fallback_path, sizeof(*filter));
    filter->super.on_setup_ostream = on_setup_ostream;
    filter->server = s;
    glue_logger_t *logger =
        (glue_logger_t *)h2o_create_logger(&host->fallback_path, sizeof(*logger));
    logger->super.log_access = log_access;
    logger->server = s;
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;

    uv_timer_init(loop, &s->check_timer);
    uv_timer_init(loop, &s->grace_timer);
    uv_timer_init(loop, &s->final_handle);
    s->check_timer.data = s->grace_timer.data = s->final_handle.data = s;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    if ((rv = uv_tcp_open(&s->listener, fd)) != 0) {
        close(fd);
        goto err_after_handles;
    }
    if ((rv = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection)) != 0)
        goto err_after_handles;
    *out = s;
    return 0;

err_after_handles:
    snprintf(err, errlen, "cannot listen on port %d: %s", s->port, uv_strerror(rv));
    dl_http_server_stop(s, 0, NULL, NULL); /* frees s once its handles have closed */
    return rv;
}

int dl_http_server_port(const dl_http_server_t *s)
{
    return s->port;
}

int dl_http_server_route(dl_http_server_t *s, const char *method, const char *pattern,
                         dl_http_handler_fn fn, void *ctx)
{
    return dl__http_routes_add(&s->routes, method, pattern, fn, ctx);
}

/* ---- stop -------------------------------------------------------------------------------- */

/* h2o_context_dispose() of libh2o 2.2.5 without its final uv_run(), which must not run inside
   a loop callback. Closes the context's timers and its queue's async handle. */
static void dispose_h2o_context(h2o_context_t *ctx)
{
    h2o_globalconf_t *config = ctx->globalconf;
    for (size_t i = 0; config->hosts[i] != NULL; ++i) {
        h2o_hostconf_t *hostconf = config->hosts[i];
        for (size_t j = 0; j != hostconf->paths.size; ++j)
            h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
        h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
    }
    free(ctx->_pathconfs_inited.entries);
    free(ctx->_module_configs);
    h2o_timeout_dispose(ctx->loop, &ctx->zero_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->one_sec_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->hundred_ms_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->handshake_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http1.req_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http2.idle_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->http2.graceful_shutdown_timeout);
    h2o_timeout_dispose(ctx->loop, &ctx->proxy.io_timeout);
    h2o_filecache_destroy(ctx->filecache);
    ctx->filecache = NULL;
    for (size_t i = 0; i != ctx->storage.size; ++i)
        if (ctx->storage.entries[i].dispose != NULL)
            ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
    free(ctx->storage.entries);
    h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(ctx->queue);
    if (ctx->_timestamp_cache.value != NULL)
        h2o_mem_release_shared(ctx->_timestamp_cache.value);
}

/* Last step: runs one close pass after every other handle of s (libh2o's included) finished
   closing, so freeing s cannot pull memory from under libuv. */
static void on_final_closed(uv_handle_t *handle)
{
    dl_http_server_t *s = handle->data;
    void (*done)(void *) = s->done;
    void *done_ctx = s->done_ctx;

    h2o_config_dispose(&s->config);
    dl__http_routes_free(&s->routes);
    while (s->free_reqs != NULL) {
        dl_http_req_t *r = s->free_reqs;
        s->free_reqs = r->next_free;
        free(r);
    }
    free(s->poll_fds);
    free(s->poll_conns);
    free(s->scratch);
    free(s);
    if (done != NULL)
        done(done_ctx);
}

static void on_timer_closed(uv_handle_t *handle)
{
    dl_http_server_t *s = handle->data;
    if (--s->closes_left == 0)
        uv_close((uv_handle_t *)&s->final_handle, on_final_closed);
}

static void maybe_finish(dl_http_server_t *s)
{
    if (!s->stopping || s->listener_open || s->nconns != 0 || s->finishing)
        return;
    s->finishing = 1;
    assert(h2o_linklist_is_empty(&s->pending));
    s->closes_left = 2;
    uv_close((uv_handle_t *)&s->check_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->grace_timer, on_timer_closed);
    dispose_h2o_context(&s->ctx);
}

static void on_listener_closed(uv_handle_t *handle)
{
    dl_http_server_t *s = handle->data;
    s->listener_open = 0;
    maybe_finish(s);
}

/* The grace period is over: cancel what still waits, and close every connection. */
static void on_grace_expired(uv_timer_t *timer)
{
    dl_http_server_t *s = timer->data;
    while (!h2o_linklist_is_empty(&s->pending)) {
        dl_http_req_t *r = H2O_STRUCT_FROM_MEMBER(dl_http_req_t, pending_link, s->pending.next);
        cancel_request(r, 503);
    }
    for (h2o_linklist_t *node = s->conns.next; node != &s->conns; node = node->next)
        shutdown_conn(H2O_STRUCT_FROM_MEMBER(dl__http_conn_t, link, node));
}

void dl_http_server_stop(dl_http_server_t *s, int64_t grace_ms, void (*done)(void *ctx), void *ctx)
{
    if (s->stopping) {
        DL_ERROR("http: server on port %d stopped twice", s->port);
        return;
    }
    s->stopping = 1;
    s->done = done;
    s->done_ctx = ctx;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    /* Requests parsed from now on are answered with Connection: close. (Not through
       h2o_context_request_shutdown(): that also arms HTTP/2's GOAWAY timer, which we do not
       need and which would then have to be waited for.) */
    s->ctx.shutdown_requested = 1;
    /* Close the connections that wait for their next request (nothing buffered, nothing being
       served or written); the others close after their response. */
    for (h2o_linklist_t *node = s->conns.next; node != &s->conns; node = node->next) {
        dl__http_conn_t *conn = H2O_STRUCT_FROM_MEMBER(dl__http_conn_t, link, node);
        if (conn->sock != NULL && conn->active == NULL && conn->sock->input->size == 0 &&
            !h2o_socket_is_writing(conn->sock))
            shutdown_conn(conn);
    }
    uv_timer_start(&s->grace_timer, on_grace_expired, grace_ms > 0 ? (uint64_t)grace_ms : 0, 0);
}
