/*
 * The scenario runner: one engine per run, one session per transaction name, the steps of the
 * script in order, and blocked steps run again whenever the transaction they wait for ends.
 */
#include "txn/runner.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/value.h"

const char *dl_txn_event_kind_name(dl_txn_event_kind_t kind)
{
    static const char *const names[] = {"ok",    "blocked", "resumed", "aborted",
                                        "error", "queued",  "note"};
    return kind <= DL_TXN_EV_NOTE ? names[kind] : "?";
}

/* A transaction name of the script (or one autocommit statement) and what it is doing. */
typedef struct session_s {
    const char *name; /* borrowed from the script; "(autocommit)" for one statement */
    int autocommit;
    uint64_t id;          /* the engine transaction, 0 before begin */
    int active;           /* between begin and its end */
    int ended_line;       /* the line that ended its last transaction (for messages), or 0 */
    int blocked;          /* its first queued step waits */
    uint64_t waiting_for; /* the engine transaction it waits for */
    uint64_t blocked_seq; /* when it blocked: released in that order */
    size_t *queue;        /* steps waiting to run, the blocked one first */
    size_t n_queue, cap_queue;
} session_t;

typedef struct runner_s {
    const dl_txn_script_t *script;
    dl_txn_level_t level;
    int strict;
    dl_txn_event_cb cb;
    void *ctx;
    dl_txn_run_t *run;
    dl_txn_engine_t *e;
    session_t *sessions;
    size_t n_sessions, cap_sessions;
    uint64_t seq;
    /* Which step ended each engine transaction, to name what released a blocked step. */
    const dl_txn_step_t **ended_by; /* ended_by[id - 1] */
    size_t cap_ended_by;
} runner_t;

static void emit(runner_t *r, const session_t *s, const dl_txn_step_t *step, dl_txn_event_t *ev)
{
    ev->level = r->level;
    ev->step = step;
    ev->txn = s ? s->name : NULL;
    ev->txn_id = s ? s->id : 0;
    if (r->cb != NULL)
        r->cb(ev, r->ctx);
}

static const char *session_name_of(runner_t *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_sessions; i++)
        if (r->sessions[i].id == id)
            return r->sessions[i].name;
    return "?";
}

static void note_ended(runner_t *r, uint64_t id, const dl_txn_step_t *step)
{
    if (id == 0)
        return;
    if (id > r->cap_ended_by) {
        size_t cap = r->cap_ended_by ? r->cap_ended_by * 2 : 16;
        while (cap < id)
            cap *= 2;
        const dl_txn_step_t **b = realloc(r->ended_by, cap * sizeof(*b));
        if (b == NULL)
            return; /* only a label is lost */
        memset(b + r->cap_ended_by, 0, (cap - r->cap_ended_by) * sizeof(*b));
        r->ended_by = b;
        r->cap_ended_by = cap;
    }
    r->ended_by[id - 1] = step;
}

static session_t *new_session(runner_t *r, const char *name, int autocommit)
{
    if (r->n_sessions == r->cap_sessions) {
        size_t cap = r->cap_sessions ? r->cap_sessions * 2 : 8;
        session_t *s = realloc(r->sessions, cap * sizeof(*s));
        if (s == NULL)
            return NULL;
        r->sessions = s;
        r->cap_sessions = cap;
    }
    session_t *s = &r->sessions[r->n_sessions++];
    memset(s, 0, sizeof(*s));
    s->name = name;
    s->autocommit = autocommit;
    return s;
}

static session_t *named_session(runner_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_sessions; i++)
        if (!r->sessions[i].autocommit && strcmp(r->sessions[i].name, name) == 0)
            return &r->sessions[i];
    return new_session(r, name, 0);
}

static int enqueue(session_t *s, size_t step)
{
    if (s->n_queue == s->cap_queue) {
        size_t cap = s->cap_queue ? s->cap_queue * 2 : 4;
        size_t *q = realloc(s->queue, cap * sizeof(*q));
        if (q == NULL)
            return -ENOMEM;
        s->queue = q;
        s->cap_queue = cap;
    }
    s->queue[s->n_queue++] = step;
    return 0;
}

static void dequeue(session_t *s)
{
    memmove(s->queue, s->queue + 1, (s->n_queue - 1) * sizeof(*s->queue));
    s->n_queue--;
}

/* ---- One statement ------------------------------------------------------------------------- */

/* Copies rows into the step's result (what the anomaly conditions look at). */
static int keep_rows(dl_txn_step_result_t *res, const dl_txn_rows_t *rows)
{
    dl_txn_rows_free(&res->rows);
    for (size_t i = 0; i < rows->n; i++)
        if (dl_txn_rows_add(&res->rows, rows->rows[i].key, rows->rows[i].value,
                            rows->rows[i].writer) != 0)
            return -ENOMEM;
    return 0;
}

/* A get of several keys is one statement: it blocks as a whole and is read again as a whole. */
static dl_txn_outcome_t get_keys(dl_txn_engine_t *e, uint64_t id, const dl_txn_step_t *step,
                                 dl_txn_rows_t *rows)
{
    dl_txn_outcome_t o = {.status = DL_TXN_OK};
    for (size_t k = 0; k < step->n_keys; k++) {
        char *value = NULL;
        uint64_t writer = 0;
        o = dl_txn_get_version(e, id, step->keys[k], &value, &writer);
        if (o.status != DL_TXN_OK) {
            free(value);
            dl_txn_rows_free(rows);
            return o;
        }
        if (value == NULL)
            continue;
        int rv = dl_txn_rows_add(rows, step->keys[k], value, writer);
        free(value);
        if (rv != 0) {
            o.status = DL_TXN_REFUSED;
            o.error = DL_TXN_ERR_NO_MEMORY;
            return o;
        }
    }
    return o;
}

/* Runs the statement of step for session s (which has a running transaction). */
static dl_txn_outcome_t execute(runner_t *r, session_t *s, const dl_txn_step_t *step,
                                dl_txn_event_t *ev, dl_txn_rows_t *rows)
{
    dl_txn_engine_t *e = r->e;
    int deleted = 0;
    switch (step->kind) {
    case DL_TXN_STEP_GET:
        ev->rows = rows;
        return get_keys(e, s->id, step, rows);
    case DL_TXN_STEP_SCAN:
        ev->rows = rows;
        return dl_txn_scan(e, s->id, &step->pred, rows);
    case DL_TXN_STEP_PUT:
        return dl_txn_put(e, s->id, step->keys[0], step->values[0]);
    case DL_TXN_STEP_INSERT:
        return dl_txn_insert(e, s->id, step->keys[0], step->values[0]);
    case DL_TXN_STEP_DELETE: {
        dl_txn_outcome_t o = dl_txn_delete(e, s->id, step->keys[0], &deleted);
        ev->has_count = 1;
        ev->count = (size_t)deleted;
        return o;
    }
    case DL_TXN_STEP_UPDATE:
        ev->has_count = 1;
        return dl_txn_update(e, s->id, &step->pred, &step->set, &ev->count);
    case DL_TXN_STEP_DELETE_WHERE:
        ev->has_count = 1;
        return dl_txn_delete_where(e, s->id, &step->pred, &ev->count);
    case DL_TXN_STEP_COMMIT:
        return dl_txn_commit(e, s->id);
    case DL_TXN_STEP_ABORT:
        return dl_txn_abort(e, s->id);
    default:
        break;
    }
    dl_txn_outcome_t o = {.status = DL_TXN_REFUSED, .error = DL_TXN_ERR_NONE};
    return o;
}

static void release_blocked(runner_t *r);

/*
 * Runs step (index i) for session s: the first of its queue when resuming, released by the step
 * released_by (NULL when the end of the script released it).
 * Returns -ENOMEM only; every outcome of the statement is an event.
 */
static int run_step(runner_t *r, session_t *s, size_t i, int resuming,
                    const dl_txn_step_t *released_by)
{
    const dl_txn_step_t *step = &r->script->steps[i];
    dl_txn_step_result_t *res = &r->run->results[i];
    dl_txn_event_t ev = {0};
    dl_txn_rows_t rows = {0};
    char message[256];
    dl_txn_event_kind_t kind;

    if (step->kind == DL_TXN_STEP_BEGIN) {
        if (s->active) {
            snprintf(message, sizeof(message), "%s is already running (since its begin)", s->name);
            ev.message = message;
            kind = DL_TXN_EV_ERROR;
            goto done;
        }
        dl_txn_level_t level = step->has_level ? step->level : r->level;
        if (dl_txn_begin(r->e, level, &s->id) != 0)
            return -ENOMEM;
        s->active = 1;
        snprintf(message, sizeof(message), "%s", dl_txn_level_name(level));
        ev.message = message;
        kind = DL_TXN_EV_OK;
        goto done;
    }
    if (s->autocommit && !s->active) {
        if (dl_txn_begin(r->e, r->level, &s->id) != 0)
            return -ENOMEM;
        s->active = 1;
    }
    if (!s->active) {
        if (s->ended_line != 0)
            snprintf(message, sizeof(message),
                     "%s is not running: its transaction ended at line %d", s->name, s->ended_line);
        else
            snprintf(message, sizeof(message), "%s is not running: no begin before this line",
                     s->name);
        ev.message = message;
        kind = DL_TXN_EV_ERROR;
        goto done;
    }
    dl_txn_outcome_t o = execute(r, s, step, &ev, &rows);
    if (o.status == DL_TXN_BLOCKED) {
        int again = s->blocked;
        s->blocked = 1;
        s->waiting_for = o.waiting_for;
        r->run->blocked = 1;
        if (!again) {
            s->blocked_seq = ++r->seq;
            ev.kind = DL_TXN_EV_BLOCKED;
            ev.waiting_for = session_name_of(r, o.waiting_for);
            ev.rows = NULL;
            emit(r, s, step, &ev);
        }
        dl_txn_rows_free(&rows);
        return 0;
    }
    if (o.status == DL_TXN_OK && s->autocommit && step->kind != DL_TXN_STEP_COMMIT &&
        step->kind != DL_TXN_STEP_ABORT) {
        dl_txn_outcome_t c = dl_txn_commit(r->e, s->id);
        if (c.status != DL_TXN_OK)
            o = c;
    }
    if (o.status == DL_TXN_OK) {
        kind = DL_TXN_EV_OK;
        if (step->kind == DL_TXN_STEP_COMMIT || step->kind == DL_TXN_STEP_ABORT || s->autocommit)
            s->active = 0;
    } else if (o.status == DL_TXN_ABORTED) {
        kind = DL_TXN_EV_ABORTED;
        ev.message = dl_txn_error_message(o.error);
        r->run->aborted = 1;
        s->active = 0;
        ev.rows = NULL;
        ev.has_count = 0;
    } else {
        kind = DL_TXN_EV_ERROR;
        ev.message = dl_txn_error_message(o.error);
        ev.rows = NULL;
        ev.has_count = 0;
        if (o.error == DL_TXN_ERR_NOT_ACTIVE)
            s->active = 0;
    }
    if (!s->active) {
        s->ended_line = step->line;
        note_ended(r, s->id, step);
    }
done:
    if (kind == DL_TXN_EV_OK && ev.rows != NULL && keep_rows(res, &rows) != 0) {
        dl_txn_rows_free(&rows);
        return -ENOMEM;
    }
    res->done = 1;
    res->kind = kind;
    if (resuming) {
        ev.kind = DL_TXN_EV_RESUMED;
        ev.result = kind;
        ev.released_by = released_by;
    } else {
        ev.kind = kind;
    }
    emit(r, s, step, &ev);
    dl_txn_rows_free(&rows);
    s->blocked = 0;
    return 0;
}

/* Runs the queued steps of s from the first, until one blocks or none is left. */
static int drain(runner_t *r, session_t *s, int resuming, const dl_txn_step_t *released_by)
{
    while (s->n_queue > 0) {
        int rv = run_step(r, s, s->queue[0], resuming, released_by);
        if (rv != 0)
            return rv;
        if (s->blocked)
            return 0;
        dequeue(s);
        resuming = 0; /* the steps behind it simply run now */
    }
    return 0;
}

/* Whenever a transaction ended: runs again, oldest block first, every blocked step whose
 * transaction it waited for has ended, until nothing changes. */
static void release_blocked(runner_t *r)
{
    for (;;) {
        session_t *next = NULL;
        for (size_t i = 0; i < r->n_sessions; i++) {
            session_t *s = &r->sessions[i];
            if (s->blocked && !dl_txn_active(r->e, s->waiting_for) &&
                (next == NULL || s->blocked_seq < next->blocked_seq))
                next = s;
        }
        if (next == NULL)
            return;
        uint64_t waited = next->waiting_for;
        const dl_txn_step_t *by =
            waited >= 1 && waited <= r->cap_ended_by ? r->ended_by[waited - 1] : NULL;
        if (drain(r, next, 1, by) != 0)
            return;
    }
}

static int script_error(runner_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->run->error, sizeof(r->run->error), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int dl_txn_run_script(const dl_txn_script_t *script, dl_txn_level_t level, int strict,
                      dl_txn_event_cb cb, void *ctx, dl_txn_run_t *run)
{
    memset(run, 0, sizeof(*run));
    run->level = level;
    run->results = calloc(script->n ? script->n : 1, sizeof(*run->results));
    if (run->results == NULL)
        return -ENOMEM;
    run->n_results = script->n;
    runner_t r = {
        .script = script, .level = level, .strict = strict, .cb = cb, .ctx = ctx, .run = run};
    r.e = dl_txn_engine_new();
    if (r.e == NULL) {
        dl_txn_run_free(run);
        return -ENOMEM;
    }
    int rv = 0;
    for (size_t i = 0; i < script->n && rv == 0; i++) {
        const dl_txn_step_t *step = &script->steps[i];
        if (step->kind == DL_TXN_STEP_SETUP) {
            for (size_t k = 0; k < step->n_keys && rv == 0; k++)
                rv = dl_txn_engine_load(r.e, step->keys[k], step->values[k]);
            run->results[i].done = 1;
            continue;
        }
        session_t *s =
            step->txn ? named_session(&r, step->txn) : new_session(&r, "(autocommit)", 1);
        if (s == NULL) {
            rv = -ENOMEM;
            break;
        }
        if (s->blocked) {
            if (strict) {
                rv = script_error(&r,
                                  "line %d: %s is blocked (since line %d) and can run nothing "
                                  "until it is released",
                                  step->line, s->name, script->steps[s->queue[0]].line);
                break;
            }
            if ((rv = enqueue(s, i)) != 0)
                break;
            dl_txn_event_t ev = {.kind = DL_TXN_EV_QUEUED,
                                 .waiting_for = session_name_of(&r, s->waiting_for)};
            emit(&r, s, step, &ev);
            continue;
        }
        if ((rv = enqueue(s, i)) != 0 || (rv = drain(&r, s, 0, NULL)) != 0)
            break;
        release_blocked(&r);
    }
    if (rv == 0) {
        /* The end of the script closes every session: what still runs is rolled back. */
        for (size_t i = 0; i < r.n_sessions; i++) {
            session_t *s = &r.sessions[i];
            if (!s->active)
                continue;
            char message[160];
            snprintf(message, sizeof(message), "%s%s rolled back at the end of the script", s->name,
                     s->blocked ? " (still blocked)" : "");
            dl_txn_abort(r.e, s->id);
            s->active = 0;
            s->blocked = 0;
            dl_txn_event_t ev = {.kind = DL_TXN_EV_NOTE, .message = message};
            emit(&r, s, NULL, &ev);
            release_blocked(&r);
        }
        rv = dl_txn_engine_committed(r.e, &run->final);
    }
    for (size_t i = 0; i < r.n_sessions; i++)
        free(r.sessions[i].queue);
    free(r.sessions);
    free(r.ended_by);
    dl_txn_engine_free(r.e);
    return rv;
}

void dl_txn_run_free(dl_txn_run_t *run)
{
    for (size_t i = 0; i < run->n_results; i++)
        dl_txn_rows_free(&run->results[i].rows);
    free(run->results);
    dl_txn_rows_free(&run->final);
    memset(run, 0, sizeof(*run));
}
