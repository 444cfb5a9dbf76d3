/*
 * The HTTP/1.1 server every ddialab lab serves its HTTP/JSON API with (libh2o 2.2, libuv flavour).
 *
 * One server per listening address, on the process's single libuv loop. Everything here runs on
 * that loop's thread: start, route, the handlers, the replies, stop.
 *
 *     static void get_status(void *ctx, dl_http_req_t *r)
 *     {
 *         dl_http_reply_json(r, 200, json_pack("{s:s}", "role", "leader"), NULL);
 *     }
 *
 *     dl_http_server_options_t opts = {.port = 8080};
 *     dl_http_server_t *s;
 *     char err[256];
 *     if (dl_http_server_start(loop, &opts, &s, err, sizeof(err)) != 0)
 *         die("%s", err);
 *     dl_http_server_route(s, "GET", "/status", get_status, node);
 *
 * Routing. A route is a method and a pattern: exact ("/status"), or a prefix that ends in a
 * slash and a star: "/kv/" "*" matches "/kv/" followed by one or more bytes, '/' included.
 * Patterns are compared with the raw (still percent-encoded) path, so "/kv/a%2Fb" matches that
 * route and the wildcard reads "a/b". When several patterns match, an exact one wins over a prefix,
 * and a longer prefix over a shorter one; the GET route also answers HEAD (the body is left out).
 *
 * Rejected before any handler runs, always with the JSON error body of dl_http_error_body():
 *   400 bad_request         bad percent-encoding in the path or the query, a target that is not
 *                           an absolute path, a broken chunked body or Content-Length;
 *   404 not_found           no route pattern matches the path;
 *   405 method_not_allowed  some pattern matches the path but none for this method (with Allow);
 *   413 too_large           the body is larger than max_body_bytes (the connection may close).
 * Bytes that do not parse as HTTP/1.x at all, and request heads (request line and headers)
 * larger than 417,792 bytes, get libh2o's plain-text "400 Bad Request" and the connection is
 * closed. HTTP/2 is not offered.
 *
 * Asynchronous replies. A handler may keep r and reply later from any loop callback. If the
 * client goes away first (closes its connection) or the server stops before the reply, the
 * request is cancelled: the callback set with dl_http_req_on_cancel() runs once, and r is
 * invalid once it returns. A request without a cancel callback stays allocated after it was
 * cancelled, so that a late dl_http_reply*() on it is a harmless no-op that frees it: either set
 * a cancel callback and forget r in it, or make sure every request is eventually replied to.
 *
 * docs/http.md has the details (limits, shutdown, what libh2o does underneath).
 */
#ifndef DDIALAB_HTTP_SERVER_H
#define DDIALAB_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

typedef struct dl_http_server_s dl_http_server_t;
typedef struct dl_http_req_s dl_http_req_t;

/* A route handler. It must reply to r exactly once, now or later (see above). */
typedef void (*dl_http_handler_fn)(void *ctx, dl_http_req_t *req);

typedef struct dl_http_server_options_s {
    const char *host; /* address to listen on; NULL = "127.0.0.1" (IPv4/IPv6 literal or name) */
    int port;         /* 0 = pick a free port (read it back with dl_http_server_port) */
    size_t max_body_bytes;   /* larger request bodies get 413 JSON; 0 = 1 MiB */
    int64_t idle_timeout_ms; /* keep-alive idle timeout, also the limit for receiving a request
                                (head and body); 0 = 30 s */
    /*
     * Optional: called once per finished request, when its response has been written or the
     * request was dropped (for metrics and access logs). method is "GET", "HEAD", "PUT", "POST",
     * "DELETE" or "OTHER" (a bounded set, safe as a metric label); route_pattern is the pattern
     * of the route that handled it, NULL if none did (404, 405, 400, 413); status is the status
     * sent (499 when the client went away before the reply); seconds runs from the request being
     * dispatched to its response being written. method is a string of static storage (one
     * pointer per method, so callers may key caches by it); route_pattern is valid during the
     * call.
     */
    void (*on_complete)(void *ctx, const char *method, const char *route_pattern, int status,
                        double seconds);
    void *on_complete_ctx;
} dl_http_server_options_t;

/* The default body limit and keep-alive idle timeout. */
#define DL_HTTP_DEFAULT_MAX_BODY_BYTES  ((size_t)1 << 20)
#define DL_HTTP_DEFAULT_IDLE_TIMEOUT_MS 30000

/*
 * Binds, listens (SO_REUSEADDR) and starts accepting on loop. Returns 0 and the server in *out,
 * or a negative errno (-EADDRINUSE, -EINVAL for a bad host, ...) with a one-line message in err.
 * The server is freed by dl_http_server_stop() only.
 */
int dl_http_server_start(uv_loop_t *loop, const dl_http_server_options_t *opts,
                         dl_http_server_t **out, char *err, size_t errlen);

/* The port the server listens on (the chosen one when started with port 0). */
int dl_http_server_port(const dl_http_server_t *s);

/*
 * Adds a route. method is "GET", "PUT", "POST" or "DELETE"; pattern is exact ("/status") or
 * ends in a slash and a star ("/kv/" "*"), and is copied. Routes may be added at any time before
 * stop. Returns 0, -EINVAL for a bad method or pattern, -EEXIST when the method and pattern are
 * already routed, or -ENOMEM.
 */
int dl_http_server_route(dl_http_server_t *s, const char *method, const char *pattern,
                         dl_http_handler_fn fn, void *ctx);

/*
 * Graceful stop. Closes the listener at once; connections waiting for their next request are
 * closed, and responses sent from now on carry "Connection: close". Requests in flight get up to
 * grace_ms to be answered; then the ones still waiting are cancelled (their cancel callbacks run
 * and the client gets 503 shutting_down) and every connection is closed. done(ctx) runs once all
 * handles are closed and s is freed (never from inside this call). Call it once.
 */
void dl_http_server_stop(dl_http_server_t *s, int64_t grace_ms, void (*done)(void *ctx), void *ctx);

/*
 * Request accessors. What they return is valid until the reply is sent or the cancel callback
 * has run, and belongs to the request.
 */
/* "GET", "HEAD", "PUT", "POST", "DELETE", or the method as sent. */
const char *dl_http_req_method(const dl_http_req_t *r);
/* The raw path as sent, without the query, NUL-terminated (e.g. "/kv/a%2Fb"). */
const char *dl_http_req_path(const dl_http_req_t *r);
/* The percent-decoded bytes that matched '*' (may contain any byte incl. NUL; also
   NUL-terminated). Empty for an exact route. */
void dl_http_req_wildcard(const dl_http_req_t *r, const char **data, size_t *len);
/* A decoded query parameter ('+' is a space, names are decoded too). 0, or -ENOENT when absent.
   A name given twice: the first. "?flag" gives flag = "". value is NUL-terminated. */
int dl_http_req_query(const dl_http_req_t *r, const char *name, const char **value, size_t *len);
/* The raw query, the part after '?', or NULL when there is no '?'. NUL-terminated. */
const char *dl_http_req_raw_query(const dl_http_req_t *r);
/* A request header by case-insensitive name (the first if repeated). 0, or -ENOENT. The value
   is NUL-terminated; len may be NULL. "Host" works; the framing headers Content-Length,
   Transfer-Encoding and Expect are consumed by the server (use dl_http_req_body). */
int dl_http_req_header(const dl_http_req_t *r, const char *name, const char **value, size_t *len);
/* The request body (de-chunked). Empty (data not NULL, len 0) when there is none. */
void dl_http_req_body(const dl_http_req_t *r, const void **data, size_t *len);
/* Per-request memory, 16-byte aligned, freed with the request (not zeroed). NULL only if size
   is absurd. */
void *dl_http_req_alloc(dl_http_req_t *r, size_t size);

/*
 * Replies. Exactly one per request, from the loop thread, possibly long after the handler
 * returned. A reply to a cancelled request is a no-op (and frees it, see above).
 *
 * content_type may be NULL (no Content-Type). body is copied. headers is NULL, or a
 * NULL-terminated array of name, value pairs, copied: {"Location", url, "ETag", "\"3\"", NULL}.
 * Responses to HEAD carry the Content-Length of the body but not the body; 204 and 304 never
 * carry a body.
 */
void dl_http_reply(dl_http_req_t *r, int status, const char *content_type, const void *body,
                   size_t len, const char *const *headers);
/* body serialised as JSON plus a trailing newline, Content-Type application/json. The reference
   to body is stolen; body NULL (a failed json_pack) sends 500 internal instead. */
void dl_http_reply_json(dl_http_req_t *r, int status, json_t *body, const char *const *headers);
/* {"error": dl_err_name(rv), "message": <formatted>} with status dl_err_http_status(rv).
   fmt NULL uses dl_strerror(rv). */
void dl_http_reply_error(dl_http_req_t *r, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Builds that error object ({"error": ..., "message": ...}) so callers can add fields before
   dl_http_reply_json. message NULL uses dl_strerror(rv). New reference; NULL on allocation
   failure. */
json_t *dl_http_error_body(int rv, const char *message);

/*
 * Sets the function called (once) if the request goes away before a reply: the client closed
 * its connection, or the server is stopping. r is invalid once fn returns; replying from inside
 * fn is a no-op. Setting it again replaces the previous one. If the request is already gone
 * (possible only for a request that had no cancel callback), fn runs at once.
 */
void dl_http_req_on_cancel(dl_http_req_t *r, void (*fn)(void *ctx), void *ctx);

#endif
