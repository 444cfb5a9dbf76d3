/*
 * Internal to the history and its checker: the structures shared by history.c (recording and the
 * anomalies' names), history_model.c (the checker's model of the history: transactions, keys,
 * predicates and each key's version order, and every read turned into edges of the serialization
 * graph) and history_cycles.c (cycles inside strongly connected components, their classes, and
 * dl_txn_hist_check). See txn/history.h for the definitions.
 */
#ifndef DDIALAB_TXN_HISTORY_INTERNAL_H
#define DDIALAB_TXN_HISTORY_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "txn/history.h"

#define NONE UINT32_MAX

/* ---- Recording --------------------------------------------------------------------------- */

enum { OP_READ = 0, OP_WRITE, OP_SCAN, OP_ROW };

/* One operation. Strings are offsets into the record's text; NONE is "absent" (a read that found
 * nothing, a deletion, a predicate without operand). OP_SCAN is followed by its OP_ROW rows. */
typedef struct op_s {
    uint8_t kind;
    uint8_t all, field, cmp; /* OP_SCAN: the predicate */
    uint32_t key;            /* OP_SCAN: the operand */
    uint32_t value;          /* OP_SCAN: how many rows follow */
    union {
        uint64_t writer; /* OP_READ, OP_ROW */
        int64_t mod;     /* OP_SCAN */
    } u;
} op_t;

struct dl_txn_hist_txn_s {
    dl_txn_hist_t *hist;
    uint64_t id, floor, commit_ts; /* floor: commits known to precede the first statement */
    dl_txn_level_t level;
    int committed, failed;
    op_t *ops;
    size_t n_ops, cap_ops;
    char *text;
    size_t n_text, cap_text;
};

typedef struct order_s {
    char *key;
    uint64_t *writers;
    size_t n;
} order_t;

struct dl_txn_hist_s {
    pthread_mutex_t mu;
    order_t *orders; /* declared version orders */
    size_t n_orders;
    dl_txn_hist_txn_t initial; /* setup data, as the writes of a committed transaction 0 */
    dl_txn_hist_txn_t **txns;  /* ended transactions, in the order they ended */
    size_t n_txns, cap_txns;
    uint64_t watermark; /* the highest commit timestamp recorded */
    int incomplete;
};

/* ---- The checker's model ----------------------------------------------------------------- */

enum { E_WW = 0, E_WR, E_RW, E_PWR, E_PRW }; /* edge kinds; P: predicate */
#define BIT(kind) (1u << (kind))
#define DEPS      (BIT(E_WW) | BIT(E_WR) | BIT(E_PWR))
#define ALL_EDGES (DEPS | BIT(E_RW) | BIT(E_PRW))

typedef struct version_s {
    uint32_t txn; /* index into the checker's transactions; 0: the initial version */
    uint32_t op;  /* the installing write; NONE: unborn (the key did not exist) */
    uint64_t ts;
} version_t;

typedef struct key_s {
    const char *name;
    version_t *v; /* v[0] initial, then in commit order (or as declared) */
    uint32_t n, cap;
    int declared; /* the version order was declared: not by timestamp */
} keyrec_t;

typedef struct installed_s {
    uint32_t key, op, version; /* a committed transaction's last write of key (key first: */
                               /* history_model.c's find_by_key) */
} installed_t;

typedef struct txn_s {
    dl_txn_hist_txn_t *rec;
    uint32_t *op_key; /* per operation: key index; OP_SCAN: predicate index */
    installed_t *inst;
    uint32_t n_inst;
} txn_t;

/* Per predicate and key that ever matches it: match flag and run bounds of every version. */
typedef struct pred_key_s {
    uint32_t key; /* first: history_model.c's find_by_key */
    uint8_t *match;
    uint32_t *run_start, *run_end;
} pred_key_t;

typedef struct pred_s {
    dl_txn_pred_t pred; /* operand points into a record's text */
    char *text;         /* "value == 3" */
    pred_key_t *keys;   /* by key index */
    uint32_t n_keys, cap_keys;
    int built;
} pred_t;

typedef struct edge_s {
    uint32_t from, to, key, pred; /* pred: NONE for item edges */
    uint8_t kind;
} edge_t;

typedef struct checker_s {
    dl_txn_hist_t *h;
    size_t max_examples;
    uint64_t budget;
    txn_t *t;
    uint32_t n_t;
    uint32_t *id_slots; /* open addressing: transaction id -> index + 1 */
    size_t id_cap;
    keyrec_t *keys;
    uint32_t n_keys, cap_keys, *key_slots; /* key name -> index + 1 */
    size_t key_cap;
    pred_t *preds;
    uint32_t n_preds, cap_preds, all_pred;
    edge_t *edges;
    size_t n_edges, cap_edges;
    uint32_t *adj;     /* adjacency: edges[adj[v] .. adj[v + 1]) leave v */
    uint32_t *written; /* per key: index of the transaction that wrote it before (scratch) */
    uint32_t *seen, seen_stamp;
    uint32_t *stamp, gen, *parent, *queue; /* breadth-first search */
    uint64_t *cycles;                      /* hashes of the cycles counted */
    size_t n_cycles, cap_cycles;
    dl_txn_hist_example_t *ex[DL_TXN_N_ANOMALIES];
    size_t n_ex[DL_TXN_N_ANOMALIES];
    dl_txn_hist_report_t *r;
} checker_t;

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t txn_id(const checker_t *c, uint32_t i)
{
    return c->t[i].rec->id;
}

/* ---- history_model.c --------------------------------------------------------------------- */

/* Collects the ended transactions (index 0: setup), indexes them by id, interns keys and
 * predicates, finds every committed transaction's installed writes and orders each key's
 * versions. 0, -ENOMEM, or -EINVAL when two transactions have one id (or one has id 0). */
int dl__txn_hist_build_model(checker_t *c);
/* Turns every read of every committed transaction into edges (and read anomalies), and adds the
 * ww edges. 0 or -ENOMEM. */
int dl__txn_hist_build_edges(checker_t *c);
/* Sorts the edges by source, keeps one per (from, to, kind), and indexes them (c->adj).
 * 0 or -ENOMEM. */
int dl__txn_hist_build_graph(checker_t *c);

#endif
