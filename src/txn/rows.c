/*
 * The txn engine's rows: a hash table of rows under 64 lock stripes, each row a chain of versions
 * newest first; creating rows, growing the table, writing and pruning versions, and loading
 * committed data. Memory comes from slab.c. The locking rules are in engine_internal.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "txn/engine_internal.h"

/* ---- The row table ----------------------------------------------------------------------- */

row_t *dl__txn_find_row(dl_txn_engine_t *e, const char *key)
{
    return dl__txn_find_row_hashed(e, key, dl__txn_hash_key(key));
}

/* Adds an empty row for key (hash h) to its bucket; key's stripe held, the table not full. */
row_t *dl__txn_new_row(dl_txn_engine_t *e, const char *key, uint64_t h)
{
    size_t len = strlen(key);
    uint32_t size_class;
    size_t size = (sizeof(row_t) + len + 1 + 63) / 64 * 64; /* whole cache lines (slab.c) */
    row_t *r = dl__txn_slab_alloc(e, &dl__txn_stripe_of(e, h)->slab, size, &size_class);
    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->size_class = size_class;
    memcpy(r->key, key, len + 1);
    r->hash = h;
    r->next = e->buckets[h & (e->n_buckets - 1)];
    e->buckets[h & (e->n_buckets - 1)] = r;
    __atomic_add_fetch(&e->n_rows, 1, __ATOMIC_RELAXED);
    return r;
}

/* Whether a row can be added without growing the table (which takes exclusive mode). */
int dl__txn_room_for_row(dl_txn_engine_t *e)
{
    return __atomic_load_n(&e->n_rows, __ATOMIC_RELAXED) < e->n_buckets;
}

static int grow_buckets(dl_txn_engine_t *e)
{
    size_t n = e->n_buckets * 2;
    row_t **b = dl__txn_zeroed_pages(n * sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < e->n_buckets; i++)
        for (row_t *r = e->buckets[i], *next; r != NULL; r = next) {
            next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    dl__txn_free_pages(e->buckets, e->n_buckets * sizeof(*b));
    e->buckets = b;
    e->n_buckets = n;
    return 0;
}

/* The row for key, created empty (no versions) if it does not exist; NULL when out of memory.
 * An empty row carries the locks of readers that found nothing there. */
row_t *dl__txn_get_row(dl_txn_engine_t *e, const char *key)
{
    uint64_t h = dl__txn_hash_key(key);
    row_t *r = dl__txn_find_row_hashed(e, key, h);
    if (r != NULL)
        return r;
    if (!dl__txn_room_for_row(e) && grow_buckets(e) != 0)
        return NULL;
    return dl__txn_new_row(e, key, h);
}

const version_t *dl__txn_committed(const row_t *r)
{
    const version_t *v = r->newest;
    if (v != NULL && LOAD(v->commit_ts) == 0)
        v = v->older; /* only the newest version can be uncommitted */
    return v;
}

/* A version by writer of value (NULL: a tombstone), not linked yet; NULL when out of memory. */
version_t *dl__txn_new_version(dl_txn_engine_t *e, const row_t *r, uint64_t writer,
                               const char *value)
{
    size_t len = value != NULL ? strlen(value) : 0;
    uint32_t size_class;
    version_t *v = dl__txn_slab_alloc(e, &dl__txn_stripe_of(e, r->hash)->slab, sizeof(*v) + len + 1,
                                      &size_class);
    if (v == NULL)
        return NULL;
    v->size_class = size_class;
    v->older = NULL;
    v->writer = writer;
    v->commit_ts = 0;
    v->deleted = value == NULL;
    memcpy(v->value, value != NULL ? value : "", len);
    v->value[len] = '\0';
    return v;
}

void dl__txn_free_version(dl_txn_engine_t *e, const row_t *r, version_t *v)
{
    dl__txn_slab_free(&dl__txn_stripe_of(e, r->hash)->slab, v, v->size_class);
}

static void free_versions(dl_txn_engine_t *e, const row_t *r, version_t *v)
{
    while (v != NULL) {
        version_t *older = v->older;
        dl__txn_free_version(e, r, v);
        v = older;
    }
}

/* How long a row's chain of versions may grow before a write prunes it. */
#define PRUNE_AT 4

/* Frees the versions of r that no transaction can read any more: those older than the newest
 * version committed before the horizon (the oldest snapshot still read as of). */
void dl__txn_prune_versions(dl_txn_engine_t *e, row_t *r)
{
    /* Not at every write: walking the chain reads versions that are likely out of the cache. */
    if (r->n_versions < PRUNE_AT)
        return;
    uint64_t horizon = LOAD(e->horizon);
    uint32_t kept = 0;
    for (version_t *v = r->newest; v != NULL; v = v->older) {
        kept++;
        uint64_t ts = LOAD(v->commit_ts);
        if (ts != 0 && ts < horizon) {
            free_versions(e, r, v->older);
            v->older = NULL;
            r->n_versions = kept;
            return;
        }
    }
}

int dl_txn_engine_load(dl_txn_engine_t *e, const char *key, const char *value)
{
    int rv = -ENOMEM;
    pthread_mutex_lock(&e->mu);
    dl__txn_txns_lock(e);
    if (!dl__txn_room_for_row(e)) {
        for (int i = 0; i < N_STRIPES; i++)
            pthread_mutex_lock(&e->stripes[i].mu);
        int grown = grow_buckets(e);
        for (int i = N_STRIPES - 1; i >= 0; i--)
            pthread_mutex_unlock(&e->stripes[i].mu);
        if (grown != 0) {
            dl__txn_txns_unlock(e);
            pthread_mutex_unlock(&e->mu);
            return -ENOMEM;
        }
    }
    uint64_t h = dl__txn_hash_key(key);
    stripe_t *s = dl__txn_stripe_of(e, h);
    pthread_mutex_lock(&s->mu);
    row_t *r = dl__txn_find_row_hashed(e, key, h);
    if (r == NULL)
        r = dl__txn_new_row(e, key, h);
    version_t *v = NULL;
    if (r != NULL && r->newest != NULL && r->newest->commit_ts == 0)
        rv = -EBUSY; /* a running transaction wrote it: only the newest may be uncommitted */
    else if (r != NULL)
        v = dl__txn_new_version(e, r, 0, value);
    if (v != NULL) {
        uint64_t ts = e->clock + 1;
        v->commit_ts = ts;
        v->older = r->newest;
        r->newest = v;
        r->n_versions++;
        STORE(e->clock, ts);
        rv = 0;
    }
    pthread_mutex_unlock(&s->mu);
    dl__txn_txns_unlock(e);
    pthread_mutex_unlock(&e->mu);
    return rv;
}
