/*
 * "ddialab txn serve": the txn engine over HTTP, one session per terminal, so that two terminals
 * with curl replay any scenario by hand (docs/txn.md has the walk-through). Not a public
 * interface: the pieces shared by the files of the server.
 *
 *   serve.c          flags, --setup, the loop, signals, shutdown, reset
 *   serve_session.c  sessions and their statements: run, wait, wake, time out, cancel
 *   serve_http.c     the routes: requests in, statements out, replies
 *   serve_parse.c    where clauses, update assignments and --setup text
 *
 * Everything runs on one libuv loop thread; the engine's own mutex is never contended.
 *
 * A statement runs at once. When the engine says it must wait (DL_TXN_BLOCKED), its request is
 * parked: remembered, in arrival order, with no reply. Whenever a transaction ends (a commit, an
 * abort, a failure, a lock timeout, a deleted session), the parked statements whose blocker has
 * ended are run again in arrival order, and those that no longer block are answered, saying how
 * long they waited and for whom. That is how a second psql session behaves, and what makes the
 * waiting visible.
 */
#ifndef DDIALAB_TXN_SERVE_H
#define DDIALAB_TXN_SERVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "ddialab/http_server.h"
#include "txn/engine.h"

#define DL_TXN_SERVE_DEFAULT_HOST "127.0.0.1"
#define DL_TXN_SERVE_DEFAULT_PORT 7070
/* Limits on what a client sends: a body (a value, or JSON around one), a key, a where clause. */
#define DL_TXN_SERVE_MAX_BODY_BYTES (64 * 1024)
#define DL_TXN_SERVE_MAX_KEY_BYTES  1024
#define DL_TXN_SERVE_MAX_WHERE      1024
#define DL_TXN_SERVE_MAX_SESSIONS   1000
/* Transactions a statement's reply lists in "waited_for"; it rarely waits for more than one. */
#define DL_TXN_SERVE_MAX_WAITED 8

/* What a statement does. */
typedef enum {
    DL_TXN_SERVE_GET = 0,
    DL_TXN_SERVE_PUT,
    DL_TXN_SERVE_INSERT,
    DL_TXN_SERVE_DELETE,
    DL_TXN_SERVE_SCAN,
    DL_TXN_SERVE_UPDATE_WHERE,
    DL_TXN_SERVE_DELETE_WHERE,
    DL_TXN_SERVE_COMMIT,
} dl_txn_serve_op_t;

typedef struct dl_txn_server_s dl_txn_server_t;
typedef struct dl_txn_session_s dl_txn_session_t;
typedef struct dl_txn_statement_s dl_txn_statement_t;

/*
 * One statement of a session, from its request to its reply. It lives in its request's memory
 * (dl_http_req_alloc), as do the strings it points to, so it needs no freeing: it is forgotten
 * when it is answered, or when its client goes away.
 */
struct dl_txn_statement_s {
    dl_txn_server_t *server;
    dl_txn_session_t *session;
    dl_http_req_t *req;
    dl_txn_serve_op_t op;
    const char *key;   /* kv statements */
    const char *value; /* PUT, insert */
    const char *where; /* scan, update, delete where: the clause as sent ("" for every row) */
    const char *set;   /* update: the assignment as sent */
    dl_txn_pred_t pred;
    dl_txn_set_t assign;
    const char *text; /* "PUT /sessions/2/kv/1", for the session listing and the log */

    uint64_t txn;   /* the engine transaction it runs in */
    int autocommit; /* that transaction was begun for this statement alone */
    int committing; /* autocommit: the statement is done and its commit is what runs */
    json_t *result; /* the reply, held while the autocommit's commit runs; owned */
    int status;     /* the reply's status: 200, or 404 for a GET that found nothing */

    int parked;           /* in the server's parked list */
    uint64_t seq;         /* arrival order among parked statements */
    uint64_t parked_ns;   /* uv_hrtime() when it first blocked */
    uint64_t deadline_ms; /* uv_now() after which it fails with lock_timeout; 0: never */
    uint64_t waiting_for; /* the transaction it waits for now */
    uint64_t waited_for[DL_TXN_SERVE_MAX_WAITED]; /* every transaction it waited for, in order */
    size_t n_waited;
    dl_txn_statement_t *prev, *next; /* the parked list */
};

/* One client's session, as one psql connection: an isolation level and at most one open
 * transaction block. */
struct dl_txn_session_s {
    uint64_t id;
    dl_txn_level_t level;     /* for transactions begun without a level of their own */
    uint64_t txn;             /* the open transaction block's id, 0 when idle */
    dl_txn_level_t txn_level; /* the block's level */
    /* The block failed (an error rolled its transaction back); only abort or commit end it,
       as after an error inside a PostgreSQL transaction block. error and message say why. */
    int failed;
    char failed_error[32];
    char failed_message[192];
    dl_txn_statement_t *statement; /* its statement that waits, or NULL */
    dl_txn_session_t *next;        /* the server's sessions, by id */
};

struct dl_txn_server_s {
    uv_loop_t *loop;
    dl_http_server_t *http;
    dl_txn_engine_t *engine;
    const char *setup;        /* --setup: committed data loaded at start and by reset */
    int64_t lock_timeout_ms;  /* how long a statement may wait; 0: forever */
    dl_txn_level_t isolation; /* the level of new sessions that name none */

    dl_txn_session_t *sessions; /* by id */
    size_t n_sessions;
    uint64_t next_session_id;

    dl_txn_statement_t *parked_first, *parked_last; /* arrival order */
    size_t n_parked;
    uint64_t next_seq;
    uv_timer_t lock_timer; /* the earliest deadline of a parked statement */

    int waking;     /* inside dl__txn_serve_wake() */
    int wake_again; /* a transaction ended during it: another pass */
    int stopping;
    uv_signal_t sigint, sigterm;
};

/* ---- serve.c ----------------------------------------------------------------------------- */

/* Replaces the engine by a new one holding text (--setup syntax; NULL: the server's --setup)
 * as committed data. Every session goes back to idle; statements that wait are answered 409.
 * 0, or -EINVAL/-ENOMEM with a message in err (then nothing changed). */
int dl__txn_serve_reset(dl_txn_server_t *s, const char *text, char *err, size_t errlen);

/* ---- serve_session.c --------------------------------------------------------------------- */

/* A new idle session at level; NULL when out of memory. Owned by the server. */
dl_txn_session_t *dl__txn_serve_session_new(dl_txn_server_t *s, dl_txn_level_t level);
/* The session with this id, or NULL. */
dl_txn_session_t *dl__txn_serve_session_find(dl_txn_server_t *s, uint64_t id);
/* Ends a session: answers its waiting statement (409 with error), aborts its transaction and
 * frees it. Returns the aborted transaction's id, or 0. */
uint64_t dl__txn_serve_session_close(dl_txn_server_t *s, dl_txn_session_t *session,
                                     const char *error, const char *message);
/* The session as GET /sessions shows it. New reference; NULL when out of memory. */
json_t *dl__txn_serve_session_json(const dl_txn_session_t *session);

/* Marks the session's transaction block failed (its transaction is rolled back). */
void dl__txn_serve_session_fail(dl_txn_session_t *session, const char *error, const char *message);

/*
 * Runs a statement that has just arrived: in the session's transaction block, or else in a
 * transaction of its own (autocommit, as psql does). It is answered now, or parked until it can
 * go on. The caller then calls dl__txn_serve_wake().
 */
void dl__txn_serve_execute(dl_txn_statement_t *st);

/* Answers every parked statement with an error (shutdown, reset) and forgets them. */
void dl__txn_serve_fail_parked(dl_txn_server_t *s, int status, const char *error,
                               const char *message);

/*
 * Runs again, in arrival order, the parked statements whose blocker has ended (or whose own
 * transaction has), until a pass runs none; answers those that no longer block; rearms the lock
 * timer. Call it after anything that may have ended a transaction. Safe to call re-entrantly.
 */
void dl__txn_serve_wake(dl_txn_server_t *s);

/* The error body of the txn server: {"error": error, "message": message}. New reference. */
json_t *dl__txn_serve_error(const char *error, const char *message);

/* ---- serve_http.c ------------------------------------------------------------------------ */

/* Registers the routes on s->http. 0, or a negative errno with a message in err. */
int dl__txn_serve_routes(dl_txn_server_t *s, char *err, size_t errlen);

/* ---- serve_parse.c ----------------------------------------------------------------------- */

/*
 * Parses a where clause in place: "" (every row), or `key|value [% D] OP OPERAND` with OP one of
 * == != < <= > >= (also = and <>), and the operand optionally in quotes. pred->operand points
 * into text. 0, or -EINVAL with a message in err.
 */
int dl__txn_serve_parse_where(char *text, dl_txn_pred_t *pred, char *err, size_t errlen);

/*
 * Parses an update's assignment in place: `value + N`, `value - N`, or a constant, each
 * optionally after `value =` (as in SQL's SET value = value + 1). set->value points into text.
 * 0, or -EINVAL with a message in err.
 */
int dl__txn_serve_parse_set(char *text, dl_txn_set_t *set, char *err, size_t errlen);

/*
 * Loads --setup text, pairs KEY=VALUE separated by spaces or commas ("1=10 2=20"), into e as
 * committed data. 0, or -EINVAL/-ENOMEM with a message in err.
 */
int dl__txn_serve_load_setup(dl_txn_engine_t *e, const char *text, char *err, size_t errlen);

#endif
