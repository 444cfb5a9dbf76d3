/*
 * The txn lab's engine: a multi-version in-memory key-value store with transactions at several
 * isolation levels. Pure: no I/O, no clocks, no threads of its own. Thread-safe: every call takes
 * the engine's mutex, so real threads can run transactions against one engine.
 *
 * Statements never sleep inside the engine. A statement that must wait for another transaction
 * (a row it writes is written by a transaction still running) returns DL_TXN_BLOCKED with the id
 * of the transaction it waits for and changes nothing; the caller runs the same statement again
 * once that transaction has ended (dl_txn_engine_wait blocks a thread until then). That is what
 * lets the scenario runner show "blocked" and go on with the next line, the HTTP server hang a
 * request, and the stress tool run real threads, all on the same engine.
 *
 * Levels (see docs/txn.md for what each one allows and why):
 * - read-uncommitted: reads see the newest version, committed or not; writes wait for the
 *   writer of a row (no dirty writes).
 * - read-committed: each statement reads the data committed when it started; a write waits for
 *   a concurrent writer of the row and then goes on with the row as that writer left it.
 * - snapshot (repeatable-read): every statement reads the snapshot taken at the transaction's
 *   first statement; a write to a row that a concurrent transaction wrote waits for it and fails
 *   with a serialization failure if it committed (first updater wins), or goes on if it aborted.
 */
#ifndef DDIALAB_TXN_ENGINE_H
#define DDIALAB_TXN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DL_TXN_READ_UNCOMMITTED = 0,
    DL_TXN_READ_COMMITTED,
    DL_TXN_SNAPSHOT,
    DL_TXN_SERIAL, /* serializable by actual serial execution: one transaction at a time */
    DL_TXN_2PL,    /* serializable by strict two-phase locking with predicate locks */
    DL_TXN_SSI,    /* serializable snapshot isolation */
    DL_TXN_N_LEVELS
} dl_txn_level_t;

/* "read-uncommitted", "read-committed", "snapshot", "serial", "2pl", "ssi". */
const char *dl_txn_level_name(dl_txn_level_t level);
/* Parses a level name (also "repeatable-read" for snapshot and "serializable" for ssi).
 * 0, or -EINVAL. */
int dl_txn_level_parse(const char *name, dl_txn_level_t *level);

typedef enum {
    DL_TXN_OK = 0,
    DL_TXN_BLOCKED, /* nothing done; run the statement again once `waiting_for` has ended */
    DL_TXN_ABORTED, /* the transaction was rolled back: `error` says why */
    DL_TXN_REFUSED, /* the statement failed, the transaction goes on (e.g. a duplicate key) */
} dl_txn_status_t;

typedef enum {
    DL_TXN_ERR_NONE = 0,
    DL_TXN_ERR_SERIALIZATION, /* could not serialize access due to concurrent update */
    DL_TXN_ERR_DUPLICATE_KEY, /* insert of a key that exists */
    DL_TXN_ERR_NOT_ACTIVE,    /* the transaction has ended */
    DL_TXN_ERR_NO_MEMORY,
    DL_TXN_ERR_DEADLOCK,    /* chosen as the victim of a deadlock */
    DL_TXN_ERR_SSI,         /* could not serialize access due to read/write dependencies */
    DL_TXN_ERR_NOT_INTEGER, /* value + N over a value that is not an integer */
} dl_txn_error_t;

/* A short message for an error, in the words PostgreSQL uses where it has them. */
const char *dl_txn_error_message(dl_txn_error_t error);

typedef struct dl_txn_outcome_s {
    dl_txn_status_t status;
    dl_txn_error_t error;
    uint64_t waiting_for; /* DL_TXN_BLOCKED: the transaction that holds the row */
    uint64_t commit_ts;   /* dl_txn_commit, DL_TXN_OK: the transaction's commit timestamp */
} dl_txn_outcome_t;

/* A predicate over a row: `key` or `value` compared with an operand, optionally `value % mod`.
 * Comparisons are numeric when both sides are integers, else by bytes. */
typedef enum { DL_TXN_FIELD_KEY = 0, DL_TXN_FIELD_VALUE } dl_txn_field_t;
typedef enum {
    DL_TXN_CMP_EQ = 0,
    DL_TXN_CMP_NE,
    DL_TXN_CMP_LT,
    DL_TXN_CMP_LE,
    DL_TXN_CMP_GT,
    DL_TXN_CMP_GE
} dl_txn_cmp_t;
typedef struct dl_txn_pred_s {
    int all; /* 1: every row (no where clause) */
    dl_txn_field_t field;
    int64_t mod; /* 0: none; else compare (field % mod) with operand */
    dl_txn_cmp_t cmp;
    const char *operand; /* borrowed for the call */
} dl_txn_pred_t;

/* One row a read returned. Strings are owned by the row list. */
typedef struct dl_txn_row_s {
    char *key;
    char *value;
    uint64_t writer; /* the transaction whose version this is; 0 for data loaded by setup */
} dl_txn_row_t;

/* What an update sets: value = value + delta (add), or value = a constant. */
typedef struct dl_txn_set_s {
    int add;
    int64_t delta;
    const char *value; /* add == 0; borrowed for the call */
} dl_txn_set_t;

typedef struct dl_txn_rows_s {
    dl_txn_row_t *rows;
    size_t n, cap;
} dl_txn_rows_t;
void dl_txn_rows_free(dl_txn_rows_t *rows);
/* Appends copies of key and value; 0 or -ENOMEM (the list is unchanged). */
int dl_txn_rows_add(dl_txn_rows_t *rows, const char *key, const char *value, uint64_t writer);

typedef struct dl_txn_engine_s dl_txn_engine_t;

/* A new, empty engine; NULL when out of memory. dl_txn_engine_free ends it (no calls may be in
 * flight). */
dl_txn_engine_t *dl_txn_engine_new(void);
void dl_txn_engine_free(dl_txn_engine_t *e);

/* Sets key to value as committed data outside any transaction (the scenario's `setup`): 0,
 * -ENOMEM, or -EBUSY when a running transaction has written key. */
int dl_txn_engine_load(dl_txn_engine_t *e, const char *key, const char *value);

/* Starts a transaction; *id is its id (1, 2, ...). Its snapshot, at levels that keep one, is
 * taken at its first statement, as in PostgreSQL. 0 or -ENOMEM. */
int dl_txn_begin(dl_txn_engine_t *e, dl_txn_level_t level, uint64_t *id);

/* Reads key: *value is a malloc'd copy (caller frees) or NULL when the key does not exist for
 * this transaction. */
dl_txn_outcome_t dl_txn_get(dl_txn_engine_t *e, uint64_t id, const char *key, char **value);
/* dl_txn_get that also says whose version it read (*writer: transaction id, 0 for setup data or
 * when the key does not exist), for histories. */
dl_txn_outcome_t dl_txn_get_version(dl_txn_engine_t *e, uint64_t id, const char *key, char **value,
                                    uint64_t *writer);
/* Rows matching pred, in key order (integers numerically, before other keys). */
dl_txn_outcome_t dl_txn_scan(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                             dl_txn_rows_t *out);
/* Writes key = value, creating it if needed. */
dl_txn_outcome_t dl_txn_put(dl_txn_engine_t *e, uint64_t id, const char *key, const char *value);
/* Creates key = value; REFUSED with DL_TXN_ERR_DUPLICATE_KEY if it exists (after waiting for an
 * uncommitted insert of the same key, as a unique index does). */
dl_txn_outcome_t dl_txn_insert(dl_txn_engine_t *e, uint64_t id, const char *key, const char *value);
/* Deletes key; *deleted says whether a row was there. */
dl_txn_outcome_t dl_txn_delete(dl_txn_engine_t *e, uint64_t id, const char *key, int *deleted);
/* Sets the rows matching pred, in key order; *n how many. A statement that blocks part-way keeps
 * what it did so far: run it again (same arguments) once the other transaction ended and it
 * goes on from the row it waited for, re-checking that row against pred as PostgreSQL does. */
dl_txn_outcome_t dl_txn_update(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                               const dl_txn_set_t *set, size_t *n);
/* Deletes the rows matching pred; resumable as dl_txn_update. */
dl_txn_outcome_t dl_txn_delete_where(dl_txn_engine_t *e, uint64_t id, const dl_txn_pred_t *pred,
                                     size_t *n);
dl_txn_outcome_t dl_txn_commit(dl_txn_engine_t *e, uint64_t id);
/* The commit timestamp of a committed transaction (its place in the order of commits, which is
 * the version order of every key), else 0. The engine forgets a transaction once no running one
 * can conflict with it (its record is recycled), and then this is 0 too: a caller that needs the
 * timestamp takes it from dl_txn_commit's outcome. */
uint64_t dl_txn_commit_ts(dl_txn_engine_t *e, uint64_t id);
dl_txn_outcome_t dl_txn_abort(dl_txn_engine_t *e, uint64_t id);

/* 1 while transaction id is running (neither committed nor aborted). */
int dl_txn_active(dl_txn_engine_t *e, uint64_t id);
/* Blocks the calling thread until transaction id has ended. */
void dl_txn_engine_wait(dl_txn_engine_t *e, uint64_t id);

/* The committed state, every key with its newest committed value, in key order. */
int dl_txn_engine_committed(dl_txn_engine_t *e, dl_txn_rows_t *out);

#endif
