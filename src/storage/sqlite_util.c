/* SQLite helpers: the standard connection set-up, user_version migrations, error mapping. */
#include "ddialab/sqlite_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"

/* Maps rc to a ddialab error with message detail (SQLite's words) in errmsg. */
static int map_error(int rc, const char *what, const char *detail, char *errmsg, size_t errlen)
{
    if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    if (errlen > 0)
        snprintf(errmsg, errlen, "sqlite: %s: %s", what, detail ? detail : sqlite3_errstr(rc));
    int primary = rc & 0xff;
    if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        return DL_ECORRUPT;
    return -EIO;
}

int dl_sqlite_error(sqlite3 *db, int rc, const char *what, char *errmsg, size_t errlen)
{
    return map_error(rc, what, db != NULL ? sqlite3_errmsg(db) : NULL, errmsg, errlen);
}

int dl_sqlite_exec(sqlite3 *db, const char *sql, char *errmsg, size_t errlen)
{
    char *detail = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &detail);
    int rv = map_error(rc, "exec", detail, errmsg, errlen);
    sqlite3_free(detail);
    return rv;
}

/* Runs a statement that returns one row of one column and copies that column as text. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t outlen, char *errmsg,
                      size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            const unsigned char *text = sqlite3_column_text(stmt, 0);
            snprintf(out, outlen, "%s", text ? (const char *)text : "");
            rc = SQLITE_OK;
        }
    }
    int rv = dl_sqlite_error(db, rc, sql, errmsg, errlen);
    sqlite3_finalize(stmt);
    return rv;
}

int dl_sqlite_open(const char *path, sqlite3 **out, char *errmsg, size_t errlen)
{
    sqlite3 *db = NULL;
    char what[512];
    char mode[32];
    int rv;
    *out = NULL;
    if (errlen > 0)
        errmsg[0] = '\0';

    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        snprintf(what, sizeof(what), "cannot open %s", path);
        rv = dl_sqlite_error(db, rc, what, errmsg, errlen);
        goto err;
    }
    /* Set before anything takes a lock, so that switching the journal mode waits too. */
    sqlite3_busy_timeout(db, DL_SQLITE_BUSY_TIMEOUT_MS);
    /* The first statement reads the header: a file that is not a database fails here. */
    rv = query_text(db, "PRAGMA journal_mode=WAL", mode, sizeof(mode), errmsg, errlen);
    if (rv < 0)
        goto err;
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        if (errlen > 0)
            snprintf(errmsg, errlen, "sqlite: %s stayed in journal mode %s instead of wal", path,
                     mode);
        rv = -EIO;
        goto err;
    }
    rv = dl_sqlite_exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;", errmsg, errlen);
    if (rv < 0)
        goto err;
    *out = db;
    return 0;

err:
    sqlite3_close(db);
    return rv;
}

static int user_version(sqlite3 *db, int *version, char *errmsg, size_t errlen)
{
    char text[32];
    int rv = query_text(db, "PRAGMA user_version", text, sizeof(text), errmsg, errlen);
    if (rv == 0)
        *version = (int)strtol(text, NULL, 10);
    return rv;
}

/* Checks the stored version against the migrations this program has. */
static int check_version(int version, int count, char *errmsg, size_t errlen)
{
    if (version >= 0 && version <= count)
        return 0;
    if (errlen > 0)
        snprintf(errmsg, errlen,
                 "sqlite: the database has schema version %d, but this program knows versions "
                 "0 to %d; it was written by a newer ddialab",
                 version, count);
    return DL_ECONFIG;
}

static void rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int dl_sqlite_migrate(sqlite3 *db, const char *const *migrations, int count, char *errmsg,
                      size_t errlen)
{
    int version = 0;
    if (count < 0 || (count > 0 && migrations == NULL))
        return -EINVAL;
    /* Up to date (the usual case): answered without taking the write lock. */
    int rv = user_version(db, &version, errmsg, errlen);
    if (rv == 0)
        rv = check_version(version, count, errmsg, errlen);
    if (rv < 0 || version == count)
        return rv;

    for (;;) {
        rv = dl_sqlite_exec(db, "BEGIN IMMEDIATE", errmsg, errlen);
        if (rv < 0)
            return rv;
        /* Read again under the write lock: another process may have migrated meanwhile. */
        rv = user_version(db, &version, errmsg, errlen);
        if (rv == 0)
            rv = check_version(version, count, errmsg, errlen);
        if (rv < 0 || version == count) {
            rollback(db);
            return rv;
        }
        char detail[256];
        rv = dl_sqlite_exec(db, migrations[version], detail, sizeof(detail));
        if (rv < 0) {
            if (errlen > 0)
                snprintf(errmsg, errlen, "sqlite: migration %d (to version %d) failed: %s", version,
                         version + 1, detail);
            rollback(db);
            return rv;
        }
        char bump[64];
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", version + 1);
        rv = dl_sqlite_exec(db, bump, errmsg, errlen);
        if (rv == 0)
            rv = dl_sqlite_exec(db, "COMMIT", errmsg, errlen);
        if (rv < 0) {
            rollback(db);
            return rv;
        }
    }
}
