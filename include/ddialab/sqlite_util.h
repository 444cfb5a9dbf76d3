/*
 * SQLite helpers: opening with the settings every ddialab database uses, schema migrations,
 * and one error mapping.
 *
 * Errors: 0 on success, DL_ECORRUPT when SQLite reports SQLITE_CORRUPT or SQLITE_NOTADB (the
 * file is damaged or is not a database), DL_ECONFIG for a schema newer than the program, and
 * -EIO for every other SQLite error. errmsg (errlen bytes; may be NULL when errlen is 0) then
 * holds SQLite's own message with what was being done.
 *
 * Threads: a connection is used by one thread at a time (SQLite's default serialized mode makes
 * misuse safe, not fast). Each thread that needs the database opens its own connection.
 */
#ifndef DDIALAB_SQLITE_UTIL_H
#define DDIALAB_SQLITE_UTIL_H

#include <stddef.h>
#include <sqlite3.h>

/* How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
#define DL_SQLITE_BUSY_TIMEOUT_MS 5000

/*
 * Opens (creating if missing) the database at path and sets it up:
 *   - journal_mode=WAL: readers do not block the writer, and a commit appends to the WAL instead
 *     of rewriting pages in place;
 *   - synchronous=NORMAL: in WAL mode, a commit is not fsynced; the WAL is fsynced at each
 *     checkpoint. A crash or power loss can lose the last few commits but never corrupts the
 *     database. That is safe wherever a fsynced log (the Raft log, the event log) is the source
 *     of truth and SQLite holds state derived from it, provided the log position the state
 *     reflects ("applied index") is stored in the same transaction as the state: after a crash
 *     the database is at some earlier consistent position and the log replays the rest. Before
 *     the log discards entries (dl_seglog_drop_prefix) the database must be made durable, e.g.
 *     with `PRAGMA wal_checkpoint(FULL)`, which fsyncs the WAL and the database;
 *   - busy_timeout of DL_SQLITE_BUSY_TIMEOUT_MS;
 *   - foreign_keys=ON (SQLite leaves it off by default).
 * A file that is not a database fails here with DL_ECORRUPT. On success *out is a connection the
 * caller closes with sqlite3_close; on failure *out is NULL.
 */
int dl_sqlite_open(const char *path, sqlite3 **out, char *errmsg, size_t errlen);

/*
 * Brings the schema up to date. The schema version is PRAGMA user_version: version v means
 * migrations[0..v) have been applied. Each missing migration migrations[v..count) runs in its own
 * transaction (BEGIN IMMEDIATE, re-reading the version inside it, so two processes migrating at
 * once never apply one twice) together with the bump of user_version, so a failed migration
 * leaves the database at the previous version. A migration may hold several statements and must
 * not begin or commit transactions itself. A database whose version is above count was written
 * by a newer program and is refused with DL_ECONFIG, untouched.
 */
int dl_sqlite_migrate(sqlite3 *db, const char *const *migrations, int count, char *errmsg,
                      size_t errlen);

/* Runs sql (one or more statements, results ignored). */
int dl_sqlite_exec(sqlite3 *db, const char *sql, char *errmsg, size_t errlen);

/*
 * Maps the SQLite result code rc (from a call on db, which may be NULL) to a ddialab error and
 * writes "<what>: <sqlite message>" into errmsg. Returns 0 for SQLITE_OK, SQLITE_ROW and
 * SQLITE_DONE. For callers that prepare and step their own statements.
 */
int dl_sqlite_error(sqlite3 *db, int rc, const char *what, char *errmsg, size_t errlen);

#endif
