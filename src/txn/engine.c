/*
 * The txn engine: rows in a hash table, each a chain of versions newest first. A version records
 * the transaction that wrote it and, once that one commits, its commit timestamp. Readers pick
 * the newest version their level lets them see; writers wait for a row's uncommitted writer.
 */
#include "txn/engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "txn/value.h"

typedef struct version_s {
    struct version_s *older;
    uint64_t writer;    /* transaction id, 0 for data loaded by setup */
    uint64_t commit_ts; /* 0 while the writer runs */
    int deleted;        /* a tombstone: the row does not exist in this version */
    char *value;
} version_t;

typedef struct row_s {
    struct row_s *next; /* hash chain */
    uint64_t hash;
    char *key;
    version_t *newest;
} row_t;

typedef enum { ACTIVE = 0, COMMITTED, ABORTED } txn_state_t;

typedef struct txn_s {
    dl_txn_level_t level;
    txn_state_t state;
    uint64_t snapshot;  /* 0 until the first statement takes it */
    uint64_t commit_ts; /* once committed */
    row_t **written;    /* rows this transaction wrote, once each */
    size_t n_written, cap_written;
} txn_t;

struct dl_txn_engine_s {
    pthread_mutex_t mu;
    pthread_cond_t ended; /* broadcast whenever a transaction commits or aborts */
    row_t **buckets;
    size_t n_buckets, n_rows;
    txn_t *txns; /* txns[id - 1] */
    size_t n_txns, cap_txns;
    uint64_t clock; /* the last commit timestamp handed out */
};

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

static int rows_add(dl_txn_rows_t *rows, const char *key, const char *value, uint64_t writer)
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

/* The row for key, created empty (no versions) if it does not exist; NULL when out of memory. */
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
    pthread_mutex_init(&e->mu, NULL);
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

void dl_txn_engine_free(dl_txn_engine_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            free_versions(r->newest);
            free(r->key);
            free(r);
        }
    for (size_t i = 0; i < e->n_txns; i++)
        free(e->txns[i].written);
    free(e->txns);
    free(e->buckets);
    pthread_cond_destroy(&e->ended);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static txn_t *txn_of(dl_txn_engine_t *e, uint64_t id)
{
    return id >= 1 && id <= e->n_txns ? &e->txns[id - 1] : NULL;
}

static int writer_active(dl_txn_engine_t *e, const version_t *v)
{
    const txn_t *w = txn_of(e, v->writer);
    return w != NULL && w->state == ACTIVE;
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
    txn_t *t = txn_of(e, id);
    int active = t != NULL && t->state == ACTIVE;
    pthread_mutex_unlock(&e->mu);
    return active;
}

void dl_txn_engine_wait(dl_txn_engine_t *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    for (;;) {
        txn_t *t = txn_of(e, id);
        if (t == NULL || t->state != ACTIVE)
            break;
        pthread_cond_wait(&e->ended, &e->mu);
    }
    pthread_mutex_unlock(&e->mu);
}

/* ---- Statements -------------------------------------------------------------------------- */

static dl_txn_outcome_t outcome(dl_txn_status_t status, dl_txn_error_t error)
{
    dl_txn_outcome_t o = {.status = status, .error = error, .waiting_for = 0};
    return o;
}

/*
 * Starts a statement of transaction id (the engine's mutex held): *t is the transaction, and
 * *snapshot is what the statement reads as of — the transaction's (taken now if this is its
 * first statement) at snapshot isolation, a new one at read committed. REFUSED (not active) when
 * the transaction has ended.
 */
static dl_txn_outcome_t start_statement(dl_txn_engine_t *e, uint64_t id, txn_t **t,
                                        uint64_t *snapshot)
{
    *t = txn_of(e, id);
    if (*t == NULL || (*t)->state != ACTIVE)
        return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    if ((*t)->snapshot == 0 || (*t)->level == DL_TXN_READ_COMMITTED)
        (*t)->snapshot = e->clock + 1; /* everything committed so far is below it */
    *snapshot = (*t)->snapshot;
    return outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
}

/* The version of row r that transaction id at level sees as of snapshot, or NULL. */
static const version_t *visible(dl_txn_engine_t *e, const row_t *r, uint64_t id,
                                dl_txn_level_t level, uint64_t snapshot)
{
    for (const version_t *v = r->newest; v != NULL; v = v->older) {
        if (v->writer == id)
            return v;
        if (v->commit_ts != 0 && v->commit_ts < snapshot)
            return v;
        if (level == DL_TXN_READ_UNCOMMITTED && v->commit_ts == 0 && writer_active(e, v))
            return v; /* a dirty read */
    }
    return NULL;
}

static const char *visible_value(dl_txn_engine_t *e, const row_t *r, uint64_t id,
                                 dl_txn_level_t level, uint64_t snapshot)
{
    const version_t *v = visible(e, r, id, level, snapshot);
    return v != NULL && !v->deleted ? v->value : NULL;
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
    uint64_t snapshot;
    dl_txn_outcome_t o = start_statement(e, id, &t, &snapshot);
    if (o.status == DL_TXN_OK) {
        const row_t *r = find_row(e, key);
        const version_t *v = r ? visible(e, r, id, t->level, snapshot) : NULL;
        if (v != NULL && !v->deleted) {
            *writer = v->writer;
            if ((*value = strdup(v->value)) == NULL)
                o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return o;
}

dl_txn_outcome_t dl_txn_scan(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                             dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    uint64_t snapshot;
    dl_txn_outcome_t o = start_statement(e, id, &t, &snapshot);
    if (o.status != DL_TXN_OK)
        goto out;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (const row_t *r = e->buckets[i]; r != NULL; r = r->next) {
            const version_t *v = visible(e, r, id, t->level, snapshot);
            if (v == NULL || v->deleted || !dl_txn_pred_matches(pred, r->key, v->value))
                continue;
            if (rows_add(out, r->key, v->value, v->writer) != 0) {
                dl_txn_rows_free(out);
                o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
                goto out;
            }
        }
    qsort(out->rows, out->n, sizeof(*out->rows), compare_rows);
out:
    pthread_mutex_unlock(&e->mu);
    return o;
}

/* Rolls back transaction t (id): its versions leave every row it wrote. Mutex held. */
static void roll_back(dl_txn_engine_t *e, txn_t *t, uint64_t id)
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
    t->state = ABORTED;
    t->n_written = 0;
    pthread_cond_broadcast(&e->ended);
}

/*
 * Checks whether transaction id may write row r now (mutex held): OK, BLOCKED on the row's
 * uncommitted writer, or ABORTED (rolled back) when snapshot isolation finds a newer committed
 * version than the transaction's snapshot: first updater wins.
 */
static dl_txn_outcome_t may_write(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r,
                                  uint64_t snapshot)
{
    const version_t *v = r->newest;
    if (v == NULL || v->writer == id)
        return outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    if (v->commit_ts == 0 && writer_active(e, v)) {
        dl_txn_outcome_t o = outcome(DL_TXN_BLOCKED, DL_TXN_ERR_NONE);
        o.waiting_for = v->writer;
        return o;
    }
    if (t->level == DL_TXN_SNAPSHOT && v->commit_ts >= snapshot) {
        roll_back(e, t, id);
        return outcome(DL_TXN_ABORTED, DL_TXN_ERR_SERIALIZATION);
    }
    return outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
}

/* Writes a version of row r for transaction t (mutex held): in place over its own, else new. */
static int write_version(txn_t *t, uint64_t id, row_t *r, const char *value, int deleted)
{
    char *copy = value ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return -ENOMEM;
    if (r->newest != NULL && r->newest->writer == id) {
        free(r->newest->value);
        r->newest->value = copy;
        r->newest->deleted = deleted;
        return 0;
    }
    if (t->n_written == t->cap_written) {
        size_t cap = t->cap_written ? t->cap_written * 2 : 8;
        row_t **w = realloc(t->written, cap * sizeof(*w));
        if (w == NULL) {
            free(copy);
            return -ENOMEM;
        }
        t->written = w;
        t->cap_written = cap;
    }
    version_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        free(copy);
        return -ENOMEM;
    }
    v->writer = id;
    v->deleted = deleted;
    v->value = copy;
    v->older = r->newest;
    r->newest = v;
    t->written[t->n_written++] = r;
    return 0;
}

/* What a write statement does to one key. */
typedef enum { WRITE_PUT, WRITE_INSERT, WRITE_DELETE } write_kind_t;

static dl_txn_outcome_t write_key(dl_txn_engine_t *e, uint64_t id, write_kind_t kind,
                                  const char *key, const char *value, int *deleted)
{
    pthread_mutex_lock(&e->mu);
    txn_t *t;
    uint64_t snapshot;
    dl_txn_outcome_t o = start_statement(e, id, &t, &snapshot);
    if (o.status != DL_TXN_OK)
        goto out;
    row_t *r = get_row(e, key);
    if (r == NULL) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY);
        goto out;
    }
    if (kind == WRITE_DELETE && visible_value(e, r, id, t->level, snapshot) == NULL)
        goto out; /* nothing to delete in what the statement sees */
    o = may_write(e, t, id, r, snapshot);
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
    if (write_version(t, id, r, kind == WRITE_DELETE ? NULL : value, kind == WRITE_DELETE) != 0)
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

dl_txn_outcome_t dl_txn_commit(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    pthread_mutex_lock(&e->mu);
    txn_t *t = txn_of(e, id);
    if (t == NULL || t->state != ACTIVE) {
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    } else {
        uint64_t ts = ++e->clock;
        for (size_t i = 0; i < t->n_written; i++)
            t->written[i]->newest->commit_ts = ts;
        t->state = COMMITTED;
        t->commit_ts = ts;
        t->n_written = 0;
        pthread_cond_broadcast(&e->ended);
    }
    pthread_mutex_unlock(&e->mu);
    return o;
}

dl_txn_outcome_t dl_txn_abort(dl_txn_engine_t *e, uint64_t id)
{
    dl_txn_outcome_t o = outcome(DL_TXN_OK, DL_TXN_ERR_NONE);
    pthread_mutex_lock(&e->mu);
    txn_t *t = txn_of(e, id);
    if (t == NULL || t->state != ACTIVE)
        o = outcome(DL_TXN_REFUSED, DL_TXN_ERR_NOT_ACTIVE);
    else
        roll_back(e, t, id);
    pthread_mutex_unlock(&e->mu);
    return o;
}

int dl_txn_engine_committed(dl_txn_engine_t *e, dl_txn_rows_t *out)
{
    memset(out, 0, sizeof(*out));
    int rv = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_buckets && rv == 0; i++)
        for (const row_t *r = e->buckets[i]; r != NULL && rv == 0; r = r->next)
            for (const version_t *v = r->newest; v != NULL; v = v->older)
                if (v->commit_ts != 0) {
                    if (!v->deleted)
                        rv = rows_add(out, r->key, v->value, v->writer);
                    break;
                }
    pthread_mutex_unlock(&e->mu);
    if (rv != 0)
        dl_txn_rows_free(out);
    else
        qsort(out->rows, out->n, sizeof(*out->rows), compare_rows);
    return rv;
}

uint64_t dl_txn_commit_ts(dl_txn_engine_t *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    txn_t *t = txn_of(e, id);
    uint64_t ts = t != NULL && t->state == COMMITTED ? t->commit_ts : 0;
    pthread_mutex_unlock(&e->mu);
    return ts;
}

dl_txn_outcome_t dl_txn_update(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                               const dl_txn_set_t *set, size_t *n)
{
    *n = 0;
    return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY); /* next commit */
}

dl_txn_outcome_t dl_txn_delete_where(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                                     size_t *n)
{
    *n = 0;
    return outcome(DL_TXN_REFUSED, DL_TXN_ERR_NO_MEMORY); /* next commit */
}
