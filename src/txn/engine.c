/*
 * The txn engine: rows in a hash table, each a chain of versions newest first. A version records
 * the transaction that wrote it and, once that one commits, its commit timestamp. Readers pick
 * the newest version their level lets them see; a write first asks locks.c what it must wait
 * for, then applies its level's rule (first updater wins at snapshot isolation, ssi.c's
 * antidependency checks at ssi) and writes a version of its own.
 */
#include "txn/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/engine_internal.h"
#include "txn/value.h"

static const char *const level_names[DL_TXN_N_LEVELS] = {
    [DL_TXN_READ_UNCOMMITTED] = "read-uncommitted",
    [DL_TXN_READ_COMMITTED] = "read-committed",
    [DL_TXN_SNAPSHOT] = "snapshot",
    [DL_TXN_SERIAL] = "serial",
    [DL_TXN_2PL] = "2pl",
    [DL_TXN_SSI] = "ssi",
};

const char *dl_txn_level_name(dl_txn_level_t level)
{
    return level < DL_TXN_N_LEVELS ? level_names[level] : "unknown";
}

int dl_txn_level_parse(const char *name, dl_txn_level_t *level)
{
    for (int i = 0; i < DL_TXN_N_LEVELS; i++)
        if (strcmp(name, level_names[i]) == 0) {
            *level = (dl_txn_level_t)i;
            return 0;
        }
    if (strcmp(name, "repeatable-read") == 0) {
        *level = DL_TXN_SNAPSHOT;
        return 0;
    }
    if (strcmp(name, "serializable") == 0) {
        *level = DL_TXN_SSI;
        return 0;
    }
    return -EINVAL;
}

const char *dl_txn_error_message(dl_txn_error_t error)
{
    switch (error) {
    case DL_TXN_ERR_NONE:
        return "";
    case DL_TXN_ERR_SERIALIZATION:
        return "could not serialize access due to concurrent update";
    case DL_TXN_ERR_DUPLICATE_KEY:
        return "duplicate key value violates unique constraint";
    case DL_TXN_ERR_NOT_ACTIVE:
        return "the transaction is not running";
    case DL_TXN_ERR_NO_MEMORY:
        return "out of memory";
    case DL_TXN_ERR_DEADLOCK:
        return "deadlock detected";
    case DL_TXN_ERR_SSI:
        return "could not serialize access due to read/write dependencies among transactions";
    case DL_TXN_ERR_NOT_INTEGER:
        return "invalid input syntax for type integer";
    }
    return "unknown error";
}

void dl_txn_rows_free(dl_txn_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->rows[i].key);
        free(rows->rows[i].value);
    }
    free(rows->rows);
    memset(rows, 0, sizeof(*rows));
}

int dl_txn_rows_add(dl_txn_rows_t *rows, const char *key, const char *value, uint64_t writer)
{
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        dl_txn_row_t *r = realloc(rows->rows, cap * sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        rows->rows = r;
        rows->cap = cap;
    }
    char *k = strdup(key), *v = strdup(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    rows->rows[rows->n].key = k;
    rows->rows[rows->n].value = v;
    rows->rows[rows->n].writer = writer;
    rows->n++;
    return 0;
}

static int compare_rows(const void *a, const void *b)
{
    return dl_txn_value_compare(((const dl_txn_row_t *)a)->key, ((const dl_txn_row_t *)b)->key);
}

/* ---- Small sets ---------------------------------------------------------------------------- */

int dl__txn_ids_has(const ids_t *set, uint64_t id)
{
    for (uint32_t i = 0; i < set->n; i++)
        if (set->ids[i] == id)
            return 1;
    return 0;
}

int dl__txn_ids_add(ids_t *set, uint64_t id)
{
    if (dl__txn_ids_has(set, id))
        return 0;
    if (set->n == set->cap) {
        uint32_t cap = set->cap ? set->cap * 2 : 4;
        uint64_t *ids = realloc(set->ids, cap * sizeof(*ids));
        if (ids == NULL)
            return -ENOMEM;
        set->ids = ids;
        set->cap = cap;
    }
    set->ids[set->n++] = id;
    return 0;
}

void dl__txn_ids_free(ids_t *set)
{
    free(set->ids);
    memset(set, 0, sizeof(*set));
}

int dl__txn_rows_push(row_t ***list, size_t *n, size_t *cap, row_t *r)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        row_t **l = realloc(*list, c * sizeof(*l));
        if (l == NULL)
            return -ENOMEM;
        *list = l;
        *cap = c;
    }
    (*list)[(*n)++] = r;
    return 0;
}

int dl__txn_plocks_add(plocks_t *set, uint64_t txn, const dl_txn_pred_t *pred)
{
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        plock_t *l = realloc(set->locks, cap * sizeof(*l));
        if (l == NULL)
            return -ENOMEM;
        set->locks = l;
        set->cap = cap;
    }
    plock_t *l = &set->locks[set->n];
    l->txn = txn;
    l->pred = *pred;
    l->pred.operand = NULL;
    if (!pred->all && (l->pred.operand = strdup(pred->operand)) == NULL)
        return -ENOMEM;
    set->n++;
    return 0;
}

void dl__txn_plocks_free(plocks_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        free((char *)set->locks[i].pred.operand);
    free(set->locks);
    memset(set, 0, sizeof(*set));
}

/* ---- The row table ----------------------------------------------------------------------- */

static uint64_t hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static row_t *find_row(dl_txn_engine_t *e, const char *key)
{
    uint64_t h = hash_key(key);
    for (row_t *r = e->buckets[h & (e->n_buckets - 1)]; r != NULL; r = r->next)
        if (r->hash == h && strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

static int grow_buckets(dl_txn_engine_t *e)
{
    size_t n = e->n_buckets * 2;
    row_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    free(e->buckets);
    e->buckets = b;
    e->n_buckets = n;
    return 0;
}

/* The row for key, created empty (no versions) if it does not exist; NULL when out of memory.
 * An empty row carries the locks of readers that found nothing there. */
static row_t *get_row(dl_txn_engine_t *e, const char *key)
{
    row_t *r = find_row(e, key);
    if (r != NULL)
        return r;
    if (e->n_rows >= e->n_buckets && grow_buckets(e) != 0)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->key = strdup(key)) == NULL) {
        free(r);
        return NULL;
    }
    r->hash = hash_key(key);
    r->next = e->buckets[r->hash & (e->n_buckets - 1)];
    e->buckets[r->hash & (e->n_buckets - 1)] = r;
    e->n_rows++;
    return r;
}

const version_t *dl__txn_committed(const row_t *r)
{
    const version_t *v = r->newest;
    if (v != NULL && v->commit_ts == 0)
        v = v->older; /* only the newest version can be uncommitted */
    return v;
}

/* ---- Engine ------------------------------------------------------------------------------ */

dl_txn_engine_t *dl_txn_engine_new(void)
{
    dl_txn_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->n_buckets = 1024;
    e->buckets = calloc(e->n_buckets, sizeof(*e->buckets));
    if (e->buckets == NULL) {
        free(e);
        return NULL;
    }
    e->first_active = 1;
    e->horizon = 1;
    /* Statements hold the mutex for well under a microsecond: spinning briefly before sleeping
     * (glibc's adaptive mutex) keeps two threads from trading futex sleeps on every statement. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&e->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&e->ended, NULL);
    return e;
}

static void free_versions(version_t *v)
{
    while (v != NULL) {
        version_t *older = v->older;
        free(v->value);
        free(v);
        v = older;
    }
}

static void free_txn(txn_t *t)
{
    free(t->written);
    free(t->locked);
    free(t->stmt_done);
    dl__txn_ids_free(&t->waits);
    dl__txn_ids_free(&t->in);
    dl__txn_ids_free(&t->out);
}

void dl_txn_engine_free(dl_txn_engine_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            free_versions(r->newest);
            dl__txn_ids_free(&r->shared);
            dl__txn_ids_free(&r->sireads);
            free(r->key);
            free(r);
        }
    for (size_t i = 0; i < e->n_txns; i++)
        free_txn(&e->txns[i]);
    free(e->txns);
    free(e->buckets);
    dl__txn_plocks_free(&e->predicate_locks);
    dl__txn_plocks_free(&e->predicate_reads);
    dl__txn_ids_free(&e->stack);
    pthread_cond_destroy(&e->ended);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

txn_t *dl__txn_of(dl_txn_engine_t *e, uint64_t id)
{
    return id >= 1 && id <= e->n_txns ? &e->txns[id - 1] : NULL;
}

int dl_txn_engine_load(dl_txn_engine_t *e, const char *key, const char *value)
{
    int rv = -ENOMEM;
    pthread_mutex_lock(&e->mu);
    row_t *r = get_row(e, key);
    version_t *v = r ? calloc(1, sizeof(*v)) : NULL;
    if (v != NULL && (v->value = strdup(value)) != NULL) {
        v->commit_ts = ++e->clock;
        v->older = r->newest;
        r->newest = v;
        rv = 0;
    } else {
        free(v);
    }
    pthread_mutex_unlock(&e->mu);
    return rv;
}

int dl_txn_begin(dl_txn_engine_t *e, dl_txn_level_t level, uint64_t *id)
{
    if (level >= DL_TXN_N_LEVELS)
        return -EINVAL;
    int rv = 0;
    pthread_mutex_lock(&e->mu);
    if (e->n_txns == e->cap_txns) {
        size_t cap = e->cap_txns ? e->cap_txns * 2 : 64;
        txn_t *t = realloc(e->txns, cap * sizeof(*t));
        if (t == NULL) {
            rv = -ENOMEM;
            goto out;
        }
        e->txns = t;
        e->cap_txns = cap;
    }
    txn_t *t = &e->txns[e->n_txns++];
    memset(t, 0, sizeof(*t));
    t->level = level;
    *id = e->n_txns;
out:
    pthread_mutex_unlock(&e->mu);
    return rv;
}

int dl_txn_active(dl_txn_engine_t *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    txn_t *t = dl__txn_of(e, id);
    int active = t != NULL && t->state == ACTIVE;
    pthread_mutex_unlock(&e->mu);
    return active;
}

void dl_txn_engine_wait(dl_txn_engine_t *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    for (;;) {
        txn_t *t = dl__txn_of(e, id);
        if (t == NULL || t->state != ACTIVE)
            break;
        pthread_cond_wait(&e->ended, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
}

uint64_t dl_txn_commit_ts(dl_txn_engine_t *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    txn_t *t = dl__txn_of(e, id);
    uint64_t ts = t != NULL && t->state == COMMITTED ? t->commit_ts : 0;
    pthread_mutex_unlock(&e->mu);
    return ts;
}

/* A transaction ended: moves first_active and the horizon (the oldest snapshot still read as
 * of) past it, and wakes the threads waiting for it. */
static void ended(dl_txn_engine_t *e, txn_t *t)
{
    t->n_written = 0;
    t->n_stmt_done = 0;
    t->waits.n = 0;
    t->stmt_blocked = 0;
    while (e->first_active <= e->n_txns && e->txns[e->first_active - 1].state != ACTIVE)
        e->first_active++;
    uint64_t horizon = e->clock + 1;
    for (uint64_t id = e->first_active; id <= e->n_txns; id++) {
        const txn_t *a = &e->txns[id - 1];
        if (a->state == ACTIVE && a->snapshot != 0 && a->snapshot < horizon)
            horizon = a->snapshot;
    }
    e->horizon = horizon;
    pthread_cond_broadcast(&e->ended);
}

void dl__txn_roll_back(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error)
{
    for (size_t i = 0; i < t->n_written; i++) {
        row_t *r = t->written[i];
        /* Nobody writes a row over an uncommitted version, so ours is the newest. */
        if (r->newest != NULL && r->newest->writer == id) {
            version_t *v = r->newest;
            r->newest = v->older;
            free(v->value);
            free(v);
        }
    }
    dl__txn_release_locks(e, t, id);
    /* An aborted ssi transaction's reads and antidependencies no longer count. */
    plocks_t *reads = &e->predicate_reads;
    for (size_t i = 0; i < reads->n;)
        if (reads->locks[i].txn == id) {
            free((char *)reads->locks[i].pred.operand);
            reads->locks[i] = reads->locks[--reads->n];
        } else {
            i++;
        }
    t->state = ABORTED;
    t->abort_error = error;
    ended(e, t);
}

/* ---- Statements -------------------------------------------------------------------------- */

static dl_txn_outcome_t outcome(dl_txn_status_t status, dl_txn_error_t error)
{
    dl_txn_outcome_t o = {.status = status, .error = error, .waiting_for = 0};
    return o;
}

static dl_txn_outcome_t aborted(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error)
{
    dl__txn_roll_back(e, t, id, error);
    return outcome(DL_TXN_ABORTED, error);
}

/* Levels that read the newest committed data at every statement: read committed, and the
 * locking levels, whose locks keep what they read from changing until they end. */
static int fresh_snapshot_per_statement(dl_txn_level_t level)
{
    return level == DL_TXN_READ_UNCOMMITTED || level == DL_TXN_READ_COMMITTED ||
           level == DL_TXN_2PL || level == DL_TXN_SERIAL;
}

/*
 * Starts a statement of transaction id (the engine's mutex held): *t is the transaction. The
 * statement reads as of t->snapshot: the transaction's, taken now if this is its first
 * statement, or a new one per statement at read committed and the locking levels (a read
 * committed statement that blocked keeps its snapshot when it resumes, as PostgreSQL's does).
 * REFUSED (not active) when the transaction has ended; ABORTED when ssi doomed it; BLOCKED when
 * a serial transaction must wait for the one running.
 */
static dl_txn_outcome_t start_statement(dl_txn_engine_t *e, uint64_t id, txn_t **t)
{
    *t = dl__txn_of(e, id);
    if (*t == NULL || (*t)->state != ACTIVE)
        return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    txn_t *tx = *t;
    if (tx->doomed)
        return aborted(e, tx, id, DL_TXN_ERR_SSI);
    int resuming = tx->stmt_blocked;
    tx->stmt_blocked = 0;
    tx->waits.n = 0;
    if (!resuming) {
        tx->n_stmt_done = 0;
        tx->stmt_plocked = 0;
    }
    if (tx->level == DL_TXN_SERIAL && e->serial_owner != id) {
        if (e->serial_owner != 0) {
            if (dl__txn_ids_add(&tx->waits, e->serial_owner) != 0)
                return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            return dl__txn_wait_or_go(e, tx, id);
        }
        e->serial_owner = id;
    }
    if (tx->snapshot == 0 || (fresh_snapshot_per_statement(tx->level) &&
                              !(resuming && tx->level == DL_TXN_READ_COMMITTED)))
        tx->snapshot = e->clock + 1; /* everything committed so far is below it */
    return outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
}

/* The version of row r that transaction id (t) sees, or NULL. */
static const version_t *visible(const row_t *r, uint64_t id, const txn_t *t)
{
    for (const version_t *v = r->newest; v != NULL; v = v->older) {
        if (v->writer == id)
            return v;
        if (v->commit_ts != 0 && v->commit_ts < t->snapshot)
            return v;
        if (t->level == DL_TXN_READ_UNCOMMITTED && v->commit_ts == 0)
            return v; /* a dirty read: an uncommitted version's writer is running */
    }
    return NULL;
}

static const char *visible_value(const row_t *r, uint64_t id, const txn_t *t)
{
    const version_t *v = visible(r, id, t);
    return v != NULL && !v->deleted ? v->value : NULL;
}

/* A 2pl read of row r: waits for its uncommitted writer, then takes a shared lock on it. */
static dl_txn_outcome_t lock_for_read(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r)
{
    if (dl__txn_read_conflicts(e, t, id, r) != 0)
        return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    dl_txn_outcome_t o = dl__txn_wait_or_go(e, t, id);
    if (o.status == DL_TXN_OK && dl__txn_lock_shared(t, id, r) != 0)
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    return o;
}

dl_txn_outcome_t dl_txn_get(dl_txn_engine_t *e, uint64_t id, const char *key, char **value)
{
    uint64_t writer;
    return dl_txn_get_version(e, id, key, value, &writer);
}

dl_txn_outcome_t dl_txn_get_version(dl_txn_engine_t *e, uint64_t id, const char *key, char **value,
                                    uint64_t *writer)
{
    *value = NULL;
    *writer = 0;
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    dl_txn_outcome_t o = start_statement(e, id, &t);
    if (o.status != DL_TXN_OK)
        goto out;
    row_t *r;
    if (t->level == DL_TXN_2PL || t->level == DL_TXN_SSI) {
        /* A read of a key that is not there is a read too: a later insert conflicts with it. */
        if ((r = get_row(e, key)) == NULL) {
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            goto out;
        }
        o = t->level == DL_TXN_2PL ? lock_for_read(e, t, id, r) : dl__txn_ssi_read(e, t, id, r);
        if (o.status != DL_TXN_OK)
            goto out;
    } else if ((r = find_row(e, key)) == NULL) {
        goto out;
    }
    const version_t *v = visible(r, id, t);
    if (v != NULL && !v->deleted) {
        *writer = v->writer;
        if ((*value = strdup(v->value)) == NULL)
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    }
out:
    pthread_mutex_unlock(&e->mu);
    return o;
}

/*
 * The predicate read every statement with a where clause starts with (mutex held): a 2pl
 * transaction waits for the writers of matching rows and takes a predicate lock, an ssi one
 * records its predicate read. Once per statement, also when it resumes after blocking.
 */
static dl_txn_outcome_t predicate_read(dl_txn_engine_t *e, txn_t *t, uint64_t id,
                                       const dl_txn_pred_t *pred)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    if (t->stmt_plocked)
        return o;
    if (t->level == DL_TXN_2PL) {
        if (dl__txn_scan_conflicts(e, t, id, pred) != 0)
            return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
        o = dl__txn_wait_or_go(e, t, id);
        if (o.status == DL_TXN_OK && dl__txn_plocks_add(&e->predicate_locks, id, pred) != 0)
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    } else if (t->level == DL_TXN_SSI) {
        o = dl__txn_ssi_scan(e, t, id, pred);
    }
    if (o.status == DL_TXN_OK)
        t->stmt_plocked = 1;
    return o;
}

dl_txn_outcome_t dl_txn_scan(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                             dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    dl_txn_outcome_t o = start_statement(e, id, &t);
    if (o.status == DL_TXN_OK)
        o = predicate_read(e, t, id, pred);
    if (o.status != DL_TXN_OK)
        goto out;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (const row_t *r = e->buckets[i]; r != NULL; r = r->next) {
            const version_t *v = visible(r, id, t);
            if (v == NULL || v->deleted || !dl_txn_pred_matches(pred, r->key, v->value))
                continue;
            if (dl_txn_rows_add(out, r->key, v->value, v->writer) != 0) {
                dl_txn_rows_free(out);
                o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
                goto out;
            }
        }
    if (out->n > 1)
        qsort(out->rows, out->n, sizeof(*out->rows), compare_rows);
out:
    pthread_mutex_unlock(&e->mu);
    return o;
}

/*
 * Whether transaction t may write new_value (NULL: delete) over row r now: OK, BLOCKED on what
 * it must wait for (locks.c), or ABORTED (rolled back) when its level forbids the write: a
 * version committed after the snapshot at snapshot isolation and ssi (first updater wins), or a
 * dangerous structure of rw-antidependencies at ssi.
 */
static dl_txn_outcome_t may_write(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r,
                                  const char *new_value)
{
    if (dl__txn_write_conflicts(e, t, id, r, new_value) != 0)
        return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    dl_txn_outcome_t o = dl__txn_wait_or_go(e, t, id);
    if (o.status != DL_TXN_OK)
        return o;
    const version_t *v = r->newest;
    if ((t->level == DL_TXN_SNAPSHOT || t->level == DL_TXN_SSI) && v != NULL && v->writer != id &&
        v->commit_ts >= t->snapshot)
        return aborted(e, t, id, DL_TXN_ERR_SERIALIZATION);
    if (t->level == DL_TXN_SSI)
        return dl__txn_ssi_write(e, t, id, r, new_value);
    return o;
}

/* Frees the versions of r that no transaction can read any more: those older than the newest
 * version committed before the horizon (the oldest snapshot still read as of). */
static void prune_versions(const dl_txn_engine_t *e, row_t *r)
{
    for (version_t *v = r->newest; v != NULL; v = v->older)
        if (v->commit_ts != 0 && v->commit_ts < e->horizon) {
            free_versions(v->older);
            v->older = NULL;
            return;
        }
}

/* Writes a version of row r for transaction t (mutex held): in place over its own, else new. */
static int write_version(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return -ENOMEM;
    if (r->newest != NULL && r->newest->writer == id) {
        free(r->newest->value);
        r->newest->value = copy;
        r->newest->deleted = value == NULL;
        return 0;
    }
    version_t *v = calloc(1, sizeof(*v));
    if (v == NULL || dl__txn_rows_push(&t->written, &t->n_written, &t->cap_written, r) != 0) {
        free(v);
        free(copy);
        return -ENOMEM;
    }
    v->writer = id;
    v->deleted = value == NULL;
    v->value = copy;
    v->older = r->newest;
    r->newest = v;
    prune_versions(e, r);
    return 0;
}

/* What a write statement does to one key. */
typedef enum { WRITE_PUT, WRITE_INSERT, WRITE_DELETE } write_kind_t;

static dl_txn_outcome_t write_key(dl_txn_engine_t *e, uint64_t id, write_kind_t kind,
                                  const char *key, const char *value, int *deleted)
{
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    dl_txn_outcome_t o = start_statement(e, id, &t);
    if (o.status != DL_TXN_OK)
        goto out;
    row_t *r = get_row(e, key);
    if (r == NULL) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
        goto out;
    }
    if (kind == WRITE_DELETE) {
        /* A delete reads the row first: at 2pl it locks it, at ssi it records the read. */
        if (t->level == DL_TXN_SSI && (o = dl__txn_ssi_read(e, t, id, r)).status != DL_TXN_OK)
            goto out;
        if (visible_value(r, id, t) == NULL)
            goto out; /* nothing to delete in what the statement sees */
    }
    o = may_write(e, t, id, r, kind == WRITE_DELETE ? NULL : value);
    if (o.status != DL_TXN_OK)
        goto out;
    /* Past the wait: the row as the newest version has it (read committed goes on with the row
     * a concurrent writer left; snapshot isolation got here only if nobody did). */
    int exists = r->newest != NULL && !r->newest->deleted;
    if (kind == WRITE_INSERT && exists) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_DUPLICATE_KEY);
        goto out;
    }
    if (kind == WRITE_DELETE) {
        *deleted = exists;
        if (!exists)
            goto out;
    }
    if (write_version(e, t, id, r, kind == WRITE_DELETE ? NULL : value) != 0)
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
out:
    pthread_mutex_unlock(&e->mu);
    return o;
}

dl_txn_outcome_t dl_txn_put(dl_txn_engine_t *e, uint64_t id, const char *key, const char *value)
{
    return write_key(e, id, WRITE_PUT, key, value, NULL);
}

dl_txn_outcome_t dl_txn_insert(dl_txn_engine_t *e, uint64_t id, const char *key, const char *value)
{
    return write_key(e, id, WRITE_INSERT, key, value, NULL);
}

dl_txn_outcome_t dl_txn_delete(dl_txn_engine_t *e, uint64_t id, const char *key, int *deleted)
{
    *deleted = 0;
    return write_key(e, id, WRITE_DELETE, key, NULL, deleted);
}

static int done_by_statement(const txn_t *t, const row_t *r)
{
    for (size_t i = 0; i < t->n_stmt_done; i++)
        if (t->stmt_done[i] == r)
            return 1;
    return 0;
}

static int compare_row_keys(const void *a, const void *b)
{
    return dl_txn_value_compare((*(row_t *const *)a)->key, (*(row_t *const *)b)->key);
}

/* The rows a where-statement works on: those matching pred as the statement sees them and not
 * done yet by it, in key order. */
static int statement_rows(dl_txn_engine_t *e, txn_t *t, uint64_t id, const dl_txn_pred_t *pred,
                          row_t ***rows, size_t *n)
{
    size_t cap = 0;
    *rows = NULL;
    *n = 0;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i]; r != NULL; r = r->next) {
            const char *v = visible_value(r, id, t);
            if (v == NULL || !dl_txn_pred_matches(pred, r->key, v) || done_by_statement(t, r))
                continue;
            if (dl__txn_rows_push(rows, n, &cap, r) != 0) {
                free(*rows);
                return -ENOMEM;
            }
        }
    if (*n > 1)
        qsort(*rows, *n, sizeof(**rows), compare_row_keys);
    return 0;
}

/*
 * update ... where / delete where (set NULL): every row matching pred as the statement sees it,
 * in key order. A row that a concurrent transaction changed while the statement waited for it
 * is read again as that transaction left it and skipped if it no longer matches, as PostgreSQL's
 * read committed does; at snapshot isolation and above that change is a serialization failure.
 */
static dl_txn_outcome_t write_where(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                                    const dl_txn_set_t *set, size_t *n)
{
    *n = 0;
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    row_t **rows = NULL;
    size_t n_rows = 0;
    dl_txn_outcome_t o = start_statement(e, id, &t);
    if (o.status == DL_TXN_OK)
        o = predicate_read(e, t, id, pred);
    if (o.status != DL_TXN_OK)
        goto out;
    if (statement_rows(e, t, id, pred, &rows, &n_rows) != 0) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
        goto out;
    }
    for (size_t i = 0; i < n_rows; i++) {
        row_t *r = rows[i];
        const char *seen = visible_value(r, id, t);
        char sum[32];
        const char *new_value = NULL;
        if (set != NULL) {
            new_value = set->value;
            if (set->add) {
                int64_t v;
                if (!dl_txn_value_integer(seen, &v)) {
                    o = aborted(e, t, id, DL_TXN_ERR_NOT_INTEGER);
                    goto out;
                }
                snprintf(sum, sizeof(sum), "%lld", (long long)(v + set->delta));
                new_value = sum;
            }
        }
        o = may_write(e, t, id, r, new_value);
        if (o.status != DL_TXN_OK)
            goto out;
        /* Past any wait: re-read the row as it is now and check it still matches. */
        const version_t *now = r->newest;
        if (now == NULL || now->deleted || !dl_txn_pred_matches(pred, r->key, now->value)) {
            if (dl__txn_rows_push(&t->stmt_done, &t->n_stmt_done, &t->cap_stmt_done, r) != 0)
                o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            if (o.status != DL_TXN_OK)
                goto out;
            continue;
        }
        if (set != NULL && set->add) {
            int64_t v;
            if (!dl_txn_value_integer(now->value, &v)) {
                o = aborted(e, t, id, DL_TXN_ERR_NOT_INTEGER);
                goto out;
            }
            snprintf(sum, sizeof(sum), "%lld", (long long)(v + set->delta));
        }
        if (write_version(e, t, id, r, new_value) != 0 ||
            dl__txn_rows_push(&t->stmt_done, &t->n_stmt_done, &t->cap_stmt_done, r) != 0) {
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            goto out;
        }
    }
out:
    if (o.status == DL_TXN_OK || o.status == DL_TXN_BLOCKED) {
        /* How many rows the statement changed so far (the done rows it wrote). */
        for (size_t i = 0; i < t->n_stmt_done; i++)
            if (t->stmt_done[i]->newest != NULL && t->stmt_done[i]->newest->writer == id)
                (*n)++;
    }
    free(rows);
    pthread_mutex_unlock(&e->mu);
    return o;
}

dl_txn_outcome_t dl_txn_update(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                               const dl_txn_set_t *set, size_t *n)
{
    return write_where(e, id, pred, set, n);
}

dl_txn_outcome_t dl_txn_delete_where(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                                     size_t *n)
{
    return write_where(e, id, pred, NULL, n);
}

dl_txn_outcome_t dl_txn_commit(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    pthread_mutex_lock(&e->mu);
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || t->state != ACTIVE) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
        goto out;
    }
    if (t->level == DL_TXN_SSI && (o = dl__txn_ssi_commit(e, t, id)).status != DL_TXN_OK)
        goto out;
    uint64_t ts = ++e->clock;
    for (size_t i = 0; i < t->n_written; i++)
        t->written[i]->newest->commit_ts = ts;
    dl__txn_release_locks(e, t, id);
    t->state = COMMITTED;
    t->commit_ts = ts;
    ended(e, t);
out:
    pthread_mutex_unlock(&e->mu);
    return o;
}

dl_txn_outcome_t dl_txn_abort(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    pthread_mutex_lock(&e->mu);
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || t->state != ACTIVE)
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    else
        dl__txn_roll_back(e, t, id, DL_TXN_ERR_NONE);
    pthread_mutex_unlock(&e->mu);
    return o;
}

int dl_txn_engine_committed(dl_txn_engine_t *e, dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    int rv = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_buckets && rv == 0; i++)
        for (const row_t *r = e->buckets[i]; r != NULL && rv == 0; r = r->next) {
            const version_t *v = dl__txn_committed(r);
            if (v != NULL && !v->deleted)
                rv = dl_txn_rows_add(out, r->key, v->value, v->writer);
        }
    pthread_mutex_unlock(&e->mu);
    if (rv != 0)
        dl_txn_rows_free(out);
    else if (out->n > 1)
        qsort(out->rows, out->n, sizeof(*out->rows), compare_rows);
    return rv;
}
