/*
 * HTTP client: libcurl's multi interface driven by a libuv loop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when it next needs a
 * call (CURLMOPT_TIMERFUNCTION). We keep one uv_poll_t per socket and one uv_timer_t for the
 * whole client, and hand every readiness event back with curl_multi_socket_action(). Finished
 * transfers are collected with curl_multi_info_read() and reported to their callbacks.
 *
 * Lifetimes. A uv_poll_t must be closed, and its close callback must have run, before its memory
 * is freed; libcurl announces CURL_POLL_REMOVE before it closes a socket, so the poll is stopped
 * while the descriptor is still open and freed in its close callback. The client itself is freed
 * when its timer and every poll it ever closed have finished closing.
 */
#include "ddialab/http_client.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ddialab/error.h"

#define DEFAULT_TIMEOUT_MS 10000
#define MAX_REDIRECTS      5

/* One socket libcurl asked us to watch. */
typedef struct watched_socket_s {
    uv_poll_t poll;
    curl_socket_t fd;
    dl_http_client_t *client;
    struct watched_socket_s *prev, *next; /* in client->sockets while the poll is open */
} watched_socket_t;

/* One request in flight. */
typedef struct transfer_s {
    dl_http_client_t *client;
    CURL *easy;
    struct curl_slist *headers;
    dl_http_client_cb cb;
    void *ctx;
    char *body; /* the response body, NUL-terminated */
    size_t body_len;
    size_t body_cap;
    char *location;
    char *etag;
    int out_of_memory;
    char errbuf[CURL_ERROR_SIZE];
    struct transfer_s *prev, *next; /* in client->transfers */
} transfer_t;

struct dl_http_client_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    transfer_t *transfers;
    watched_socket_t *sockets;
    int closing;
    int closes_pending; /* handles passed to uv_close whose close callback has not run yet */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_init_result = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- handle lifetimes ---- */

static void maybe_free_client(dl_http_client_t *c)
{
    if (c->closing && c->closes_pending == 0)
        free(c);
}

static void on_timer_closed(uv_handle_t *handle)
{
    dl_http_client_t *c = handle->data;
    c->closes_pending--;
    maybe_free_client(c);
}

static void on_socket_closed(uv_handle_t *handle)
{
    watched_socket_t *s = handle->data;
    dl_http_client_t *c = s->client;
    free(s);
    c->closes_pending--;
    maybe_free_client(c);
}

/* Stops watching s and frees it once libuv is done with it. */
static void socket_close(watched_socket_t *s)
{
    dl_http_client_t *c = s->client;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->sockets = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    c->closes_pending++;
    uv_close((uv_handle_t *)&s->poll, on_socket_closed);
}

/* ---- reporting finished transfers ---- */

static int rv_from_curl(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -ECONNREFUSED;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

static void transfer_unlink(transfer_t *t)
{
    dl_http_client_t *c = t->client;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        c->transfers = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void transfer_free(transfer_t *t)
{
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->body);
    free(t->location);
    free(t->etag);
    free(t);
}

/*
 * Takes t out of the multi handle, runs its callback with the outcome (rv overrides what libcurl
 * reported when non-zero) and frees it. The callback may send or close; t is already unlinked.
 */
static void transfer_finish(transfer_t *t, CURLcode code, int rv)
{
    dl_http_client_t *c = t->client;
    transfer_unlink(t);
    curl_multi_remove_handle(c->multi, t->easy);

    dl_http_response_t resp = {0};
    resp.rv = rv != 0 ? rv : t->out_of_memory ? -ENOMEM : rv_from_curl(code);
    char *effective_url = NULL;
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &effective_url);
    resp.effective_url = effective_url;
    resp.body = t->body != NULL ? t->body : "";
    if (resp.rv == 0) {
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        resp.body_len = t->body_len;
        resp.location = t->location;
        resp.etag = t->etag;
    } else if (resp.rv == DL_ESHUTDOWN) {
        resp.error = "the HTTP client was closed before the response arrived";
    } else if (resp.rv == -ENOMEM) {
        resp.error = "out of memory";
    } else {
        resp.error = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code);
    }
    if (resp.rv != 0)
        resp.body = "";
    t->cb(t->ctx, &resp);
    transfer_free(t);
}

/* Reports every transfer libcurl has finished. Stops early if a callback closed the client. */
static void check_finished(dl_http_client_t *c)
{
    CURLMsg *msg;
    int left;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        transfer_t *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        assert(t != NULL);
        transfer_finish(t, msg->data.result, 0);
    }
}

/* ---- libcurl <-> libuv glue ---- */

static void on_poll(uv_poll_t *handle, int status, int events)
{
    watched_socket_t *s = handle->data;
    dl_http_client_t *c = s->client;
    int flags = 0;
    /* An error on the socket (typically the server closed it while we were still sending a
     * body it refused) must not end the transfer before libcurl has read the answer that is
     * already waiting, such as a 413: let libcurl read and write and find the error itself. */
    if (status < 0)
        flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    /* s may be closed (not freed) inside this call; c stays valid until a close callback. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_finished(c);
}

static void on_timeout(uv_timer_t *timer)
{
    dl_http_client_t *c = timer->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_finished(c);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching fd. */
static int on_socket_update(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    dl_http_client_t *c = userp;
    watched_socket_t *s = socketp;

    if (what == CURL_POLL_REMOVE) {
        /* libcurl forgets socketp itself; the descriptor is still open at this point. */
        if (s != NULL)
            socket_close(s);
        return 0;
    }
    if (s == NULL) {
        if (c->closing)
            return -1;
        s = calloc(1, sizeof(*s));
        if (s == NULL)
            return -1;
        s->fd = fd;
        s->client = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        s->next = c->sockets;
        if (c->sockets != NULL)
            c->sockets->prev = s;
        c->sockets = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events == 0)
        return uv_poll_stop(&s->poll) == 0 ? 0 : -1;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION: (re)arm or stop the one timer. */
static int on_timer_update(CURLM *multi, long timeout_ms, void *userp)
{
    dl_http_client_t *c = userp;
    if (c->closing)
        return 0;
    if (timeout_ms < 0)
        return uv_timer_stop(&c->timer) == 0 ? 0 : -1;
    return uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* ---- per-transfer libcurl callbacks ---- */

static size_t on_body(char *data, size_t size, size_t count, void *userp)
{
    transfer_t *t = userp;
    size_t len = size * count;
    if (t->body_len + len + 1 > t->body_cap) {
        size_t cap = t->body_cap != 0 ? t->body_cap : 1024;
        while (cap < t->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(t->body, cap);
        if (grown == NULL) {
            t->out_of_memory = 1;
            return 0; /* aborts the transfer */
        }
        t->body = grown;
        t->body_cap = cap;
    }
    memcpy(t->body + t->body_len, data, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return len;
}

/* Replaces *slot with the header value in line (after "Name:"), trimmed. */
static int keep_header_value(char **slot, const char *value, size_t len)
{
    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' ' ||
                       value[len - 1] == '\t'))
        len--;
    char *copy = strndup(value, len);
    if (copy == NULL)
        return -ENOMEM;
    free(*slot);
    *slot = copy;
    return 0;
}

static size_t on_header(char *line, size_t size, size_t count, void *userp)
{
    transfer_t *t = userp;
    size_t len = size * count;
    int rv = 0;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response starts (after a redirect or a 100 Continue): forget the last one's. */
        free(t->location);
        free(t->etag);
        t->location = t->etag = NULL;
    } else if (len > 9 && strncasecmp(line, "Location:", 9) == 0) {
        rv = keep_header_value(&t->location, line + 9, len - 9);
    } else if (len > 5 && strncasecmp(line, "ETag:", 5) == 0) {
        rv = keep_header_value(&t->etag, line + 5, len - 5);
    }
    if (rv != 0) {
        t->out_of_memory = 1;
        return 0;
    }
    return len;
}

/* ---- public API ---- */

int dl_http_client_new(uv_loop_t *loop, dl_http_client_t **out)
{
    int rv;
    pthread_once(&global_once, global_init);
    if (global_init_result != CURLE_OK)
        return -EIO;

    dl_http_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->loop = loop;
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket_update) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_update) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        rv = -EIO;
        goto err_after_multi;
    }
    rv = uv_timer_init(loop, &c->timer);
    if (rv != 0)
        goto err_after_multi;
    c->timer.data = c;
    *out = c;
    return 0;

err_after_multi:
    curl_multi_cleanup(c->multi);
err_after_alloc:
    free(c);
    return rv;
}

static int has_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);
    for (; headers != NULL && *headers != NULL; headers++)
        if (strncasecmp(*headers, name, len) == 0 && (*headers)[len] == ':')
            return 1;
    return 0;
}

/* Builds the header list: the caller's, minus libcurl's defaults that do not suit us. */
static int build_headers(const dl_http_request_t *req, struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *grown = curl_slist_append(list, *h);
        if (grown == NULL)
            goto err_after_list;
        list = grown;
    }
    /* libcurl waits up to a second for "100 Continue" before sending larger bodies; our
     * servers read the whole request anyway, so the wait would be pure latency. */
    if (!has_header(req->headers, "Expect")) {
        struct curl_slist *grown = curl_slist_append(list, "Expect:");
        if (grown == NULL)
            goto err_after_list;
        list = grown;
    }
    /* A body sent as POSTFIELDS would otherwise be labelled as a submitted HTML form. */
    if (!has_header(req->headers, "Content-Type")) {
        struct curl_slist *grown = curl_slist_append(list, "Content-Type:");
        if (grown == NULL)
            goto err_after_list;
        list = grown;
    }
    *out = list;
    return 0;

err_after_list:
    curl_slist_free_all(list);
    return -ENOMEM;
}

/* Sets the method and the body on t->easy. */
static CURLcode set_method_and_body(CURL *easy, const dl_http_request_t *req)
{
    CURLcode code = CURLE_OK;
    int is_get = strcmp(req->method, "GET") == 0;
    int is_head = strcmp(req->method, "HEAD") == 0;
    int is_post = strcmp(req->method, "POST") == 0;
    int sends_body = req->body != NULL || is_post || strcmp(req->method, "PUT") == 0;

    if (sends_body) {
        /* POSTFIELDS keeps the body in memory, so libcurl can send it again after a 307/308. */
        code = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (code == CURLE_OK)
            code = curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS,
                                    req->body != NULL ? (const char *)req->body : "");
        if (code == CURLE_OK && !is_post)
            code = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (is_head) {
        code = curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (!is_get) {
        code = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return code;
}

/* Creates and configures the easy handle for req. */
static int transfer_setup(transfer_t *t, const dl_http_request_t *req)
{
    CURL *easy = t->easy;
    int64_t timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    CURLcode code = CURLE_OK;
#define SET(option, value)                                                                         \
    do {                                                                                           \
        if (code == CURLE_OK)                                                                      \
            code = curl_easy_setopt(easy, option, value);                                          \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PRIVATE, (void *)t);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)t);
    SET(CURLOPT_HTTPHEADER, t->headers);
    SET(CURLOPT_USERAGENT, "ddialab/" DDIALAB_VERSION);
    if (req->follow_redirects) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
        SET(CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    }
#undef SET
    if (code == CURLE_OK)
        code = set_method_and_body(easy, req);
    return code == CURLE_OK ? 0 : code == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
}

int dl_http_client_send(dl_http_client_t *c, const dl_http_request_t *req, dl_http_client_cb cb,
                        void *ctx)
{
    int rv;
    if (c->closing)
        return DL_ESHUTDOWN;
    if (req->method == NULL || req->method[0] == '\0' || req->url == NULL || cb == NULL)
        return -EINVAL;

    transfer_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->client = c;
    t->cb = cb;
    t->ctx = ctx;
    t->easy = curl_easy_init();
    if (t->easy == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    rv = build_headers(req, &t->headers);
    if (rv != 0)
        goto err_after_easy;
    rv = transfer_setup(t, req);
    if (rv != 0)
        goto err_after_headers;
    if (curl_multi_add_handle(c->multi, t->easy) != CURLM_OK) {
        rv = -EIO;
        goto err_after_headers;
    }
    t->next = c->transfers;
    if (c->transfers != NULL)
        c->transfers->prev = t;
    c->transfers = t;
    return 0;

err_after_headers:
    curl_slist_free_all(t->headers);
err_after_easy:
    curl_easy_cleanup(t->easy);
err_after_alloc:
    free(t);
    return rv;
}

void dl_http_client_close(dl_http_client_t *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    /* Callbacks may send (refused now) or close again (a no-op), so take one at a time. */
    while (c->transfers != NULL)
        transfer_finish(c->transfers, CURLE_OK, DL_ESHUTDOWN);
    /* Closing the multi handle closes the cached connections; libcurl removes their sockets. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->sockets != NULL)
        socket_close(c->sockets);
    uv_timer_stop(&c->timer);
    c->closes_pending++;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* ---- blocking convenience ---- */

typedef struct fetch_state_s {
    dl_http_result_t *out;
    int done;
} fetch_state_t;

static char *copy_or_null(const char *s, int *failed)
{
    if (s == NULL)
        return NULL;
    char *copy = strdup(s);
    if (copy == NULL)
        *failed = 1;
    return copy;
}

static void on_fetched(void *ctx, const dl_http_response_t *resp)
{
    fetch_state_t *st = ctx;
    dl_http_result_t *out = st->out;
    int failed = 0;
    st->done = 1;
    out->rv = resp->rv;
    out->status = resp->status;
    out->body = malloc(resp->body_len + 1);
    if (out->body != NULL) {
        memcpy(out->body, resp->body, resp->body_len);
        out->body[resp->body_len] = '\0';
        out->body_len = resp->body_len;
    } else {
        failed = 1;
    }
    out->location = copy_or_null(resp->location, &failed);
    out->etag = copy_or_null(resp->etag, &failed);
    out->effective_url = copy_or_null(resp->effective_url, &failed);
    out->error = copy_or_null(resp->error, &failed);
    if (failed) {
        dl_http_result_free(out);
        out->rv = -ENOMEM;
    }
}

int dl_http_fetch(const dl_http_request_t *req, dl_http_result_t *out)
{
    int rv;
    uv_loop_t loop;
    dl_http_client_t *c;
    fetch_state_t st = {.out = out, .done = 0};
    memset(out, 0, sizeof(*out));

    rv = uv_loop_init(&loop);
    if (rv != 0)
        goto err;
    rv = dl_http_client_new(&loop, &c);
    if (rv != 0)
        goto err_after_loop;
    rv = dl_http_client_send(c, req, on_fetched, &st);
    if (rv != 0)
        goto err_after_client;
    /* libcurl always keeps a timer while a transfer runs, so the loop stays alive until done;
     * should it ever not, closing the client reports the request as cancelled. */
    while (!st.done && uv_run(&loop, UV_RUN_ONCE) != 0)
        ;
    dl_http_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (out->body == NULL) /* only after running out of memory */
        out->body = strdup("");
    return out->rv;

err_after_client:
    dl_http_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
err_after_loop:
    uv_loop_close(&loop);
err:
    out->rv = rv;
    out->body = strdup("");
    out->error = strdup(dl_strerror(rv));
    return rv;
}

void dl_http_result_free(dl_http_result_t *r)
{
    free(r->body);
    free(r->location);
    free(r->etag);
    free(r->effective_url);
    free(r->error);
    r->body = r->location = r->etag = r->effective_url = r->error = NULL;
    r->body_len = 0;
}
