/*
 * The txn engine's insides, shared by its files: engine.c (the statements, their fast paths,
 * commit and rollback), rows.c (the row table and its versions), txns.c (transaction records,
 * begin, snapshots, the horizon, waiting), slab.c (memory for rows and versions), locks.c (what
 * a write or a locking read must wait for: row writers, two-phase locking's shared and
 * predicate locks, serial execution, and deadlock detection) and ssi.c (serializable snapshot
 * isolation's read-write antidependencies).
 *
 * Locking. The common statement (a get or a put at read uncommitted, read committed, snapshot
 * isolation or ssi that has nothing to wait for and no conflict to record) takes only the lock
 * of the stripe its row hashes to; begin and commit take the spin lock txns_lock (engine.c).
 * Everything else (waits, deadlock detection, two-phase locking, serial execution, predicate reads,
 * ssi edges, rollbacks) runs in exclusive mode: mu, txns_lock and every stripe lock, so that
 * nothing else runs; mu alone guards the condition variable that waiting threads sleep on. The
 * functions declared here run in exclusive mode unless they say otherwise. Fields that a fast
 * path reads while another thread may write them are read and written with the atomics below:
 * a version's commit timestamp, a transaction's state and commit timestamp, the clock, the
 * horizon and the counts of rows and transactions.
 */
#ifndef DDIALAB_TXN_ENGINE_INTERNAL_H
#define DDIALAB_TXN_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "txn/engine.h"

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

typedef struct version_s {
    struct version_s *older;
    uint64_t writer;     /* transaction id, 0 for data loaded by setup */
    uint64_t commit_ts;  /* 0 while the writer runs (a version of an aborted writer is unlinked) */
    uint32_t deleted;    /* a tombstone: the row does not exist in this version */
    uint32_t size_class; /* slab.c */
    char value[];        /* "" in a tombstone */
} version_t;

/* A growable set of transaction ids. */
typedef struct ids_s {
    uint64_t *ids;
    uint32_t n, cap;
} ids_t;

typedef struct row_s {
    struct row_s *next; /* hash chain */
    uint64_t hash;
    version_t *newest;   /* NULL: never written (the row exists to carry locks) */
    uint32_t size_class; /* slab.c */
    uint32_t n_versions; /* in the chain from newest */
    ids_t sireads;       /* ssi: transactions that read the row (kept past their commit): marks_here
                          * first, so that most rows need no allocation and no second cache miss */
    uint64_t marks_here[2];
    ids_t shared; /* 2pl: transactions holding a shared lock on the row */
    char key[];
} row_t;

/* A lock on a predicate: 2pl's shared predicate locks and ssi's predicate reads. */
typedef struct plock_s {
    uint64_t txn;
    dl_txn_pred_t pred; /* operand owned by the lock */
} plock_t;

typedef struct plocks_s {
    plock_t *locks;
    size_t n, cap;
} plocks_t;

typedef enum { ACTIVE = 0, COMMITTED, ABORTED } txn_state_t;

/* A list of rows, in `here` while it fits: most transactions need no malloc for it. */
typedef struct rowlist_s {
    row_t **rows; /* here, or from malloc once it outgrew it */
    size_t n, cap;
    row_t *here[4];
} rowlist_t;

/* What a transaction needs only while it runs: allocated at begin, freed when it ends, so that
 * the record that stays (txn_t) is small. */
typedef struct txn_run_s {
    rowlist_t written;   /* rows this transaction wrote, once each */
    rowlist_t ssi_reads; /* ssi: rows read on the fast path, marked at commit (ssi.c) */
    row_t **locked;      /* 2pl: rows it holds a shared lock on */
    size_t n_locked, cap_locked;
    ids_t waits;       /* its blocked statement waits for these transactions */
    int stmt_blocked;  /* the last statement blocked: the next call resumes it */
    row_t **stmt_done; /* update/delete where: rows the blocked statement already did */
    size_t n_stmt_done, cap_stmt_done;
    int stmt_plocked; /* the blocked statement took its predicate lock */
    uint64_t visit;   /* deadlock search: the last search that reached it */
} txn_run_t;

/* Two cache lines each: consecutive transactions, often of different threads, share none. */
typedef struct txn_s {
    _Alignas(64) uint64_t id; /* 0 in a record no transaction has yet */
    dl_txn_level_t level;
    txn_state_t state;
    uint64_t snapshot;          /* what statements read as of; 0 until the first statement */
    uint64_t commit_ts;         /* once committed */
    uint64_t low_water;         /* every transaction below this id ended before the snapshot */
    int doomed;                 /* ssi: chosen to fail at its next statement or commit */
    dl_txn_error_t abort_error; /* why it was rolled back */
    ids_t in, out;  /* ssi: rw-antidependencies in (reader -> us) and out (us -> writer) */
    txn_run_t *run; /* while it runs, else NULL */
    struct txn_s *next_active; /* the engine's list of running ones (txns_lock) */
} txn_t;

/* Transactions live in chunks that never move: a fast path may look one up while begin adds. */
#define TXN_CHUNK_BITS  14
#define TXN_CHUNKS      (1u << 18)
#define TXN_CHUNK_BYTES ((1u << TXN_CHUNK_BITS) * sizeof(txn_t))
#define TXN_POOL        4 /* recycled chunks kept for reuse */

/* The row table's lock stripes: a row's stripe is its hash modulo N_STRIPES (the bucket count is
 * a multiple of it, so a bucket's rows share one stripe). One cache line each. */
#define N_STRIPES 64

/* Memory for the rows and versions of one stripe (slab.c), used under the stripe's lock. */
#define SLAB_STEP   16
#define SLAB_MAX    512
#define SLAB_MALLOC UINT32_MAX /* the size class of a piece from malloc */

typedef struct slab_s {
    void *free[SLAB_MAX / SLAB_STEP]; /* freed pieces by size class, linked through themselves */
    char *cur, *end;                  /* what is left of the stripe's piece of a block */
} slab_t;

typedef struct stripe_s {
    _Alignas(64) pthread_mutex_t mu;
    slab_t slab;
} stripe_t;

/* Fields that every statement reads and few write come first; those that every begin or commit
 * writes share the cache lines of mu, which they are written under; each group starts a line of
 * its own, so that a commit on one core does not evict what statements on the other read. */
struct dl_txn_engine_s {
    row_t **buckets;
    size_t n_buckets;
    txn_t **chunks; /* transaction id is chunks[(id - 1) >> TXN_CHUNK_BITS][(id - 1) & mask] */
    plocks_t predicate_locks; /* 2pl */
    plocks_t predicate_reads; /* ssi */
    uint64_t serial_owner;    /* serial: the transaction running now, 0 when none */
    uint64_t searches;        /* deadlock searches so far (txn_t.visit) */
    ids_t stack;              /* the deadlock search's stack */

    /* Written by every begin and commit, under txns_lock. */
    _Alignas(64) int txns_lock; /* begin and commit: the clock and the running list (engine.c) */
    uint64_t n_txns;
    struct txn_s *active; /* the running transactions, newest first, and some that ended */
    uint64_t n_ended;     /* transactions ended: the horizon is recomputed every few */
    uint64_t candidate_ids, candidate_clock; /* the next prune_below, once the horizon passes */
    uint64_t recycled_below;                 /* chunks below this index were recycled */
    txn_t *pool[TXN_POOL];                   /* recycled chunks, ready for new transactions */
    uint32_t n_pool;

    /* Written by every commit, read by every snapshot. */
    _Alignas(64) uint64_t clock; /* the last commit timestamp handed out */

    /* Written every HORIZON_EVERY commits, read by statements. */
    _Alignas(64) uint64_t horizon; /* no running transaction reads as of a snapshot below this */
    uint64_t oldest_active;        /* every transaction below this id has ended */
    uint64_t prune_below; /* ... and committed before the horizon: their read marks can go */

    _Alignas(64) pthread_mutex_t mu; /* waiting (ended); first in exclusive mode */
    uint32_t waiters;                /* threads in dl_txn_engine_wait */
    pthread_cond_t ended;            /* broadcast whenever a transaction commits or aborts */

    _Alignas(64) size_t n_rows;
    pthread_mutex_t blocks_mu; /* slab.c's blocks */
    void **blocks;
    size_t n_blocks, cap_blocks, block_used;
    _Alignas(64) stripe_t stripes[N_STRIPES];
};

/* ---- slab.c ---- */

/* size bytes from stripe slab s (its lock held); *size_class says how to give it back. */
void *dl__txn_slab_alloc(dl_txn_engine_t *e, slab_t *s, size_t size, uint32_t *size_class);
void dl__txn_slab_free(slab_t *s, void *p, uint32_t size_class);
/* Frees every block (engine_free, after the pieces from malloc). */
void dl__txn_slab_release(dl_txn_engine_t *e);
/* size zeroed bytes, in huge pages when large (the row table, the transactions' chunks). */
void *dl__txn_zeroed_pages(size_t size);
/* Frees what dl__txn_zeroed_pages(size) gave. */
void dl__txn_free_pages(void *p, size_t size);

/* Exclusive mode: mu, txns_lock, then every stripe in order. */
void dl__txn_lock_all(dl_txn_engine_t *e);
void dl__txn_unlock_all(dl_txn_engine_t *e);

/* Transaction id's record, or NULL; any mode (records never move). */
txn_t *dl__txn_of(dl_txn_engine_t *e, uint64_t id);
int dl__txn_ids_add(ids_t *set, uint64_t id); /* 0 (also when present) or -ENOMEM */
int dl__txn_ids_has(const ids_t *set, uint64_t id);
void dl__txn_ids_remove(ids_t *set, uint64_t id);
void dl__txn_ids_free(ids_t *set);
/* Adds r to a row list (growing it); 0 or -ENOMEM. */
int dl__txn_rows_push(row_t ***list, size_t *n, size_t *cap, row_t *r);
/* Adds r to l (in l->here while there is room); 0 or -ENOMEM. */
int dl__txn_rowlist_push(rowlist_t *l, row_t *r);
void dl__txn_rowlist_free(rowlist_t *l);
int dl__txn_plocks_add(plocks_t *set, uint64_t txn, const dl_txn_pred_t *pred);
void dl__txn_plocks_free(plocks_t *set);
/* Rolls back transaction t (id) for error: its versions leave the rows it wrote, its locks go. */
void dl__txn_roll_back(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error);
/* The newest committed version of r (skipping an uncommitted head), or NULL. */
const version_t *dl__txn_committed(const row_t *r);

/* ---- rows.c ---- */

/* Inline: every statement on the fast path runs these three. */
static inline uint64_t dl__txn_hash_key(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static inline stripe_t *dl__txn_stripe_of(dl_txn_engine_t *e, uint64_t hash)
{
    return &e->stripes[hash & (N_STRIPES - 1)];
}

/* The row for key (hash h), or NULL; key's stripe held. */
static inline row_t *dl__txn_find_row_hashed(dl_txn_engine_t *e, const char *key, uint64_t h)
{
    for (row_t *r = e->buckets[h & (e->n_buckets - 1)]; r != NULL; r = r->next)
        if (r->hash == h && strcmp(r->key, key) == 0)
            return r;
    return NULL;
}
row_t *dl__txn_find_row(dl_txn_engine_t *e, const char *key);
/* Adds an empty row for key (hash h); key's stripe held and dl__txn_room_for_row. */
row_t *dl__txn_new_row(dl_txn_engine_t *e, const char *key, uint64_t h);
/* Whether a row can be added without growing the table (which takes exclusive mode). */
int dl__txn_room_for_row(dl_txn_engine_t *e);
/* The row for key, created empty if need be, the table grown (exclusive mode); NULL: no memory. */
row_t *dl__txn_get_row(dl_txn_engine_t *e, const char *key);
/* A version of r by writer of value (NULL: a tombstone), not linked yet; r's stripe held. */
version_t *dl__txn_new_version(dl_txn_engine_t *e, const row_t *r, uint64_t writer,
                               const char *value);
void dl__txn_free_version(dl_txn_engine_t *e, const row_t *r, version_t *v);
/* Frees the versions of r no snapshot can read any more, once its chain is long enough. */
void dl__txn_prune_versions(dl_txn_engine_t *e, row_t *r);

/* ---- txns.c ---- */

/* txns_lock (any mode that does not hold it: it is not recursive). */
void dl__txn_txns_lock(dl_txn_engine_t *e);
void dl__txn_txns_unlock(dl_txn_engine_t *e);
/* Takes t's snapshot without txns_lock, so that no horizon passes it (a stripe held). */
void dl__txn_take_snapshot(dl_txn_engine_t *e, txn_t *t);
/* Commits t (txns_lock held): stamps its versions, then publishes the clock. */
void dl__txn_commit_versions(dl_txn_engine_t *e, txn_t *t);
/* t ended, its state set (txns_lock held): the horizon moves; in exclusive mode its running part
 * is freed here, else the caller takes t->run and frees it (dl__txn_free_run) after the lock. */
void dl__txn_ended(dl_txn_engine_t *e, txn_t *t, int exclusive);
void dl__txn_free_run(txn_run_t *run);
/* Frees a record's running part and ssi edges (dl_txn_engine_free). */
void dl__txn_free_txn(txn_t *t);
/* Wakes threads in dl_txn_engine_wait, if any; mu held when mu_held, else taken. */
void dl__txn_wake_waiters(dl_txn_engine_t *e, int mu_held);

/* ---- locks.c ---- */

/* The transactions a write of row r by t must wait for: r's uncommitted writer, holders of a
 * shared lock on it, and 2pl predicate locks that the row's current value (old) or the value
 * written (new_value, NULL for a delete) satisfies. Adds them to t->waits; -ENOMEM. */
int dl__txn_write_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r,
                            const char *new_value);
/* The transactions a locking read (2pl) of row r waits for: its uncommitted writer. */
int dl__txn_read_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r);
/* The uncommitted writers of rows that a 2pl predicate read of pred must wait for. */
int dl__txn_scan_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const dl_txn_pred_t *pred);
/* After conflicts were gathered into t->waits: OK when there are none, else BLOCKED on the first
 * of them, or ABORTED (rolled back) when waiting would close a cycle of waits: a deadlock, and
 * the transaction whose request closes it is the victim. */
dl_txn_outcome_t dl__txn_wait_or_go(dl_txn_engine_t *e, txn_t *t, uint64_t id);
/* Takes a 2pl shared lock on r for t; 0 or -ENOMEM. */
int dl__txn_lock_shared(txn_t *t, uint64_t id, row_t *r);
/* Releases every lock t holds (2pl shared and predicate locks, serial execution). */
void dl__txn_release_locks(dl_txn_engine_t *e, txn_t *t, uint64_t id);

/* ---- ssi.c ---- */

/* Records that ssi transaction t read row r as of its snapshot, and flags the rw-antidependencies
 * to the writers of newer versions it did not see. ABORTED when t must fail. */
dl_txn_outcome_t dl__txn_ssi_read(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r);
/* The same for a predicate read: the rows it saw and the rows it did not see are covered. */
dl_txn_outcome_t dl__txn_ssi_scan(dl_txn_engine_t *e, txn_t *t, uint64_t id,
                                  const dl_txn_pred_t *pred);
/* Records that transaction id read row r (its read mark), dropping marks no longer needed; may run
 * on a fast path with r's stripe held. 0 or -ENOMEM. */
int dl__txn_ssi_mark(dl_txn_engine_t *e, row_t *r, uint64_t id);
/* Before ssi transaction id commits (no lock held): marks the rows it read on the fast path that
 * it did not write, each under its stripe, emptying t->run->ssi_reads. 1 when done (or when id is
 * no running ssi transaction); 0 when a read row has a version id does not see, which the slow
 * commit then flags (dl__txn_ssi_commit settles what is left). */
int dl__txn_ssi_settle_fast(dl_txn_engine_t *e, uint64_t id);
/* The same in exclusive mode, for every statement on the slow path and the slow commit: each
 * pending read flags the writers of the versions t did not see, then gets its mark, so that
 * whatever the statement finds is judged with every read t made so far. 1 when t must fail. */
int dl__txn_ssi_settle(dl_txn_engine_t *e, txn_t *t, uint64_t id);
/* Whether a write of r by ssi transaction t finds no concurrent reader to flag: the fast path
 * (r's stripe held) may write without ssi.c's checks when it does and no predicate read exists. */
int dl__txn_ssi_no_readers(dl_txn_engine_t *e, const txn_t *t, uint64_t id, const row_t *r);
/* Flags the rw-antidependencies from readers of row r (by row or by predicate) to ssi
 * transaction t, which writes new_value (NULL: deletes) over it. ABORTED when t must fail. */
dl_txn_outcome_t dl__txn_ssi_write(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r,
                                   const char *new_value);
/* Before t commits: settles the reads settle_fast left (their flags and marks); ABORTED when t
 * was doomed or one of them completes a dangerous structure; else dooms the pivots for which t
 * is the transaction that commits first. */
dl_txn_outcome_t dl__txn_ssi_commit(dl_txn_engine_t *e, txn_t *t, uint64_t id);

#endif
