/*
 * The HTTP API of "ddialab txn serve" (docs/txn.md, "Hands-on over HTTP"):
 *
 *   POST   /sessions                    {"isolation": L}: a new session
 *   GET    /sessions                    every session and what it is doing
 *   GET    /sessions/{id}               one session
 *   DELETE /sessions/{id}               ends it (aborts its transaction)
 *   POST   /sessions/{id}/begin         {"isolation": L} optional; commit; abort (rollback)
 *   GET    /sessions/{id}/kv/{key}      read; PUT writes the body; POST inserts; DELETE deletes
 *   GET    /sessions/{id}/scan?where=W  the rows matching W
 *   POST   /sessions/{id}/update?where=W&set=S, /sessions/{id}/delete?where=W
 *   GET    /state                       the committed data
 *   POST   /reset                       {"setup": "1=10"} optional: fresh data, sessions idle
 *
 * Handlers check the request, answer what needs no engine call, and hand statements to
 * serve_session.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ddialab/error.h"
#include "ddialab/json_util.h"
#include "ddialab/logging.h"
#include "txn/serve.h"

static const char levels_help[] = "read-uncommitted, read-committed, snapshot (repeatable-read), "
                                  "serial, 2pl or ssi (serializable)";

static void reply_error(dl_http_req_t *req, int status, const char *error, const char *message)
{
    dl_http_reply_json(req, status, dl__txn_serve_error(error, message), NULL);
}

/* ---- Request parsing (each helper answers a bad request itself and returns -1) ------------ */

/*
 * The body as a JSON object in *out (new reference), or NULL when the body is empty. A body
 * that is not a JSON object is answered 400.
 */
static int body_object(dl_http_req_t *req, json_t **out)
{
    const void *data;
    size_t len;
    *out = NULL;
    dl_http_req_body(req, &data, &len);
    size_t i = 0;
    while (i < len && isspace(((const unsigned char *)data)[i]))
        i++;
    if (i == len)
        return 0;
    json_error_t jerr;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        dl_http_reply_error(req, DL_EBADREQUEST, "the body must be a JSON object%s%s",
                            j == NULL ? ": " : "", j == NULL ? jerr.text : "");
        return -1;
    }
    *out = j;
    return 0;
}

/*
 * A text parameter: the query's name=..., else the body object's string member, copied into the
 * request's memory (NUL-terminated, so a parser may cut it in place). *text is NULL when neither
 * has it.
 */
static int text_param(dl_http_req_t *req, json_t *body, const char *name, size_t max, char **text)
{
    const char *value = NULL;
    size_t len = 0;
    *text = NULL;
    if (dl_http_req_query(req, name, &value, &len) != 0) {
        json_t *member = body != NULL ? json_object_get(body, name) : NULL;
        if (member == NULL)
            return 0;
        if (!json_is_string(member)) {
            dl_http_reply_error(req, DL_EBADREQUEST, "%s must be a string", name);
            return -1;
        }
        value = json_string_value(member);
        len = json_string_length(member);
    }
    if (len > max || memchr(value, '\0', len) != NULL) {
        dl_http_reply_error(req, DL_EBADREQUEST, "%s is longer than %zu bytes or holds a NUL byte",
                            name, max);
        return -1;
    }
    *text = dl_http_req_alloc(req, len + 1);
    if (*text == NULL) {
        dl_http_reply_error(req, -ENOMEM, "out of memory");
        return -1;
    }
    memcpy(*text, value, len);
    (*text)[len] = '\0';
    return 0;
}

/* An isolation level from the query or the body; *level is left alone when none is named. 0, or
 * -1 with the error answered. */
static int level_param(dl_http_req_t *req, dl_txn_level_t *level)
{
    json_t *body;
    if (body_object(req, &body) != 0)
        return -1;
    char *name;
    int rv = text_param(req, body, "isolation", 64, &name);
    json_decref(body);
    if (rv != 0)
        return -1;
    if (name == NULL)
        return 0;
    if (dl_txn_level_parse(name, level) != 0) {
        dl_http_reply_error(req, DL_EBADREQUEST, "unknown isolation level '%.64s'; use %s", name,
                            levels_help);
        return -1;
    }
    return 0;
}

/*
 * The value a PUT or insert writes: a JSON body {"value": "..." or an integer} when the
 * Content-Type says JSON, else the raw body with one trailing newline dropped (what
 * `curl --data-binary @file` sends).
 */
static int value_param(dl_http_req_t *req, const char **out)
{
    const char *type, *data;
    size_t len;
    const void *raw;
    dl_http_req_body(req, &raw, &len);
    data = raw;
    json_t *body = NULL;
    char number[32];
    if (dl_http_req_header(req, "content-type", &type, NULL) == 0 &&
        strncasecmp(type, "application/json", 16) == 0) {
        if (body_object(req, &body) != 0)
            return -1;
        json_t *v = body != NULL ? json_object_get(body, "value") : NULL;
        if (json_is_string(v)) {
            data = json_string_value(v);
            len = json_string_length(v);
        } else if (json_is_integer(v)) {
            snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            data = number;
            len = strlen(number);
        } else {
            json_decref(body);
            dl_http_reply_error(req, DL_EBADREQUEST,
                                "a JSON body must be {\"value\": a string or an integer}");
            return -1;
        }
    } else if (len > 0 && data[len - 1] == '\n') {
        len -= len > 1 && data[len - 2] == '\r' ? 2 : 1;
    }
    char *copy = memchr(data, '\0', len) == NULL ? dl_http_req_alloc(req, len + 1) : NULL;
    if (copy != NULL) {
        memcpy(copy, data, len);
        copy[len] = '\0';
    }
    json_decref(body);
    if (copy == NULL) {
        dl_http_reply_error(req, DL_EBADREQUEST, "values may not contain NUL bytes");
        return -1;
    }
    *out = copy;
    return 0;
}

/* ---- Sessions ---------------------------------------------------------------------------- */

static void handle_sessions_post(void *ctx, dl_http_req_t *req)
{
    dl_txn_server_t *s = ctx;
    dl_txn_level_t level = s->isolation;
    if (level_param(req, &level) != 0)
        return;
    if (s->n_sessions >= DL_TXN_SERVE_MAX_SESSIONS)
        return dl_http_reply_error(req, DL_EBUSY, "there are %d sessions already; delete some",
                                   DL_TXN_SERVE_MAX_SESSIONS);
    dl_txn_session_t *session = dl__txn_serve_session_new(s, level);
    if (session == NULL)
        return dl_http_reply_error(req, -ENOMEM, "out of memory");
    DL_INFO("session %" PRIu64 " opened (%s)", session->id, dl_txn_level_name(level));
    char location[48];
    snprintf(location, sizeof(location), "/sessions/%" PRIu64, session->id);
    const char *headers[] = {"Location", location, NULL};
    dl_http_reply_json(req, 201, dl__txn_serve_session_json(session), headers);
}

static void handle_sessions_get(void *ctx, dl_http_req_t *req)
{
    dl_txn_server_t *s = ctx;
    json_t *list = json_array();
    for (dl_txn_session_t *session = s->sessions; session != NULL; session = session->next)
        json_array_append_new(list, dl__txn_serve_session_json(session));
    dl_http_reply_json(req, 200, json_pack("{s:o}", "sessions", list), NULL);
}

static void handle_session_delete(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session)
{
    uint64_t id = session->id;
    uint64_t aborted = dl__txn_serve_session_close(s, session, "session_deleted",
                                                   "the session was deleted while this "
                                                   "statement waited");
    DL_INFO("session %" PRIu64 " deleted", id);
    dl__txn_serve_wake(s);
    dl_http_reply_json(req, 200,
                       json_pack("{s:I, s:b, s:o}", "id", (json_int_t)id, "deleted", 1,
                                 "aborted_txn",
                                 aborted ? json_integer((json_int_t)aborted) : json_null()),
                       NULL);
}

/* ---- Transaction blocks ------------------------------------------------------------------ */

static void reply_failed_block(dl_http_req_t *req, const dl_txn_session_t *session)
{
    json_t *body = dl__txn_serve_error("in_failed_transaction",
                                       "current transaction is aborted, commands ignored until "
                                       "end of transaction block (abort or commit ends it)");
    if (body != NULL) {
        json_object_set_new(body, "txn", json_integer((json_int_t)session->txn));
        json_object_set_new(body, "cause", json_string(session->failed_error));
    }
    dl_http_reply_json(req, 409, body, NULL);
}

static void handle_begin(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session)
{
    dl_txn_level_t level = session->level;
    if (level_param(req, &level) != 0)
        return;
    if (session->failed)
        return reply_failed_block(req, session);
    if (session->txn != 0) {
        /* PostgreSQL warns and goes on in the transaction it has. */
        dl_http_reply_json(req, 200,
                           json_pack("{s:I, s:s, s:s}", "txn", (json_int_t)session->txn,
                                     "isolation", dl_txn_level_name(session->txn_level), "warning",
                                     "there is already a transaction in progress"),
                           NULL);
        return;
    }
    uint64_t id;
    int rv = dl_txn_begin(s->engine, level, &id);
    if (rv != 0)
        return dl_http_reply_error(req, rv, "cannot begin: %s", dl_strerror(rv));
    session->txn = id;
    session->txn_level = level;
    DL_INFO("session %" PRIu64 ": begin T%" PRIu64 " (%s)", session->id, id,
            dl_txn_level_name(level));
    dl_http_reply_json(
        req, 200,
        json_pack("{s:I, s:s}", "txn", (json_int_t)id, "isolation", dl_txn_level_name(level)),
        NULL);
}

static void handle_abort(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session)
{
    uint64_t id = session->txn;
    if (id == 0) {
        dl_http_reply_json(
            req, 200,
            json_pack("{s:b, s:s}", "aborted", 0, "warning", "there is no transaction in progress"),
            NULL);
        return;
    }
    if (!session->failed)
        dl_txn_abort(s->engine, id);
    session->txn = 0;
    session->failed = 0;
    DL_INFO("session %" PRIu64 ": abort T%" PRIu64, session->id, id);
    dl__txn_serve_wake(s);
    dl_http_reply_json(req, 200, json_pack("{s:I, s:b}", "txn", (json_int_t)id, "aborted", 1),
                       NULL);
}

/* ---- Statements -------------------------------------------------------------------------- */

/* A statement of session for req, in the request's memory; NULL after answering 500. */
static dl_txn_statement_t *new_statement(dl_txn_server_t *s, dl_http_req_t *req,
                                         dl_txn_session_t *session, dl_txn_serve_op_t op)
{
    dl_txn_statement_t *st = dl_http_req_alloc(req, sizeof(*st));
    const char *method = dl_http_req_method(req), *path = dl_http_req_path(req);
    const char *query = dl_http_req_raw_query(req);
    size_t cap = strlen(method) + strlen(path) + (query ? strlen(query) : 0) + 4;
    char *text = dl_http_req_alloc(req, cap);
    if (st == NULL || text == NULL) {
        dl_http_reply_error(req, -ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(text, cap, "%s %s%s%s", method, path, query ? "?" : "", query ? query : "");
    memset(st, 0, sizeof(*st));
    st->server = s;
    st->session = session;
    st->req = req;
    st->op = op;
    st->text = text;
    st->where = "";
    return st;
}

/* Runs st in the session's transaction block, or in a transaction of its own. */
static void run_statement(dl_txn_server_t *s, dl_txn_statement_t *st)
{
    dl_txn_session_t *session = st->session;
    if (session->txn != 0) {
        st->txn = session->txn;
    } else {
        int rv = dl_txn_begin(s->engine, session->level, &st->txn);
        if (rv != 0)
            return dl_http_reply_error(st->req, rv, "cannot begin: %s", dl_strerror(rv));
        st->autocommit = 1;
    }
    dl__txn_serve_execute(st);
    dl__txn_serve_wake(s);
}

static void handle_commit(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session)
{
    uint64_t id = session->txn;
    if (id == 0) {
        dl_http_reply_json(req, 200,
                           json_pack("{s:b, s:s}", "committed", 0, "warning",
                                     "there is no transaction in progress"),
                           NULL);
        return;
    }
    if (session->failed) {
        /* PostgreSQL answers COMMIT of a failed block with ROLLBACK. */
        json_t *body = json_pack("{s:I, s:b, s:b, s:s}", "txn", (json_int_t)id, "committed", 0,
                                 "rolled_back", 1, "cause", session->failed_error);
        if (body != NULL)
            dl_json_set_bytes(body, "message", session->failed_message,
                              strlen(session->failed_message));
        session->txn = 0;
        session->failed = 0;
        return dl_http_reply_json(req, 200, body, NULL);
    }
    dl_txn_statement_t *st = new_statement(s, req, session, DL_TXN_SERVE_COMMIT);
    if (st != NULL)
        run_statement(s, st);
}

/* The key of /sessions/{id}/kv/{key}: answers 400/413 itself when it is unusable. */
static int check_key(dl_http_req_t *req, const char *key, size_t len)
{
    if (len == 0) {
        dl_http_reply_error(req, DL_EBADREQUEST, "the key is empty");
        return -1;
    }
    if (memchr(key, '\0', len) != NULL) {
        dl_http_reply_error(req, DL_EBADREQUEST, "keys may not contain NUL bytes");
        return -1;
    }
    if (len > DL_TXN_SERVE_MAX_KEY_BYTES) {
        dl_http_reply_error(req, DL_ETOOLARGE, "the key is %zu bytes; keys are limited to %d bytes",
                            len, DL_TXN_SERVE_MAX_KEY_BYTES);
        return -1;
    }
    return 0;
}

static void handle_kv(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session,
                      const char *key, size_t key_len)
{
    const char *method = dl_http_req_method(req), *match;
    dl_txn_serve_op_t op;
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        op = DL_TXN_SERVE_GET;
    else if (strcmp(method, "DELETE") == 0)
        op = DL_TXN_SERVE_DELETE;
    else if (strcmp(method, "POST") == 0)
        op = DL_TXN_SERVE_INSERT;
    else
        op = dl_http_req_header(req, "if-none-match", &match, NULL) == 0 && strcmp(match, "*") == 0
                 ? DL_TXN_SERVE_INSERT
                 : DL_TXN_SERVE_PUT;
    if (check_key(req, key, key_len) != 0)
        return;
    dl_txn_statement_t *st = new_statement(s, req, session, op);
    if (st == NULL)
        return;
    st->key = key; /* the wildcard, NUL-terminated in the request's memory */
    if ((op == DL_TXN_SERVE_PUT || op == DL_TXN_SERVE_INSERT) && value_param(req, &st->value) != 0)
        return;
    run_statement(s, st);
}

/* scan (GET), update and delete (POST): a where clause, and for update an assignment. */
static void handle_where(dl_txn_server_t *s, dl_http_req_t *req, dl_txn_session_t *session,
                         dl_txn_serve_op_t op)
{
    json_t *body = NULL;
    char *where, *set = NULL, *parsed;
    char err[384];
    dl_txn_statement_t *st = NULL;
    if (op != DL_TXN_SERVE_SCAN && body_object(req, &body) != 0)
        return;
    if (text_param(req, body, "where", DL_TXN_SERVE_MAX_WHERE, &where) != 0 ||
        (op == DL_TXN_SERVE_UPDATE_WHERE &&
         text_param(req, body, "set", DL_TXN_SERVE_MAX_WHERE, &set) != 0))
        goto out;
    if (op == DL_TXN_SERVE_UPDATE_WHERE && set == NULL) {
        dl_http_reply_error(req, DL_EBADREQUEST,
                            "update needs set=..., e.g. set=value+1 or set=42 (and where=...)");
        goto out;
    }
    if ((st = new_statement(s, req, session, op)) == NULL)
        goto out;
    st->where = where != NULL ? where : "";
    parsed = dl_http_req_alloc(req, strlen(st->where) + 1);
    if (parsed == NULL) {
        dl_http_reply_error(req, -ENOMEM, "out of memory");
        goto out;
    }
    strcpy(parsed, st->where);
    if (dl__txn_serve_parse_where(parsed, &st->pred, err, sizeof(err)) != 0) {
        dl_http_reply_error(req, DL_EBADREQUEST, "%s", err);
        goto out;
    }
    if (set != NULL) {
        st->set = set;
        parsed = dl_http_req_alloc(req, strlen(set) + 1);
        if (parsed == NULL) {
            dl_http_reply_error(req, -ENOMEM, "out of memory");
            goto out;
        }
        strcpy(parsed, set);
        if (dl__txn_serve_parse_set(parsed, &st->assign, err, sizeof(err)) != 0) {
            dl_http_reply_error(req, DL_EBADREQUEST, "%s", err);
            goto out;
        }
    }
    json_decref(body);
    run_statement(s, st);
    return;
out:
    json_decref(body);
}

/* ---- /sessions/{id}/... ------------------------------------------------------------------ */

static void method_not_allowed(dl_http_req_t *req, const char *allow)
{
    const char *headers[] = {"Allow", allow, NULL};
    char message[128];
    snprintf(message, sizeof(message), "use %s here", allow);
    dl_http_reply_json(req, 405, dl_http_error_body(DL_EMETHOD, message), headers);
}

/* What a path under /sessions/{id}/ names, and the methods it takes. */
typedef enum { SUB_BEGIN, SUB_COMMIT, SUB_ABORT, SUB_SCAN, SUB_UPDATE, SUB_DELETE, SUB_KV } sub_t;

static const struct {
    const char *name;
    sub_t sub;
    int get; /* GET and HEAD, else POST */
} subs[] = {
    {"begin", SUB_BEGIN, 0},    {"commit", SUB_COMMIT, 0}, {"abort", SUB_ABORT, 0},
    {"rollback", SUB_ABORT, 0}, {"scan", SUB_SCAN, 1},     {"update", SUB_UPDATE, 0},
    {"delete", SUB_DELETE, 0},
};

/*
 * Everything under /sessions/: the wildcard (decoded) is "{id}" or "{id}/{what}", what being
 * begin, commit, abort, rollback, scan, update, delete, or kv/{key} (the key may hold '/').
 */
static void handle_session_path(void *ctx, dl_http_req_t *req)
{
    dl_txn_server_t *s = ctx;
    const char *path, *method = dl_http_req_method(req);
    size_t len, digits = 0;
    dl_http_req_wildcard(req, &path, &len);
    uint64_t id = 0;
    while (digits < len && digits < 18 && isdigit((unsigned char)path[digits]))
        id = id * 10 + (uint64_t)(path[digits++] - '0');
    dl_txn_session_t *session = NULL;
    if (digits > 0 && (digits == len || path[digits] == '/'))
        session = dl__txn_serve_session_find(s, id);
    if (session == NULL)
        return reply_error(req, 404, "not_found", "no such session (POST /sessions makes one)");
    int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (digits == len) {
        if (is_get)
            return dl_http_reply_json(req, 200, dl__txn_serve_session_json(session), NULL);
        if (strcmp(method, "DELETE") == 0)
            return handle_session_delete(s, req, session);
        return method_not_allowed(req, "GET, HEAD, DELETE");
    }

    const char *what = path + digits + 1;
    size_t what_len = len - digits - 1;
    sub_t sub = SUB_KV;
    if (what_len < 3 || memcmp(what, "kv/", 3) != 0) {
        size_t i = 0;
        while (i < sizeof(subs) / sizeof(subs[0]) &&
               (strlen(subs[i].name) != what_len || memcmp(what, subs[i].name, what_len) != 0))
            i++;
        if (i == sizeof(subs) / sizeof(subs[0]))
            return reply_error(req, 404, "not_found", "no such endpoint (see docs/txn.md)");
        if (subs[i].get ? !is_get : strcmp(method, "POST") != 0)
            return method_not_allowed(req, subs[i].get ? "GET, HEAD" : "POST");
        sub = subs[i].sub;
    }
    if (session->statement != NULL) {
        /* One statement at a time per session, as on one database connection. */
        char message[384];
        snprintf(message, sizeof(message),
                 "session %" PRIu64 " has a statement waiting for T%" PRIu64
                 " (%s); wait for its answer, or cancel it (Ctrl-C) first",
                 session->id, session->statement->waiting_for, session->statement->text);
        return reply_error(req, 409, "session_busy", message);
    }
    switch (sub) {
    case SUB_BEGIN:
        return handle_begin(s, req, session);
    case SUB_COMMIT:
        return handle_commit(s, req, session);
    case SUB_ABORT:
        return handle_abort(s, req, session);
    default:
        break;
    }
    if (session->failed)
        return reply_failed_block(req, session);
    if (sub == SUB_KV)
        return handle_kv(s, req, session, what + 3, what_len - 3);
    handle_where(s, req, session,
                 sub == SUB_SCAN     ? DL_TXN_SERVE_SCAN
                 : sub == SUB_UPDATE ? DL_TXN_SERVE_UPDATE_WHERE
                                     : DL_TXN_SERVE_DELETE_WHERE);
}

/* ---- The data ---------------------------------------------------------------------------- */

static void handle_state(void *ctx, dl_http_req_t *req)
{
    dl_txn_server_t *s = ctx;
    dl_txn_rows_t rows;
    int rv = dl_txn_engine_committed(s->engine, &rows);
    if (rv != 0)
        return dl_http_reply_error(req, rv, "cannot read the committed state: %s", dl_strerror(rv));
    json_t *list = json_array();
    for (size_t i = 0; i < rows.n; i++) {
        json_t *row = json_object();
        dl_json_set_bytes(row, "key", rows.rows[i].key, strlen(rows.rows[i].key));
        dl_json_set_bytes(row, "value", rows.rows[i].value, strlen(rows.rows[i].value));
        json_object_set_new(row, "writer", json_integer((json_int_t)rows.rows[i].writer));
        json_array_append_new(list, row);
    }
    dl_http_reply_json(req, 200, json_pack("{s:o, s:I}", "rows", list, "count", (json_int_t)rows.n),
                       NULL);
    dl_txn_rows_free(&rows);
}

static void handle_reset(void *ctx, dl_http_req_t *req)
{
    dl_txn_server_t *s = ctx;
    json_t *body;
    char *setup;
    char err[256];
    if (body_object(req, &body) != 0)
        return;
    int rv = text_param(req, body, "setup", DL_TXN_SERVE_MAX_BODY_BYTES, &setup);
    json_decref(body);
    if (rv != 0)
        return;
    if ((rv = dl__txn_serve_reset(s, setup, err, sizeof(err))) != 0)
        return dl_http_reply_error(req, rv == -EINVAL ? DL_EBADREQUEST : rv, "%s", err);
    dl__txn_serve_wake(s); /* nothing waits any more: stops the lock timer */
    handle_state(ctx, req);
}

/* Registers every route of the API on s->http. */
int dl__txn_serve_routes(dl_txn_server_t *s, char *err, size_t errlen)
{
    static const struct {
        const char *method;
        const char *pattern;
        dl_http_handler_fn fn;
    } routes[] = {
        {"POST", "/sessions", handle_sessions_post},
        {"GET", "/sessions", handle_sessions_get},
        {"GET", "/sessions/*", handle_session_path},
        {"PUT", "/sessions/*", handle_session_path},
        {"POST", "/sessions/*", handle_session_path},
        {"DELETE", "/sessions/*", handle_session_path},
        {"GET", "/state", handle_state},
        {"POST", "/reset", handle_reset},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rv =
            dl_http_server_route(s->http, routes[i].method, routes[i].pattern, routes[i].fn, s);
        if (rv != 0) {
            snprintf(err, errlen, "cannot register route %s %s", routes[i].method,
                     routes[i].pattern);
            return rv;
        }
    }
    return 0;
}
