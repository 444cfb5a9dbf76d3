/*
 * The txn engine's insides, shared by its files: engine.c (rows, versions, transactions and the
 * statements), locks.c (what a write or a locking read must wait for: row writers, two-phase
 * locking's shared and predicate locks, serial execution, and deadlock detection) and ssi.c
 * (serializable snapshot isolation's read-write antidependencies). Every function here runs with
 * the engine's mutex held.
 */
#ifndef DDIALAB_TXN_ENGINE_INTERNAL_H
#define DDIALAB_TXN_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "txn/engine.h"

typedef struct version_s {
    struct version_s *older;
    uint64_t writer;    /* transaction id, 0 for data loaded by setup */
    uint64_t commit_ts; /* 0 while the writer runs (a version of an aborted writer is unlinked) */
    int deleted;        /* a tombstone: the row does not exist in this version */
    char *value;
} version_t;

/* A growable set of transaction ids. */
typedef struct ids_s {
    uint64_t *ids;
    uint32_t n, cap;
} ids_t;

typedef struct row_s {
    struct row_s *next; /* hash chain */
    uint64_t hash;
    char *key;
    version_t *newest; /* NULL: never written (the row exists to carry locks) */
    ids_t shared;      /* 2pl: transactions holding a shared lock on the row */
    ids_t sireads;     /* ssi: transactions that read the row (kept past their commit) */
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

typedef struct txn_s {
    dl_txn_level_t level;
    txn_state_t state;
    uint64_t snapshot;  /* what statements read as of; 0 until the first statement */
    uint64_t commit_ts; /* once committed */
    row_t **written;    /* rows this transaction wrote, once each */
    size_t n_written, cap_written;
    row_t **locked; /* 2pl: rows it holds a shared lock on */
    size_t n_locked, cap_locked;
    ids_t waits;       /* its blocked statement waits for these transactions */
    int stmt_blocked;  /* the last statement blocked: the next call resumes it */
    row_t **stmt_done; /* update/delete where: rows the blocked statement already did */
    size_t n_stmt_done, cap_stmt_done;
    int stmt_plocked; /* the blocked statement already took its predicate lock */
    int doomed;       /* ssi: chosen to fail at its next statement or commit */
    ids_t in, out;    /* ssi: rw-antidependencies in (reader -> us) and out (us -> writer) */
    dl_txn_error_t abort_error; /* why it was rolled back */
    uint64_t visit;             /* deadlock search: the search that last reached it */
} txn_t;

struct dl_txn_engine_s {
    pthread_mutex_t mu;
    pthread_cond_t ended; /* broadcast whenever a transaction commits or aborts */
    row_t **buckets;
    size_t n_buckets, n_rows;
    txn_t *txns; /* txns[id - 1] */
    size_t n_txns, cap_txns;
    uint64_t clock;           /* the last commit timestamp handed out */
    uint64_t serial_owner;    /* serial: the transaction running now, 0 when none */
    plocks_t predicate_locks; /* 2pl */
    plocks_t predicate_reads; /* ssi */
    uint64_t first_active;    /* no transaction below this id is still running */
    uint64_t horizon;         /* no running transaction reads as of a snapshot below this */
    uint64_t searches;        /* deadlock searches so far (txn_t.visit) */
    ids_t stack;              /* the deadlock search's stack */
};

txn_t *dl__txn_of(dl_txn_engine_t *e, uint64_t id);
int dl__txn_ids_add(ids_t *set, uint64_t id); /* 0 (also when present) or -ENOMEM */
int dl__txn_ids_has(const ids_t *set, uint64_t id);
void dl__txn_ids_free(ids_t *set);
/* Adds r to a row list (growing it); 0 or -ENOMEM. */
int dl__txn_rows_push(row_t ***list, size_t *n, size_t *cap, row_t *r);
int dl__txn_plocks_add(plocks_t *set, uint64_t txn, const dl_txn_pred_t *pred);
void dl__txn_plocks_free(plocks_t *set);
/* Rolls back transaction t (id) for error: its versions leave the rows it wrote, its locks go. */
void dl__txn_roll_back(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error);
/* The newest committed version of r (skipping an uncommitted head), or NULL. */
const version_t *dl__txn_committed(const row_t *r);

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
/* Flags the rw-antidependencies from readers of row r (by row or by predicate) to ssi
 * transaction t, which writes new_value (NULL: deletes) over it. ABORTED when t must fail. */
dl_txn_outcome_t dl__txn_ssi_write(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r,
                                   const char *new_value);
/* Before t commits: ABORTED when t was doomed; else dooms the pivots for which t is the
 * transaction that commits first. */
dl_txn_outcome_t dl__txn_ssi_commit(dl_txn_engine_t *e, txn_t *t, uint64_t id);

#endif
