/* The kv state machine on SQLite: commands, conditional writes, applied index. */
#include "kv/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ddialab/error.h"
#include "ddialab/json_util.h"
#include "ddialab/sqlite_util.h"

#define COMMAND_FIXED_BYTES (1 + 1 + 8 + 4)

int dl_kv_command_encode(dl_buf_t *out, const dl_kv_command_t *cmd)
{
    if (dl_buf_reserve(out, COMMAND_FIXED_BYTES + cmd->key_len + cmd->value_len))
        return -ENOMEM;
    dl_buf_put_u8(out, cmd->op);
    dl_buf_put_u8(out, cmd->cond);
    dl_buf_put_u64(out, cmd->expected_version);
    dl_buf_put_u32(out, (uint32_t)cmd->key_len);
    dl_buf_append(out, cmd->key, cmd->key_len);
    if (cmd->op == DL_KV_OP_PUT)
        dl_buf_append(out, cmd->value, cmd->value_len);
    return 0;
}

int dl_kv_command_decode(const void *data, size_t len, dl_kv_command_t *cmd)
{
    const uint8_t *p = data;
    if (len < COMMAND_FIXED_BYTES)
        return DL_EPROTO;
    memset(cmd, 0, sizeof(*cmd));
    cmd->op = p[0];
    cmd->cond = p[1];
    cmd->expected_version = dl_get_u64(p + 2);
    cmd->key_len = dl_get_u32(p + 10);
    if (cmd->key_len > len - COMMAND_FIXED_BYTES)
        return DL_EPROTO;
    if (cmd->op != DL_KV_OP_PUT && cmd->op != DL_KV_OP_DELETE)
        return DL_EPROTO;
    if (cmd->cond > DL_KV_COND_PRESENT)
        return DL_EPROTO;
    cmd->key = p + COMMAND_FIXED_BYTES;
    cmd->value = p + COMMAND_FIXED_BYTES + cmd->key_len;
    cmd->value_len = len - COMMAND_FIXED_BYTES - cmd->key_len;
    if (cmd->op == DL_KV_OP_DELETE && cmd->value_len != 0)
        return DL_EPROTO;
    return 0;
}

enum {
    STMT_GET,
    STMT_INSERT_NEW,
    STMT_UPDATE,
    STMT_DELETE,
    STMT_SET_APPLIED,
    STMT_LIST,
    STMT_LIST_ALL,
    STMT_COUNT,
    N_STMTS
};

static const char *const statements[N_STMTS] = {
    [STMT_GET] = "SELECT value, version FROM kv WHERE key = ?1",
    [STMT_INSERT_NEW] = "INSERT INTO kv (key, value, version) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT(key) DO NOTHING",
    [STMT_UPDATE] = "UPDATE kv SET value = ?2, version = ?3 WHERE key = ?1",
    [STMT_DELETE] = "DELETE FROM kv WHERE key = ?1",
    [STMT_SET_APPLIED] = "UPDATE meta SET value = CASE name WHEN 'applied_index' THEN ?1 ELSE ?2 "
                         "END WHERE name IN ('applied_index', 'applied_term')",
    [STMT_LIST] = "SELECT key, value, version FROM kv WHERE key >= ?1 AND key < ?2 "
                  "ORDER BY key LIMIT ?3",
    [STMT_LIST_ALL] = "SELECT key, value, version FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2",
    [STMT_COUNT] = "SELECT count(*) FROM kv",
};

static const char *const migrations[] = {
    "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL) "
    "WITHOUT ROWID;"
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta (name, value) VALUES ('applied_index', 0);",
    /* 2: the term of the applied entry, so that a start can tell whether the log still holds
     * that entry (a truncation may have replaced it). */
    "INSERT INTO meta (name, value) VALUES ('applied_term', 0);",
    /* 3: the membership in force at the applied index (the payload of the last configuration
     * entry applied), so that a snapshot carries it. */
    "CREATE TABLE members (id INTEGER PRIMARY KEY CHECK (id = 1), payload BLOB NOT NULL);",
};

struct dl_kv_store_s {
    sqlite3 *db;
    sqlite3_stmt *stmt[N_STMTS];
    uint64_t applied; /* the last index marked applied (visible to this connection) */
    uint64_t applied_term;
    uint64_t flushed; /* the applied index as of the last SQLite commit */
    uint64_t flushed_term;
    int64_t keys;         /* keys in the store, as of the last mark */
    int64_t keys_flushed; /* keys in the store, as of the last SQLite commit */
    int64_t keys_delta;   /* change by the applies since the last mark */
    int in_txn;
};

static int sqlite_rv(sqlite3 *db, int rc)
{
    (void)db;
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB)
        return DL_ECORRUPT;
    if (rc == SQLITE_NOMEM)
        return -ENOMEM;
    if (rc == SQLITE_FULL)
        return -ENOSPC;
    return -EIO;
}

static int load_applied(dl_kv_store_t *s)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = 'applied_index'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_rv(s->db, rc);
    rc = sqlite3_step(st);
    s->applied = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return DL_ECORRUPT;
    rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = 'applied_term'", -1, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return sqlite_rv(s->db, rc);
    rc = sqlite3_step(st);
    s->applied_term = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    s->flushed = s->applied;
    s->flushed_term = s->applied_term;
    return rc == SQLITE_ROW ? 0 : DL_ECORRUPT;
}

/* Counts the keys with a full scan: once, when the store opens. */
static int64_t count_keys(dl_kv_store_t *s)
{
    sqlite3_stmt *st = s->stmt[STMT_COUNT];
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

int dl_kv_store_open(const char *path, dl_kv_store_t **out, char *errmsg, size_t errlen)
{
    int rv;
    dl_kv_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    rv = dl_sqlite_open(path, &s->db, errmsg, errlen);
    if (rv)
        goto err_after_alloc;
    /* The default page cache (2 MB) makes a busy store re-read B-tree pages on every batch. */
    rv = dl_sqlite_exec(s->db, "PRAGMA cache_size = -65536", errmsg, errlen);
    if (rv)
        goto err_after_open;
    rv = dl_sqlite_migrate(s->db, migrations, (int)(sizeof(migrations) / sizeof(migrations[0])),
                           errmsg, errlen);
    if (rv)
        goto err_after_open;
    for (int i = 0; i < N_STMTS; i++) {
        int rc = sqlite3_prepare_v3(s->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(errmsg, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
            rv = sqlite_rv(s->db, rc);
            goto err_after_open;
        }
    }
    s->keys = s->keys_flushed = count_keys(s);
    rv = s->keys < 0 ? DL_ECORRUPT : load_applied(s);
    if (rv) {
        snprintf(errmsg, errlen, "%s: cannot read the applied index", path);
        goto err_after_open;
    }
    *out = s;
    return 0;

err_after_open:
    for (int i = 0; i < N_STMTS; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
err_after_alloc:
    free(s);
    return rv;
}

void dl_kv_store_close(dl_kv_store_t *s)
{
    if (s == NULL)
        return;
    /* A clean stop keeps what was applied; were the commit to fail, the log redoes it. */
    if (s->in_txn && dl_kv_store_flush(s) != 0)
        dl_kv_store_rollback(s);
    for (int i = 0; i < N_STMTS; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s);
}

uint64_t dl_kv_store_applied(const dl_kv_store_t *s)
{
    return s->applied;
}

uint64_t dl_kv_store_applied_term(const dl_kv_store_t *s)
{
    return s->applied_term;
}

static int exec(dl_kv_store_t *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sqlite_rv(s->db, rc);
}

uint64_t dl_kv_store_flushed(const dl_kv_store_t *s)
{
    return s->flushed;
}

int dl_kv_store_begin(dl_kv_store_t *s)
{
    if (s->in_txn)
        return 0;
    int rv = exec(s, "BEGIN");
    if (rv == 0)
        s->in_txn = 1;
    return rv;
}

void dl_kv_store_rollback(dl_kv_store_t *s)
{
    exec(s, "ROLLBACK");
    s->in_txn = 0;
    s->keys_delta = 0;
    s->keys = s->keys_flushed;
    s->applied = s->flushed;
    s->applied_term = s->flushed_term;
}

/* Runs a statement that returns no rows and resets it. */
static int step_done(dl_kv_store_t *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : sqlite_rv(s->db, rc);
}

/* Looks up a key's version; 0 when absent. */
static int current_version(dl_kv_store_t *s, const void *key, size_t key_len, uint64_t *version)
{
    sqlite3_stmt *st = s->stmt[STMT_GET];
    sqlite3_bind_blob(st, 1, key, (int)key_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW)
        *version = (uint64_t)sqlite3_column_int64(st, 1);
    else if (rc == SQLITE_DONE)
        *version = 0;
    else
        rv = sqlite_rv(s->db, rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rv;
}

/* Writes cmd's value at version `index`: exists is 1 when the key is known to exist, 0 when known
 * absent, -1 when unknown (an insert is tried first, an update when the key turns out to exist). */
static int put(dl_kv_store_t *s, const dl_kv_command_t *cmd, uint64_t index, int exists,
               dl_kv_result_t *result)
{
    int rv = 0;
    for (int update = exists == 1; update < 2; update++) {
        sqlite3_stmt *st = s->stmt[update ? STMT_UPDATE : STMT_INSERT_NEW];
        sqlite3_bind_blob(st, 1, cmd->key, (int)cmd->key_len, SQLITE_STATIC);
        /* A zero-length blob must still be a blob, not NULL. */
        sqlite3_bind_blob(st, 2, cmd->value_len ? cmd->value : "", (int)cmd->value_len,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)index);
        rv = step_done(s, st);
        if (rv != 0)
            return rv;
        if (sqlite3_changes(s->db) > 0) {
            if (!update)
                s->keys_delta++;
            break;
        }
        if (update)
            return DL_ECORRUPT; /* known to exist, yet nothing was updated */
    }
    result->version = index;
    return 0;
}

int dl_kv_store_apply(dl_kv_store_t *s, uint64_t index, const void *data, size_t len,
                      dl_kv_result_t *result)
{
    memset(result, 0, sizeof(*result));
    if (data == NULL)
        return 0;
    dl_kv_command_t cmd;
    if (dl_kv_command_decode(data, len, &cmd) != 0) {
        /* Only our own leader writes commands; a bad one means damage, not user error. */
        return DL_ECORRUPT;
    }
    if (cmd.op == DL_KV_OP_PUT && cmd.cond == DL_KV_COND_NONE)
        return put(s, &cmd, index, -1, result); /* no lookup first: the insert is one */
    uint64_t version;
    int rv = current_version(s, cmd.key, cmd.key_len, &version);
    if (rv)
        return rv;
    int holds = 1;
    switch (cmd.cond) {
    case DL_KV_COND_VERSION:
        holds = version != 0 && version == cmd.expected_version;
        break;
    case DL_KV_COND_ABSENT:
        holds = version == 0;
        break;
    case DL_KV_COND_PRESENT:
        holds = version != 0;
        break;
    default:
        break;
    }
    if (!holds) {
        result->rv = DL_EPRECONDITION;
        result->current_version = version;
        return 0;
    }
    if (cmd.op == DL_KV_OP_DELETE) {
        if (version == 0) {
            result->rv = DL_ENOTFOUND;
            return 0;
        }
        sqlite3_stmt *st = s->stmt[STMT_DELETE];
        sqlite3_bind_blob(st, 1, cmd.key, (int)cmd.key_len, SQLITE_STATIC);
        rv = step_done(s, st);
        if (rv == 0)
            s->keys_delta--;
        return rv;
    }
    return put(s, &cmd, index, version != 0, result);
}

int dl_kv_store_apply_config(dl_kv_store_t *s, const void *payload, size_t len)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db, "INSERT OR REPLACE INTO members (id, payload) VALUES (1, ?1)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sqlite_rv(s->db, rc);
    sqlite3_bind_blob(st, 1, payload, (int)len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sqlite_rv(s->db, rc);
}

static int read_members(sqlite3 *db, void **payload, size_t *len)
{
    sqlite3_stmt *st;
    *payload = NULL;
    *len = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT payload FROM members WHERE id = 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return 0; /* a snapshot from before membership changes: none */
    rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        *payload = malloc(n ? n : 1);
        if (*payload == NULL)
            rv = -ENOMEM;
        else if (n)
            memcpy(*payload, sqlite3_column_blob(st, 0), n);
        *len = n;
    } else if (rc != SQLITE_DONE) {
        rv = DL_ECORRUPT;
    }
    sqlite3_finalize(st);
    return rv;
}

int dl_kv_store_members(dl_kv_store_t *s, void **payload, size_t *len)
{
    return read_members(s->db, payload, len);
}

int dl_kv_store_mark_applied(dl_kv_store_t *s, uint64_t applied_index, uint64_t applied_term)
{
    /* The meta row is written once, by the flush that commits these entries. */
    s->applied = applied_index;
    s->applied_term = applied_term;
    s->keys += s->keys_delta;
    s->keys_delta = 0;
    return 0;
}

int dl_kv_store_flush(dl_kv_store_t *s)
{
    if (!s->in_txn)
        return 0;
    sqlite3_stmt *st = s->stmt[STMT_SET_APPLIED];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)s->applied);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)s->applied_term);
    int rv = step_done(s, st);
    if (rv == 0)
        rv = exec(s, "COMMIT");
    if (rv != 0) {
        dl_kv_store_rollback(s);
        return rv;
    }
    s->in_txn = 0;
    s->flushed = s->applied;
    s->flushed_term = s->applied_term;
    s->keys_flushed = s->keys;
    return 0;
}

/* Copies the whole database src into dst (both open) with SQLite's online backup. */
static int backup_db(sqlite3 *dst, sqlite3 *src)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (b == NULL)
        return sqlite_rv(dst, sqlite3_errcode(dst));
    int rc = sqlite3_backup_step(b, -1);
    int rc2 = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return sqlite_rv(dst, rc);
    return rc2 == SQLITE_OK ? 0 : sqlite_rv(dst, rc2);
}

static int read_applied(sqlite3 *db, uint64_t *index, uint64_t *term)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT (SELECT value FROM meta WHERE name = 'applied_index'), "
                                "(SELECT value FROM meta WHERE name = 'applied_term')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return DL_ECORRUPT;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *index = (uint64_t)sqlite3_column_int64(st, 0);
        *term = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : DL_ECORRUPT;
}

int dl_kv_store_snapshot(const char *db_path, const char *path, uint64_t *index, uint64_t *term,
                         uint64_t *size, char *errmsg, size_t errlen)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rv = 0;
    unlink(path);
    if (sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK) {
        snprintf(errmsg, errlen, "cannot open %s or %s", db_path, path);
        rv = -EIO;
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    /* One read transaction: the applied index and the pages copied are of the same moment. */
    if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        read_applied(src, index, term) != 0) {
        snprintf(errmsg, errlen, "%s: cannot read the applied index", db_path);
        rv = DL_ECORRUPT;
        goto out;
    }
    rv = backup_db(dst, src);
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    /* A self-contained file (no -wal beside it), synced before anyone relies on it. */
    if (rv == 0 && sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK)
        rv = -EIO;
    if (rv)
        snprintf(errmsg, errlen, "copying %s to %s: %s", db_path, path, sqlite3_errmsg(dst));
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    if (rv == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fsync(fd) != 0 || fstat(fd, &st) != 0) {
            rv = -errno;
            snprintf(errmsg, errlen, "cannot sync %s: %s", path, strerror(errno));
        } else {
            *size = (uint64_t)st.st_size;
        }
        if (fd >= 0)
            close(fd);
    }
    if (rv)
        unlink(path);
    return rv;
}

int dl_kv_snapshot_info(const char *path, uint64_t *index, uint64_t *term)
{
    sqlite3 *db = NULL;
    int rv = DL_ECORRUPT;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
        rv = read_applied(db, index, term);
    sqlite3_close(db);
    return rv;
}

int dl_kv_store_restore(dl_kv_store_t *s, const char *path)
{
    sqlite3 *src = NULL;
    if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(src);
        return -EIO;
    }
    uint64_t index, term;
    int rv = dl_kv_store_flush(s);
    if (rv == 0)
        rv = read_applied(src, &index, &term);
    /* Durable at once, like a reset: the log before the snapshot is gone. */
    if (rv == 0)
        rv = exec(s, "PRAGMA synchronous = FULL");
    if (rv == 0)
        rv = backup_db(s->db, src);
    sqlite3_close(src);
    int rv2 = exec(s, "PRAGMA synchronous = NORMAL");
    if (rv == 0)
        rv = rv2;
    if (rv == 0)
        rv = load_applied(s);
    if (rv == 0) {
        s->keys = s->keys_flushed = count_keys(s);
        s->keys_delta = 0;
        if (s->keys < 0 || s->applied != index)
            rv = DL_ECORRUPT;
    }
    return rv;
}

int dl_kv_store_reset(dl_kv_store_t *s)
{ /* Unlike ordinary applies, a reset must be durable at once: the log no longer holds what
   * the old state was built from, so it cannot be redone from the log after a crash. */
    int rv = dl_kv_store_flush(s);
    if (rv == 0)
        rv = exec(s, "PRAGMA synchronous = FULL");
    if (rv == 0)
        rv = exec(s, "BEGIN; DELETE FROM kv; DELETE FROM members; UPDATE meta SET value = 0 "
                     "WHERE name IN ('applied_index', 'applied_term'); COMMIT;");
    if (rv == 0) {
        s->applied = s->flushed = 0;
        s->applied_term = s->flushed_term = 0;
        s->keys = s->keys_flushed = 0;
    } else {
        exec(s, "ROLLBACK");
    }
    int rv2 = exec(s, "PRAGMA synchronous = NORMAL");
    return rv ? rv : rv2;
}

int dl_kv_store_get(dl_kv_store_t *s, const void *key, size_t key_len, void **value,
                    size_t *value_len, uint64_t *version)
{
    sqlite3_stmt *st = s->stmt[STMT_GET];
    sqlite3_bind_blob(st, 1, key, (int)key_len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int rv = 0;
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        const void *blob = sqlite3_column_blob(st, 0);
        *value = malloc((size_t)n + 1);
        if (*value == NULL) {
            rv = -ENOMEM;
        } else {
            if (n > 0)
                memcpy(*value, blob, (size_t)n);
            ((char *)*value)[n] = '\0';
            *value_len = (size_t)n;
            *version = (uint64_t)sqlite3_column_int64(st, 1);
        }
    } else if (rc == SQLITE_DONE) {
        rv = DL_ENOTFOUND;
    } else {
        rv = sqlite_rv(s->db, rc);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rv;
}

/* The smallest byte string greater than every string starting with prefix, if there is one. */
static int prefix_end(const uint8_t *prefix, size_t len, uint8_t *end, size_t *end_len)
{
    memcpy(end, prefix, len);
    while (len > 0 && end[len - 1] == 0xff)
        len--;
    if (len == 0)
        return 0;
    end[len - 1]++;
    *end_len = len;
    return 1;
}

int dl_kv_store_list(dl_kv_store_t *s, const void *prefix, size_t prefix_len, size_t limit,
                     json_t **items, int *more)
{
    uint8_t end[4096 + 1];
    size_t end_len = 0;
    if (prefix_len > 4096)
        return DL_ETOOLARGE;
    int bounded = prefix_len > 0 && prefix_end(prefix, prefix_len, end, &end_len);
    sqlite3_stmt *st = s->stmt[bounded ? STMT_LIST : STMT_LIST_ALL];
    sqlite3_bind_blob(st, 1, prefix_len ? prefix : "", (int)prefix_len, SQLITE_STATIC);
    if (bounded) {
        sqlite3_bind_blob(st, 2, end, (int)end_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)limit + 1);
    } else {
        sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
    }
    json_t *arr = json_array();
    int rv = arr ? 0 : -ENOMEM;
    size_t n = 0;
    *more = 0;
    int rc = SQLITE_DONE;
    size_t bytes = 0;
    while (rv == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit || bytes > DL_KV_LIST_MAX_BYTES) {
            *more = 1;
            break;
        }
        json_t *item = json_object();
        if (item == NULL ||
            dl_json_set_bytes(item, "key", sqlite3_column_blob(st, 0),
                              (size_t)sqlite3_column_bytes(st, 0)) != 0 ||
            dl_json_set_bytes(item, "value", sqlite3_column_blob(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1)) != 0 ||
            json_object_set_new(item, "version", json_integer(sqlite3_column_int64(st, 2))) ||
            json_array_append_new(arr, item)) {
            json_decref(item);
            rv = -ENOMEM;
            break;
        }
        n++;
        bytes += (size_t)sqlite3_column_bytes(st, 0) + (size_t)sqlite3_column_bytes(st, 1);
    }
    if (rv == 0 && !*more && rc != SQLITE_DONE)
        rv = sqlite_rv(s->db, rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rv) {
        json_decref(arr);
        return rv;
    }
    *items = arr;
    return 0;
}

int64_t dl_kv_store_count(const dl_kv_store_t *s)
{
    return s->keys;
}
