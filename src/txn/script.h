/*
 * Scenario scripts of the txn lab: the text a user writes by hand to replay an anomaly step by
 * step (`ddialab txn run FILE`), parsed into a list of steps. Pure: no I/O, no engine calls.
 *
 * One statement per line; `#` starts a comment that runs to the end of the line; blank lines are
 * ignored; lines may end in "\n" or "\r\n". Tokens are separated by any run of spaces and tabs.
 *
 *   setup 1=10 2=20                     committed data, before any other statement
 *   T1 begin [LEVEL]                    LEVEL as dl_txn_level_parse reads it
 *   T1 get 1 [2 ...]
 *   T1 scan [where PRED]
 *   T1 put 1 11
 *   T1 insert 3 30
 *   T1 delete 1
 *   T1 update set value = value + 10 [where PRED]     also "value - N" and "value = CONST"
 *   T1 delete where PRED
 *   T1 commit
 *   T1 abort
 *   get 1                               no transaction name: the statement runs on its own
 *
 * PRED is `key` or `value`, optionally `% D` (D a positive 64-bit integer), then one of
 * == != < <= > >= and an operand; the operand of a `% D` comparison must be an integer.
 * Operators may be written with or without spaces around them (`value%3==0`).
 *
 * Keywords (statements, `where`, `set`, `key`, `value`, level names) are matched without regard
 * to case, as in SQL; transaction names, keys and values are kept exactly as written. A
 * transaction name starts with an ASCII letter, followed by letters, digits, `_` or `-`, and is
 * not a statement keyword. Keys and values are tokens without whitespace (there is no quoting).
 *
 * The parser checks only what the text itself says; whether T1 began before `T1 get 1` is the
 * runner's business.
 */
#ifndef DDIALAB_TXN_SCRIPT_H
#define DDIALAB_TXN_SCRIPT_H

#include <stddef.h>

#include "txn/engine.h" /* dl_txn_level_t, dl_txn_pred_t, dl_txn_set_t */

/* Limits on a script; anything larger is refused with -EINVAL. */
#define DL_TXN_SCRIPT_MAX_BYTES (1024 * 1024) /* the whole script */
#define DL_TXN_SCRIPT_MAX_LINE  4096          /* one line, without its "\n" or "\r\n" */
#define DL_TXN_SCRIPT_MAX_STEPS 100000        /* statements (blank and comment lines are free) */
#define DL_TXN_SCRIPT_MAX_TOKEN 256 /* a transaction name, key, value or operand, in bytes */

typedef enum {
    DL_TXN_STEP_SETUP = 0,
    DL_TXN_STEP_BEGIN,
    DL_TXN_STEP_GET,
    DL_TXN_STEP_SCAN,
    DL_TXN_STEP_PUT,
    DL_TXN_STEP_INSERT,
    DL_TXN_STEP_DELETE,       /* delete KEY */
    DL_TXN_STEP_UPDATE,       /* update set ... [where PRED] */
    DL_TXN_STEP_DELETE_WHERE, /* delete where PRED */
    DL_TXN_STEP_COMMIT,
    DL_TXN_STEP_ABORT,
    DL_TXN_STEP_N_KINDS
} dl_txn_step_kind_t;

/* "setup", "begin", "get", "scan", "put", "insert", "delete", "update", "delete-where",
 * "commit", "abort"; "?" for anything else. A static string. */
const char *dl_txn_step_kind_name(dl_txn_step_kind_t kind);

/*
 * One statement of a script. Every string a step points to (text, txn, keys[i], values[i],
 * pred.operand, set.value) is owned by the script and stays valid until dl_txn_script_free;
 * none of them may be freed on its own. Which fields are set depends on the kind; the others
 * are zero / NULL.
 */
typedef struct dl_txn_step_s {
    int line;   /* 1-based line number in the script; strictly increasing along the steps */
    char *text; /* the statement as written: trimmed, comment removed (for printing) */
    char *txn;  /* transaction name ("T1", "alice"); NULL for an autocommit statement */
    dl_txn_step_kind_t kind;
    int has_level; /* begin with a LEVEL */
    dl_txn_level_t level;
    char **keys; /* get: every key (>= 1); put/insert/delete: keys[0]; setup: the keys (>= 1) */
    size_t n_keys;
    char **values; /* put/insert: values[0]; setup: values[i] belongs to keys[i] */
    size_t n_values;
    /* scan/update/delete-where: the where clause; pred.all = 1 when a scan or update has none
     * (delete where always has one). pred.operand points into the step. */
    dl_txn_pred_t pred;
    /* update: value = value + N (add = 1, delta = N; "value - N" gives delta = -N), or
     * value = CONST (add = 0, value points into the step). */
    dl_txn_set_t set;
} dl_txn_step_t;

/* The steps of a script in order. Owned by the caller of dl_txn_script_parse, released with
 * dl_txn_script_free. */
typedef struct dl_txn_script_s {
    dl_txn_step_t *steps;
    size_t n;
} dl_txn_script_t;

/*
 * Parses a whole script of len bytes (text need not be NUL-terminated; it may hold any bytes).
 * Returns 0 with *out filled (free it with dl_txn_script_free), or -EINVAL with a one-line
 * message in err that names the line, e.g. "line 3: expected a value after 'put 1'", or -ENOMEM
 * ("line 3: out of memory"). On error *out is left empty: there is nothing to free, but
 * dl_txn_script_free on it is harmless. err may be NULL when errlen is 0; the message is cut to
 * errlen bytes (NUL included) at a character boundary. Scripts with a NUL byte, a control
 * character other than tab, or invalid UTF-8 anywhere (comments included) are refused; a UTF-8
 * byte order mark at the very start is skipped.
 */
int dl_txn_script_parse(const char *text, size_t len, dl_txn_script_t *out, char *err,
                        size_t errlen);

/* Frees every step and the strings they point to, and leaves *script empty. NULL is fine. */
void dl_txn_script_free(dl_txn_script_t *script);

#endif
