/*
 * Histories of the txn lab and a checker for Adya's anomalies.
 *
 * A history is what clients saw: for each transaction (by engine id) its reads with the writer
 * of the version each one observed, its writes, its predicate reads with the rows they returned,
 * and how it ended. The checker builds Adya's direct serialization graph over the committed
 * transactions ("Weak Consistency: A Generalized Theory and Optimistic Implementations for
 * Distributed Transactions", Adya 1999, chapter 3) and names the anomalies it finds.
 *
 * Versions. The version order of every key is the commit order of its writers (the engine's
 * commit timestamps), after the initial version: the data loaded by setup, or "unborn" when
 * setup did not load the key. A transaction that writes a key several times installs its last
 * write; the earlier ones are intermediate versions. A deletion installs a tombstone.
 *
 * Edges (Ti -> Tj; ww, wr and rw are Adya's write-, read- and anti-dependencies):
 * - ww: Tj installs the version of a key that follows Ti's.
 * - wr: Tj read Ti's version of a key.
 * - rw: Ti read a version of a key and Tj installs the next one.
 * - predicate wr / rw: Ti's predicate read observed (or Tj's write later changes) whether a row
 *   matches: Tj installs the version that made a row match or stop matching, at or before what
 *   Ti observed (wr, Tj -> Ti) or right after it (rw, Ti -> Tj). Rows that do not exist match
 *   nothing, so an insert that Ti's predicate read did not see is a predicate rw (a phantom).
 *
 * Which version did a read observe? A read that returned a value names its writer (the engine
 * says). A read that found nothing (an absent key, or a row a predicate read did not return) did
 * not: the checker knows only that it observed an absent (non-matching) version that was current
 * at some moment while the reader ran, after every commit recorded before dl_txn_hist_begin and
 * before the reader's own commit. When exactly one run of absent (non-matching) versions fits
 * that window it is the one; when several fit (another transaction created and removed the row
 * while the reader ran) the read is ambiguous and adds no edge, so the checker never invents a
 * cycle; the report counts such reads. At read-uncommitted a read may also have found nothing
 * because of an uncommitted deletion, which the history cannot see: such a read is ambiguous too.
 *
 * Anomalies (a cycle is reported as the most specific class it belongs to):
 * - G0 dirty write: a cycle of ww edges.
 * - G1a aborted read: a committed transaction read a version whose writer aborted.
 * - G1b intermediate read: a committed transaction read a version that its writer overwrote
 *   (compared by value: not the writer's last write of the key).
 * - G1c circular information flow: a cycle of ww and wr edges.
 * - G-single: a cycle with exactly one anti-dependency edge (read skew, lost update).
 * - G2-item: a cycle with item anti-dependencies only (write skew).
 * - G2: a cycle with at least one predicate anti-dependency (phantoms).
 * - impossible read: no version order explains a read (a value the named writer never wrote, a
 *   version of setup data that setup did not load, a scan that missed a row that matched for the
 *   whole life of the reader). An engine bug, never a level's permitted anomaly.
 *
 * Cycles are found inside strongly connected components (iterative Tarjan) as a shortest cycle
 * through each candidate edge (breadth-first search), most specific class first. A cycle counts
 * once however many of its edges lead to it, and once for the same transactions in the same
 * order joined by other edges (a row a predicate read returned gives an item and a predicate
 * edge). The search stops after a budget of edge visits per class so that a huge, tangled
 * history still answers quickly; the count is then a lower bound.
 *
 * Cost: O(operations + edges) to build the graph, plus for each distinct predicate one pass over
 * the versions of every key, plus for each predicate read the keys that ever matched it.
 *
 * Thread-safety: dl_txn_hist_begin, dl_txn_hist_commit and dl_txn_hist_abort take the history's
 * mutex; a transaction's record is used by one thread between them. Load and check run when no
 * transaction is being recorded.
 */
#ifndef DDIALAB_TXN_HISTORY_H
#define DDIALAB_TXN_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "txn/engine.h"

typedef struct dl_txn_hist_s dl_txn_hist_t;
typedef struct dl_txn_hist_txn_s dl_txn_hist_txn_t;

/* A new, empty history; NULL when out of memory. dl_txn_hist_free frees it and every record. */
dl_txn_hist_t *dl_txn_hist_new(void);
void dl_txn_hist_free(dl_txn_hist_t *h);

/* Records setup data: key = value committed before every transaction (the engine's
 * dl_txn_engine_load; a later load of the same key replaces the earlier one). 0 or -ENOMEM. */
int dl_txn_hist_load(dl_txn_hist_t *h, const char *key, const char *value);

/*
 * Starts the record of transaction id at level (call it before the transaction's first
 * statement). The record belongs to the calling thread until dl_txn_hist_commit or
 * dl_txn_hist_abort, which hand it to the history. NULL when out of memory (the history then
 * counts as incomplete). The level matters at read-uncommitted only: there a read that found
 * nothing where a committed row existed may have seen an uncommitted deletion, so it is
 * ambiguous rather than impossible.
 */
dl_txn_hist_txn_t *dl_txn_hist_begin(dl_txn_hist_t *h, uint64_t id, dl_txn_level_t level);

/* A read of key that returned value (NULL: the key was absent) written by transaction writer
 * (what dl_txn_get_version says: 0 for setup data). Strings are copied. 0 or -ENOMEM. */
int dl_txn_hist_read(dl_txn_hist_txn_t *t, const char *key, const char *value, uint64_t writer);
/* A write of key = value (NULL: a deletion). Strings are copied. 0 or -ENOMEM. */
int dl_txn_hist_write(dl_txn_hist_txn_t *t, const char *key, const char *value);
/* A predicate read and the rows it returned (with their writers). pred and rows are copied.
 * 0 or -ENOMEM. */
int dl_txn_hist_scan(dl_txn_hist_txn_t *t, const dl_txn_pred_t *pred, const dl_txn_rows_t *rows);

/* Ends the record: committed with the engine's commit timestamp (dl_txn_commit's outcome), or
 * aborted. t is the history's afterwards. 0, or -ENOMEM when a recording call had failed (the
 * history then counts as incomplete and dl_txn_hist_check refuses it). */
int dl_txn_hist_commit(dl_txn_hist_txn_t *t, uint64_t commit_ts);
int dl_txn_hist_abort(dl_txn_hist_txn_t *t);

/*
 * Declares the version order of key: writers' ids, oldest first, for a history whose version
 * order is not the commit order (a system that allows dirty writes installs versions in the
 * order it writes them). Committed writers of the key not listed follow, in commit order. Our
 * engine never needs this: without dirty writes the version order is the commit order, and
 * there can be no G0. Reads that found the key absent are then never resolved to a version
 * (ambiguous). 0 or -ENOMEM.
 */
int dl_txn_hist_order(dl_txn_hist_t *h, const char *key, const uint64_t *writers, size_t n);

/* How many transactions ended in the history so far. */
size_t dl_txn_hist_size(dl_txn_hist_t *h);

typedef enum {
    DL_TXN_G0 = 0,
    DL_TXN_G1A,
    DL_TXN_G1B,
    DL_TXN_G1C,
    DL_TXN_G_SINGLE,
    DL_TXN_G2_ITEM,
    DL_TXN_G2,
    DL_TXN_IMPOSSIBLE_READ,
    DL_TXN_N_ANOMALIES
} dl_txn_anomaly_t;

/* "G0", "G1a", "G1b", "G1c", "G-single", "G2-item", "G2", "impossible-read". */
const char *dl_txn_anomaly_name(dl_txn_anomaly_t a);
/* A few words on what the anomaly is: "dirty write", "aborted read", ... */
const char *dl_txn_anomaly_meaning(dl_txn_anomaly_t a);

/* One anomaly found. For a cycle, txns are its transactions in edge order (the last one's edge
 * leads back to the first); for a read anomaly, txns[0] is the reader and txns[1] the writer (0
 * when there is none). text is one line naming it, e.g.
 * "T12 -rw(key 3)-> T15 -ww(key 3)-> T12" or "T7 read key 3 = 12 written by T5, which aborted".
 * Both are owned by the report. */
typedef struct dl_txn_hist_example_s {
    dl_txn_anomaly_t anomaly;
    uint64_t *txns;
    size_t n_txns;
    char *text;
} dl_txn_hist_example_t;

typedef struct dl_txn_hist_report_s {
    uint64_t count[DL_TXN_N_ANOMALIES];  /* cycles (distinct) or reads */
    int lower_bound[DL_TXN_N_ANOMALIES]; /* 1: the search budget ran out; count is a minimum */
    dl_txn_hist_example_t *examples;     /* grouped by anomaly, in enum order */
    size_t n_examples;
    uint64_t n_committed, n_aborted; /* transactions */
    uint64_t n_operations;           /* reads, writes, predicate reads */
    uint64_t n_edges;                /* in the serialization graph, one per (Ti, Tj, kind) */
    uint64_t n_ambiguous;            /* reads that observed an unknown absent version */
} dl_txn_hist_report_t;

typedef struct dl_txn_hist_options_s {
    size_t max_examples;    /* per anomaly; 0: 10 */
    uint64_t search_budget; /* edge visits per cycle class; 0: 50 million */
} dl_txn_hist_options_t;

/*
 * Checks the history (every transaction must have ended) and fills *report (caller frees it with
 * dl_txn_hist_report_free). opts may be NULL. 0; -ENOMEM; -EINVAL when the history is incomplete
 * (a recording call failed) or names one transaction twice.
 */
int dl_txn_hist_check(dl_txn_hist_t *h, const dl_txn_hist_options_t *opts,
                      dl_txn_hist_report_t *report);
void dl_txn_hist_report_free(dl_txn_hist_report_t *report);
/* Every anomaly the report counts, of all classes. */
uint64_t dl_txn_hist_report_total(const dl_txn_hist_report_t *report);

#endif
