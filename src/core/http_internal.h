/*
 * Internals shared by the two halves of the HTTP server: http_server.c (listener, connections,
 * routing, cancellation, shutdown; the libh2o glue) and http_request.c (what a handler sees:
 * accessors, decoding, replies). Not a public interface.
 */
#ifndef DDIALAB_CORE_HTTP_INTERNAL_H
#define DDIALAB_CORE_HTTP_INTERNAL_H

#include "ddialab/http_server.h"

#include <h2o.h>

typedef enum {
    DL__HTTP_PENDING,   /* dispatched, waiting for its reply */
    DL__HTTP_REPLIED,   /* reply handed to libh2o; waiting for libh2o to dispose the request */
    DL__HTTP_CANCELLED, /* went away before a reply (client gone, server stopping) */
} dl__http_req_state_t;

/* One accepted TCP connection. Freed in the close callback of its libuv handle. */
typedef struct dl__http_conn_s {
    uv_tcp_t tcp;       /* first member: the close callback casts the handle back */
    h2o_socket_t *sock; /* NULL once libh2o has closed the socket */
    dl_http_server_t *server;
    h2o_linklist_t link;   /* in server->conns */
    dl_http_req_t *active; /* the request being served (HTTP/1: at most one), or NULL */
} dl__http_conn_t;

/*
 * What a handler holds. Allocated outside libh2o's per-request pool (recycled through the
 * server's free list), so that a request cancelled without a cancel callback can outlive the
 * libh2o request as an "orphan" (server == NULL) until the late reply frees it.
 */
struct dl_http_req_s {
    h2o_linklist_t pending_link; /* in server->pending while PENDING */
    dl_http_server_t *server;    /* NULL for an orphan */
    dl__http_conn_t *conn;       /* NULL for an orphan */
    h2o_req_t *req;              /* libh2o's request; NULL for an orphan */
    dl__http_req_state_t state;
    int status;                 /* the status sent (for on_complete) */
    unsigned is_head : 1;       /* HEAD: the reply leaves out the body */
    unsigned had_cancel_fn : 1; /* a cancel callback was set, so r dies with the request */
    const char *method;         /* NUL-terminated; static or in the pool */
    const char *metric_method;  /* static: GET HEAD PUT POST DELETE OTHER */
    const char *pattern;        /* the matched route's pattern (server-owned), or NULL */
    const char *path;           /* NUL-terminated, no query */
    const char *query;          /* NUL-terminated raw query, or NULL */
    size_t query_len;
    const char *wildcard; /* NUL-terminated, decoded */
    size_t wildcard_len;
    uint64_t dispatched_ns; /* uv_hrtime() at dispatch */
    void (*cancel_fn)(void *ctx);
    void *cancel_ctx;
    dl_http_req_t *next_free; /* in server->free_reqs */
};

/* The route table (http_route.c). */
typedef struct {
    struct dl__http_route_s *entries;
    size_t size, capacity;
} dl__http_routes_t;

/* Adds a route; the checks and return values of dl_http_server_route(). */
int dl__http_routes_add(dl__http_routes_t *t, const char *method, const char *pattern,
                        dl_http_handler_fn fn, void *ctx);
void dl__http_routes_free(dl__http_routes_t *t);
/* Checks a freshly dispatched request (target, body size), finds its route and calls the
   handler, or answers 400, 404, 405 or 413 itself. */
void dl__http_dispatch(const dl__http_routes_t *t, dl_http_req_t *r, size_t max_body);

/* The server-wide state the other files need. */
int dl__http_server_stopping(const dl_http_server_t *s);
/* A reusable buffer for serialising JSON replies (loop thread only). */
char *dl__http_server_scratch(dl_http_server_t *s, size_t need);
/* r left the PENDING state (replied or cancelled): unlink it from the pending list. */
void dl__http_server_unpend(dl_http_req_t *r);

/* Fills in a PENDING request from libh2o's request before routing. Returns 0, or DL_EBADREQUEST
   with a message when the target is malformed. */
int dl__http_req_init(dl_http_req_t *r, h2o_req_t *req, const char **why);
/* Decodes the wildcard (the path after prefix_len bytes) into the pool. */
void dl__http_req_set_wildcard(dl_http_req_t *r, size_t prefix_len);
/* "GET", ..., "OTHER" for a method as sent. */
const char *dl__http_metric_method(const char *method, size_t len);

/* The generator of every response we build; libh2o's own responses (its 413, its 400 for a broken
   chunked body) have another, which is how the error filter tells them apart. */
extern h2o_generator_t dl__http_generator;

/* Sends a response on libh2o's request: status, optional content type, optional extra headers,
   and a body already in req->pool. Sets Connection: close when close is set. */
void dl__http_send(h2o_req_t *req, int status, const char *content_type, h2o_iovec_t body,
                   const char *const *headers, int is_head, int close);
/* Serialises json (borrowed) plus a newline into req->pool. Returns {NULL, 0} on failure. */
h2o_iovec_t dl__http_json_in_pool(dl_http_server_t *s, h2o_mem_pool_t *pool, json_t *json);

/* Percent-encoding. valid: every '%' is followed by two hex digits. decode writes at most len
   bytes to out (out may equal s) and returns the decoded length; s must be valid. */
int dl__http_percent_valid(const char *s, size_t len);
size_t dl__http_percent_decode(char *out, const char *s, size_t len, int plus_is_space);

#endif
