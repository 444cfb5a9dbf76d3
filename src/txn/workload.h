/*
 * The workloads of "ddialab txn stress": what each thread's transactions do, the statements'
 * retry rules, and the invariants checked by audits and at the end of a run.
 *
 * - bank: N accounts with a starting balance. A transfer reads two accounts and writes both (a
 *   lost update creates or destroys money); an audit reads every account one by one and must see
 *   the starting total (read skew makes it see another).
 * - counter: N hot counters. An increment reads a counter and writes it + 1; the final values
 *   must add up to the committed increments (the difference is lost updates).
 * - write-skew: N shifts with two doctors each, on call (1) or not (0). Going off call reads both
 *   doctors of the shift and takes one off only if both are on; going back on call reads a doctor
 *   and puts it back on. An audit reads every doctor; a shift with nobody on call breaks the rule.
 * - phantom: N meeting-room slots, booked by rows whose value is the slot. Booking checks with a
 *   predicate read (value == slot) that the slot is free and inserts a booking row; cancelling
 *   deletes the slot's bookings; an audit scans every row. A slot with two bookings is a double
 *   booking. The engine holds booking rows only, so no other row can match a predicate.
 *
 * Statements that block wait for the transaction they wait for (dl_txn_engine_wait) and run
 * again. A transaction that is rolled back (serialization failure, deadlock victim, ...) is
 * counted by reason and retried from its start with the same choices after a short random
 * back-off, as applications do. A statement the engine refuses (a duplicate key, say) rolls the
 * transaction back the same way.
 */
#ifndef DDIALAB_TXN_WORKLOAD_H
#define DDIALAB_TXN_WORKLOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "txn/engine.h"
#include "txn/history.h"

typedef enum {
    DL_TXN_WORKLOAD_BANK = 0,
    DL_TXN_WORKLOAD_COUNTER,
    DL_TXN_WORKLOAD_WRITE_SKEW,
    DL_TXN_WORKLOAD_PHANTOM,
    DL_TXN_N_WORKLOADS
} dl_txn_workload_kind_t;

/* "bank", "counter", "write-skew", "phantom". */
const char *dl_txn_workload_name(dl_txn_workload_kind_t kind);
/* 0, or -EINVAL for an unknown name. */
int dl_txn_workload_parse(const char *name, dl_txn_workload_kind_t *kind);

typedef struct dl_txn_workload_s {
    dl_txn_workload_kind_t kind;
    int64_t keys;          /* accounts, counters, shifts or slots; 0: the workload's default */
    int64_t audit_percent; /* share of transactions that are audits (bank, write-skew, phantom) */
    int threads;
} dl_txn_workload_t;

/* The default number of keys of a workload: few, so that transactions collide. */
int64_t dl_txn_workload_default_keys(dl_txn_workload_kind_t kind);
/* Starting balance of a bank account. */
#define DL_TXN_BANK_BALANCE 100

/* Up to 32 abort reasons, indexed by dl_txn_error_t (later codes share the last slot). */
#define DL_TXN_STRESS_REASONS 32

/* What one thread did. Counters a progress line reads while the thread runs are atomic. */
typedef struct dl_txn_stats_s {
    _Atomic uint64_t committed; /* transactions (of every kind) */
    _Atomic uint64_t aborted;   /* attempts rolled back (and retried) */
    uint64_t aborts[DL_TXN_STRESS_REASONS];
    uint64_t blocked;    /* statements that waited for another transaction */
    uint64_t audits;     /* committed audits */
    uint64_t bad_audits; /* committed audits that saw the invariant broken */
    uint64_t increments; /* counter: committed increments */
    uint64_t changes;    /* write-skew: doctors taken off call; phantom: bookings made */
} dl_txn_stats_t;

/* One thread's state. The caller fills the fields above `stats` and zeroes the rest. */
typedef struct dl_txn_worker_s {
    dl_txn_engine_t *engine;
    dl_txn_level_t level;
    const dl_txn_workload_t *workload;
    dl_txn_hist_t *hist; /* NULL: no history is recorded */
    const atomic_int *stop;
    int thread; /* 0, 1, ... */
    int yield;  /* sched_yield between statements */
    uint64_t rng;
    dl_txn_stats_t stats;
    /* the transaction running now */
    uint64_t id;
    dl_txn_hist_txn_t *record;
} dl_txn_worker_t;

/* Loads the workload's starting data into the engine (and the history when not NULL).
 * 0 or -ENOMEM. */
int dl_txn_workload_setup(const dl_txn_workload_t *w, dl_txn_engine_t *e, dl_txn_hist_t *h);

/* Runs one transaction of the workload, chosen at random, retrying it until it commits or *stop
 * is set. Returns 0, or -ENOMEM when the engine or the history ran out of memory. */
int dl_txn_workload_step(dl_txn_worker_t *worker);

/* A broken invariant: name for JSON, what for people (one line). */
typedef struct dl_txn_violation_s {
    const char *name;
    uint64_t count;
    char what[256];
} dl_txn_violation_t;

/* What the run left behind, judged once every thread has stopped. */
typedef struct dl_txn_verdict_s {
    dl_txn_violation_t violations[4];
    size_t n_violations;   /* only the kinds with a non-zero count */
    uint64_t total;        /* sum of the counts */
    int64_t final_value;   /* bank: total money; counter: sum of counters; else bad keys */
    int64_t expected;      /* what final_value should be */
    char description[256]; /* the workload in a line: "8 accounts of 100, 15% audits" */
} dl_txn_verdict_t;

/* Judges the run from the engine's committed state and the threads' summed stats. 0, -ENOMEM. */
int dl_txn_workload_verdict(const dl_txn_workload_t *w, dl_txn_engine_t *e,
                            const dl_txn_stats_t *total, dl_txn_verdict_t *verdict);

#endif
