/*
 * HTTP client on the process's libuv loop (libcurl's multi interface underneath).
 *
 * One dl_http_client_t serves any number of concurrent requests on one loop. Connections are
 * kept open and reused between requests to the same host (the multi handle's connection cache),
 * so a client that lives as long as its loop pays the TCP handshake once per peer.
 *
 * Threading: a client belongs to the thread that runs its loop; every function below except
 * dl_http_fetch() must be called on that thread. dl_http_fetch() runs a private loop and may be
 * called from any thread.
 *
 * Typical use on a loop:
 *
 *   dl_http_client_t *http;
 *   dl_http_client_new(loop, &http);
 *   dl_http_request_t req = {.method = "GET", .url = "http://127.0.0.1:8001/status"};
 *   dl_http_client_send(http, &req, on_status, ctx);    // on_status runs later, once
 *   ...
 *   dl_http_client_close(http);                         // freed after the loop runs again
 */
#ifndef DDIALAB_HTTP_CLIENT_H
#define DDIALAB_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct dl_http_client_s dl_http_client_t;

/* A request. dl_http_client_send() and dl_http_fetch() copy what they need: every pointer here
 * only has to stay valid for the duration of that call. */
typedef struct dl_http_request_s {
    const char *method;         /* "GET", "PUT", "POST", "DELETE" (any token works; "HEAD" too) */
    const char *url;            /* absolute http:// or https:// URL */
    const char *const *headers; /* NULL or NULL-terminated "Name: value" strings */
    const void *body;           /* may be NULL; sent with Content-Length even when empty for
                                   PUT and POST */
    size_t body_len;
    int64_t timeout_ms;   /* whole request, connect and redirects included; 0 = 10 s */
    int follow_redirects; /* follow 301/302/303/307/308 keeping method and body (up to 5 hops) */
} dl_http_request_t;

/* The outcome of one request, handed to the callback. Every pointer is owned by the client and
 * valid during the callback only; copy what must outlive it. */
typedef struct dl_http_response_s {
    /* 0 when an HTTP response arrived (any status, 4xx and 5xx included). Otherwise:
     *   -ETIMEDOUT     timeout_ms passed first
     *   -ECONNREFUSED  no connection could be made (refused, unreachable, name not resolved)
     *   DL_ESHUTDOWN   dl_http_client_close() cancelled the request
     *   -EINVAL        the URL is malformed or not http(s)
     *   -ENOMEM        out of memory
     *   -EIO           anything else (connection reset, bad response, too many redirects) */
    int rv;
    long status;               /* the final response's status; 0 when rv != 0 */
    const char *body;          /* the final response's body, NUL-terminated; never NULL */
    size_t body_len;           /* without the terminating NUL */
    const char *location;      /* the final response's Location header value or NULL */
    const char *etag;          /* the final response's ETag header value (quotes kept) or NULL */
    const char *effective_url; /* the URL the final response came from (after redirects) */
    const char *error;         /* one line for people when rv != 0, else NULL */
} dl_http_response_t;

typedef void (*dl_http_client_cb)(void *ctx, const dl_http_response_t *resp);

/*
 * Creates a client whose I/O runs on loop. On success returns 0 and stores the client in *out;
 * the caller releases it with dl_http_client_close(). Returns -ENOMEM or -EIO (libcurl could not
 * be initialised).
 */
int dl_http_client_new(uv_loop_t *loop, dl_http_client_t **out);

/*
 * Starts a request; copies everything it needs from req. On success returns 0 and cb(ctx, resp)
 * runs exactly once, later, on the loop thread (never from inside this call). On failure returns
 * -EINVAL (no method or URL), -ENOMEM, DL_ESHUTDOWN (the client is closing) or -EIO, and cb never
 * runs. cb may send new requests and may close the client.
 */
int dl_http_client_send(dl_http_client_t *c, const dl_http_request_t *req, dl_http_client_cb cb,
                        void *ctx);

/*
 * Cancels pending requests (their callbacks run before this returns, with rv = DL_ESHUTDOWN;
 * a send from inside them fails with DL_ESHUTDOWN), closes the connections and the loop
 * handles. The memory is freed once the loop has processed the handle closes, so keep running
 * the loop (uv_run) afterwards; once this returns, c must not be used again. Calling it from
 * inside a response callback is allowed. A NULL c is ignored.
 */
void dl_http_client_close(dl_http_client_t *c);

/* What dl_http_fetch() returns. Strings are heap-allocated (release with dl_http_result_free());
 * body is never NULL after dl_http_fetch(), the others are NULL when absent. */
typedef struct dl_http_result_s {
    int rv;      /* as dl_http_response_t.rv */
    long status; /* 0 when rv != 0 */
    char *body;  /* NUL-terminated */
    size_t body_len;
    char *location;
    char *etag;
    char *effective_url; /* where the last attempt went (after redirects); NULL when unknown */
    char *error;         /* when rv != 0 */
} dl_http_result_t;

/*
 * Blocking convenience for command-line tools: runs a private loop until the request is done
 * and fills *out (which it first clears). Returns out->rv. Always release out with
 * dl_http_result_free(), whatever the outcome.
 */
int dl_http_fetch(const dl_http_request_t *req, dl_http_result_t *out);

/* Frees the strings in r and clears it. Safe on a zeroed or already freed result. */
void dl_http_result_free(dl_http_result_t *r);

#endif
