/*
 * The txn engine's transactions: their records (chunks that never move, recycled once no running
 * transaction can conflict with them), begin, the spin lock that begin and commit take, commit
 * timestamps and snapshots, the horizon, and waiting for a transaction to end. The locking rules
 * are in engine_internal.h; docs/txn.md ("Inside the engine") says why.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "txn/engine_internal.h"

/*
 * txns_lock: held for well under a microsecond by begin and commit, and taken by both threads
 * for every transaction. A mutex that sleeps when it finds it held costs two system calls
 * (futex wait and wake) where the holder would have let go after a few hundred cycles; so this
 * spins, and yields the processor only after long enough that the holder may have been
 * preempted.
 */
void dl__txn_txns_lock(dl_txn_engine_t *e)
{
    for (unsigned i = 0;; i++) {
        if (!__atomic_load_n(&e->txns_lock, __ATOMIC_RELAXED) &&
            !__atomic_exchange_n(&e->txns_lock, 1, __ATOMIC_ACQUIRE))
            return;
        if (i < 2000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

void dl__txn_txns_unlock(dl_txn_engine_t *e)
{
    __atomic_store_n(&e->txns_lock, 0, __ATOMIC_RELEASE);
}

void dl__txn_lock_all(dl_txn_engine_t *e)
{
    pthread_mutex_lock(&e->mu);
    dl__txn_txns_lock(e);
    for (int i = 0; i < N_STRIPES; i++)
        pthread_mutex_lock(&e->stripes[i].mu);
}

void dl__txn_unlock_all(dl_txn_engine_t *e)
{
    for (int i = N_STRIPES - 1; i >= 0; i--)
        pthread_mutex_unlock(&e->stripes[i].mu);
    dl__txn_txns_unlock(e);
    pthread_mutex_unlock(&e->mu);
}

/* Frees what a transaction needs only while it runs (ended), or at the engine's end. */
void dl__txn_free_run(txn_run_t *run)
{
    if (run == NULL)
        return;
    dl__txn_rowlist_free(&run->written);
    dl__txn_rowlist_free(&run->ssi_reads);
    free(run->stmt_done);
    free(run->locked);
    dl__txn_ids_free(&run->waits);
    free(run);
}

static void free_running(txn_t *t)
{
    dl__txn_free_run(t->run);
    t->run = NULL;
}

void dl__txn_free_txn(txn_t *t)
{
    free_running(t);
    dl__txn_ids_free(&t->in);
    dl__txn_ids_free(&t->out);
}

txn_t *dl__txn_of(dl_txn_engine_t *e, uint64_t id)
{
    /* Not from n_txns, which every begin writes: a record is valid when it says it is id's. */
    if (id < 1 || ((id - 1) >> TXN_CHUNK_BITS) >= TXN_CHUNKS)
        return NULL;
    txn_t *chunk = LOAD(e->chunks[(id - 1) >> TXN_CHUNK_BITS]);
    if (chunk == NULL)
        return NULL;
    txn_t *t = &chunk[(id - 1) & ((1u << TXN_CHUNK_BITS) - 1)];
    return LOAD(t->id) == id ? t : NULL;
}

int dl_txn_begin(dl_txn_engine_t *e, dl_txn_level_t level, uint64_t *id)
{
    if (level >= DL_TXN_N_LEVELS)
        return -EINVAL;
    int rv = 0;
    txn_run_t *run = calloc(1, sizeof(*run));
    if (run == NULL)
        return -ENOMEM;
    dl__txn_txns_lock(e);
    uint64_t i = e->n_txns, chunk = i >> TXN_CHUNK_BITS;
    if (chunk >= TXN_CHUNKS) {
        rv = -ENOMEM;
        goto out;
    }
    if (e->chunks[chunk] == NULL) {
        /* A recycled chunk (its records are rewritten whole at their begin) saves the kernel
         * zeroing fresh pages, which costs more here than anything a transaction does. */
        txn_t *c = e->n_pool > 0 ? e->pool[--e->n_pool] : dl__txn_zeroed_pages(TXN_CHUNK_BYTES);
        if (c == NULL) {
            rv = -ENOMEM;
            goto out;
        }
        STORE(e->chunks[chunk], c);
    }
    txn_t *t = &e->chunks[chunk][i & ((1u << TXN_CHUNK_BITS) - 1)];
    memset(t, 0, sizeof(*t));
    t->level = level;
    t->run = run;
    run = NULL;
    t->next_active = e->active;
    e->active = t;
    STORE(t->id, i + 1);
    e->n_txns = i + 1;
    *id = i + 1;
out:
    dl__txn_txns_unlock(e);
    free(run); /* when it failed */
    return rv;
}

/* Whether id runs (txns_lock held: its record cannot be recycled meanwhile). */
static int running(dl_txn_engine_t *e, uint64_t id)
{
    txn_t *t = dl__txn_of(e, id);
    return t != NULL && LOAD(t->state) == ACTIVE;
}

int dl_txn_active(dl_txn_engine_t *e, uint64_t id)
{
    dl__txn_txns_lock(e);
    int active = running(e, id);
    dl__txn_txns_unlock(e);
    return active;
}

void dl_txn_engine_wait(dl_txn_engine_t *e, uint64_t id)
{
    /* A commit sets the state, then wakes sleepers if it sees any (dl__txn_wake_waiters); counting
     * ourselves before reading the state, either it sees us or we see its state. */
    pthread_mutex_lock(&e->mu);
    __atomic_add_fetch(&e->waiters, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        dl__txn_txns_lock(e); /* a full barrier, after the count and before the state */
        int active = running(e, id);
        dl__txn_txns_unlock(e);
        if (!active)
            break;
        pthread_cond_wait(&e->ended, &e->mu);
    }
    __atomic_sub_fetch(&e->waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&e->mu);
}

uint64_t dl_txn_commit_ts(dl_txn_engine_t *e, uint64_t id)
{
    dl__txn_txns_lock(e);
    txn_t *t = dl__txn_of(e, id);
    uint64_t ts = t != NULL && LOAD(t->state) == COMMITTED ? LOAD(t->commit_ts) : 0;
    dl__txn_txns_unlock(e);
    return ts;
}

/* Wakes the threads in dl_txn_engine_wait after a transaction ended, if there are any; mu is
 * held when mu_held (exclusive mode), else taken. */
void dl__txn_wake_waiters(dl_txn_engine_t *e, int mu_held)
{
    if (__atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST) == 0)
        return;
    if (!mu_held)
        pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->ended);
    if (!mu_held)
        pthread_mutex_unlock(&e->mu);
}

/* How many transactions end between two computations of the horizon on the fast path. */
#define HORIZON_EVERY 64

/*
 * Recycles the chunks of records whose transactions all lie below prune_below (txns_lock held):
 * they ended, and committed before every running snapshot, so no running transaction can
 * conflict with them any more, and ssi skips their read marks without reading their records.
 * A lookup of such an id finds no chunk and says "no such transaction": not running, no commit
 * timestamp. Their ssi edge sets are freed; the chunk goes to the pool for new transactions.
 */
static void recycle_chunks(dl_txn_engine_t *e, int exclusive)
{
    uint64_t below = (e->prune_below - 1) >> TXN_CHUNK_BITS; /* chunks wholly below it */
    if (below > TXN_CHUNKS)
        below = TXN_CHUNKS;
    while (e->recycled_below < below) {
        txn_t *gone[64];
        size_t n = 0;
        for (; n < 64 && e->recycled_below < below; e->recycled_below++) {
            gone[n++] = e->chunks[e->recycled_below];
            STORE(e->chunks[e->recycled_below], NULL);
        }
        /* A statement on the fast path looks records up (the readers of a row's marks) under
         * its stripe's lock, without txns_lock; every other lookup holds txns_lock or is in
         * exclusive mode. Taking each stripe once waits out any statement that loaded a chunk
         * pointer before it went. */
        for (int i = 0; i < N_STRIPES && !exclusive; i++) {
            pthread_mutex_lock(&e->stripes[i].mu);
            pthread_mutex_unlock(&e->stripes[i].mu);
        }
        for (size_t k = 0; k < n; k++) {
            txn_t *chunk = gone[k];
            if (chunk == NULL)
                continue;
            for (uint32_t i = 0; i < (1u << TXN_CHUNK_BITS); i++)
                if (chunk[i].in.ids != NULL || chunk[i].out.ids != NULL) {
                    dl__txn_ids_free(&chunk[i].in);
                    dl__txn_ids_free(&chunk[i].out);
                }
            if (e->n_pool < TXN_POOL)
                e->pool[e->n_pool++] = chunk;
            else
                dl__txn_free_pages(chunk, TXN_CHUNK_BYTES);
        }
    }
}

/*
 * Moves the horizon (the oldest snapshot still read as of) up to the oldest snapshot of a
 * running transaction, and drops ended ones from the list (txns_lock held). Fast paths take
 * snapshots without txns_lock (dl__txn_take_snapshot): this may read an older one (and compute a
 * lower horizon, which only prunes less), or 0 for one being taken, which will be at least the
 * clock read here + 1. A horizon computed a few commits ago is lower than need be, never too high.
 */
static void move_horizon(dl_txn_engine_t *e, int exclusive)
{
    uint64_t clock = __atomic_load_n(&e->clock, __ATOMIC_SEQ_CST);
    uint64_t horizon = clock + 1, oldest = e->n_txns + 1;
    txn_t **link = &e->active;
    while (*link != NULL) {
        txn_t *a = *link;
        if (LOAD(a->state) != ACTIVE) {
            *link = a->next_active;
            a->next_active = NULL;
            continue;
        }
        uint64_t snapshot = __atomic_load_n(&a->snapshot, __ATOMIC_SEQ_CST);
        if (snapshot != 0 && snapshot < horizon)
            horizon = snapshot;
        if (a->id < oldest)
            oldest = a->id;
        link = &a->next_active;
    }
    STORE(e->horizon, horizon);
    STORE(e->oldest_active, oldest);
    /* The transactions below the candidate had all ended when it was taken, at candidate_clock;
     * once every running snapshot is past that clock, no one needs their read marks. */
    if (horizon > e->candidate_clock) {
        STORE(e->prune_below, e->candidate_ids);
        e->candidate_ids = oldest;
        e->candidate_clock = clock;
        recycle_chunks(e, exclusive);
    }
}

/* A transaction ended (its state set; txns_lock held): what it needed while running goes, and
 * the horizon moves: at once in exclusive mode, else every HORIZON_EVERY ends, so that a commit
 * on the fast path does not read every running transaction's snapshot. The caller wakes
 * waiters. */
void dl__txn_ended(dl_txn_engine_t *e, txn_t *t, int exclusive)
{
    if (exclusive)
        free_running(t); /* else the caller takes it and frees it after txns_lock */
    if (exclusive || ++e->n_ended % HORIZON_EVERY == 0)
        move_horizon(e, exclusive);
}

/*
 * Takes a snapshot for t without txns_lock, so that no commit's horizon (ended) passes it: publish
 * clock + 1 as t's snapshot, then check that the clock did not move meanwhile; else again. A
 * commit publishes its clock before it reads the snapshots (both sequentially consistent), so
 * either it sees ours or we see its clock.
 */
void dl__txn_take_snapshot(dl_txn_engine_t *e, txn_t *t)
{
    /* Before the clock: the transactions below it committed before the clock we read. */
    t->low_water = LOAD(e->oldest_active);
    uint64_t clock = __atomic_load_n(&e->clock, __ATOMIC_SEQ_CST);
    for (;;) {
        __atomic_store_n(&t->snapshot, clock + 1, __ATOMIC_SEQ_CST);
        uint64_t now = __atomic_load_n(&e->clock, __ATOMIC_SEQ_CST);
        if (now == clock)
            return;
        clock = now;
    }
}

/* Commits t (txns_lock held): stamps its versions with the next timestamp, then publishes the
 * clock, so that a snapshot taken from the clock sees all of t's writes or none of them. */
void dl__txn_commit_versions(dl_txn_engine_t *e, txn_t *t)
{
    uint64_t ts = e->clock + 1;
    for (size_t i = 0; i < t->run->written.n; i++)
        STORE(t->run->written.rows[i]->newest->commit_ts, ts);
    __atomic_store_n(&e->clock, ts, __ATOMIC_SEQ_CST); /* before ended reads snapshots */
    STORE(t->commit_ts, ts);
    __atomic_store_n(&t->state, COMMITTED, __ATOMIC_SEQ_CST);
}
