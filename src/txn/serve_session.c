/*
 * Sessions and their statements for "ddialab txn serve": running a statement against the engine,
 * parking it when it must wait, running it again when a transaction ends, timing it out, and
 * forgetting it when its client goes away.
 *
 * The engine never sleeps: a statement that must wait returns DL_TXN_BLOCKED, having changed
 * nothing, and is run again with the same arguments once its blocker has ended. So a waiting
 * statement costs a list entry and an open HTTP request, and the loop thread never blocks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/json_util.h"
#include "ddialab/logging.h"
#include "txn/serve.h"

/* ---- Replies ----------------------------------------------------------------------------- */

/* The txn server's error body, {"error": error, "message": message}. */
json_t *dl__txn_serve_error(const char *error, const char *message)
{
    /* dl_http_error_body() turns bytes that are not UTF-8 into '?', so a message may quote a
       client's key; the error name is ours. */
    json_t *body = dl_http_error_body(-1, message);
    if (body != NULL && json_object_set_new(body, "error", json_string(error)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* The HTTP status and error name of a statement that failed in the engine. */
static int error_of(dl_txn_outcome_t o, const char **name)
{
    switch (o.error) {
    case DL_TXN_ERR_SERIALIZATION:
    case DL_TXN_ERR_SSI:
        *name = "serialization_failure";
        return 409;
    case DL_TXN_ERR_DEADLOCK:
        *name = "deadlock_detected";
        return 409;
    case DL_TXN_ERR_DUPLICATE_KEY:
        *name = "duplicate_key";
        return 409;
    case DL_TXN_ERR_NOT_INTEGER:
        *name = "not_integer";
        return 409;
    case DL_TXN_ERR_NOT_ACTIVE:
        *name = "transaction_aborted";
        return 409;
    case DL_TXN_ERR_NO_MEMORY:
        *name = "internal";
        return 500;
    case DL_TXN_ERR_NONE:
        break;
    }
    *name = o.status == DL_TXN_ABORTED ? "transaction_aborted" : "statement_failed";
    return 409;
}

/* Adds what every statement's reply says about its transaction and its wait. */
static void add_statement_fields(const dl_txn_statement_t *st, json_t *body)
{
    if (body == NULL)
        return;
    json_object_set_new(body, "txn", json_integer((json_int_t)st->txn));
    if (st->autocommit)
        json_object_set_new(body, "autocommit", json_true());
    if (st->n_waited > 0) {
        json_t *ids = json_array();
        for (size_t i = 0; i < st->n_waited; i++)
            json_array_append_new(ids, json_integer((json_int_t)st->waited_for[i]));
        json_object_set_new(body, "waited_ms",
                            json_integer((json_int_t)((uv_hrtime() - st->parked_ns) / 1000000)));
        json_object_set_new(body, "waited_for", ids);
    }
}

static void reply(dl_txn_statement_t *st, int status, json_t *body)
{
    add_statement_fields(st, body);
    dl_http_reply_json(st->req, status, body, NULL);
}

/* ---- The parked list --------------------------------------------------------------------- */

static void on_cancel(void *ctx);

static void park(dl_txn_statement_t *st)
{
    dl_txn_server_t *s = st->server;
    st->parked = 1;
    st->seq = ++s->next_seq;
    st->parked_ns = uv_hrtime();
    st->deadline_ms = s->lock_timeout_ms > 0 ? uv_now(s->loop) + (uint64_t)s->lock_timeout_ms : 0;
    st->prev = s->parked_last;
    st->next = NULL;
    if (s->parked_last != NULL)
        s->parked_last->next = st;
    else
        s->parked_first = st;
    s->parked_last = st;
    s->n_parked++;
    st->session->statement = st;
    dl_http_req_on_cancel(st->req, on_cancel, st);
}

static void unpark(dl_txn_statement_t *st)
{
    dl_txn_server_t *s = st->server;
    if (!st->parked)
        return;
    if (st->prev != NULL)
        st->prev->next = st->next;
    else
        s->parked_first = st->next;
    if (st->next != NULL)
        st->next->prev = st->prev;
    else
        s->parked_last = st->prev;
    st->prev = st->next = NULL;
    st->parked = 0;
    s->n_parked--;
    st->session->statement = NULL;
}

/* Records that st waits for transaction id (once per transaction, up to the limit). */
static void note_wait(dl_txn_statement_t *st, uint64_t id)
{
    st->waiting_for = id;
    for (size_t i = 0; i < st->n_waited; i++)
        if (st->waited_for[i] == id)
            return;
    if (st->n_waited < DL_TXN_SERVE_MAX_WAITED)
        st->waited_for[st->n_waited++] = id;
}

/* ---- Sessions ---------------------------------------------------------------------------- */

/* A new idle session, last in the list. */
dl_txn_session_t *dl__txn_serve_session_new(dl_txn_server_t *s, dl_txn_level_t level)
{
    dl_txn_session_t *session = calloc(1, sizeof(*session));
    if (session == NULL)
        return NULL;
    session->id = ++s->next_session_id;
    session->level = level;
    dl_txn_session_t **tail = &s->sessions;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = session;
    s->n_sessions++;
    return session;
}

/* The session with this id, or NULL. */
dl_txn_session_t *dl__txn_serve_session_find(dl_txn_server_t *s, uint64_t id)
{
    for (dl_txn_session_t *session = s->sessions; session != NULL; session = session->next)
        if (session->id == id)
            return session;
    return NULL;
}

/* Marks the session's transaction block failed, saying why. */
void dl__txn_serve_session_fail(dl_txn_session_t *session, const char *error, const char *message)
{
    session->failed = 1;
    snprintf(session->failed_error, sizeof(session->failed_error), "%s", error);
    snprintf(session->failed_message, sizeof(session->failed_message), "%s", message);
}

/* Answers a parked statement with an error and forgets it. Its autocommit transaction ends;
 * the caller decides what becomes of a transaction block. */
static void fail_statement(dl_txn_statement_t *st, int status, const char *error,
                           const char *message)
{
    unpark(st);
    json_decref(st->result);
    st->result = NULL;
    if (st->autocommit)
        dl_txn_abort(st->server->engine, st->txn);
    json_t *body = dl__txn_serve_error(error, message);
    if (body != NULL)
        json_object_set_new(body, "rolled_back", json_true());
    st->server->wake_again = 1;
    reply(st, status, body);
}

/* Ends a session: its waiting statement is answered, its transaction aborted. */
uint64_t dl__txn_serve_session_close(dl_txn_server_t *s, dl_txn_session_t *session,
                                     const char *error, const char *message)
{
    if (session->statement != NULL)
        fail_statement(session->statement, 409, error, message);
    uint64_t aborted = 0;
    if (session->txn != 0 && dl_txn_active(s->engine, session->txn)) {
        dl_txn_abort(s->engine, session->txn);
        aborted = session->txn;
    }
    for (dl_txn_session_t **p = &s->sessions; *p != NULL; p = &(*p)->next)
        if (*p == session) {
            *p = session->next;
            break;
        }
    s->n_sessions--;
    s->wake_again = 1;
    free(session);
    return aborted;
}

/* The session as GET /sessions shows it: state, transaction, what it waits for. */
json_t *dl__txn_serve_session_json(const dl_txn_session_t *session)
{
    const dl_txn_statement_t *st = session->statement;
    uint64_t txn = st != NULL ? st->txn : session->txn;
    char summary[384];
    const char *state;
    if (st != NULL) {
        state = "blocked";
        snprintf(summary, sizeof(summary), "blocked waiting for T%" PRIu64 ": %s", st->waiting_for,
                 st->text);
    } else if (session->failed) {
        state = "aborted";
        snprintf(summary, sizeof(summary),
                 "in aborted transaction T%" PRIu64 " (%s); abort or commit ends it", txn,
                 session->failed_message);
    } else if (txn != 0) {
        state = "in_transaction";
        snprintf(summary, sizeof(summary), "in transaction T%" PRIu64 " (%s)", txn,
                 dl_txn_level_name(session->txn_level));
    } else {
        state = "idle";
        snprintf(summary, sizeof(summary), "idle");
    }
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "id", json_integer((json_int_t)session->id));
    json_object_set_new(j, "isolation", json_string(dl_txn_level_name(session->level)));
    json_object_set_new(j, "state", json_string(state));
    json_object_set_new(j, "txn", txn != 0 ? json_integer((json_int_t)txn) : json_null());
    if (session->txn != 0)
        json_object_set_new(j, "txn_isolation", json_string(dl_txn_level_name(session->txn_level)));
    if (st != NULL) {
        if (st->autocommit)
            json_object_set_new(j, "autocommit", json_true());
        json_object_set_new(j, "waiting_for", json_integer((json_int_t)st->waiting_for));
        json_object_set_new(j, "waiting_ms",
                            json_integer((json_int_t)((uv_hrtime() - st->parked_ns) / 1000000)));
        dl_json_set_bytes(j, "statement", st->text, strlen(st->text));
    }
    if (session->failed) {
        json_object_set_new(j, "error", json_string(session->failed_error));
        dl_json_set_bytes(j, "message", session->failed_message, strlen(session->failed_message));
    }
    dl_json_set_bytes(j, "summary", summary, strlen(summary));
    return j;
}

/* ---- Running statements ------------------------------------------------------------------ */

static json_t *row_json(const dl_txn_row_t *row)
{
    json_t *j = json_object();
    if (j != NULL) {
        dl_json_set_bytes(j, "key", row->key, strlen(row->key));
        dl_json_set_bytes(j, "value", row->value, strlen(row->value));
        json_object_set_new(j, "writer", json_integer((json_int_t)row->writer));
    }
    return j;
}

/* Builds the reply of a statement the engine has run (OK) into st->result. */
static void build_result(dl_txn_statement_t *st, const char *value, uint64_t writer, int flag,
                         size_t n, const dl_txn_rows_t *rows)
{
    json_t *j = json_object();
    st->status = 200;
    if (st->key != NULL)
        dl_json_set_bytes(j, "key", st->key, strlen(st->key));
    switch (st->op) {
    case DL_TXN_SERVE_GET:
        if (value != NULL) {
            dl_json_set_bytes(j, "value", value, strlen(value));
            json_object_set_new(j, "writer", json_integer((json_int_t)writer));
        } else {
            /* No error for the transaction: a read that found nothing. */
            json_decref(j);
            j = dl__txn_serve_error("not_found", "no such key");
            if (j != NULL)
                dl_json_set_bytes(j, "key", st->key, strlen(st->key));
            st->status = 404;
        }
        break;
    case DL_TXN_SERVE_PUT:
    case DL_TXN_SERVE_INSERT:
        dl_json_set_bytes(j, "value", st->value, strlen(st->value));
        if (st->op == DL_TXN_SERVE_INSERT)
            json_object_set_new(j, "inserted", json_true());
        break;
    case DL_TXN_SERVE_DELETE:
        json_object_set_new(j, "deleted", json_boolean(flag));
        break;
    case DL_TXN_SERVE_SCAN: {
        json_t *list = json_array();
        for (size_t i = 0; i < rows->n; i++)
            json_array_append_new(list, row_json(&rows->rows[i]));
        dl_json_set_bytes(j, "where", st->where, strlen(st->where));
        json_object_set_new(j, "rows", list);
        json_object_set_new(j, "count", json_integer((json_int_t)rows->n));
        break;
    }
    case DL_TXN_SERVE_UPDATE_WHERE:
        dl_json_set_bytes(j, "where", st->where, strlen(st->where));
        dl_json_set_bytes(j, "set", st->set, strlen(st->set));
        json_object_set_new(j, "updated", json_integer((json_int_t)n));
        break;
    case DL_TXN_SERVE_DELETE_WHERE:
        dl_json_set_bytes(j, "where", st->where, strlen(st->where));
        json_object_set_new(j, "deleted", json_integer((json_int_t)n));
        break;
    case DL_TXN_SERVE_COMMIT:
        json_object_set_new(j, "committed", json_true());
        break;
    }
    json_decref(st->result);
    st->result = j;
}

/* Runs st's operation once in the engine; on success its reply is in st->result. */
static dl_txn_outcome_t run_operation(dl_txn_statement_t *st)
{
    dl_txn_engine_t *e = st->server->engine;
    dl_txn_outcome_t o;
    switch (st->op) {
    case DL_TXN_SERVE_GET: {
        char *value;
        uint64_t writer;
        o = dl_txn_get_version(e, st->txn, st->key, &value, &writer);
        if (o.status == DL_TXN_OK)
            build_result(st, value, writer, 0, 0, NULL);
        free(value);
        return o;
    }
    case DL_TXN_SERVE_PUT:
        o = dl_txn_put(e, st->txn, st->key, st->value);
        break;
    case DL_TXN_SERVE_INSERT:
        o = dl_txn_insert(e, st->txn, st->key, st->value);
        break;
    case DL_TXN_SERVE_DELETE: {
        int deleted;
        o = dl_txn_delete(e, st->txn, st->key, &deleted);
        if (o.status == DL_TXN_OK)
            build_result(st, NULL, 0, deleted, 0, NULL);
        return o;
    }
    case DL_TXN_SERVE_SCAN: {
        dl_txn_rows_t rows;
        o = dl_txn_scan(e, st->txn, &st->pred, &rows);
        if (o.status == DL_TXN_OK) {
            build_result(st, NULL, 0, 0, 0, &rows);
            dl_txn_rows_free(&rows);
        }
        return o;
    }
    case DL_TXN_SERVE_UPDATE_WHERE:
    case DL_TXN_SERVE_DELETE_WHERE: {
        size_t n = 0;
        o = st->op == DL_TXN_SERVE_UPDATE_WHERE
                ? dl_txn_update(e, st->txn, &st->pred, &st->assign, &n)
                : dl_txn_delete_where(e, st->txn, &st->pred, &n);
        if (o.status == DL_TXN_OK)
            build_result(st, NULL, 0, 0, n, NULL);
        return o;
    }
    case DL_TXN_SERVE_COMMIT:
    default:
        o = dl_txn_commit(e, st->txn);
        break;
    }
    if (o.status == DL_TXN_OK)
        build_result(st, NULL, 0, 0, 0, NULL);
    return o;
}

/* Answers a statement the engine has finished with (anything but BLOCKED). */
static void finish(dl_txn_statement_t *st, dl_txn_outcome_t o)
{
    dl_txn_server_t *s = st->server;
    dl_txn_session_t *session = st->session;
    s->wake_again = 1; /* it may have ended a transaction */
    if (o.status == DL_TXN_OK) {
        json_t *body = st->result;
        st->result = NULL;
        if (st->op == DL_TXN_SERVE_COMMIT) {
            DL_INFO("session %" PRIu64 ": commit T%" PRIu64, session->id, st->txn);
            session->txn = 0;
        }
        reply(st, st->status, body);
        return;
    }

    const char *name;
    int status = error_of(o, &name);
    char message[256];
    snprintf(message, sizeof(message), "%s", dl_txn_error_message(o.error));
    if (o.error == DL_TXN_ERR_NOT_ACTIVE) {
        /* Another statement's engine call rolled this transaction back while this one waited. */
        if (!st->autocommit && session->failed) {
            name = session->failed_error;
            snprintf(message, sizeof(message), "%s", session->failed_message);
        } else {
            snprintf(message, sizeof(message),
                     "T%" PRIu64 " was rolled back by the engine while this statement waited",
                     st->txn);
        }
    }
    int rolled_back = o.status == DL_TXN_ABORTED || o.error == DL_TXN_ERR_NOT_ACTIVE;
    if (st->autocommit) {
        if (!rolled_back)
            dl_txn_abort(s->engine, st->txn); /* the statement was its transaction */
        rolled_back = 1;
    } else if (rolled_back && st->op == DL_TXN_SERVE_COMMIT) {
        session->txn = 0; /* a commit that fails ends the block, as in PostgreSQL */
    } else if (rolled_back && !session->failed) {
        dl__txn_serve_session_fail(session, name, message);
    }
    json_decref(st->result);
    st->result = NULL;
    DL_INFO("session %" PRIu64 ": %s: %s (T%" PRIu64 "%s)", session->id, st->text, message, st->txn,
            rolled_back ? " rolled back" : " goes on");
    json_t *body = dl__txn_serve_error(name, message);
    if (body != NULL)
        json_object_set_new(body, "rolled_back", json_boolean(rolled_back));
    reply(st, status, body);
}

/*
 * Runs st, its autocommit's commit included, until it is answered (returns 1; st is gone) or
 * blocks (returns 0; st is parked).
 */
static int step(dl_txn_statement_t *st)
{
    dl_txn_outcome_t o;
    for (;;) {
        o = st->committing ? dl_txn_commit(st->server->engine, st->txn) : run_operation(st);
        if (o.status == DL_TXN_BLOCKED) {
            note_wait(st, o.waiting_for);
            if (!st->parked) {
                park(st);
                DL_INFO("session %" PRIu64 ": %s waits for T%" PRIu64, st->session->id, st->text,
                        o.waiting_for);
            }
            return 0;
        }
        if (o.status == DL_TXN_OK && st->autocommit && !st->committing) {
            st->committing = 1;
            continue;
        }
        break;
    }
    if (st->parked)
        DL_INFO("session %" PRIu64 ": %s goes on after %" PRIu64 " ms", st->session->id, st->text,
                (uv_hrtime() - st->parked_ns) / 1000000);
    unpark(st);
    finish(st, o);
    return 1;
}

/* Runs a statement that has just arrived; it is answered now or parked. */
void dl__txn_serve_execute(dl_txn_statement_t *st)
{
    step(st);
}

/* The client of a parked statement went away: forget the statement, as a cancelled psql query.
 * A single-key statement or a scan changed nothing while it waited, so a transaction block
 * stays open; a multi-row update may have changed rows before it blocked, and those cannot be
 * undone apart from the transaction, so the block fails as PostgreSQL's would. */
static void on_cancel(void *ctx)
{
    dl_txn_statement_t *st = ctx;
    dl_txn_server_t *s = st->server;
    dl_txn_session_t *session = st->session;
    unpark(st);
    json_decref(st->result);
    st->result = NULL;
    DL_INFO("session %" PRIu64 ": %s cancelled: its client went away", session->id, st->text);
    if (st->autocommit) {
        dl_txn_abort(s->engine, st->txn);
    } else if (st->op == DL_TXN_SERVE_UPDATE_WHERE || st->op == DL_TXN_SERVE_DELETE_WHERE) {
        dl_txn_abort(s->engine, st->txn);
        dl__txn_serve_session_fail(session, "query_canceled",
                                   "canceling statement due to user request");
    }
    if (!s->stopping)
        dl__txn_serve_wake(s);
}

/* Answers every parked statement with an error. */
void dl__txn_serve_fail_parked(dl_txn_server_t *s, int status, const char *error,
                               const char *message)
{
    while (s->parked_first != NULL)
        fail_statement(s->parked_first, status, error, message);
}

/* ---- Waking and timing out --------------------------------------------------------------- */

/* The parked statement that arrived first after seq, or NULL. */
static dl_txn_statement_t *parked_after(dl_txn_server_t *s, uint64_t seq)
{
    for (dl_txn_statement_t *st = s->parked_first; st != NULL; st = st->next)
        if (st->seq > seq)
            return st;
    return NULL;
}

/* Sessions whose transaction the engine ended without being asked: their block has failed.
 * The engine rolls back only the transaction whose statement it runs (a deadlock's victim is the
 * one that closes the cycle; ssi dooms a pivot, which fails at its next statement), so this
 * never finds one today; it is kept so that a change there cannot leave a session believing
 * in a transaction that is gone. */
static void notice_victims(dl_txn_server_t *s)
{
    for (dl_txn_session_t *session = s->sessions; session != NULL; session = session->next) {
        if (session->txn == 0 || session->failed || dl_txn_active(s->engine, session->txn))
            continue;
        char message[160];
        snprintf(message, sizeof(message), "T%" PRIu64 " was rolled back by the engine",
                 session->txn);
        DL_INFO("session %" PRIu64 ": %s", session->id, message);
        dl__txn_serve_session_fail(session, "transaction_aborted", message);
    }
}

static void on_lock_timer(uv_timer_t *timer);

static void rearm_lock_timer(dl_txn_server_t *s)
{
    uint64_t first = 0;
    for (dl_txn_statement_t *st = s->parked_first; st != NULL; st = st->next)
        if (st->deadline_ms != 0 && (first == 0 || st->deadline_ms < first))
            first = st->deadline_ms;
    if (first == 0 || s->stopping) {
        uv_timer_stop(&s->lock_timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->lock_timer, on_lock_timer, first > now ? first - now : 0, 0);
}

/* Runs again the parked statements whose blocker has ended, in arrival order. */
void dl__txn_serve_wake(dl_txn_server_t *s)
{
    if (s->waking) {
        s->wake_again = 1;
        return;
    }
    s->waking = 1;
    do {
        s->wake_again = 0;
        notice_victims(s);
        uint64_t seq = 0;
        dl_txn_statement_t *st;
        while ((st = parked_after(s, seq)) != NULL) {
            seq = st->seq;
            if (dl_txn_active(s->engine, st->waiting_for) && dl_txn_active(s->engine, st->txn))
                continue; /* it would block again */
            s->wake_again = 1;
            step(st);
        }
    } while (s->wake_again);
    s->waking = 0;
    rearm_lock_timer(s);
}

/* A statement waited longer than --lock-timeout: it fails and its transaction is rolled back,
 * as with PostgreSQL's lock_timeout inside a transaction block. */
static void time_out(dl_txn_statement_t *st)
{
    dl_txn_server_t *s = st->server;
    char message[256];
    snprintf(message, sizeof(message),
             "canceling statement due to lock timeout (waited %" PRId64 " ms for T%" PRIu64 ")",
             s->lock_timeout_ms, st->waiting_for);
    DL_INFO("session %" PRIu64 ": %s: %s", st->session->id, st->text, message);
    if (!st->autocommit) {
        dl_txn_abort(s->engine, st->txn);
        dl__txn_serve_session_fail(st->session, "lock_timeout", message);
    }
    fail_statement(st, 409, "lock_timeout", message);
}

static void on_lock_timer(uv_timer_t *timer)
{
    dl_txn_server_t *s = timer->data;
    uint64_t now = uv_now(s->loop);
    for (dl_txn_statement_t *st = s->parked_first, *next; st != NULL; st = next) {
        next = st->next;
        if (st->deadline_ms != 0 && st->deadline_ms <= now)
            time_out(st);
    }
    dl__txn_serve_wake(s);
}
