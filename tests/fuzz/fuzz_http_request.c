/*
 * libFuzzer target for the HTTP server's own parsing of request targets (src/core/http_request.c):
 * percent-validation and decoding, the split of the target into path and query, the wildcard,
 * and the query-parameter lookup of dl_http_req_query.
 *
 * Every input is checked in process, which is fast:
 *   - dl__http_percent_valid agrees with a reference check; a valid string decodes, into a
 *     buffer of exactly len bytes (ASan catches a write past it) and in place, to what a
 *     reference decoder gives, for both meanings of '+';
 *   - decoding is the inverse of a percent-encoding done here (round trip over any bytes);
 *   - dl__http_req_init on a minimal h2o_req_t (method and target only, a real pool) accepts or
 *     refuses the target as the rules in docs/http.md say, and splits it right; then the
 *     wildcard and dl_http_req_query for every parameter name in the query agree with a
 *     reference that reads the query the documented way (first occurrence wins, '+' is a space,
 *     names are decoded too).
 * Some inputs (ctl & 0x0f == 0x0f, and one in four of those by a hash: see use_server) also go
 * to a real server (dl_http_server on a libuv loop, 127.0.0.1, port 0): as raw bytes on a
 * connection (ctl bit 4 clear), or as the target of a well-formed GET (bit 4 set), whose status
 * and handler-side view must match the reference. Either way the server must close the
 * connection once the client has finished sending, and answer a following well-formed request.
 * A round trip through the server costs about 100 times the in-process checks.
 *
 * Input layout: ctl, then the bytes (the target, or what is sent to the server).
 *   ctl bits 0-1   method (GET, HEAD, PUT, an unknown one)
 *   ctl bit 2      round trip with upper-case hex digits
 *   ctl bit 3      round trip encoding a space as '+'
 *   ctl bits 4-7   where the wildcard starts, and for the encoder: escape everything but the
 *                  unreserved characters (bit 5), or only what must be escaped
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_internal.h"
#include "ddialab/error.h"
#include "ddialab/logging.h"

#define MAX_PARAMS 16

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_http_request: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- reference percent-encoding ----------------------------------------------------------- */

static int ref_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

static int ref_valid(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%')
            continue;
        if (len - i < 3 || ref_hex(s[i + 1]) < 0 || ref_hex(s[i + 2]) < 0)
            return 0;
        i += 2;
    }
    return 1;
}

/* Decodes a valid s into out (at least len bytes); returns the decoded length. */
static size_t ref_decode(uint8_t *out, const uint8_t *s, size_t len, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            out[o++] = (uint8_t)(ref_hex(s[i + 1]) * 16 + ref_hex(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i] == '+' && plus_is_space ? ' ' : s[i];
        }
    }
    return o;
}

static int unreserved(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes s into out (3 * len bytes). all: escape everything but the unreserved
   characters; otherwise only '%', '+' and (with space_as_plus) ' ', which becomes '+'. */
static size_t encode(char *out, const uint8_t *s, size_t len, int upper, int space_as_plus, int all)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if (c == ' ' && space_as_plus) {
            out[o++] = '+';
        } else if (c == '%' || c == '+' || (all && !unreserved(c))) {
            out[o++] = '%';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    return o;
}

/* ---- the percent-decoding functions -----------------------------------------------------------
 */

static void check_decode(const uint8_t *s, size_t len)
{
    int valid = dl__http_percent_valid((const char *)s, len);
    if (valid != ref_valid(s, len))
        fail("dl__http_percent_valid says %d for a string the reference calls %s", valid,
             valid ? "invalid" : "valid");
    if (!valid)
        return;
    uint8_t *want = malloc(len + 1);
    char *out = malloc(len > 0 ? len : 1); /* exactly len bytes: ASan sees a write past them */
    if (want == NULL || out == NULL)
        fail("out of memory");
    for (int plus = 0; plus <= 1; plus++) {
        size_t want_len = ref_decode(want, s, len, plus);
        size_t n = dl__http_percent_decode(out, (const char *)s, len, plus);
        if (n > len || n != want_len || memcmp(out, want, n) != 0)
            fail("decoding %zu bytes (plus_is_space %d) gave %zu bytes, expected %zu", len, plus, n,
                 want_len);
        memcpy(out, s, len); /* in place: out may equal s */
        n = dl__http_percent_decode(out, out, len, plus);
        if (n != want_len || memcmp(out, want, n) != 0)
            fail("decoding in place (plus_is_space %d) differs", plus);
    }
    free(out);
    free(want);
}

static void check_round_trip(const uint8_t *s, size_t len, uint8_t ctl)
{
    int upper = ctl & 4, space_as_plus = ctl & 8, all = ctl & 0x20;
    char *enc = malloc(3 * len + 1);
    char *dec = malloc(len > 0 ? len : 1);
    if (enc == NULL || dec == NULL)
        fail("out of memory");
    size_t n = encode(enc, s, len, upper, space_as_plus, all);
    if (!dl__http_percent_valid(enc, n))
        fail("a percent-encoded string is not valid");
    for (int plus = space_as_plus ? 1 : 0; plus <= 1; plus++) {
        size_t m = dl__http_percent_decode(dec, enc, n, plus);
        if (m != len || memcmp(dec, s, len) != 0)
            fail("decode(encode(%zu bytes)) gave %zu bytes that differ (plus_is_space %d)", len, m,
                 plus);
    }
    free(dec);
    free(enc);
}

/* ---- the reference query lookup ----------------------------------------------------------- */

typedef struct param_s {
    const uint8_t *name, *value; /* raw */
    size_t name_len, value_len;
} param_t;

/* Splits a raw query at '&' and each part at its first '='. Every part is a parameter, an
   empty one included, except the empty part after a trailing '&' (or an empty query). */
static size_t ref_params(const uint8_t *q, size_t len, param_t *out, size_t max)
{
    size_t n = 0, start = 0;
    while (start < len && n < max) {
        const uint8_t *amp = memchr(q + start, '&', len - start);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        const uint8_t *eq = memchr(q + start, '=', end - start);
        param_t *p = &out[n++];
        p->name = q + start;
        p->name_len = eq != NULL ? (size_t)(eq - p->name) : end - start;
        p->value = eq != NULL ? eq + 1 : q + end;
        p->value_len = (size_t)(q + end - p->value);
        start = end + 1;
    }
    return n;
}

/* The decoded value of the first parameter whose decoded name is name; -1 if none. */
static long ref_query(const uint8_t *q, size_t len, const uint8_t *name, size_t name_len,
                      uint8_t *value)
{
    param_t params[256];
    uint8_t *buf = malloc(len + 1);
    size_t n = ref_params(q, len, params, 256);
    long found = -1;
    for (size_t i = 0; i < n && found < 0; i++) {
        size_t m = ref_decode(buf, params[i].name, params[i].name_len, 1);
        if (m == name_len && memcmp(buf, name, m) == 0)
            found = (long)ref_decode(value, params[i].value, params[i].value_len, 1);
    }
    free(buf);
    return n == 256 ? -2 : found; /* -2: too many parameters to tell */
}

/* Looks name up with dl_http_req_query and compares with the reference. */
static void check_query_name(const dl_http_req_t *r, const uint8_t *name, size_t name_len,
                             int with_len)
{
    char cname[4096];
    uint8_t want[4096];
    if (name_len == 0 || name_len >= sizeof(cname) || memchr(name, 0, name_len) != NULL ||
        r->query_len > sizeof(want))
        return; /* dl_http_req_query takes a C string; the buffers here are fixed */
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    long want_len = ref_query((const uint8_t *)r->query, r->query_len, name, name_len, want);
    if (want_len == -2)
        return;
    const char *value = NULL;
    size_t len = SIZE_MAX;
    int rv = dl_http_req_query(r, cname, &value, with_len ? &len : NULL);
    if (want_len < 0) {
        if (rv != -ENOENT)
            fail("query parameter \"%s\" found (%d) where the reference has none", cname, rv);
        return;
    }
    if (rv != 0)
        fail("query parameter \"%s\" not found (%d)", cname, rv);
    if (value == NULL || (with_len && len != (size_t)want_len) || value[want_len] != '\0' ||
        memcmp(value, want, (size_t)want_len) != 0)
        fail("query parameter \"%s\" has the wrong value", cname);
}

/* ---- dl__http_req_init and the accessors on a minimal h2o_req_t ------------------------------ */

static const char *const methods[4] = {"GET", "HEAD", "PUT", "PATCH"};

static void check_request(const uint8_t *target, size_t len, uint8_t ctl)
{
    static h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    const char *method = methods[ctl & 3];
    req.input.method = h2o_iovec_init(method, strlen(method));
    req.input.path = h2o_iovec_init(target, len);

    dl_http_req_t r;
    memset(&r, 0, sizeof(r));
    r.req = &req;
    const char *why = NULL;
    int rv = dl__http_req_init(&r, &req, &why);

    const uint8_t *q = memchr(target, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - target) : len;
    size_t query_len = q != NULL ? len - path_len - 1 : 0;
    int ok = len > 0 && target[0] == '/' && ref_valid(target, path_len) &&
             (q == NULL || ref_valid(q + 1, query_len));
    if (strcmp(dl_http_req_method(&r), method) != 0)
        fail("method %s reads back as %s", method, dl_http_req_method(&r));
    if (!ok) {
        if (rv != DL_EBADREQUEST || why == NULL || why[0] == '\0')
            fail("a malformed target was not refused with a reason (%d)", rv);
        h2o_mem_clear_pool(&req.pool);
        return;
    }
    if (rv != 0)
        fail("a well-formed target was refused: %s", why);
    const char *path = dl_http_req_path(&r), *raw_query = dl_http_req_raw_query(&r);
    if (memcmp(path, target, path_len) != 0 || path[path_len] != '\0')
        fail("the path is not the target up to '?'");
    if (q == NULL ? raw_query != NULL
                  : raw_query == NULL || r.query_len != query_len ||
                        memcmp(raw_query, q + 1, query_len) != 0 || raw_query[query_len] != '\0')
        fail("the raw query is not the target after '?'");

    /* The wildcard, as if a prefix route had matched the first prefix_len bytes. */
    size_t prefix_len = ((size_t)(ctl >> 4) * 37) % (path_len + 1);
    dl__http_req_set_wildcard(&r, prefix_len);
    uint8_t *want = malloc(path_len + 1);
    size_t want_len = ref_decode(want, target + prefix_len, path_len - prefix_len, 0);
    const char *wc;
    size_t wc_len;
    dl_http_req_wildcard(&r, &wc, &wc_len);
    if (wc_len != want_len || memcmp(wc, want, want_len) != 0 || wc[wc_len] != '\0')
        fail("the wildcard after %zu bytes is not the decoded rest of the path", prefix_len);
    free(want);

    /* Every name in the query, and names that are not there. */
    if (q != NULL && query_len < 4096) {
        param_t params[MAX_PARAMS];
        size_t n = ref_params(q + 1, query_len, params, MAX_PARAMS);
        uint8_t name[4096];
        for (size_t i = 0; i < n; i++) {
            size_t m = ref_decode(name, params[i].name, params[i].name_len, 1);
            check_query_name(&r, name, m, (i + ctl) % 2);
        }
        check_query_name(&r,
                         (const uint8_t *)"\x01"
                                          "absent",
                         7, 1);
        if (n > 0 && params[0].name_len > 0) {
            size_t m = ref_decode(name, params[0].name, params[0].name_len, 1);
            name[m++] = 'x';
            check_query_name(&r, name, m, 1);
        }
    } else if (q == NULL) {
        const char *value;
        if (dl_http_req_query(&r, "a", &value, NULL) != -ENOENT)
            fail("a query parameter was found without a query");
    }
    h2o_mem_clear_pool(&req.pool);
}

/* ---- a real server ------------------------------------------------------------------------ */

static struct {
    uv_loop_t loop;
    dl_http_server_t *server;
    int port;
} S;

/* The handler of every route: checks what it sees against the references, replies with
   "<wildcard>|<query a>". ctx is the length of the route's prefix (0 for an exact route). */
static void on_request(void *ctx, dl_http_req_t *r)
{
    size_t prefix_len = (size_t)(uintptr_t)ctx;
    const char *path = dl_http_req_path(r), *raw_query = dl_http_req_raw_query(r);
    size_t path_len = strlen(path);
    if (!ref_valid((const uint8_t *)path, path_len))
        fail("a handler got a path with bad percent-encoding");
    const char *wc;
    size_t wc_len;
    dl_http_req_wildcard(r, &wc, &wc_len);
    if (prefix_len > 0) {
        if (path_len <= prefix_len)
            fail("a prefix route matched a path no longer than its prefix");
        uint8_t *want = malloc(path_len);
        size_t want_len =
            ref_decode(want, (const uint8_t *)path + prefix_len, path_len - prefix_len, 0);
        if (wc_len != want_len || memcmp(wc, want, want_len) != 0)
            fail("the handler's wildcard is not the decoded rest of the path");
        free(want);
    } else if (wc_len != 0) {
        fail("an exact route has a wildcard");
    }
    const char *a = NULL;
    size_t a_len = 0;
    if (raw_query != NULL) {
        if (!ref_valid((const uint8_t *)raw_query, strlen(raw_query)))
            fail("a handler got a query with bad percent-encoding");
        check_query_name(r, (const uint8_t *)"a", 1, 1);
        check_query_name(r, (const uint8_t *)"key", 3, 0);
        if (dl_http_req_query(r, "a", &a, &a_len) != 0)
            a = NULL;
    }
    char body[512];
    int n = snprintf(body, sizeof(body), "%.*s|%.*s", (int)(wc_len < 200 ? wc_len : 200), wc,
                     a != NULL ? (int)(a_len < 200 ? a_len : 200) : 1, a != NULL ? a : "-");
    dl_http_reply(r, 200, "text/plain", body, (size_t)n, NULL);
}

static void start_server(void)
{
    if (S.server != NULL)
        return;
    char err[256];
    dl_log_set_level(DL_LOG_ERROR);
    if (uv_loop_init(&S.loop) != 0)
        fail("uv_loop_init failed");
    dl_http_server_options_t opts = {.port = 0, .max_body_bytes = 1024, .idle_timeout_ms = 2000};
    if (dl_http_server_start(&S.loop, &opts, &S.server, err, sizeof(err)) != 0)
        fail("cannot start the server: %s", err);
    S.port = dl_http_server_port(S.server);
    if (dl_http_server_route(S.server, "GET", "/status", on_request, (void *)0) != 0 ||
        dl_http_server_route(S.server, "GET", "/kv/*", on_request, (void *)4) != 0 ||
        dl_http_server_route(S.server, "PUT", "/kv/*", on_request, (void *)4) != 0 ||
        dl_http_server_route(S.server, "DELETE", "/kv/*", on_request, (void *)4) != 0 ||
        dl_http_server_route(S.server, "POST", "/a/b/*", on_request, (void *)5) != 0)
        fail("cannot add routes");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sends req on a new connection, half-closes it, and collects what the server answers until it
 * closes the connection, driving the server's loop meanwhile. Returns the bytes received (at
 * most cap are kept). Fails if the server neither answers nor closes within 5 s.
 */
static size_t exchange(const void *req, size_t len, char *resp, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 && errno != EINPROGRESS))
        fail("cannot connect to the server: %s", strerror(errno));
    size_t sent = 0, got = 0;
    int sending = 1;
    int64_t deadline = now_ms() + 5000;
    for (;;) {
        uv_run(&S.loop, UV_RUN_NOWAIT);
        if (sending && sent < len) {
            ssize_t n = send(fd, (const char *)req + sent, len - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
                sending = 0; /* the server closed early: fine */
        }
        if (sending && sent == len) {
            shutdown(fd, SHUT_WR);
            sending = 0;
        }
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            size_t keep = got < cap ? cap - got : 0;
            memcpy(resp + got, buf, (size_t)n < keep ? (size_t)n : keep);
            got += (size_t)n < keep ? (size_t)n : keep;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            break; /* closed, or reset because it closed with bytes unread */
        if (now_ms() > deadline)
            fail("the server neither answered nor closed the connection within 5 s (%zu of %zu "
                 "bytes sent)",
                 sent, len);
        struct pollfd pfd[2] = {{fd, POLLIN | (sending ? POLLOUT : 0), 0},
                                {uv_backend_fd(&S.loop), POLLIN, 0}};
        int timeout = uv_backend_timeout(&S.loop);
        poll(pfd, 2, timeout < 0 || timeout > 10 ? 10 : timeout);
    }
    close(fd);
    return got;
}

static void check_server_alive(void)
{
    static const char req[] = "GET /kv/ok%20key?b=2&a=%41+1 HTTP/1.1\r\nHost: fuzz\r\n"
                              "Connection: close\r\n\r\n";
    char resp[4096];
    size_t n = exchange(req, sizeof(req) - 1, resp, sizeof(resp) - 1);
    resp[n] = '\0';
    if (strncmp(resp, "HTTP/1.1 200 ", 13) != 0 || strstr(resp, "\r\n\r\nok key|A 1") == NULL)
        fail("the server did not answer a well-formed request after the fuzz input:\n%s", resp);
}

/* The fuzz bytes as the target of a GET, followed on the same connection by a well-formed
   request; the status must be what the rules say, and the second request must be answered. */
static void check_server_target(const uint8_t *target, size_t len)
{
    static const char next[] = "GET /kv/ok%20key?b=2&a=%41+1 HTTP/1.1\r\nHost: fuzz\r\n"
                               "Connection: close\r\n\r\n";
    for (size_t i = 0; i < len; i++)
        if (target[i] <= ' ' || target[i] >= 0x7f)
            return; /* not a request target libh2o would pass on */
    char *req = malloc(len + 64 + sizeof(next)), resp[8192];
    size_t req_len = (size_t)sprintf(req, "GET ");
    memcpy(req + req_len, target, len);
    req_len += len;
    req_len += (size_t)sprintf(req + req_len, " HTTP/1.1\r\nHost: fuzz\r\n\r\n%s", next);
    size_t n = exchange(req, req_len, resp, sizeof(resp) - 1);
    resp[n] = '\0';
    free(req);

    const uint8_t *q = memchr(target, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - target) : len;
    int want;
    if (len == 0 || target[0] != '/' || !ref_valid(target, path_len) ||
        (q != NULL && !ref_valid(q + 1, len - path_len - 1)))
        want = 400;
    else if ((path_len == 7 && memcmp(target, "/status", 7) == 0) ||
             (path_len > 4 && memcmp(target, "/kv/", 4) == 0))
        want = 200;
    else if (path_len > 5 && memcmp(target, "/a/b/", 5) == 0)
        want = 405;
    else
        want = 404;
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "HTTP/1.1 %d ", want);
    if (strncmp(resp, prefix, strlen(prefix)) != 0)
        fail("GET %.*s: expected status %d, got:\n%s", (int)len, target, want, resp);
    if (strstr(resp, "\r\n\r\nok key|A 1") == NULL)
        fail("GET %.*s: the request after it on the connection was not answered:\n%s", (int)len,
             target, resp);
}

/* Whether this input goes to the server as well: the input asks for it (ctl), and a hash of
   the input picks one in four of those, so that mutations of such an input mostly run only the
   fast in-process checks. */
static int use_server(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    return (data[0] & 0x0f) == 0x0f && (h >> 28) % 4 == 0;
}

/* ---- the target --------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *s = data + 1;
    size_t len = size - 1;

    check_decode(s, len);
    check_round_trip(s, len, ctl);
    /* A request target never holds a NUL byte (libh2o refuses control characters). */
    const uint8_t *nul = memchr(s, 0, len);
    check_request(s, nul != NULL ? (size_t)(nul - s) : len, ctl);

    if (use_server(data, size)) {
        start_server();
        if (ctl & 0x10) {
            check_server_target(s, len);
        } else {
            char resp[256];
            exchange(s, len, resp, sizeof(resp));
            check_server_alive();
        }
    }
    return 0;
}
