/*
 * The HTTP server, driven over real sockets on 127.0.0.1.
 *
 * The server runs on a libuv loop in one long-lived thread; the tests talk to it with plain
 * blocking sockets from the main thread (where cmocka's assertions must run) and run code on the
 * loop thread with on_loop(). The loop thread lives until the process exits on purpose: libh2o
 * keeps recycled memory in thread-local caches, which LeakSanitizer would report as leaked if
 * the thread ended before the process does.
 */
#include "ddialab/error.h"
#include "ddialab/http_server.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_BODY 1024

/* ---- the loop thread --------------------------------------------------------------------- */

static struct {
    uv_loop_t loop;
    uv_async_t wake;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*task)(void *arg);
    void *arg;
    int task_done;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_wake(uv_async_t *async)
{
    pthread_mutex_lock(&L.mu);
    void (*task)(void *) = L.task;
    void *arg = L.arg;
    L.task = NULL;
    pthread_mutex_unlock(&L.mu);
    if (task == NULL)
        return;
    task(arg);
    pthread_mutex_lock(&L.mu);
    L.task_done = 1;
    pthread_cond_broadcast(&L.cv);
    pthread_mutex_unlock(&L.mu);
}

static void *loop_main(void *arg)
{
    uv_run(&L.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs task(arg) on the loop thread and waits for it (10 s at most). */
static void on_loop(void (*task)(void *), void *arg)
{
    pthread_mutex_lock(&L.mu);
    L.task = task;
    L.arg = arg;
    L.task_done = 0;
    pthread_mutex_unlock(&L.mu);
    uv_async_send(&L.wake);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&L.mu);
    int rv = 0;
    while (!L.task_done && rv == 0)
        rv = pthread_cond_timedwait(&L.cv, &L.mu, &deadline);
    int done = L.task_done;
    pthread_mutex_unlock(&L.mu);
    if (!done)
        fail_msg("the loop thread did not run the task within 10 s");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until *value == want (5 s at most). */
static void wait_for(atomic_int *value, int want, const char *what)
{
    int64_t deadline = now_ms() + 5000;
    while (atomic_load(value) != want) {
        if (now_ms() > deadline)
            fail_msg("timed out waiting for %s (is %d, want %d)", what, atomic_load(value), want);
        usleep(1000);
    }
}

/* ---- the server under test --------------------------------------------------------------- */

typedef struct {
    char method[8];
    char pattern[32];
    int status;
} completion_t;

static struct {
    dl_http_server_t *server;
    int port;
    int64_t idle_timeout_ms; /* for the next server started */
    atomic_int stopped;      /* the stop's done callback ran */
    atomic_int slow_started; /* /slow handlers entered */
    atomic_int slow_live;    /* /slow timers not yet closed */
    atomic_int cancels;      /* cancel callbacks run */
    atomic_int late_replies; /* /slow replies sent after the request had gone */
    pthread_mutex_t mu;
    completion_t completions[512];
    int ncompletions;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Handlers and callbacks run on the loop thread, where cmocka's assertions must not be used:
   they record what they saw, and the tests assert on the main thread. */
static void on_complete(void *ctx, const char *method, const char *pattern, int status,
                        double seconds)
{
    if (seconds < 0)
        status = -1; /* makes completed() fail */
    pthread_mutex_lock(&S.mu);
    if (S.ncompletions < (int)(sizeof(S.completions) / sizeof(S.completions[0]))) {
        completion_t *c = &S.completions[S.ncompletions++];
        snprintf(c->method, sizeof(c->method), "%s", method);
        snprintf(c->pattern, sizeof(c->pattern), "%s", pattern ? pattern : "(none)");
        c->status = status;
    }
    pthread_mutex_unlock(&S.mu);
}

/* Whether on_complete saw (method, pattern, status). */
static int completed(const char *method, const char *pattern, int status)
{
    int found = 0;
    pthread_mutex_lock(&S.mu);
    for (int i = 0; i < S.ncompletions && !found; i++)
        found = strcmp(S.completions[i].method, method) == 0 &&
                strcmp(S.completions[i].pattern, pattern) == 0 && S.completions[i].status == status;
    pthread_mutex_unlock(&S.mu);
    return found;
}

/* on_complete runs once the response has been written, which may be after the client read it:
   waits (5 s at most) for the completion to be reported. */
static void wait_completed(const char *method, const char *pattern, int status)
{
    int64_t deadline = now_ms() + 5000;
    while (!completed(method, pattern, status)) {
        if (now_ms() > deadline)
            fail_msg("no completion %s %s %d reported", method, pattern, status);
        usleep(1000);
    }
}

/* Echoes what the handler sees. ctx names the route. */
static void h_echo(void *ctx, dl_http_req_t *r)
{
    const char *wildcard;
    size_t wildcard_len;
    const void *body;
    size_t body_len;
    dl_http_req_wildcard(r, &wildcard, &wildcard_len);
    dl_http_req_body(r, &body, &body_len);
    const char *query = dl_http_req_raw_query(r);
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s%, s:b, s:s%, s:o}", "route", (const char *)ctx, "method",
                  dl_http_req_method(r), "path", dl_http_req_path(r), "wildcard", wildcard,
                  wildcard_len, "wildcard_terminated", wildcard[wildcard_len] == '\0', "body",
                  (const char *)body, body_len, "query", query ? json_string(query) : json_null());
    dl_http_reply_json(r, 200, j, NULL);
}

static void h_query(void *ctx, dl_http_req_t *r)
{
    json_t *j = json_object();
    const char *names[] = {"a", "b", "c", "flag", "e", "name", "missing", "x y"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *value;
        size_t len;
        int rv = dl_http_req_query(r, names[i], &value, &len);
        if (rv == 0 && value[len] == '\0')
            json_object_set_new(j, names[i], json_stringn(value, len));
        else if (rv != -ENOENT)
            json_object_set_new(j, "unexpected", json_string(names[i]));
    }
    dl_http_reply_json(r, 200, j, NULL);
}

static void h_headers(void *ctx, dl_http_req_t *r)
{
    const char *custom = NULL, *host = NULL, *none = NULL;
    size_t len;
    int rv_custom = dl_http_req_header(r, "x-CUSTOM-header", &custom, &len);
    int rv_host = dl_http_req_header(r, "Host", &host, NULL);
    int rv_none = dl_http_req_header(r, "X-Absent", &none, NULL);
    char *scratch = dl_http_req_alloc(r, 64);
    snprintf(scratch, 64, "\"%d\"", 3);
    const char *const headers[] = {
        "ETag", scratch, "Location", "/kv/x", "X-Bad", "a\r\nInjected: 1", "X-Ok", "yes", NULL};
    dl_http_reply_json(r, 200,
                       json_pack("{s:s?, s:s?, s:i}", "custom", rv_custom == 0 ? custom : NULL,
                                 "host", rv_host == 0 ? host : NULL, "absent", rv_none),
                       headers);
}

static void h_error(void *ctx, dl_http_req_t *r)
{
    json_t *body = dl_http_error_body(DL_ENOTLEADER, NULL);
    json_object_set_new(body, "leader", json_integer(2));
    const char *const headers[] = {"Location", "http://127.0.0.1:1/kv/x", NULL};
    dl_http_reply_json(r, dl_err_http_status(DL_ENOTLEADER), body, headers);
}

static void h_busy(void *ctx, dl_http_req_t *r)
{
    dl_http_reply_error(r, DL_EBUSY, "%d requests are waiting", 7);
}

/* A JSON reply far larger than any buffer the server keeps. */
static void h_big(void *ctx, dl_http_req_t *r)
{
    json_t *items = json_array();
    for (int i = 0; i < 50000; i++)
        json_array_append_new(items, json_integer(i));
    dl_http_reply_json(r, 200, items, NULL);
}

static void h_no_content(void *ctx, dl_http_req_t *r)
{
    dl_http_reply(r, 204, NULL, NULL, 0, NULL);
}

static void h_text(void *ctx, dl_http_req_t *r)
{
    dl_http_reply(r, 201, "text/plain", "made\n", 5, NULL);
}

/* GET /slow?ms=N[&cancel=0]: replies {"slept": N} from a timer, N ms later. With cancel=0 no
   cancel callback is set, and the timer replies even when the request has gone away. */
typedef struct {
    uv_timer_t timer;
    dl_http_req_t *r;
    int ms;
    int with_cancel;
} slow_t;

static void slow_free(uv_handle_t *handle)
{
    free(handle);
    atomic_fetch_sub(&S.slow_live, 1);
}

static void slow_fire(uv_timer_t *timer)
{
    slow_t *slow = (slow_t *)timer;
    /* Without a cancel callback the handler cannot know whether the request is still there, so
       the reply may be a "late reply" to a request that has gone (the tests make sure it is). */
    if (!slow->with_cancel)
        atomic_fetch_add(&S.late_replies, 1);
    dl_http_reply_json(slow->r, 200, json_pack("{s:i}", "slept", slow->ms), NULL);
    uv_close((uv_handle_t *)timer, slow_free);
}

static void slow_cancel(void *ctx)
{
    slow_t *slow = ctx;
    atomic_fetch_add(&S.cancels, 1);
    uv_close((uv_handle_t *)&slow->timer, slow_free); /* also stops it */
}

static void h_slow(void *ctx, dl_http_req_t *r)
{
    const char *ms = "0", *cancel = "1";
    dl_http_req_query(r, "ms", &ms, NULL);
    dl_http_req_query(r, "cancel", &cancel, NULL);
    slow_t *slow = calloc(1, sizeof(*slow));
    slow->r = r;
    slow->ms = atoi(ms);
    slow->with_cancel = strcmp(cancel, "0") != 0;
    uv_timer_init(&L.loop, &slow->timer);
    if (slow->with_cancel)
        dl_http_req_on_cancel(r, slow_cancel, slow);
    atomic_fetch_add(&S.slow_live, 1);
    uv_timer_start(&slow->timer, slow_fire, (uint64_t)slow->ms, 0);
    atomic_fetch_add(&S.slow_started, 1);
}

static void start_task(void *arg)
{
    int *failed_routes = arg;
    dl_http_server_options_t opts = {.max_body_bytes = MAX_BODY,
                                     .idle_timeout_ms = S.idle_timeout_ms,
                                     .on_complete = on_complete,
                                     .on_complete_ctx = NULL};
    char err[256];
    int rv = dl_http_server_start(&L.loop, &opts, &S.server, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "start: %s\n", err);
        S.server = NULL;
        return;
    }
    S.port = dl_http_server_port(S.server);
    struct {
        const char *method, *pattern;
        dl_http_handler_fn fn;
        const char *name;
    } routes[] = {
        {"GET", "/status", h_echo, "status"},
        {"GET", "/kv/*", h_echo, "kv"},
        {"PUT", "/kv/*", h_echo, "kv"},
        {"DELETE", "/kv/*", h_echo, "kv"},
        {"GET", "/kv/_special", h_echo, "special"},
        {"POST", "/kv/deep/*", h_echo, "deep"},
        {"GET", "/query", h_query, NULL},
        {"GET", "/headers", h_headers, NULL},
        {"GET", "/error", h_error, NULL},
        {"GET", "/busy", h_busy, NULL},
        {"GET", "/big", h_big, NULL},
        {"DELETE", "/nothing", h_no_content, NULL},
        {"POST", "/text", h_text, NULL},
        {"GET", "/slow", h_slow, NULL},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (dl_http_server_route(S.server, routes[i].method, routes[i].pattern, routes[i].fn,
                                 (void *)routes[i].name) != 0)
            (*failed_routes)++;
    }
}

static void on_stopped(void *ctx)
{
    atomic_store(&S.stopped, 1);
}

typedef struct {
    int64_t grace_ms;
} stop_args_t;

static void stop_task(void *arg)
{
    stop_args_t *a = arg;
    dl_http_server_stop(S.server, a->grace_ms, on_stopped, NULL);
}

static void count_handle(uv_handle_t *handle, void *arg)
{
    if (!uv_is_closing(handle))
        (*(int *)arg)++;
}

static void count_handles_task(void *arg)
{
    *(int *)arg = 0;
    uv_walk(&L.loop, count_handle, arg);
}

/* Stops the server (if the test did not) and checks that it left no handle behind. */
static void stop_server(int64_t grace_ms)
{
    stop_args_t args = {grace_ms};
    on_loop(stop_task, &args);
    wait_for(&S.stopped, 1, "the server to stop");
}

static int setup(void **state)
{
    atomic_store(&S.stopped, 0);
    atomic_store(&S.slow_started, 0);
    atomic_store(&S.cancels, 0);
    atomic_store(&S.late_replies, 0);
    pthread_mutex_lock(&S.mu);
    S.ncompletions = 0;
    pthread_mutex_unlock(&S.mu);
    int failed_routes = 0;
    on_loop(start_task, &failed_routes);
    return S.server != NULL && failed_routes == 0 ? 0 : -1;
}

static int setup_short_idle_timeout(void **state)
{
    S.idle_timeout_ms = 200;
    int rv = setup(state);
    S.idle_timeout_ms = 0;
    return rv;
}

static int teardown(void **state)
{
    if (!atomic_load(&S.stopped))
        stop_server(0);
    wait_for(&S.slow_live, 0, "the test timers to close");
    int handles;
    on_loop(count_handles_task, &handles);
    assert_int_equal(handles, 1); /* only the loop thread's own async handle */
    S.server = NULL;
    return 0;
}

/* ---- a small HTTP/1.1 client ------------------------------------------------------------- */

typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
} client_t;

typedef struct {
    int status;
    char head[1 << 14];
    char *body;
    size_t body_len;
    json_t *json;
} resp_t;

static client_t *client_open(void)
{
    client_t *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return c;
}

static void client_close(client_t *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
}

/* Sends everything it can; a server that closes early is not an error here. */
static void client_send(client_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void client_sendf(client_t *c, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    client_send(c, buf, (size_t)n);
}

/* Reads more bytes into the buffer. Returns the count, 0 at EOF, -1 on error or timeout. */
static ssize_t client_fill(client_t *c)
{
    if (c->len == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16384;
        c->buf = realloc(c->buf, c->cap);
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

/* The value of header name in r->head (case-insensitive), copied to a static buffer, or NULL. */
static const char *header(const resp_t *r, const char *name)
{
    static char value[1024];
    size_t name_len = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, name_len) == 0 && h[name_len] == ':') {
            const char *v = h + name_len + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t)(strstr(v, "\r\n") - v);
            if (n >= sizeof(value))
                n = sizeof(value) - 1;
            memcpy(value, v, n);
            value[n] = '\0';
            return value;
        }
    }
    return NULL;
}

static void resp_free(resp_t *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/*
 * Reads one response. is_head: the request was HEAD (no body follows the head). Interim 100
 * responses are returned like any other. Returns 0, or -1 when the connection closed or timed
 * out first.
 */
static int read_response(client_t *c, resp_t *r, int is_head)
{
    memset(r, 0, sizeof(*r));
    char *end = NULL;
    while (c->len == 0 || (end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL)
        if (client_fill(c) <= 0)
            return -1;
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    const char *cl = header(r, "Content-Length");
    int bodiless = is_head || r->status < 200 || r->status == 204 || r->status == 304;
    size_t body_len = bodiless ? 0 : cl != NULL ? strtoul(cl, NULL, 10) : SIZE_MAX;
    if (body_len == SIZE_MAX) { /* until EOF */
        ssize_t n;
        while ((n = client_fill(c)) > 0)
            ;
        body_len = c->len - head_len;
    }
    while (c->len < head_len + body_len)
        if (client_fill(c) <= 0)
            return -1;
    r->body = malloc(body_len + 1);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    const char *type = header(r, "Content-Type");
    if (type != NULL && strcmp(type, "application/json") == 0 && !is_head) {
        assert_true(body_len > 0);
        assert_int_equal(r->body[body_len - 1], '\n'); /* for curl users */
        r->json = json_loadb(r->body, body_len, JSON_ALLOW_NUL, NULL);
        assert_non_null(r->json);
    }
    return 0;
}

/* One request on a new connection. */
static void request(const char *raw, resp_t *r)
{
    client_t *c = client_open();
    client_send(c, raw, strlen(raw));
    assert_int_equal(read_response(c, r, strncmp(raw, "HEAD ", 5) == 0), 0);
    client_close(c);
}

static void simple_get(const char *path, resp_t *r)
{
    char raw[8192];
    snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    request(raw, r);
}

static const char *jstr(const resp_t *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Asserts a JSON error response. */
static void assert_error(const resp_t *r, int status, const char *error)
{
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    assert_string_equal(jstr(r, "error"), error);
    assert_non_null(jstr(r, "message"));
}

/* Waits until the server closes c (recv returns 0); fails after 5 s. */
static void assert_closed_by_server(client_t *c)
{
    char buf[256];
    ssize_t n;
    while ((n = recv(c->fd, buf, sizeof(buf), 0)) > 0)
        ;
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

/* ---- tests: routing ---------------------------------------------------------------------- */

static void test_wildcard_route_decodes_the_rest_of_the_path(void **state)
{
    resp_t r;
    simple_get("/kv/a%2Fb", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_string_equal(jstr(&r, "route"), "kv");
    assert_string_equal(jstr(&r, "method"), "GET");
    assert_string_equal(jstr(&r, "path"), "/kv/a%2Fb");
    assert_string_equal(jstr(&r, "wildcard"), "a/b");
    assert_true(json_is_true(json_object_get(r.json, "wildcard_terminated")));
    assert_true(json_is_null(json_object_get(r.json, "query")));
    resp_free(&r);

    /* '/' and NUL are ordinary key bytes. */
    simple_get("/kv/x/y/%00z?q=1", &r);
    assert_int_equal(r.status, 200);
    json_t *w = json_object_get(r.json, "wildcard");
    assert_int_equal(json_string_length(w), 6);
    assert_memory_equal(json_string_value(w), "x/y/\0z", 6);
    assert_string_equal(jstr(&r, "path"), "/kv/x/y/%00z");
    assert_string_equal(jstr(&r, "query"), "q=1");
    resp_free(&r);
}

static void test_put_and_delete_reach_their_routes(void **state)
{
    resp_t r;
    request("PUT /kv/k1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "method"), "PUT");
    assert_string_equal(jstr(&r, "wildcard"), "k1");
    assert_string_equal(jstr(&r, "body"), "hello");
    resp_free(&r);

    request("DELETE /kv/k1 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "method"), "DELETE");
    assert_string_equal(jstr(&r, "body"), "");
    resp_free(&r);

    request("DELETE /nothing HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 204);
    assert_null(header(&r, "Content-Length"));
    resp_free(&r);

    request("POST /text HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(header(&r, "Content-Type"), "text/plain");
    assert_string_equal(r.body, "made\n");
    resp_free(&r);
}

static void test_exact_and_longer_patterns_win(void **state)
{
    resp_t r;
    simple_get("/kv/_special", &r);
    assert_string_equal(jstr(&r, "route"), "special");
    assert_string_equal(jstr(&r, "wildcard"), "");
    resp_free(&r);

    /* "/kv/deep/x" matches "/kv/" "*" for GET and the longer "/kv/deep/" "*" for POST. */
    request("POST /kv/deep/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    assert_string_equal(jstr(&r, "route"), "deep");
    assert_string_equal(jstr(&r, "wildcard"), "x");
    resp_free(&r);
    simple_get("/kv/deep/x", &r);
    assert_string_equal(jstr(&r, "route"), "kv");
    assert_string_equal(jstr(&r, "wildcard"), "deep/x");
    resp_free(&r);
}

static void test_head_is_served_by_the_get_route_without_body(void **state)
{
    resp_t get, head;
    simple_get("/query?a=1", &get);
    request("HEAD /query?a=1 HTTP/1.1\r\nHost: t\r\n\r\n", &head);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.body_len, 0);
    char length[32];
    snprintf(length, sizeof(length), "%zu", get.body_len);
    assert_string_equal(header(&head, "Content-Length"), length);
    resp_free(&get);
    resp_free(&head);
}

static void test_unknown_path_is_404_json(void **state)
{
    resp_t r;
    simple_get("/nope", &r);
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    simple_get("/kv/", &r); /* the wildcard needs at least one byte */
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    simple_get("/status/extra", &r);
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    wait_completed("GET", "(none)", 404);
}

static void test_wrong_method_is_405_json_with_allow(void **state)
{
    resp_t r;
    request("POST /status HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(header(&r, "Allow"), "GET, HEAD");
    resp_free(&r);

    request("PATCH /kv/x HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(header(&r, "Allow"), "GET, HEAD, PUT, DELETE");
    resp_free(&r);
    wait_completed("OTHER", "(none)", 405);
}

static void test_bad_percent_encoding_is_400_json(void **state)
{
    const char *paths[] = {"/kv/%ZZ", "/kv/abc%4", "/kv/%", "/status?x=%G0", "/status?x=1%"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        resp_t r;
        simple_get(paths[i], &r);
        assert_error(&r, 400, "bad_request");
        resp_free(&r);
    }
    resp_t r;
    request("GET * HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_error(&r, 400, "bad_request");
    resp_free(&r);
}

static void test_query_parameters_are_decoded(void **state)
{
    resp_t r;
    simple_get("/query?a=1&b=x+y&&c=%2F%20&a=2&flag&e=&n%61me=7&x+y=sp", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "a"), "1"); /* the first of two */
    assert_string_equal(jstr(&r, "b"), "x y");
    assert_string_equal(jstr(&r, "c"), "/ ");
    assert_string_equal(jstr(&r, "flag"), "");
    assert_string_equal(jstr(&r, "e"), "");
    assert_string_equal(jstr(&r, "name"), "7");
    assert_string_equal(jstr(&r, "x y"), "sp");
    assert_null(json_object_get(r.json, "missing"));
    assert_null(json_object_get(r.json, "unexpected"));
    resp_free(&r);

    simple_get("/query", &r);
    assert_int_equal(json_object_size(r.json), 0);
    resp_free(&r);
}

static void test_headers_in_and_out(void **state)
{
    resp_t r;
    request("GET /headers HTTP/1.1\r\nHost: example:81\r\nX-Custom-Header: v1\r\n"
            "x-custom-header: v2\r\n\r\n",
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "custom"), "v1");
    assert_string_equal(jstr(&r, "host"), "example:81");
    assert_int_equal(json_integer_value(json_object_get(r.json, "absent")), -ENOENT);
    assert_string_equal(header(&r, "ETag"), "\"3\"");
    assert_string_equal(header(&r, "Location"), "/kv/x");
    assert_string_equal(header(&r, "X-Ok"), "yes");
    assert_null(header(&r, "X-Bad"));    /* a value with CR LF is dropped, */
    assert_null(header(&r, "Injected")); /* so nothing can be smuggled in */
    resp_free(&r);
}

static void test_large_json_reply(void **state)
{
    resp_t r;
    simple_get("/big", &r);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len > 64 * 1024);
    assert_int_equal(json_array_size(r.json), 50000);
    assert_int_equal(json_integer_value(json_array_get(r.json, 49999)), 49999);
    resp_free(&r);
}

static void test_error_helpers(void **state)
{
    resp_t r;
    simple_get("/error", &r);
    assert_error(&r, 307, "not_leader");
    assert_string_equal(jstr(&r, "message"), dl_strerror(DL_ENOTLEADER));
    assert_int_equal(json_integer_value(json_object_get(r.json, "leader")), 2);
    assert_string_equal(header(&r, "Location"), "http://127.0.0.1:1/kv/x");
    resp_free(&r);

    simple_get("/busy", &r);
    assert_error(&r, 503, "busy");
    assert_string_equal(jstr(&r, "message"), "7 requests are waiting");
    resp_free(&r);

    json_t *body = dl_http_error_body(-ENOENT, "no \xff key");
    assert_non_null(body);
    assert_string_equal(json_string_value(json_object_get(body, "error")), "not_found");
    assert_string_equal(json_string_value(json_object_get(body, "message")), "no ? key");
    json_decref(body);
}

typedef struct {
    int rv[6];
} route_args_t;

static void bad_routes_task(void *arg)
{
    route_args_t *a = arg;
    a->rv[0] = dl_http_server_route(S.server, "PATCH", "/x", h_echo, NULL);
    a->rv[1] = dl_http_server_route(S.server, "GET", "x", h_echo, NULL);
    a->rv[2] = dl_http_server_route(S.server, "GET", "/a*", h_echo, NULL);
    a->rv[3] = dl_http_server_route(S.server, "GET", "/a/*/b", h_echo, NULL);
    a->rv[4] = dl_http_server_route(S.server, "GET", "/status", h_echo, NULL);
    a->rv[5] = dl_http_server_route(S.server, "HEAD", "/h", h_echo, NULL);
}

static void test_route_rejects_bad_methods_patterns_and_duplicates(void **state)
{
    route_args_t a;
    on_loop(bad_routes_task, &a);
    assert_int_equal(a.rv[0], -EINVAL);
    assert_int_equal(a.rv[1], -EINVAL);
    assert_int_equal(a.rv[2], -EINVAL);
    assert_int_equal(a.rv[3], -EINVAL);
    assert_int_equal(a.rv[4], -EEXIST);
    assert_int_equal(a.rv[5], -EINVAL);
}

typedef struct {
    int port, rv;
    char err[256];
} start_args_t;

static void start_on_used_port_task(void *arg)
{
    start_args_t *a = arg;
    dl_http_server_options_t opts = {.port = a->port};
    dl_http_server_t *s;
    a->rv = dl_http_server_start(&L.loop, &opts, &s, a->err, sizeof(a->err));
}

static void test_start_reports_address_in_use(void **state)
{
    start_args_t a = {.port = S.port};
    on_loop(start_on_used_port_task, &a);
    assert_int_equal(a.rv, -EADDRINUSE);
    assert_non_null(strstr(a.err, "cannot listen"));
}

/* ---- tests: bodies and limits ------------------------------------------------------------ */

static void test_oversize_body_is_413_json(void **state)
{
    /* Announced too large: libh2o refuses it before reading; the body is rewritten to JSON. */
    client_t *c = client_open();
    client_sendf(c, "PUT /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", 5 * MAX_BODY);
    resp_t r;
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_error(&r, 413, "too_large");
    assert_non_null(strstr(jstr(&r, "message"), "1024 bytes"));
    assert_string_equal(header(&r, "Connection"), "close");
    resp_free(&r);
    assert_closed_by_server(c);
    client_close(c);

    /* One byte over: refused by our own check. */
    char *body = malloc(MAX_BODY + 1);
    memset(body, 'x', MAX_BODY + 1);
    c = client_open();
    client_sendf(c, "PUT /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", MAX_BODY + 1);
    client_send(c, body, MAX_BODY + 1);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_error(&r, 413, "too_large");
    resp_free(&r);
    client_close(c);

    /* Exactly at the limit: fine. */
    c = client_open();
    client_sendf(c, "PUT /kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    client_send(c, body, MAX_BODY);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(strlen(jstr(&r, "body")), MAX_BODY);
    resp_free(&r);
    client_close(c);
    free(body);

    /* A chunked body over the limit. */
    c = client_open();
    client_sendf(c, "PUT /kv/big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; i++) {
        char chunk[600];
        memset(chunk, 'y', sizeof(chunk));
        client_sendf(c, "%zx\r\n", sizeof(chunk));
        client_send(c, chunk, sizeof(chunk));
        client_send(c, "\r\n", 2);
    }
    client_send(c, "0\r\n\r\n", 5);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_error(&r, 413, "too_large");
    resp_free(&r);
    client_close(c);

    /* And the server goes on serving new connections. */
    simple_get("/status", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    wait_completed("PUT", "(none)", 413);
}

static void test_chunked_body_is_reassembled(void **state)
{
    resp_t r;
    request("PUT /kv/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n",
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "body"), "hello world");
    resp_free(&r);
}

static void test_expect_100_continue(void **state)
{
    client_t *c = client_open();
    client_sendf(
        c, "PUT /kv/e HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    resp_t r;
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_int_equal(r.status, 100);
    resp_free(&r);
    client_send(c, "abc", 3);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "body"), "abc");
    resp_free(&r);
    client_close(c);
}

static void test_broken_framing_is_400_json(void **state)
{
    const char *requests[] = {
        "PUT /kv/x HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        "PUT /kv/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        "PUT /kv/x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
    };
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        resp_t r;
        request(requests[i], &r);
        assert_error(&r, 400, "bad_request");
        resp_free(&r);
    }
}

/* ---- tests: connections ------------------------------------------------------------------ */

static void test_keep_alive_serves_two_requests_on_one_connection(void **state)
{
    client_t *c = client_open();
    resp_t r;
    for (int i = 0; i < 2; i++) {
        client_sendf(c, "GET /kv/k%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        assert_int_equal(read_response(c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Connection"), "keep-alive");
        char want[8];
        snprintf(want, sizeof(want), "k%d", i);
        assert_string_equal(jstr(&r, "wildcard"), want);
        resp_free(&r);
    }
    client_close(c);
}

static void test_idle_connection_is_closed_after_the_idle_timeout(void **state)
{
    client_t *c = client_open();
    resp_t r;
    client_sendf(c, "GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    int64_t start = now_ms();
    assert_closed_by_server(c);
    int64_t waited = now_ms() - start;
    assert_true(waited >= 150 && waited < 2000);
    client_close(c);

    /* A request that never completes is dropped the same way. */
    c = client_open();
    client_sendf(c, "GET /status HTTP/1.1\r\nHost: t\r\n");
    assert_closed_by_server(c);
    client_close(c);
}

static void test_pipelined_requests_are_answered_in_order(void **state)
{
    client_t *c = client_open();
    /* An asynchronous one first: the second waits for it. */
    client_sendf(c, "GET /slow?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /kv/second HTTP/1.1\r\nHost: t\r\n\r\n"
                    "HEAD /kv/third HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /kv/fourth HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    resp_t r;
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_int_equal(json_integer_value(json_object_get(r.json, "slept")), 50);
    resp_free(&r);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_string_equal(jstr(&r, "wildcard"), "second");
    resp_free(&r);
    assert_int_equal(read_response(c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(read_response(c, &r, 0), 0);
    assert_string_equal(jstr(&r, "wildcard"), "fourth");
    assert_string_equal(header(&r, "Connection"), "close");
    resp_free(&r);
    assert_closed_by_server(c);
    client_close(c);
}

static void test_64_keep_alive_connections(void **state)
{
    enum { CONNS = 64, ROUNDS = 20 };
    client_t *c[CONNS];
    for (int i = 0; i < CONNS; i++)
        c[i] = client_open();
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CONNS; i++)
            client_sendf(c[i], "GET /kv/c%d-r%d HTTP/1.1\r\nHost: t\r\n\r\n", i, round);
        for (int i = 0; i < CONNS; i++) {
            resp_t r;
            assert_int_equal(read_response(c[i], &r, 0), 0);
            assert_int_equal(r.status, 200);
            char want[32];
            snprintf(want, sizeof(want), "c%d-r%d", i, round);
            assert_string_equal(jstr(&r, "wildcard"), want);
            resp_free(&r);
        }
    }
    for (int i = 0; i < CONNS; i++)
        client_close(c[i]);
}

/* A deterministic byte source for the garbage test. */
static uint32_t rng = 2463534242u;
static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void test_garbage_never_stops_the_server(void **state)
{
    char buf[4096];
    /* Random bytes, alone and after a valid request line. */
    for (int i = 0; i < 40; i++) {
        size_t n = 1 + next_random() % sizeof(buf);
        for (size_t j = 0; j < n; j++)
            buf[j] = (char)next_random();
        client_t *c = client_open();
        if (i % 2)
            client_sendf(c, "GET /kv/x HTTP/1.1\r\n");
        client_send(c, buf, n);
        /* Bytes that may still parse as the start of a request: the client then ends its side,
           leaves, or gives up waiting for an answer. */
        if (i % 3 == 0) {
            shutdown(c->fd, SHUT_WR);
        } else if (i % 3 == 1) {
            client_close(c);
            continue;
        } else {
            struct timeval tv = {.tv_usec = 100 * 1000};
            setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
        char sink[4096];
        while (recv(c->fd, sink, sizeof(sink), 0) > 0)
            ;
        client_close(c);
    }

    /* A truncated request, then the client leaves. */
    client_t *c = client_open();
    client_sendf(c, "GET /status HTTP/1.1\r\nHost: t\r\nX-Half: ");
    client_close(c);

    /* A head over libh2o's limit: plain-text 400 and the connection closes. */
    size_t huge = 512 * 1024;
    char *big = malloc(huge);
    memset(big, 'h', huge);
    c = client_open();
    client_sendf(c, "GET /status HTTP/1.1\r\nHost: t\r\nX-Huge: ");
    client_send(c, big, huge);
    resp_t r;
    if (read_response(c, &r, 0) == 0) {
        assert_int_equal(r.status, 400);
        resp_free(&r);
    }
    client_close(c);
    free(big);

    /* A long path (6 KiB) is served. */
    char path[6200] = "/kv/";
    memset(path + 4, 'p', 6000);
    path[6004] = '\0';
    simple_get(path, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(strlen(jstr(&r, "wildcard")), 6000);
    resp_free(&r);

    /* Not HTTP/1.x. */
    request("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);

    simple_get("/status", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---- tests: asynchronous replies and cancellation ---------------------------------------- */

static void test_async_reply_from_a_timer(void **state)
{
    resp_t r;
    int64_t start = now_ms();
    simple_get("/slow?ms=120", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "slept")), 120);
    assert_true(now_ms() - start >= 110);
    resp_free(&r);
    wait_completed("GET", "/slow", 200);
}

static void test_client_disconnect_runs_the_cancel_callback(void **state)
{
    client_t *c = client_open();
    client_sendf(c, "GET /slow?ms=30000 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for(&S.slow_started, 1, "the handler");
    client_close(c);
    wait_for(&S.cancels, 1, "the cancel callback");
    wait_for(&S.slow_live, 0, "the timer to close");

    /* The server is fine. */
    resp_t r;
    simple_get("/status", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    wait_completed("GET", "/slow", 499);
}

static void test_late_reply_to_a_gone_request_is_harmless(void **state)
{
    /* No cancel callback: the handler replies after the client has gone. */
    client_t *c = client_open();
    client_sendf(c, "GET /slow?ms=1000&cancel=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for(&S.slow_started, 1, "the handler");
    client_close(c);
    wait_for(&S.late_replies, 1, "the late reply");
    wait_for(&S.slow_live, 0, "the timer to close");
    wait_completed("GET", "/slow", 499);

    resp_t r;
    simple_get("/status", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

/* ---- tests: stopping --------------------------------------------------------------------- */

static void test_stop_lets_in_flight_requests_finish(void **state)
{
    client_t *busy = client_open();
    client_sendf(busy, "GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for(&S.slow_started, 1, "the handler");

    client_t *idle = client_open();
    resp_t r;
    client_sendf(idle, "GET /status HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(read_response(idle, &r, 0), 0);
    resp_free(&r);

    stop_args_t args = {5000};
    on_loop(stop_task, &args);
    /* The idle keep-alive connection is closed at once... */
    assert_closed_by_server(idle);
    client_close(idle);
    /* ...the busy one gets its answer, with Connection: close. */
    assert_int_equal(read_response(busy, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Connection"), "close");
    resp_free(&r);
    assert_closed_by_server(busy);
    client_close(busy);
    wait_for(&S.stopped, 1, "the server to stop");
    assert_int_equal(atomic_load(&S.cancels), 0);

    /* Nobody listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
}

static void test_stop_cancels_requests_still_waiting_after_the_grace(void **state)
{
    client_t *with_cancel = client_open();
    client_sendf(with_cancel, "GET /slow?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    client_t *without_cancel = client_open();
    client_sendf(without_cancel, "GET /slow?ms=1500&cancel=0 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for(&S.slow_started, 2, "the handlers");

    int64_t start = now_ms();
    stop_args_t args = {100};
    on_loop(stop_task, &args);
    resp_t r;
    assert_int_equal(read_response(with_cancel, &r, 0), 0);
    assert_error(&r, 503, "shutting_down");
    assert_string_equal(header(&r, "Connection"), "close");
    resp_free(&r);
    assert_int_equal(read_response(without_cancel, &r, 0), 0);
    assert_error(&r, 503, "shutting_down");
    resp_free(&r);
    assert_true(now_ms() - start < 1400);
    assert_closed_by_server(with_cancel);
    assert_closed_by_server(without_cancel);
    client_close(with_cancel);
    client_close(without_cancel);
    wait_for(&S.stopped, 1, "the server to stop");
    assert_int_equal(atomic_load(&S.cancels), 1);
    /* The handler without a cancel callback replies after the server is gone: a no-op. */
    wait_for(&S.slow_live, 0, "the late timer");
}

static void test_stop_closes_half_read_requests_after_the_grace(void **state)
{
    client_t *c = client_open();
    client_sendf(c, "PUT /kv/x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    usleep(50 * 1000);
    stop_args_t args = {100};
    on_loop(stop_task, &args);
    assert_closed_by_server(c);
    client_close(c);
    wait_for(&S.stopped, 1, "the server to stop");
}

int main(void)
{
    assert_int_equal(uv_loop_init(&L.loop), 0);
    assert_int_equal(uv_async_init(&L.loop, &L.wake, on_wake), 0);
    assert_int_equal(pthread_create(&L.thread, NULL, loop_main, NULL), 0);

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_wildcard_route_decodes_the_rest_of_the_path),
        T(test_put_and_delete_reach_their_routes),
        T(test_exact_and_longer_patterns_win),
        T(test_head_is_served_by_the_get_route_without_body),
        T(test_unknown_path_is_404_json),
        T(test_wrong_method_is_405_json_with_allow),
        T(test_bad_percent_encoding_is_400_json),
        T(test_query_parameters_are_decoded),
        T(test_headers_in_and_out),
        T(test_large_json_reply),
        T(test_error_helpers),
        T(test_route_rejects_bad_methods_patterns_and_duplicates),
        T(test_start_reports_address_in_use),
        T(test_oversize_body_is_413_json),
        T(test_chunked_body_is_reassembled),
        T(test_expect_100_continue),
        T(test_broken_framing_is_400_json),
        T(test_keep_alive_serves_two_requests_on_one_connection),
        cmocka_unit_test_setup_teardown(test_idle_connection_is_closed_after_the_idle_timeout,
                                        setup_short_idle_timeout, teardown),
        T(test_pipelined_requests_are_answered_in_order),
        T(test_64_keep_alive_connections),
        T(test_garbage_never_stops_the_server),
        T(test_async_reply_from_a_timer),
        T(test_client_disconnect_runs_the_cancel_callback),
        T(test_late_reply_to_a_gone_request_is_harmless),
        T(test_stop_lets_in_flight_requests_finish),
        T(test_stop_cancels_requests_still_waiting_after_the_grace),
        T(test_stop_closes_half_read_requests_after_the_grace),
    };
#undef T
    /* The loop thread keeps running until exit; see the comment at the top. */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
