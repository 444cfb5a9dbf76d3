/*
 * Routing: the route table, matching a path against it, and dispatching a request to its
 * handler (or answering 400/404/405/413 before any handler runs).
 *
 * Patterns are compared with the raw path, so matching costs one memcmp per route and no copy;
 * only the bytes that matched a '*' are decoded, once, into the request's pool.
 */
#include "http_internal.h"

#include "ddialab/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { METHOD_GET = 1, METHOD_PUT = 2, METHOD_POST = 4, METHOD_DELETE = 8 };

struct dl__http_route_s {
    char *pattern;     /* as registered */
    size_t len;        /* strlen(pattern) */
    size_t prefix_len; /* a prefix pattern's length without its '*'; 0 for an exact pattern */
    unsigned method;   /* one METHOD_* bit */
    dl_http_handler_fn fn;
    void *ctx;
};
typedef struct dl__http_route_s route_t;

static unsigned method_bit(const char *method)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return METHOD_GET;
    if (strcmp(method, "PUT") == 0)
        return METHOD_PUT;
    if (strcmp(method, "POST") == 0)
        return METHOD_POST;
    if (strcmp(method, "DELETE") == 0)
        return METHOD_DELETE;
    return 0;
}

/* Adds a route to t; the checks and return values of dl_http_server_route(). */
int dl__http_routes_add(dl__http_routes_t *t, const char *method, const char *pattern,
                        dl_http_handler_fn fn, void *ctx)
{
    if (method == NULL || pattern == NULL || fn == NULL || pattern[0] != '/' ||
        strcmp(method, "HEAD") == 0)
        return -EINVAL;
    unsigned bit = method_bit(method);
    size_t len = strlen(pattern);
    const char *star = strchr(pattern, '*');
    if (bit == 0 || strchr(pattern, '?') != NULL)
        return -EINVAL;
    if (star != NULL && (star != pattern + len - 1 || pattern[len - 2] != '/'))
        return -EINVAL;
    for (size_t i = 0; i < t->size; i++)
        if (t->entries[i].method == bit && strcmp(t->entries[i].pattern, pattern) == 0)
            return -EEXIST;
    if (t->size == t->capacity) {
        size_t cap = t->capacity ? t->capacity * 2 : 16;
        route_t *entries = realloc(t->entries, cap * sizeof(*entries));
        if (entries == NULL)
            return -ENOMEM;
        t->entries = entries;
        t->capacity = cap;
    }
    char *copy = strdup(pattern);
    if (copy == NULL)
        return -ENOMEM;
    t->entries[t->size++] = (route_t){
        .pattern = copy,
        .len = len,
        .prefix_len = star != NULL ? len - 1 : 0,
        .method = bit,
        .fn = fn,
        .ctx = ctx,
    };
    return 0;
}

/*
 * The most specific route for path and method: an exact pattern beats a prefix, a longer prefix
 * a shorter one. *allow collects the methods of every pattern that matches the path.
 */
static const route_t *match_route(const dl__http_routes_t *t, const char *path, size_t path_len,
                                  unsigned method, unsigned *allow)
{
    const route_t *best = NULL;
    size_t best_score = 0;
    *allow = 0;
    for (size_t i = 0; i < t->size; i++) {
        const route_t *rt = t->entries + i;
        size_t score;
        if (rt->prefix_len != 0) {
            if (path_len <= rt->prefix_len || memcmp(path, rt->pattern, rt->prefix_len) != 0)
                continue;
            score = rt->prefix_len;
        } else {
            if (path_len != rt->len || memcmp(path, rt->pattern, path_len) != 0)
                continue;
            score = SIZE_MAX;
        }
        *allow |= rt->method;
        if ((rt->method & method) && score > best_score) {
            best = rt;
            best_score = score;
        }
    }
    return best;
}

static void reply_method_not_allowed(dl_http_req_t *r, unsigned allow)
{
    char value[64] = "";
    static const struct {
        unsigned bit;
        const char *names;
    } methods[] = {{METHOD_GET, "GET, HEAD"},
                   {METHOD_PUT, "PUT"},
                   {METHOD_POST, "POST"},
                   {METHOD_DELETE, "DELETE"}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (allow & methods[i].bit) {
            if (value[0] != '\0')
                strcat(value, ", ");
            strcat(value, methods[i].names);
        }
    }
    char message[128];
    snprintf(message, sizeof(message), "%s is not allowed here; allowed: %s", r->method, value);
    const char *const headers[] = {"Allow", value, NULL};
    dl_http_reply_json(r, 405, dl_http_error_body(DL_EMETHOD, message), headers);
}

/* Checks the request, finds its route, and calls the handler (or rejects it). */
void dl__http_dispatch(const dl__http_routes_t *t, dl_http_req_t *r, size_t max_body)
{
    h2o_req_t *req = r->req;
    const char *why;
    if (dl__http_req_init(r, req, &why) != 0) {
        dl_http_reply_error(r, DL_EBADREQUEST, "%s", why);
        return;
    }
    /* libh2o's limit is one byte above ours, so that over-limit bodies of either framing end
       here (its own 413 for larger ones is rewritten by the error filter). */
    if (req->entity.base != NULL && req->entity.len > max_body) {
        dl_http_reply_error(r, DL_ETOOLARGE,
                            "the request body is larger than the limit of %zu bytes", max_body);
        return;
    }
    unsigned allow;
    const route_t *rt =
        match_route(t, r->path, strlen(r->path), method_bit(r->metric_method), &allow);
    if (rt == NULL) {
        if (allow != 0)
            reply_method_not_allowed(r, allow);
        else
            dl_http_reply_error(r, DL_ENOTFOUND, "nothing is served at %s", r->path);
        return;
    }
    r->pattern = rt->pattern;
    if (rt->prefix_len != 0)
        dl__http_req_set_wildcard(r, rt->prefix_len);
    dl_http_handler_fn fn = rt->fn;
    fn(rt->ctx, r);
}

void dl__http_routes_free(dl__http_routes_t *t)
{
    for (size_t i = 0; i < t->size; i++)
        free(t->entries[i].pattern);
    free(t->entries);
    *t = (dl__http_routes_t){NULL, 0, 0};
}
