/*
 * What a handler sees of an HTTP request: the accessors, percent-decoding, and the replies.
 *
 * Everything a request needs lives in libh2o's per-request pool (freed at once when libh2o
 * disposes the request), so answering a request costs no malloc of our own for small bodies.
 */
#include "http_internal.h"

#include "ddialab/error.h"
#include "ddialab/logging.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- percent-encoding ------------------------------------------------------------------- */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Checks that every '%' in s[0..len) starts a "%XX" escape. */
int dl__http_percent_valid(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    while ((p = memchr(p, '%', (size_t)(end - p))) != NULL) {
        if (end - p < 3 || hex_value((unsigned char)p[1]) < 0 || hex_value((unsigned char)p[2]) < 0)
            return 0;
        p += 3;
    }
    return 1;
}

/* Decodes "%XX" escapes (and '+' when plus_is_space) of a valid string into out. */
size_t dl__http_percent_decode(char *out, const char *s, size_t len, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len) {
            c = (char)(hex_value((unsigned char)s[i + 1]) << 4 |
                       hex_value((unsigned char)s[i + 2]));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        out[o++] = c;
    }
    return o;
}

/* ---- setting up a request ---------------------------------------------------------------- */

const char *dl__http_metric_method(const char *method, size_t len)
{
    static const char *const known[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (h2o_memis(method, len, known[i], strlen(known[i])))
            return known[i];
    return "OTHER";
}

/*
 * Copies what the accessors hand out into the pool: "path\0query\0" in one allocation. The path
 * and query are checked for percent-encoding here, so that decoding them later cannot fail.
 */
int dl__http_req_init(dl_http_req_t *r, h2o_req_t *req, const char **why)
{
    h2o_iovec_t method = req->input.method, target = req->input.path;

    r->metric_method = dl__http_metric_method(method.base, method.len);
    r->method = strcmp(r->metric_method, "OTHER") != 0
                    ? r->metric_method
                    : h2o_strdup(&req->pool, method.base, method.len).base;
    r->is_head = r->metric_method[0] == 'H';
    r->path = "";
    r->query = NULL;
    r->query_len = 0;
    r->wildcard = "";
    r->wildcard_len = 0;

    if (target.len == 0 || target.base[0] != '/') {
        *why = "the request target must be an absolute path such as /status";
        return DL_EBADREQUEST;
    }
    const char *q = memchr(target.base, '?', target.len);
    size_t path_len = q != NULL ? (size_t)(q - target.base) : target.len;
    size_t query_len = q != NULL ? target.len - path_len - 1 : 0;
    char *copy = h2o_mem_alloc_pool(&req->pool, target.len + 2);
    memcpy(copy, target.base, path_len);
    copy[path_len] = '\0';
    r->path = copy;
    if (q != NULL) {
        memcpy(copy + path_len + 1, q + 1, query_len);
        copy[path_len + 1 + query_len] = '\0';
        r->query = copy + path_len + 1;
        r->query_len = query_len;
    }
    if (!dl__http_percent_valid(r->path, path_len)) {
        *why = "bad percent-encoding in the path";
        return DL_EBADREQUEST;
    }
    if (r->query != NULL && !dl__http_percent_valid(r->query, query_len)) {
        *why = "bad percent-encoding in the query";
        return DL_EBADREQUEST;
    }
    return 0;
}

void dl__http_req_set_wildcard(dl_http_req_t *r, size_t prefix_len)
{
    const char *raw = r->path + prefix_len;
    size_t raw_len = strlen(raw);
    char *out = h2o_mem_alloc_pool(&r->req->pool, raw_len + 1);
    r->wildcard_len = dl__http_percent_decode(out, raw, raw_len, 0);
    out[r->wildcard_len] = '\0';
    r->wildcard = out;
}

/* ---- accessors --------------------------------------------------------------------------- */

const char *dl_http_req_method(const dl_http_req_t *r)
{
    return r->method;
}

const char *dl_http_req_path(const dl_http_req_t *r)
{
    return r->path;
}

void dl_http_req_wildcard(const dl_http_req_t *r, const char **data, size_t *len)
{
    *data = r->wildcard;
    *len = r->wildcard_len;
}

const char *dl_http_req_raw_query(const dl_http_req_t *r)
{
    return r->query;
}

/* Whether the still-encoded query name raw[0..raw_len) decodes to name[0..name_len). */
static int query_name_equals(const char *raw, size_t raw_len, const char *name, size_t name_len)
{
    size_t i = 0, n = 0;
    while (i < raw_len) {
        char c = raw[i];
        if (c == '%') {
            c = (char)(hex_value((unsigned char)raw[i + 1]) << 4 |
                       hex_value((unsigned char)raw[i + 2]));
            i += 3;
        } else {
            if (c == '+')
                c = ' ';
            i++;
        }
        if (n == name_len || name[n] != c)
            return 0;
        n++;
    }
    return n == name_len;
}

int dl_http_req_query(const dl_http_req_t *r, const char *name, const char **value, size_t *len)
{
    if (r->query == NULL || r->req == NULL)
        return -ENOENT;
    size_t name_len = strlen(name);
    const char *p = r->query, *end = r->query + r->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        const char *name_end = eq != NULL ? eq : amp;
        if (query_name_equals(p, (size_t)(name_end - p), name, name_len)) {
            const char *raw = eq != NULL ? eq + 1 : amp;
            size_t raw_len = (size_t)(amp - raw);
            char *out = h2o_mem_alloc_pool(&r->req->pool, raw_len + 1);
            size_t n = dl__http_percent_decode(out, raw, raw_len, 1);
            out[n] = '\0';
            *value = out;
            if (len != NULL)
                *len = n;
            return 0;
        }
        p = amp + 1;
    }
    return -ENOENT;
}

int dl_http_req_header(const dl_http_req_t *r, const char *name, const char **value, size_t *len)
{
    if (r->req == NULL)
        return -ENOENT;
    h2o_req_t *req = r->req;
    size_t name_len = strlen(name);
    h2o_iovec_t found = {NULL, 0};
    if (name_len == 4 && strcasecmp(name, "host") == 0) {
        /* libh2o moves Host out of the header list into the authority. */
        if (req->input.authority.base == NULL)
            return -ENOENT;
        found = req->input.authority;
    } else {
        for (size_t i = 0; i < req->headers.size; i++) {
            const h2o_header_t *h = req->headers.entries + i;
            if (h->name->len == name_len && strncasecmp(h->name->base, name, name_len) == 0) {
                found = h->value;
                break;
            }
        }
        if (found.base == NULL)
            return -ENOENT;
    }
    *value = h2o_strdup(&req->pool, found.base, found.len).base;
    if (len != NULL)
        *len = found.len;
    return 0;
}

void dl_http_req_body(const dl_http_req_t *r, const void **data, size_t *len)
{
    if (r->req == NULL || r->req->entity.base == NULL) {
        *data = "";
        *len = 0;
        return;
    }
    *data = r->req->entity.base;
    *len = r->req->entity.len;
}

void *dl_http_req_alloc(dl_http_req_t *r, size_t size)
{
    if (r->req == NULL || size > SIZE_MAX / 2)
        return NULL;
    return h2o_mem_alloc_pool(&r->req->pool, size);
}

/* ---- responses --------------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 499:
        return "Client Closed Request";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* A header name is an RFC 7230 token; a value has no control characters but tab. */
static int header_is_valid(const char *name, const char *value)
{
    if (*name == '\0')
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p) != NULL)
            return 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < ' ' && *p != '\t') || *p == 0x7f)
            return 0;
    return 1;
}

/*
 * Hands a complete response to libh2o. libh2o flattens the status line and the headers into
 * its own buffer during h2o_send(), so the header strings need only live through this call; the
 * body must already be in the pool. The write completes later; libh2o then disposes req.
 */
h2o_generator_t dl__http_generator = {NULL, NULL};

void dl__http_send(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body,
                   const char *const *headers, int is_head, int close)
{
    if (status < 100 || status > 999) {
        DL_ERROR("http: reply with invalid status %d; sending 500", status);
        status = 500;
    }
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (close)
        req->http1_is_persistent = 0;
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type",
                       content_type, strlen(content_type));
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2) {
        const char *name = headers[i], *value = headers[i + 1];
        if (value == NULL || !header_is_valid(name, value)) {
            DL_WARN("http: dropping invalid response header %s", name);
            if (value == NULL)
                break;
            continue;
        }
        h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value,
                              strlen(value));
    }
    /* 1xx, 204 and 304 never have a body nor, here, a Content-Length. */
    int bodiless = status < 200 || status == 204 || status == 304;
    req->res.content_length = bodiless ? SIZE_MAX : body.len;
    h2o_start_response(req, &dl__http_generator);
    if (bodiless || is_head || body.len == 0)
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

/*
 * Serialises into a reused 64 KiB scratch buffer, then copies into the pool; a larger document
 * is serialised a second time, straight into a pool buffer of the size the first pass found.
 */
h2o_iovec_t dl__http_json_in_pool(dl_http_server_t *s, h2o_mem_pool_t *pool, json_t *json)
{
    enum { SCRATCH = 64 * 1024 };
    const size_t flags = JSON_ENCODE_ANY;
    char *scratch = dl__http_server_scratch(s, SCRATCH);
    if (scratch == NULL)
        return h2o_iovec_init(NULL, 0);
    size_t n = json_dumpb(json, scratch, SCRATCH, flags);
    if (n == 0)
        return h2o_iovec_init(NULL, 0);
    char *out = h2o_mem_alloc_pool(pool, n + 1);
    if (n <= SCRATCH)
        memcpy(out, scratch, n);
    else if (json_dumpb(json, out, n, flags) != n)
        return h2o_iovec_init(NULL, 0);
    out[n] = '\n';
    return h2o_iovec_init(out, n + 1);
}

/* Takes r out of PENDING for a reply. Returns 0 when the reply must not be sent. */
static int begin_reply(dl_http_req_t *r)
{
    if (r->state == DL__HTTP_PENDING) {
        r->state = DL__HTTP_REPLIED;
        dl__http_server_unpend(r);
        return 1;
    }
    if (r->state == DL__HTTP_CANCELLED && r->server == NULL) {
        /* An orphan: the client went away and nobody was listening; the late reply frees it. */
        free(r);
        return 0;
    }
    if (r->state == DL__HTTP_REPLIED)
        DL_ERROR("http: second reply to %s %s ignored", r->method, r->path);
    return 0;
}

void dl_http_reply(dl_http_req_t *r, int status, const char *content_type, const void *body,
                   size_t len, const char *const *headers)
{
    if (!begin_reply(r))
        return;
    h2o_req_t *req = r->req;
    h2o_iovec_t copy = {NULL, 0};
    if (len != 0 && !r->is_head) {
        copy.base = h2o_mem_alloc_pool(&req->pool, len);
        memcpy(copy.base, body, len);
    }
    copy.len = len;
    r->status = status;
    dl__http_send(req, status, content_type, copy, headers, r->is_head,
                  dl__http_server_stopping(r->server));
}

void dl_http_reply_json(dl_http_req_t *r, int status, json_t *body, const char *const *headers)
{
    if (!begin_reply(r)) {
        json_decref(body);
        return;
    }
    h2o_req_t *req = r->req;
    h2o_iovec_t text = {NULL, 0};
    if (body != NULL)
        text = dl__http_json_in_pool(r->server, &req->pool, body);
    json_decref(body);
    if (text.base == NULL) {
        static const char fallback[] =
            "{\"error\": \"internal\", \"message\": \"the reply could not be built\"}\n";
        status = 500;
        text = h2o_iovec_init(fallback, sizeof(fallback) - 1);
        headers = NULL;
    }
    r->status = status;
    dl__http_send(req, status, "application/json", text, headers, r->is_head,
                  dl__http_server_stopping(r->server));
}

/* A JSON string for text that may not be UTF-8 (it can quote a client's bytes): bytes that do
   not decode are replaced by '?'. */
static json_t *lenient_string(const char *text)
{
    json_t *s = json_string(text);
    if (s != NULL)
        return s;
    size_t n = strlen(text);
    char *ascii = malloc(n + 1);
    if (ascii == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        ascii[i] = (unsigned char)text[i] < 0x80 ? text[i] : '?';
    s = json_string(ascii);
    free(ascii);
    return s;
}

json_t *dl_http_error_body(int rv, const char *message)
{
    json_t *body = json_object();
    if (body == NULL || json_object_set_new(body, "error", json_string(dl_err_name(rv))) != 0 ||
        json_object_set_new(body, "message",
                            lenient_string(message != NULL ? message : dl_strerror(rv))) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

void dl_http_reply_error(dl_http_req_t *r, int rv, const char *fmt, ...)
{
    char message[512];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
    }
    dl_http_reply_json(r, dl_err_http_status(rv),
                       dl_http_error_body(rv, fmt != NULL ? message : NULL), NULL);
}
