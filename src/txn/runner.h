/*
 * The scenario runner: executes a parsed script (txn/script.h) step by step against a fresh
 * engine at one isolation level, the way two or three psql sessions typed by hand would run it.
 *
 * - A step that must wait is reported `blocked` and the runner goes on with the next lines. When
 *   the transaction it waits for ends, the step runs again and is reported `resumed`, naming the
 *   step that ended that transaction.
 * - A line for a transaction that is blocked waits behind the blocked step (`queued`), as the
 *   next command typed into a blocked psql session does, and runs once it is released. With
 *   strict set it is instead a script error, which stops the run.
 * - A statement without a transaction name runs as a transaction of its own (autocommit).
 * - At the end, transactions still open are rolled back and the committed state is reported.
 *
 * Scenario scripts may carry directives in comments for the demo's anomaly matrix:
 *   #! name: lost update
 *   #! explain: two read-modify-write cycles; the second overwrites the first
 *   #! anomaly: final 1 == 11                 (several lines: any of them)
 *   #! anomaly: line 9 == 11 and final 1 == 10
 * A condition compares `final KEY` (the committed value at the end), `line N` (the value the get
 * at line N read for its first key), `line N sum` (the sum of the values it or a scan read) or
 * `line N count` (how many rows) with `==` or `!=`; `none` stands for an absent key. `line N ok`
 * (or `aborted`, `error`) holds when the statement at line N ended that way.
 */
#ifndef DDIALAB_TXN_RUNNER_H
#define DDIALAB_TXN_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "txn/engine.h"
#include "txn/script.h"

typedef enum {
    DL_TXN_EV_OK = 0,
    DL_TXN_EV_BLOCKED,
    DL_TXN_EV_RESUMED, /* a blocked step ran; `result` says how it ended */
    DL_TXN_EV_ABORTED,
    DL_TXN_EV_ERROR,  /* the statement failed; the transaction goes on unless it ended */
    DL_TXN_EV_QUEUED, /* a line for a blocked transaction, run once it is released */
    DL_TXN_EV_NOTE,   /* what the runner did on its own (e.g. a rollback at the end) */
} dl_txn_event_kind_t;

/* "ok", "blocked", "resumed", "aborted", "error", "queued", "note". */
const char *dl_txn_event_kind_name(dl_txn_event_kind_t kind);

/* One thing that happened. Everything it points to is valid only during the callback. */
typedef struct dl_txn_event_s {
    dl_txn_level_t level;
    const dl_txn_step_t *step; /* NULL for a note about no step */
    const char *txn;           /* the transaction's name, "(autocommit)" for one of its own */
    uint64_t txn_id;           /* the engine's id, 0 before begin */
    dl_txn_event_kind_t kind;
    dl_txn_event_kind_t result;       /* RESUMED: OK, ABORTED or ERROR */
    const char *waiting_for;          /* BLOCKED (and QUEUED): the transaction it waits for */
    const dl_txn_step_t *released_by; /* RESUMED: the step that ended what it waited for */
    const dl_txn_rows_t *rows;        /* get and scan: what was read (absent keys are left out) */
    int has_count;                    /* update, delete where, delete: rows changed */
    size_t count;
    const char *message; /* ABORTED, ERROR, NOTE */
} dl_txn_event_t;

typedef void (*dl_txn_event_cb)(const dl_txn_event_t *event, void *ctx);

/* What a step ended with, for the anomaly conditions. */
typedef struct dl_txn_step_result_s {
    int done;                 /* it ran to an end (ok, aborted or error) */
    dl_txn_event_kind_t kind; /* OK, ABORTED or ERROR */
    dl_txn_rows_t rows;       /* get/scan: what it read */
} dl_txn_step_result_t;

typedef struct dl_txn_run_s {
    dl_txn_level_t level;
    dl_txn_step_result_t *results; /* one per step of the script */
    size_t n_results;
    dl_txn_rows_t final; /* the committed state at the end */
    int blocked;         /* some step blocked */
    int aborted;         /* some transaction was aborted by the engine */
    char error[256];     /* a script error that stopped the run (strict mode), else "" */
} dl_txn_run_t;

/*
 * Runs script at level (the level of every `begin` without one and of autocommit statements).
 * cb (may be NULL) sees each event as it happens. Fills *run (free with dl_txn_run_free).
 * 0; -EINVAL when a script error stopped the run (run->error says which); -ENOMEM.
 */
int dl_txn_run_script(const dl_txn_script_t *script, dl_txn_level_t level, int strict,
                      dl_txn_event_cb cb, void *ctx, dl_txn_run_t *run);
void dl_txn_run_free(dl_txn_run_t *run);

/* The `#!` directives of a scenario. Strings owned by the meta. */
typedef struct dl_txn_meta_s {
    char *name;
    char *explain;
    char **anomaly; /* each an `and` of conditions; the anomaly shows when any holds */
    size_t n_anomaly;
} dl_txn_meta_t;

/* Reads the directives of a script's text. 0, -EINVAL with a message naming the line in err,
 * or -ENOMEM. A script without directives gives an empty meta. */
int dl_txn_meta_parse(const char *text, size_t len, dl_txn_meta_t *meta, char *err, size_t errlen);
void dl_txn_meta_free(dl_txn_meta_t *meta);

/* Whether the anomaly shows in a run: 1 yes, 0 no, -EINVAL (err says why) when a condition is
 * malformed or names a line that is not a get or scan of the script. */
int dl_txn_meta_anomaly(const dl_txn_meta_t *meta, const dl_txn_script_t *script,
                        const dl_txn_run_t *run, char *err, size_t errlen);

/* The verdict of a run: "anomaly" when a condition holds, else how it was prevented:
 * "prevented (aborted)" when the engine rolled a transaction back, "prevented (blocked)" when a
 * statement waited, "prevented" when the level read around it (an older version). NULL with err
 * when a condition is malformed. A static string. */
const char *dl_txn_verdict(const dl_txn_meta_t *meta, const dl_txn_script_t *script,
                           const dl_txn_run_t *run, char *err, size_t errlen);

#endif
