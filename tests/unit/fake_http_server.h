/*
 * A tiny HTTP/1.1 server for unit tests, on raw libuv TCP.
 *
 * It listens on 127.0.0.1 on a free port, parses requests with a Content-Length body, keeps
 * connections alive, and asks a handler what to answer. The handler may also "hold" a request:
 * the server then never answers on that connection (for timeout and cancellation tests).
 *
 * Two ways to run it:
 *   - on the test's own loop (fake_http_server_start / fake_http_server_close), when the code
 *     under test is asynchronous on that loop;
 *   - on a thread with a private loop (fake_http_server_start_thread / _stop_thread), when the
 *     code under test blocks (command-line clients).
 * The counters and the last request are guarded by a mutex, so tests may read them with
 * fake_http_server_stats() / fake_http_server_last() from either thread.
 *
 * Header-only so that tests of several modules can include it ("../fake_http_server.h").
 */
#ifndef DDIALAB_TESTS_FAKE_HTTP_SERVER_H
#define DDIALAB_TESTS_FAKE_HTTP_SERVER_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#define FAKE_API static __attribute__((unused))

typedef struct fake_http_request_s {
    char method[16];
    char target[2048];  /* path and query as sent, e.g. "/kv/a%2Fb?consistency=stale" */
    char headers[4096]; /* the header lines as sent, each ending in "\r\n" */
    char body[65536];   /* truncated to fit; body_len is the length sent */
    size_t body_len;
} fake_http_request_t;

typedef struct fake_http_response_s {
    int status;         /* 200 when left 0 */
    char headers[4096]; /* extra "Name: value\r\n" lines */
    char body[16384];
    size_t body_len;
    int hold; /* set to never answer: the connection stays open and silent */
} fake_http_response_t;

/* Decides the answer to req. Runs on the server's loop thread. */
typedef void (*fake_http_handler)(void *ctx, const fake_http_request_t *req,
                                  fake_http_response_t *resp);

typedef struct fake_http_conn_s fake_http_conn_t;

typedef struct fake_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int port;
    char url[64]; /* "http://127.0.0.1:<port>" */
    fake_http_handler handler;
    void *ctx;
    fake_http_conn_t *conns;
    uv_mutex_t lock; /* guards the three fields below */
    int connections; /* accepted so far */
    int requests;    /* parsed so far */
    fake_http_request_t last;
    /* thread mode */
    uv_loop_t own_loop;
    uv_async_t stop;
    uv_thread_t thread;
} fake_http_server_t;

struct fake_http_conn_s {
    uv_tcp_t tcp;
    fake_http_server_t *server;
    char *buf;
    size_t len, cap;
    int held;
    fake_http_conn_t *prev, *next;
};

typedef struct fake_http_write_s {
    uv_write_t req;
    char *data;
} fake_http_write_t;

/* Sets status, extra header lines and a printf-formatted body. */
FAKE_API void fake_http_respond(fake_http_response_t *resp, int status, const char *headers,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
FAKE_API void fake_http_respond(fake_http_response_t *resp, int status, const char *headers,
                                const char *fmt, ...)
{
    resp->status = status;
    snprintf(resp->headers, sizeof(resp->headers), "%s", headers != NULL ? headers : "");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(resp->body, sizeof(resp->body), fmt, ap);
    va_end(ap);
    resp->body_len = n < 0                            ? 0
                     : (size_t)n < sizeof(resp->body) ? (size_t)n
                                                      : sizeof(resp->body) - 1;
}

/* Copies the value of header name from req into buf. Returns 1 when present, else 0. */
FAKE_API int fake_http_header(const fake_http_request_t *req, const char *name, char *buf,
                              size_t len)
{
    size_t name_len = strlen(name);
    for (const char *line = req->headers; *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        if ((size_t)(end - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, len, "%.*s", (int)(end - v), v);
            return 1;
        }
        line = end + 2;
    }
    return 0;
}

static void fake_http__on_conn_closed(uv_handle_t *handle)
{
    fake_http_conn_t *conn = handle->data;
    free(conn->buf);
    free(conn);
}

static void fake_http__conn_close(fake_http_conn_t *conn)
{
    fake_http_server_t *s = conn->server;
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        s->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    uv_close((uv_handle_t *)&conn->tcp, fake_http__on_conn_closed);
}

static void fake_http__on_written(uv_write_t *req, int status)
{
    fake_http_write_t *w = (fake_http_write_t *)req;
    free(w->data);
    free(w);
}

static const char *fake_http__reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 412:
        return "Precondition Failed";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void fake_http__send(fake_http_conn_t *conn, const fake_http_response_t *resp)
{
    int status = resp->status != 0 ? resp->status : 200;
    size_t cap = 256 + strlen(resp->headers) + resp->body_len;
    fake_http_write_t *w = calloc(1, sizeof(*w));
    w->data = malloc(cap);
    int n = snprintf(w->data, cap, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     fake_http__reason(status), resp->body_len, resp->headers);
    memcpy(w->data + n, resp->body, resp->body_len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)((size_t)n + resp->body_len));
    if (uv_write(&w->req, (uv_stream_t *)&conn->tcp, &buf, 1, fake_http__on_written) != 0) {
        free(w->data);
        free(w);
    }
}

/* Parses and answers every complete request in conn's buffer. */
static void fake_http__serve(fake_http_conn_t *conn)
{
    fake_http_server_t *s = conn->server;
    while (!conn->held) {
        char *end = conn->len > 0 ? memmem(conn->buf, conn->len, "\r\n\r\n", 4) : NULL;
        if (end == NULL)
            return;
        size_t head_len = (size_t)(end - conn->buf) + 4;
        fake_http_request_t *req = calloc(1, sizeof(*req));
        char *line_end = memmem(conn->buf, head_len, "\r\n", 2);
        char version[16];
        char *request_line = strndup(conn->buf, (size_t)(line_end - conn->buf));
        sscanf(request_line, "%15s %2047s %15s", req->method, req->target, version);
        free(request_line);
        size_t headers_len = head_len - 2 - (size_t)(line_end + 2 - conn->buf);
        if (headers_len >= sizeof(req->headers))
            headers_len = sizeof(req->headers) - 1;
        memcpy(req->headers, line_end + 2, headers_len);
        char value[64];
        size_t content_length = 0;
        if (fake_http_header(req, "Content-Length", value, sizeof(value)))
            content_length = strtoul(value, NULL, 10);
        if (conn->len < head_len + content_length) {
            free(req);
            return; /* the body has not all arrived */
        }
        req->body_len = content_length;
        memcpy(req->body, conn->buf + head_len,
               content_length < sizeof(req->body) ? content_length : sizeof(req->body) - 1);
        memmove(conn->buf, conn->buf + head_len + content_length,
                conn->len - head_len - content_length);
        conn->len -= head_len + content_length;

        uv_mutex_lock(&s->lock);
        s->requests++;
        memcpy(&s->last, req, sizeof(*req));
        uv_mutex_unlock(&s->lock);

        fake_http_response_t *resp = calloc(1, sizeof(*resp));
        s->handler(s->ctx, req, resp);
        if (resp->hold)
            conn->held = 1;
        else
            fake_http__send(conn, resp);
        free(resp);
        free(req);
    }
}

static void fake_http__alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    fake_http_conn_t *conn = handle->data;
    if (conn->cap - conn->len < 65536) {
        conn->cap = conn->cap * 2 + 65536;
        conn->buf = realloc(conn->buf, conn->cap);
    }
    *buf = uv_buf_init(conn->buf + conn->len, (unsigned)(conn->cap - conn->len));
}

static void fake_http__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    fake_http_conn_t *conn = stream->data;
    if (nread < 0) {
        fake_http__conn_close(conn);
        return;
    }
    conn->len += (size_t)nread;
    fake_http__serve(conn);
}

static void fake_http__on_connection(uv_stream_t *listener, int status)
{
    fake_http_server_t *s = listener->data;
    if (status != 0)
        return;
    fake_http_conn_t *conn = calloc(1, sizeof(*conn));
    conn->server = s;
    uv_tcp_init(s->loop, &conn->tcp);
    conn->tcp.data = conn;
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, fake_http__on_conn_closed);
        return;
    }
    conn->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = conn;
    s->conns = conn;
    uv_mutex_lock(&s->lock);
    s->connections++;
    uv_mutex_unlock(&s->lock);
    uv_read_start((uv_stream_t *)&conn->tcp, fake_http__alloc, fake_http__on_read);
}

/* Starts listening on 127.0.0.1:<free port> on loop. Returns 0 or a libuv error. */
FAKE_API int fake_http_server_start(fake_http_server_t *s, uv_loop_t *loop,
                                    fake_http_handler handler, void *ctx)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rv;
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    s->conns = NULL;
    s->connections = s->requests = 0;
    uv_mutex_init(&s->lock);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&s->listener, 1024, fake_http__on_connection)) != 0 ||
        (rv = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len)) != 0) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rv;
    }
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    return 0;
}

/* Closes the listener and every connection; the loop must run afterwards to finish. */
FAKE_API void fake_http_server_close(fake_http_server_t *s)
{
    uv_close((uv_handle_t *)&s->listener, NULL);
    while (s->conns != NULL)
        fake_http__conn_close(s->conns);
}

FAKE_API void fake_http_server_stats(fake_http_server_t *s, int *connections, int *requests)
{
    uv_mutex_lock(&s->lock);
    if (connections != NULL)
        *connections = s->connections;
    if (requests != NULL)
        *requests = s->requests;
    uv_mutex_unlock(&s->lock);
}

/* Copies the last request the server parsed into *out. */
FAKE_API void fake_http_server_last(fake_http_server_t *s, fake_http_request_t *out)
{
    uv_mutex_lock(&s->lock);
    memcpy(out, &s->last, sizeof(*out));
    uv_mutex_unlock(&s->lock);
}

static void fake_http__on_stop(uv_async_t *async)
{
    fake_http_server_t *s = async->data;
    uv_close((uv_handle_t *)&s->stop, NULL);
    fake_http_server_close(s);
}

static void fake_http__thread_main(void *arg)
{
    fake_http_server_t *s = arg;
    uv_run(&s->own_loop, UV_RUN_DEFAULT);
}

/* Starts the server on a thread of its own. Returns 0 or a libuv error. */
FAKE_API int fake_http_server_start_thread(fake_http_server_t *s, fake_http_handler handler,
                                           void *ctx)
{
    int rv = uv_loop_init(&s->own_loop);
    if (rv != 0)
        return rv;
    rv = fake_http_server_start(s, &s->own_loop, handler, ctx);
    if (rv == 0)
        rv = uv_async_init(&s->own_loop, &s->stop, fake_http__on_stop);
    if (rv == 0) {
        s->stop.data = s;
        rv = uv_thread_create(&s->thread, fake_http__thread_main, s);
    }
    if (rv != 0) {
        uv_run(&s->own_loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->own_loop);
    }
    return rv;
}

/* Stops a server started with fake_http_server_start_thread() and waits for its thread.
 * Returns 0 when every handle closed cleanly (uv_loop_close's result). */
FAKE_API int fake_http_server_stop_thread(fake_http_server_t *s)
{
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    return uv_loop_close(&s->own_loop);
}

#endif
