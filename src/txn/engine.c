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
#include <sched.h>
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

void dl__txn_ids_remove(ids_t *set, uint64_t id)
{
    for (uint32_t i = 0; i < set->n; i++)
        if (set->ids[i] == id) {
            set->ids[i] = set->ids[--set->n];
            return;
        }
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

int dl__txn_rowlist_push(rowlist_t *l, row_t *r)
{
    if (l->rows == NULL) {
        l->rows = l->here;
        l->cap = sizeof(l->here) / sizeof(*l->here);
    }
    if (l->n == l->cap && l->rows == l->here) {
        row_t **rows = malloc(2 * l->cap * sizeof(*rows));
        if (rows == NULL)
            return -ENOMEM;
        memcpy(rows, l->here, sizeof(l->here));
        l->rows = rows;
        l->cap *= 2;
    }
    return dl__txn_rows_push(&l->rows, &l->n, &l->cap, r);
}

void dl__txn_rowlist_free(rowlist_t *l)
{
    if (l->rows != l->here)
        free(l->rows);
    l->rows = NULL;
    l->n = l->cap = 0;
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

/* ---- Engine ------------------------------------------------------------------------------ */

dl_txn_engine_t *dl_txn_engine_new(void)
{
    dl_txn_engine_t *e = aligned_alloc(64, (sizeof(*e) + 63) / 64 * 64); /* its cache lines */
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->n_buckets = 1024;
    e->buckets = dl__txn_zeroed_pages(e->n_buckets * sizeof(*e->buckets));
    if (e->buckets == NULL) {
        free(e);
        return NULL;
    }
    e->oldest_active = e->prune_below = e->candidate_ids = 1;
    e->chunks = calloc(TXN_CHUNKS, sizeof(*e->chunks));
    if (e->chunks == NULL) {
        dl__txn_free_pages(e->buckets, e->n_buckets * sizeof(*e->buckets));
        free(e);
        return NULL;
    }
    e->horizon = 1;
    /* Statements hold the mutex for well under a microsecond: spinning briefly before sleeping
     * (glibc's adaptive mutex) keeps two threads from trading futex sleeps on every statement. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&e->mu, &attr);
    for (int i = 0; i < N_STRIPES; i++)
        pthread_mutex_init(&e->stripes[i].mu, &attr);
    pthread_mutex_init(&e->blocks_mu, NULL);
    pthread_mutexattr_destroy(&attr);
    pthread_cond_init(&e->ended, NULL);
    return e;
}

void dl_txn_engine_free(dl_txn_engine_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            for (version_t *v = r->newest, *older; v != NULL; v = older) {
                older = v->older;
                if (v->size_class == SLAB_MALLOC)
                    free(v); /* the rest goes with the slab's blocks */
            }
            dl__txn_ids_free(&r->shared);
            if (r->sireads.ids != r->marks_here)
                dl__txn_ids_free(&r->sireads);
            if (r->size_class == SLAB_MALLOC)
                free(r);
        }
    for (size_t c = e->recycled_below; c < TXN_CHUNKS && e->chunks[c] != NULL; c++) {
        for (uint32_t i = 0; i < (1u << TXN_CHUNK_BITS); i++)
            if (e->chunks[c][i].id != 0)
                dl__txn_free_txn(&e->chunks[c][i]);
        dl__txn_free_pages(e->chunks[c], TXN_CHUNK_BYTES);
    }
    for (uint32_t i = 0; i < e->n_pool; i++)
        dl__txn_free_pages(e->pool[i], TXN_CHUNK_BYTES);
    free(e->chunks);
    dl__txn_free_pages(e->buckets, e->n_buckets * sizeof(*e->buckets));
    dl__txn_slab_release(e);
    pthread_mutex_destroy(&e->blocks_mu);
    dl__txn_plocks_free(&e->predicate_locks);
    dl__txn_plocks_free(&e->predicate_reads);
    dl__txn_ids_free(&e->stack);
    pthread_cond_destroy(&e->ended);
    for (int i = 0; i < N_STRIPES; i++)
        pthread_mutex_destroy(&e->stripes[i].mu);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void dl__txn_roll_back(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error)
{
    for (size_t i = 0; i < t->run->written.n; i++) {
        row_t *r = t->run->written.rows[i];
        /* Nobody writes a row over an uncommitted version, so ours is the newest. */
        if (r->newest != NULL && r->newest->writer == id) {
            version_t *v = r->newest;
            r->newest = v->older;
            r->n_versions--;
            dl__txn_free_version(e, r, v);
        }
    }
    dl__txn_release_locks(e, t, id);
    /* An aborted ssi transaction's reads and antidependencies no longer count: its edges go
     * from its neighbours too, so that a transaction later forgotten (recycled) was one that
     * committed (ssi.c counts a forgotten neighbour as committed first). */
    for (uint32_t i = 0; i < t->out.n; i++) {
        txn_t *n = dl__txn_of(e, t->out.ids[i]);
        if (n != NULL)
            dl__txn_ids_remove(&n->in, id);
    }
    for (uint32_t i = 0; i < t->in.n; i++) {
        txn_t *n = dl__txn_of(e, t->in.ids[i]);
        if (n != NULL)
            dl__txn_ids_remove(&n->out, id);
    }
    dl__txn_ids_free(&t->in);
    dl__txn_ids_free(&t->out);
    plocks_t *reads = &e->predicate_reads;
    for (size_t i = 0; i < reads->n;)
        if (reads->locks[i].txn == id) {
            free((char *)reads->locks[i].pred.operand);
            reads->locks[i] = reads->locks[--reads->n];
        } else {
            i++;
        }
    t->abort_error = error;
    __atomic_store_n(&t->state, ABORTED, __ATOMIC_SEQ_CST);
    dl__txn_ended(e, t, 1);
    dl__txn_wake_waiters(e, 1);
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
    if (tx->doomed || (tx->level == DL_TXN_SSI && dl__txn_ssi_settle(e, tx, id)))
        return aborted(e, tx, id, DL_TXN_ERR_SSI);
    int resuming = tx->run->stmt_blocked;
    tx->run->stmt_blocked = 0;
    tx->run->waits.n = 0;
    if (!resuming) {
        tx->run->n_stmt_done = 0;
        tx->run->stmt_plocked = 0;
    }
    if (tx->level == DL_TXN_SERIAL && e->serial_owner != id) {
        if (e->serial_owner != 0) {
            if (dl__txn_ids_add(&tx->run->waits, e->serial_owner) != 0)
                return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            return dl__txn_wait_or_go(e, tx, id);
        }
        e->serial_owner = id;
    }
    if (tx->snapshot == 0 || (fresh_snapshot_per_statement(tx->level) &&
                              !(resuming && tx->level == DL_TXN_READ_COMMITTED))) {
        tx->low_water = e->oldest_active; /* exclusive mode: nothing moves */
        __atomic_store_n(&tx->snapshot, LOAD(e->clock) + 1, __ATOMIC_RELAXED);
    }
    return outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
}

/* The version of row r that transaction id (t) sees, or NULL. */
static const version_t *visible(const row_t *r, uint64_t id, const txn_t *t)
{
    for (const version_t *v = r->newest; v != NULL; v = v->older) {
        if (v->writer == id)
            return v;
        uint64_t ts = LOAD(v->commit_ts);
        if (ts != 0 && ts < t->snapshot)
            return v;
        if (t->level == DL_TXN_READ_UNCOMMITTED && ts == 0)
            return v; /* a dirty read: an uncommitted version's writer is running */
    }
    return NULL;
}

static const char *visible_value(const row_t *r, uint64_t id, const txn_t *t)
{
    const version_t *v = visible(r, id, t);
    return v != NULL && !v->deleted ? v->value : NULL;
}

/* ---- Fast paths ------------------------------------------------------------------------- */

/* Levels whose gets, puts and commits may take a fast path (engine_internal.h, Locking). */
static int fast_level(dl_txn_level_t level)
{
    return level == DL_TXN_READ_UNCOMMITTED || level == DL_TXN_READ_COMMITTED ||
           level == DL_TXN_SNAPSHOT || level == DL_TXN_SSI;
}

/* Starts a statement of t on a fast path (a stripe held) as start_statement does; 0 when it must
 * take the slow path instead (t ended or was doomed, or resumes a blocked statement), which
 * then says why. */
static int fast_start(dl_txn_engine_t *e, txn_t *t)
{
    if (LOAD(t->state) != ACTIVE || t->doomed || t->run->stmt_blocked)
        return 0;
    t->run->waits.n = 0;
    t->run->n_stmt_done = 0;
    t->run->stmt_plocked = 0;
    if (t->snapshot == 0 || fresh_snapshot_per_statement(t->level))
        dl__txn_take_snapshot(e, t);
    return 1;
}

/*
 * A get with nothing to wait for and, at ssi, nothing to flag (the version it reads is the
 * row's newest): 1 with *o set, or 0 for the slow path. Only key's stripe is held.
 */
static int fast_get(dl_txn_engine_t *e, uint64_t id, const char *key, char **value,
                    uint64_t *writer, dl_txn_outcome_t *o)
{
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || !fast_level(t->level))
        return 0;
    uint64_t h = dl__txn_hash_key(key);
    stripe_t *s = dl__txn_stripe_of(e, h);
    int done = 0;
    pthread_mutex_lock(&s->mu);
    if (!fast_start(e, t))
        goto out;
    row_t *r = dl__txn_find_row_hashed(e, key, h);
    if (t->level == DL_TXN_SSI) {
        /* A read of a key that is not there is a read too: it leaves its mark on an empty row. */
        if (r == NULL && (!dl__txn_room_for_row(e) || (r = dl__txn_new_row(e, key, h)) == NULL))
            goto out;
    }
    const version_t *v = r != NULL ? visible(r, id, t) : NULL;
    /* A newer version it does not see is an antidependency to flag: the slow path. Else the
     * read is marked at commit (ssi.c, dl__txn_ssi_settle_fast), not here, so that a read
     * writes nothing to the row; most rows read are then written and need no mark at all. */
    if (t->level == DL_TXN_SSI &&
        (v != r->newest || dl__txn_rowlist_push(&t->run->ssi_reads, r) != 0))
        goto out;
    if (v != NULL && !v->deleted) {
        if ((*value = strdup(v->value)) == NULL)
            goto out;
        *writer = v->writer;
    }
    *o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    done = 1;
out:
    pthread_mutex_unlock(&s->mu);
    return done;
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
    dl_txn_outcome_t o;
    if (fast_get(e, id, key, value, writer, &o))
        return o;
    dl__txn_lock_all(e);
    txn_t *t;
    o = start_statement(e, id, &t);
    if (o.status != DL_TXN_OK)
        goto out;
    row_t *r;
    if (t->level == DL_TXN_2PL || t->level == DL_TXN_SSI) {
        /* A read of a key that is not there is a read too: a later insert conflicts with it. */
        if ((r = dl__txn_get_row(e, key)) == NULL) {
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            goto out;
        }
        o = t->level == DL_TXN_2PL ? lock_for_read(e, t, id, r) : dl__txn_ssi_read(e, t, id, r);
        if (o.status != DL_TXN_OK)
            goto out;
    } else if ((r = dl__txn_find_row(e, key)) == NULL) {
        goto out;
    }
    const version_t *v = visible(r, id, t);
    if (v != NULL && !v->deleted) {
        *writer = v->writer;
        if ((*value = strdup(v->value)) == NULL)
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
    }
out:
    dl__txn_unlock_all(e);
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
    if (t->run->stmt_plocked)
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
        t->run->stmt_plocked = 1;
    return o;
}

dl_txn_outcome_t dl_txn_scan(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                             dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    dl__txn_lock_all(e);
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
    dl__txn_unlock_all(e);
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

/* Writes a version of row r for transaction t (its stripe held): over its own, else new. */
static int write_version(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r, const char *value)
{
    version_t *v = dl__txn_new_version(e, r, id, value);
    if (v == NULL)
        return -ENOMEM;
    if (r->newest != NULL && r->newest->writer == id) {
        v->older = r->newest->older; /* replaces its own uncommitted version */
        dl__txn_free_version(e, r, r->newest);
        r->newest = v;
        return 0;
    }
    if (dl__txn_rowlist_push(&t->run->written, r) != 0) {
        dl__txn_free_version(e, r, v);
        return -ENOMEM;
    }
    v->older = r->newest;
    r->newest = v;
    r->n_versions++;
    dl__txn_prune_versions(e, r);
    return 0;
}

/* What a write statement does to one key. */
typedef enum { WRITE_PUT, WRITE_INSERT, WRITE_DELETE } write_kind_t;

/*
 * A write with nothing to wait for and nothing to flag: no uncommitted writer on the row, no
 * two-phase locks, no newer committed version at snapshot isolation, no concurrent ssi reader.
 * 1 with *o set, or 0 for the slow path. Only key's stripe is held.
 */
static int fast_write(dl_txn_engine_t *e, uint64_t id, write_kind_t kind, const char *key,
                      const char *value, int *deleted, dl_txn_outcome_t *o)
{
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || !fast_level(t->level) || (kind == WRITE_DELETE && t->level == DL_TXN_SSI))
        return 0;
    uint64_t h = dl__txn_hash_key(key);
    stripe_t *s = dl__txn_stripe_of(e, h);
    int done = 0;
    pthread_mutex_lock(&s->mu);
    if (e->predicate_locks.n != 0 || (t->level == DL_TXN_SSI && e->predicate_reads.n != 0) ||
        !fast_start(e, t))
        goto out;
    *o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    row_t *r = dl__txn_find_row_hashed(e, key, h);
    if (r == NULL && kind == WRITE_DELETE) {
        done = 1; /* nothing to delete */
        goto out;
    }
    if (r == NULL && (!dl__txn_room_for_row(e) || (r = dl__txn_new_row(e, key, h)) == NULL))
        goto out;
    const version_t *head = r->newest;
    if (r->shared.n != 0)
        goto out; /* two-phase locking's readers hold the row */
    if (head != NULL && head->writer != id) {
        uint64_t ts = LOAD(head->commit_ts);
        if (ts == 0)
            goto out; /* an uncommitted writer: wait for it */
        if ((t->level == DL_TXN_SNAPSHOT || t->level == DL_TXN_SSI) && ts >= t->snapshot)
            goto out; /* first updater wins: the slow path fails t */
    }
    if (t->level == DL_TXN_SSI && !dl__txn_ssi_no_readers(e, t, id, r))
        goto out;
    int exists = head != NULL && !head->deleted;
    if (kind == WRITE_DELETE && (visible_value(r, id, t) == NULL || !exists)) {
        done = 1;
        goto out;
    }
    if (kind == WRITE_INSERT && exists) {
        *o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_DUPLICATE_KEY);
        done = 1;
        goto out;
    }
    if (write_version(e, t, id, r, kind == WRITE_DELETE ? NULL : value) != 0)
        goto out;
    if (kind == WRITE_DELETE)
        *deleted = 1;
    done = 1;
out:
    pthread_mutex_unlock(&s->mu);
    return done;
}

static dl_txn_outcome_t write_key(dl_txn_engine_t *e, uint64_t id, write_kind_t kind,
                                  const char *key, const char *value, int *deleted)
{
    dl_txn_outcome_t o;
    if (fast_write(e, id, kind, key, value, deleted, &o))
        return o;
    dl__txn_lock_all(e);
    txn_t *t;
    o = start_statement(e, id, &t);
    if (o.status != DL_TXN_OK)
        goto out;
    row_t *r = dl__txn_get_row(e, key);
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
    dl__txn_unlock_all(e);
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
    for (size_t i = 0; i < t->run->n_stmt_done; i++)
        if (t->run->stmt_done[i] == r)
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
    dl__txn_lock_all(e);
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
            if (dl__txn_rows_push(&t->run->stmt_done, &t->run->n_stmt_done, &t->run->cap_stmt_done,
                                  r) != 0)
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
            dl__txn_rows_push(&t->run->stmt_done, &t->run->n_stmt_done, &t->run->cap_stmt_done,
                              r) != 0) {
            o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
            goto out;
        }
    }
out:
    if (o.status == DL_TXN_OK || o.status == DL_TXN_BLOCKED) {
        /* How many rows the statement changed so far (the done rows it wrote). */
        for (size_t i = 0; i < t->run->n_stmt_done; i++)
            if (t->run->stmt_done[i]->newest != NULL && t->run->stmt_done[i]->newest->writer == id)
                (*n)++;
    }
    free(rows);
    dl__txn_unlock_all(e);
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
/* The commit of a transaction that holds no locks and, at ssi, has no rw-antidependency in and
 * was not doomed: only txns_lock is held. 1 with *o set, or 0 for the slow path. */
static int fast_commit(dl_txn_engine_t *e, uint64_t id, dl_txn_outcome_t *o)
{
    int done = 0;
    txn_run_t *run = NULL;
    dl__txn_txns_lock(e);
    txn_t *t = dl__txn_of(e, id);
    if (t != NULL && t->state == ACTIVE && fast_level(t->level) &&
        !(t->level == DL_TXN_SSI && (t->doomed || t->in.n != 0 || t->run->ssi_reads.n != 0))) {
        dl__txn_commit_versions(e, t);
        dl__txn_ended(e, t, 0);
        run = t->run; /* freed below, without the lock (the record may be recycled by then) */
        t->run = NULL;
        *o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
        o->commit_ts = t->commit_ts;
        done = 1;
    }
    dl__txn_txns_unlock(e);
    if (done) {
        dl__txn_free_run(run);
        dl__txn_wake_waiters(e, 0);
    }
    return done;
}

dl_txn_outcome_t dl_txn_commit(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    if (dl__txn_ssi_settle_fast(e, id) && fast_commit(e, id, &o))
        return o;
    dl__txn_lock_all(e);
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || t->state != ACTIVE) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
        goto out;
    }
    if (t->level == DL_TXN_SSI && (o = dl__txn_ssi_commit(e, t, id)).status != DL_TXN_OK)
        goto out;
    dl__txn_commit_versions(e, t);
    o.commit_ts = t->commit_ts;
    dl__txn_release_locks(e, t, id);
    dl__txn_ended(e, t, 1);
    dl__txn_wake_waiters(e, 1);
out:
    dl__txn_unlock_all(e);
    return o;
}

dl_txn_outcome_t dl_txn_abort(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    dl__txn_lock_all(e);
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || t->state != ACTIVE)
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    else
        dl__txn_roll_back(e, t, id, DL_TXN_ERR_NONE);
    dl__txn_unlock_all(e);
    return o;
}

int dl_txn_engine_committed(dl_txn_engine_t *e, dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    int rv = 0;
    dl__txn_lock_all(e);
    for (size_t i = 0; i < e->n_buckets && rv == 0; i++)
        for (const row_t *r = e->buckets[i]; r != NULL && rv == 0; r = r->next) {
            const version_t *v = dl__txn_committed(r);
            if (v != NULL && !v->deleted)
                rv = dl_txn_rows_add(out, r->key, v->value, v->writer);
        }
    dl__txn_unlock_all(e);
    if (rv != 0)
        dl_txn_rows_free(out);
    else if (out->n > 1)
        qsort(out->rows, out->n, sizeof(*out->rows), compare_rows);
    return rv;
}
