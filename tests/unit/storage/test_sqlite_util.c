/* SQLite helpers: connection settings, user_version migrations, error mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "ddialab/error.h"
#include "ddialab/sqlite_util.h"
#include "storage_test_util.h"

/* Not idempotent on purpose (no IF NOT EXISTS): applying one twice fails. */
static const char *const migrations[] = {
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES ('applied_index', 0);",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, key TEXT NOT NULL REFERENCES kv(key));",
};

static sqlite3 *open_ok(const char *path)
{
    sqlite3 *db = NULL;
    char err[256];
    int rv = dl_sqlite_open(path, &db, err, sizeof(err));
    if (rv != 0)
        print_error("open %s: %s\n", path, err);
    assert_int_equal(rv, 0);
    assert_non_null(db);
    return db;
}

static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    long long v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

static const char *query_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *stmt;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return out;
}

static void test_sqlite_open_sets_wal_normal_sync_busy_timeout_and_foreign_keys(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "state.db");
    sqlite3 *db = open_ok(path);
    char mode[32];
    assert_string_equal(query_text(db, "PRAGMA journal_mode", mode, sizeof(mode)), "wal");
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA busy_timeout"), DL_SQLITE_BUSY_TIMEOUT_MS);
    sqlite3_close(db);
    free(path);
}

static void test_sqlite_migrate_from_empty_applies_every_migration(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "state.db");
    sqlite3 *db = open_ok(path);
    char err[256];
    assert_int_equal(query_int(db, "PRAGMA user_version"), 0);
    assert_int_equal(dl_sqlite_migrate(db, migrations, 3, err, sizeof(err)), 0);
    assert_int_equal(query_int(db, "PRAGMA user_version"), 3);
    assert_int_equal(query_int(db, "SELECT value FROM meta WHERE name = 'applied_index'"), 0);
    /* foreign_keys is on: a child row needs its parent */
    assert_int_equal(
        dl_sqlite_exec(db, "INSERT INTO child (key) VALUES ('nope')", err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "FOREIGN KEY"));
    sqlite3_close(db);
    free(path);
}

static void test_sqlite_migrate_again_after_reopen_is_idempotent(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "state.db");
    char err[256];
    sqlite3 *db = open_ok(path);
    assert_int_equal(dl_sqlite_migrate(db, migrations, 2, err, sizeof(err)), 0);
    assert_int_equal(dl_sqlite_exec(db, "INSERT INTO kv VALUES ('a', x'01')", err, sizeof(err)), 0);
    sqlite3_close(db);

    db = open_ok(path);
    assert_int_equal(dl_sqlite_migrate(db, migrations, 2, err, sizeof(err)), 0);
    assert_int_equal(query_int(db, "PRAGMA user_version"), 2);
    /* A newer program adds one migration: only that one runs. */
    assert_int_equal(dl_sqlite_migrate(db, migrations, 3, err, sizeof(err)), 0);
    assert_int_equal(query_int(db, "PRAGMA user_version"), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM kv"), 1);
    sqlite3_close(db);
    free(path);
}

static void test_sqlite_migrate_refuses_a_newer_database(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "state.db");
    char err[256];
    sqlite3 *db = open_ok(path);
    assert_int_equal(dl_sqlite_migrate(db, migrations, 3, err, sizeof(err)), 0);
    sqlite3_close(db);

    db = open_ok(path);
    assert_int_equal(dl_sqlite_migrate(db, migrations, 2, err, sizeof(err)), DL_ECONFIG);
    assert_non_null(strstr(err, "schema version 3"));
    assert_int_equal(query_int(db, "PRAGMA user_version"), 3); /* untouched */
    sqlite3_close(db);
    free(path);
}

static void test_sqlite_failed_migration_leaves_previous_version(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "state.db");
    char err[256];
    sqlite3 *db = open_ok(path);
    static const char *const broken[] = {
        "CREATE TABLE a (x INTEGER);",
        "CREATE TABLE b (y INTEGER); INSERT INTO no_such_table VALUES (1);",
    };
    assert_int_equal(dl_sqlite_migrate(db, broken, 2, err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "migration 1"));
    assert_non_null(strstr(err, "no_such_table"));
    assert_int_equal(query_int(db, "PRAGMA user_version"), 1);
    /* The half of migration 1 that worked was rolled back with it. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'b'"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'a'"), 1);
    assert_int_equal(sqlite3_get_autocommit(db), 1); /* no transaction left open */
    sqlite3_close(db);
    free(path);
}

static void test_sqlite_open_of_a_file_that_is_not_a_database_is_corrupt(void **state)
{
    const char *root = *state;
    char *path = test_path(root, "junk.db");
    char junk[4096];
    memset(junk, 'j', sizeof(junk));
    assert_int_equal(dl_atomic_write_file(path, junk, sizeof(junk)), 0);
    sqlite3 *db = (sqlite3 *)1;
    char err[256];
    assert_int_equal(dl_sqlite_open(path, &db, err, sizeof(err)), DL_ECORRUPT);
    assert_null(db);
    assert_non_null(strstr(err, "not a database"));
    free(path);
}

static void test_sqlite_open_in_missing_directory_is_eio(void **state)
{
    sqlite3 *db = (sqlite3 *)1;
    char err[256];
    assert_int_equal(dl_sqlite_open("/nonexistent/ddialab/x.db", &db, err, sizeof(err)), -EIO);
    assert_null(db);
    assert_non_null(strstr(err, "/nonexistent/ddialab/x.db"));
}

static void test_sqlite_exec_reports_sqlite_message(void **state)
{
    sqlite3 *db = open_ok(":memory:");
    char err[256];
    assert_int_equal(dl_sqlite_exec(db, "SELEC 1", err, sizeof(err)), -EIO);
    assert_non_null(strstr(err, "syntax error"));
    assert_int_equal(
        dl_sqlite_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);", err, sizeof(err)),
        0);
    assert_int_equal(query_int(db, "SELECT sum(x) FROM t"), 3);
    assert_int_equal(dl_sqlite_error(db, SQLITE_DONE, "step", err, sizeof(err)), 0);
    assert_int_equal(dl_sqlite_error(NULL, SQLITE_CORRUPT, "step", err, sizeof(err)), DL_ECORRUPT);
    assert_int_equal(dl_sqlite_error(NULL, SQLITE_BUSY, "step", err, sizeof(err)), -EIO);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TMPDIR_TEST(test_sqlite_open_sets_wal_normal_sync_busy_timeout_and_foreign_keys),
        TMPDIR_TEST(test_sqlite_migrate_from_empty_applies_every_migration),
        TMPDIR_TEST(test_sqlite_migrate_again_after_reopen_is_idempotent),
        TMPDIR_TEST(test_sqlite_migrate_refuses_a_newer_database),
        TMPDIR_TEST(test_sqlite_failed_migration_leaves_previous_version),
        TMPDIR_TEST(test_sqlite_open_of_a_file_that_is_not_a_database_is_corrupt),
        cmocka_unit_test(test_sqlite_open_in_missing_directory_is_eio),
        cmocka_unit_test(test_sqlite_exec_reports_sqlite_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
