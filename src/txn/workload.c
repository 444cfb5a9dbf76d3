/*
 * The stress workloads: statements with their retry rules, the four kinds of transactions, and
 * the end-of-run verdict. See workload.h.
 */
#include "txn/workload.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "txn/value.h"

static const char *const workload_names[DL_TXN_N_WORKLOADS] = {"bank", "counter", "write-skew",
                                                               "phantom"};

const char *dl_txn_workload_name(dl_txn_workload_kind_t kind)
{
    return kind < DL_TXN_N_WORKLOADS ? workload_names[kind] : "unknown";
}

int dl_txn_workload_parse(const char *name, dl_txn_workload_kind_t *kind)
{
    for (int i = 0; i < DL_TXN_N_WORKLOADS; i++)
        if (strcmp(name, workload_names[i]) == 0) {
            *kind = (dl_txn_workload_kind_t)i;
            return 0;
        }
    return -EINVAL;
}

int64_t dl_txn_workload_default_keys(dl_txn_workload_kind_t kind)
{
    switch (kind) {
    case DL_TXN_WORKLOAD_BANK:
        return 8;
    case DL_TXN_WORKLOAD_COUNTER:
        return 4;
    case DL_TXN_WORKLOAD_WRITE_SKEW:
        return 2;
    default:
        return 2;
    }
}

/* xorshift64*: each thread's choices follow from --seed alone. */
static uint64_t pick(dl_txn_worker_t *w, uint64_t n)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (w->rng * 2685821657736338717ull >> 11) % n;
}

static int64_t integer_or_zero(const char *value)
{
    int64_t v = 0;
    if (value == NULL || !dl_txn_value_integer(value, &v))
        return 0;
    return v;
}

/* ---- Statements -------------------------------------------------------------------------- */

#define GONE 1 /* the transaction was rolled back: retry it */

/* The transaction ended without committing: rolled back by the engine, or refused a statement
 * (rolled back here). Counted by reason and recorded. GONE, or -ENOMEM when the engine ran out
 * of memory (retrying would not help). */
static int gone(dl_txn_worker_t *w, dl_txn_outcome_t o)
{
    if (o.status == DL_TXN_REFUSED)
        dl_txn_abort(w->engine, w->id);
    unsigned reason = o.error < DL_TXN_STRESS_REASONS ? o.error : DL_TXN_STRESS_REASONS - 1;
    w->stats.aborts[reason]++;
    atomic_fetch_add(&w->stats.aborted, 1);
    if (w->record != NULL) {
        dl_txn_hist_abort(w->record); /* a failed record marks the history incomplete */
        w->record = NULL;
    }
    return o.error == DL_TXN_ERR_NO_MEMORY ? -ENOMEM : GONE;
}

/* After a statement: 1 when it blocked and the transaction it waited for has now ended (run it
 * again), else 0. */
static int waited(dl_txn_worker_t *w, dl_txn_outcome_t o)
{
    if (o.status != DL_TXN_BLOCKED)
        return 0;
    w->stats.blocked++;
    dl_txn_engine_wait(w->engine, o.waiting_for);
    return 1;
}

/* Between statements a client is on the network; yielding lets two cores interleave. */
static int done(dl_txn_worker_t *w)
{
    if (w->yield)
        sched_yield();
    return 0;
}

static int begin(dl_txn_worker_t *w)
{
    if (dl_txn_begin(w->engine, w->level, &w->id) != 0)
        return -ENOMEM;
    w->record = w->hist != NULL ? dl_txn_hist_begin(w->hist, w->id, w->level) : NULL;
    return 0;
}

/* *value: malloc'd, NULL when absent; the caller frees it (also after an error). */
static int get(dl_txn_worker_t *w, const char *key, char **value)
{
    uint64_t writer;
    dl_txn_outcome_t o;
    do
        o = dl_txn_get_version(w->engine, w->id, key, value, &writer);
    while (waited(w, o));
    if (o.status != DL_TXN_OK)
        return gone(w, o);
    if (w->record != NULL)
        dl_txn_hist_read(w->record, key, *value, writer);
    return done(w);
}

/* A put, or an insert (refused when the key exists). */
static int write_key(dl_txn_worker_t *w, const char *key, const char *value, int insert)
{
    dl_txn_outcome_t o;
    do
        o = insert ? dl_txn_insert(w->engine, w->id, key, value)
                   : dl_txn_put(w->engine, w->id, key, value);
    while (waited(w, o));
    if (o.status != DL_TXN_OK)
        return gone(w, o);
    if (w->record != NULL)
        dl_txn_hist_write(w->record, key, value);
    return done(w);
}

static int put(dl_txn_worker_t *w, const char *key, const char *value)
{
    return write_key(w, key, value, 0);
}

static int put_integer(dl_txn_worker_t *w, const char *key, int64_t value)
{
    char text[32];
    snprintf(text, sizeof(text), "%" PRId64, value);
    return put(w, key, text);
}

static int insert(dl_txn_worker_t *w, const char *key, const char *value)
{
    return write_key(w, key, value, 1);
}

static int delete (dl_txn_worker_t *w, const char *key)
{
    int deleted;
    dl_txn_outcome_t o;
    do
        o = dl_txn_delete(w->engine, w->id, key, &deleted);
    while (waited(w, o));
    if (o.status != DL_TXN_OK)
        return gone(w, o);
    if (w->record != NULL && deleted)
        dl_txn_hist_write(w->record, key, NULL);
    return done(w);
}

/* rows: the caller frees them with dl_txn_rows_free (also after an error). */
static int scan(dl_txn_worker_t *w, const dl_txn_pred_t *pred, dl_txn_rows_t *rows)
{
    dl_txn_outcome_t o;
    do
        o = dl_txn_scan(w->engine, w->id, pred, rows);
    while (waited(w, o));
    if (o.status != DL_TXN_OK)
        return gone(w, o);
    if (w->record != NULL)
        dl_txn_hist_scan(w->record, pred, rows);
    return done(w);
}

static int commit(dl_txn_worker_t *w)
{
    dl_txn_outcome_t o;
    do
        o = dl_txn_commit(w->engine, w->id);
    while (waited(w, o));
    if (o.status != DL_TXN_OK)
        return gone(w, o);
    if (w->record != NULL) {
        dl_txn_hist_commit(w->record, o.commit_ts); /* not dl_txn_commit_ts: may be forgotten */
        w->record = NULL;
    }
    atomic_fetch_add(&w->stats.committed, 1);
    return 0;
}

/* ---- The transactions -------------------------------------------------------------------- */

typedef enum { AUDIT = 0, TRANSFER, INCREMENT, OFF_CALL, ON_CALL, BOOK, CANCEL } kind_t;

/* What a transaction does, chosen once and kept across retries. */
typedef struct choice_s {
    kind_t kind;
    int64_t a, b, amount;
} choice_t;

static void account_key(char *buf, size_t len, int64_t i)
{
    snprintf(buf, len, "a%" PRId64, i);
}

static void doctor_key(char *buf, size_t len, int64_t shift, int doctor)
{
    snprintf(buf, len, "s%" PRId64 "-d%d", shift, doctor);
}

/* Transfers amount from account a to b: read both, write both. */
static int transfer(dl_txn_worker_t *w, const choice_t *c)
{
    char ka[32], kb[32], *va = NULL, *vb = NULL;
    account_key(ka, sizeof(ka), c->a);
    account_key(kb, sizeof(kb), c->b);
    int rv = begin(w);
    if (rv == 0 && (rv = get(w, ka, &va)) == 0 && (rv = get(w, kb, &vb)) == 0 &&
        (rv = put_integer(w, ka, integer_or_zero(va) - c->amount)) == 0 &&
        (rv = put_integer(w, kb, integer_or_zero(vb) + c->amount)) == 0)
        rv = commit(w);
    free(va);
    free(vb);
    return rv;
}

/* Reads every account one by one; the total must be the starting one. */
static int bank_audit(dl_txn_worker_t *w)
{
    int64_t n = w->workload->keys, total = 0;
    int rv = begin(w);
    for (int64_t i = 0; rv == 0 && i < n; i++) {
        char key[32], *value = NULL;
        account_key(key, sizeof(key), i);
        rv = get(w, key, &value);
        total += integer_or_zero(value);
        free(value);
    }
    if (rv == 0 && (rv = commit(w)) == 0) {
        w->stats.audits++;
        w->stats.bad_audits += total != n * DL_TXN_BANK_BALANCE;
    }
    return rv;
}

static int increment(dl_txn_worker_t *w, const choice_t *c)
{
    char key[32], *value = NULL;
    snprintf(key, sizeof(key), "c%" PRId64, c->a);
    int rv = begin(w);
    if (rv == 0 && (rv = get(w, key, &value)) == 0 &&
        (rv = put_integer(w, key, integer_or_zero(value) + 1)) == 0 && (rv = commit(w)) == 0)
        w->stats.increments++;
    free(value);
    return rv;
}

/* Doctor b of shift a goes off call if both doctors of the shift are on call. */
static int off_call(dl_txn_worker_t *w, const choice_t *c)
{
    char k0[32], k1[32], *v0 = NULL, *v1 = NULL;
    doctor_key(k0, sizeof(k0), c->a, 0);
    doctor_key(k1, sizeof(k1), c->a, 1);
    int rv = begin(w), both = 0;
    if (rv == 0 && (rv = get(w, k0, &v0)) == 0 && (rv = get(w, k1, &v1)) == 0) {
        both = integer_or_zero(v0) == 1 && integer_or_zero(v1) == 1;
        if (both)
            rv = put(w, c->b == 0 ? k0 : k1, "0");
        if (rv == 0)
            rv = commit(w);
    }
    if (rv == 0 && both)
        w->stats.changes++;
    free(v0);
    free(v1);
    return rv;
}

/* Doctor b of shift a comes back on call. */
static int on_call(dl_txn_worker_t *w, const choice_t *c)
{
    char key[32], *value = NULL;
    doctor_key(key, sizeof(key), c->a, (int)c->b);
    int rv = begin(w);
    if (rv == 0 && (rv = get(w, key, &value)) == 0) {
        if (integer_or_zero(value) != 1)
            rv = put(w, key, "1");
        if (rv == 0)
            rv = commit(w);
    }
    free(value);
    return rv;
}

/* Reads every doctor; every shift must have somebody on call. */
static int shift_audit(dl_txn_worker_t *w)
{
    int rv = begin(w), empty = 0;
    for (int64_t s = 0; rv == 0 && s < w->workload->keys; s++) {
        int64_t on = 0;
        for (int d = 0; rv == 0 && d < 2; d++) {
            char key[32], *value = NULL;
            doctor_key(key, sizeof(key), s, d);
            rv = get(w, key, &value);
            on += integer_or_zero(value) == 1;
            free(value);
        }
        empty += rv == 0 && on == 0;
    }
    if (rv == 0 && (rv = commit(w)) == 0) {
        w->stats.audits++;
        w->stats.bad_audits += empty > 0;
    }
    return rv;
}

/* The bookings of slot a: rows whose value is a. */
static int scan_slot(dl_txn_worker_t *w, int64_t slot, char *operand, size_t len,
                     dl_txn_rows_t *rows)
{
    snprintf(operand, len, "%" PRId64, slot);
    dl_txn_pred_t pred = {.field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_EQ, .operand = operand};
    return scan(w, &pred, rows);
}

/* Books slot a if no booking of it shows: this thread's booking row for the slot. */
static int book(dl_txn_worker_t *w, const choice_t *c)
{
    char slot[32], key[64];
    dl_txn_rows_t rows = {0};
    int rv = begin(w), booked = 0;
    if (rv == 0 && (rv = scan_slot(w, c->a, slot, sizeof(slot), &rows)) == 0) {
        if (rows.n == 0) {
            snprintf(key, sizeof(key), "b%" PRId64 ".%d", c->a, w->thread);
            rv = insert(w, key, slot);
            booked = 1;
        }
        if (rv == 0)
            rv = commit(w);
    }
    if (rv == 0 && booked)
        w->stats.changes++;
    dl_txn_rows_free(&rows);
    return rv;
}

/* Cancels every booking of slot a. */
static int cancel(dl_txn_worker_t *w, const choice_t *c)
{
    char slot[32];
    dl_txn_rows_t rows = {0};
    int rv = begin(w);
    if (rv == 0)
        rv = scan_slot(w, c->a, slot, sizeof(slot), &rows);
    for (size_t i = 0; rv == 0 && i < rows.n; i++)
        rv = delete (w, rows.rows[i].key);
    if (rv == 0)
        rv = commit(w);
    dl_txn_rows_free(&rows);
    return rv;
}

/* Scans every booking; no slot may have two. */
static int booking_audit(dl_txn_worker_t *w)
{
    int64_t n = w->workload->keys;
    int64_t *count = calloc((size_t)n, sizeof(*count));
    if (count == NULL)
        return -ENOMEM;
    dl_txn_pred_t all = {.all = 1};
    dl_txn_rows_t rows = {0};
    int rv = begin(w), doubled = 0;
    if (rv == 0 && (rv = scan(w, &all, &rows)) == 0 && (rv = commit(w)) == 0) {
        for (size_t i = 0; i < rows.n; i++) {
            int64_t s = integer_or_zero(rows.rows[i].value);
            if (s >= 0 && s < n && ++count[s] == 2)
                doubled = 1;
        }
        w->stats.audits++;
        w->stats.bad_audits += doubled;
    }
    dl_txn_rows_free(&rows);
    free(count);
    return rv;
}

static void choose(dl_txn_worker_t *w, choice_t *c)
{
    const dl_txn_workload_t *wl = w->workload;
    int64_t n = wl->keys;
    memset(c, 0, sizeof(*c));
    if (wl->kind == DL_TXN_WORKLOAD_COUNTER) {
        c->kind = INCREMENT;
        c->a = (int64_t)pick(w, (uint64_t)n);
        return;
    }
    if ((int64_t)pick(w, 100) < wl->audit_percent) {
        c->kind = AUDIT;
        return;
    }
    c->a = (int64_t)pick(w, (uint64_t)n);
    switch (wl->kind) {
    case DL_TXN_WORKLOAD_BANK:
        c->kind = TRANSFER;
        c->b = (c->a + 1 + (int64_t)pick(w, (uint64_t)(n - 1))) % n; /* another account */
        c->amount = 1 + (int64_t)pick(w, 10);
        break;
    case DL_TXN_WORKLOAD_WRITE_SKEW:
        c->kind = pick(w, 10) < 6 ? OFF_CALL : ON_CALL;
        c->b = (int64_t)pick(w, 2);
        break;
    default:
        c->kind = pick(w, 10) < 6 ? BOOK : CANCEL;
        break;
    }
}

static int attempt(dl_txn_worker_t *w, const choice_t *c)
{
    switch (c->kind) {
    case TRANSFER:
        return transfer(w, c);
    case INCREMENT:
        return increment(w, c);
    case OFF_CALL:
        return off_call(w, c);
    case ON_CALL:
        return on_call(w, c);
    case BOOK:
        return book(w, c);
    case CANCEL:
        return cancel(w, c);
    case AUDIT:
        break;
    }
    switch (w->workload->kind) {
    case DL_TXN_WORKLOAD_BANK:
        return bank_audit(w);
    case DL_TXN_WORKLOAD_WRITE_SKEW:
        return shift_audit(w);
    default:
        return booking_audit(w);
    }
}

/*
 * After a rollback, waits a random while that doubles with each failure of the transaction (up
 * to a millisecond) before retrying, as applications do: a deadlock victim that retried at once
 * would take its shared lock again before the survivor woke up, and the two would deadlock again
 * and again (two-phase locking then aborts nearly every attempt).
 */
static void back_off(dl_txn_worker_t *w, unsigned failures)
{
    uint64_t most_us = failures < 6 ? 16u << failures : 1000;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(1000 * pick(w, most_us))};
    nanosleep(&ts, NULL);
}

int dl_txn_workload_step(dl_txn_worker_t *w)
{
    choice_t c;
    choose(w, &c);
    for (unsigned failures = 0; !atomic_load(w->stop); failures++) {
        int rv = attempt(w, &c);
        if (rv != GONE)
            return rv;
        back_off(w, failures);
    }
    return 0;
}

/* ---- Setup and verdict ------------------------------------------------------------------- */

/* Loads key = value into the engine and the history. */
static int load(dl_txn_engine_t *e, dl_txn_hist_t *h, const char *key, const char *value)
{
    int rv = dl_txn_engine_load(e, key, value);
    if (rv == 0 && h != NULL)
        rv = dl_txn_hist_load(h, key, value);
    return rv;
}

int dl_txn_workload_setup(const dl_txn_workload_t *w, dl_txn_engine_t *e, dl_txn_hist_t *h)
{
    char key[32], value[32];
    int rv = 0;
    snprintf(value, sizeof(value), "%d", DL_TXN_BANK_BALANCE);
    for (int64_t i = 0; rv == 0 && i < w->keys; i++) {
        switch (w->kind) {
        case DL_TXN_WORKLOAD_BANK:
            account_key(key, sizeof(key), i);
            rv = load(e, h, key, value);
            break;
        case DL_TXN_WORKLOAD_COUNTER:
            snprintf(key, sizeof(key), "c%" PRId64, i);
            rv = load(e, h, key, "0");
            break;
        case DL_TXN_WORKLOAD_WRITE_SKEW:
            for (int d = 0; rv == 0 && d < 2; d++) {
                doctor_key(key, sizeof(key), i, d);
                rv = load(e, h, key, "1");
            }
            break;
        default:
            break; /* phantom: no booking yet */
        }
    }
    return rv;
}

static void add_violation(dl_txn_verdict_t *v, const char *name, uint64_t count, const char *fmt,
                          ...) __attribute__((format(printf, 4, 5)));

static void add_violation(dl_txn_verdict_t *v, const char *name, uint64_t count, const char *fmt,
                          ...)
{
    if (count == 0 || v->n_violations == sizeof(v->violations) / sizeof(v->violations[0]))
        return;
    dl_txn_violation_t *x = &v->violations[v->n_violations++];
    x->name = name;
    x->count = count;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->what, sizeof(x->what), fmt, ap);
    va_end(ap);
    v->total += count;
}

int dl_txn_workload_verdict(const dl_txn_workload_t *w, dl_txn_engine_t *e,
                            const dl_txn_stats_t *total, dl_txn_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    dl_txn_rows_t rows;
    if (dl_txn_engine_committed(e, &rows) != 0)
        return -ENOMEM;
    int64_t n = w->keys, sum = 0, bad = 0;
    for (size_t i = 0; i < rows.n; i++)
        sum += integer_or_zero(rows.rows[i].value);
    uint64_t audits = total->audits, seen = total->bad_audits;
    switch (w->kind) {
    case DL_TXN_WORKLOAD_BANK:
        snprintf(v->description, sizeof(v->description),
                 "%" PRId64 " accounts of %d; transfers, %" PRId64 "%% audits", n,
                 DL_TXN_BANK_BALANCE, w->audit_percent);
        v->final_value = sum;
        v->expected = n * DL_TXN_BANK_BALANCE;
        add_violation(v, "read_skew", seen,
                      "%" PRIu64 " of %" PRIu64 " committed audits saw a total other than %" PRId64
                      " (read skew, or money lost before)",
                      seen, audits, v->expected);
        add_violation(v, "total_changed", (uint64_t)llabs(sum - v->expected),
                      "the committed total is %" PRId64 ", not %" PRId64
                      ": transfers overwrote each other's balances (lost updates)",
                      sum, v->expected);
        break;
    case DL_TXN_WORKLOAD_COUNTER:
        snprintf(v->description, sizeof(v->description),
                 "%" PRId64 " counters; read, then write + 1", n);
        v->final_value = sum;
        v->expected = (int64_t)total->increments;
        add_violation(v, "lost_updates", (uint64_t)llabs(v->expected - sum),
                      "%" PRIu64 " increments committed, the counters add up to %" PRId64
                      ": %" PRId64 " lost updates",
                      total->increments, sum, v->expected - sum);
        break;
    case DL_TXN_WORKLOAD_WRITE_SKEW:
        snprintf(v->description, sizeof(v->description),
                 "%" PRId64 " shifts of 2 doctors; off call if both are on, back on call, %" PRId64
                 "%% audits",
                 n, w->audit_percent);
        for (int64_t s = 0; s < n; s++) {
            char k0[32], k1[32];
            doctor_key(k0, sizeof(k0), s, 0);
            doctor_key(k1, sizeof(k1), s, 1);
            int on = 0;
            for (size_t i = 0; i < rows.n; i++)
                if (strcmp(rows.rows[i].key, k0) == 0 || strcmp(rows.rows[i].key, k1) == 0)
                    on += integer_or_zero(rows.rows[i].value) == 1;
            bad += on == 0;
        }
        v->final_value = bad;
        add_violation(v, "nobody_on_call_seen", seen,
                      "%" PRIu64 " of %" PRIu64
                      " committed audits saw a shift with nobody on call (write skew)",
                      seen, audits);
        add_violation(v, "nobody_on_call_at_end", (uint64_t)bad,
                      "%" PRId64 " of %" PRId64 " shifts end with nobody on call", bad, n);
        break;
    default: {
        snprintf(v->description, sizeof(v->description),
                 "%" PRId64 " slots; book if a predicate read finds it free, cancel, %" PRId64
                 "%% audits",
                 n, w->audit_percent);
        for (int64_t s = 0; s < n; s++) {
            int64_t bookings = 0;
            for (size_t i = 0; i < rows.n; i++)
                bookings += integer_or_zero(rows.rows[i].value) == s;
            bad += bookings > 1;
        }
        v->final_value = bad;
        add_violation(v, "double_booking_seen", seen,
                      "%" PRIu64 " of %" PRIu64
                      " committed audits saw a slot booked twice (phantom)",
                      seen, audits);
        add_violation(v, "double_booked_at_end", (uint64_t)bad,
                      "%" PRId64 " of %" PRId64 " slots end booked twice", bad, n);
        break;
    }
    }
    dl_txn_rows_free(&rows);
    return 0;
}
