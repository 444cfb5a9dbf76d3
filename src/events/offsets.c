/* Committed consumer-group offsets in SQLite (offsets.h). */
#include "events/offsets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/sqlite_util.h"

struct dl_offsets_s {
    sqlite3 *db;
    sqlite3_stmt *put, *get, *each;
};

static const char *const MIGRATIONS[] = {
    "CREATE TABLE offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT "
    "NULL, committed_offset INTEGER NOT NULL, metadata TEXT, PRIMARY KEY (group_id, topic, "
    "partition)) WITHOUT ROWID",
};

void dl_offsets_close(dl_offsets_t *o)
{
    if (o == NULL)
        return;
    sqlite3_finalize(o->put);
    sqlite3_finalize(o->get);
    sqlite3_finalize(o->each);
    sqlite3_close(o->db);
    free(o);
}

int dl_offsets_open(const char *path, dl_offsets_t **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    dl_offsets_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    int rv = dl_sqlite_open(path, &o->db, errmsg, errlen);
    if (rv == 0)
        rv = dl_sqlite_exec(o->db, "PRAGMA synchronous=FULL", errmsg, errlen);
    if (rv == 0)
        rv = dl_sqlite_migrate(o->db, MIGRATIONS, 1, errmsg, errlen);
    int rc = SQLITE_OK;
    if (rv == 0 &&
        ((rc = sqlite3_prepare_v2(o->db,
                                  "INSERT INTO offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT DO "
                                  "UPDATE SET committed_offset = excluded.committed_offset, "
                                  "metadata = excluded.metadata",
                                  -1, &o->put, NULL)) != SQLITE_OK ||
         (rc = sqlite3_prepare_v2(o->db,
                                  "SELECT committed_offset, metadata FROM offsets WHERE group_id "
                                  "= ? AND topic = ? AND partition = ?",
                                  -1, &o->get, NULL)) != SQLITE_OK ||
         (rc = sqlite3_prepare_v2(o->db,
                                  "SELECT topic, partition, committed_offset, metadata FROM "
                                  "offsets WHERE group_id = ? ORDER BY topic, partition",
                                  -1, &o->each, NULL)) != SQLITE_OK))
        rv = dl_sqlite_error(o->db, rc, "preparing the offsets statements", errmsg, errlen);
    if (rv != 0) {
        dl_offsets_close(o);
        return rv;
    }
    *out = o;
    return 0;
}

int dl_offsets_begin(dl_offsets_t *o)
{
    return dl_sqlite_exec(o->db, "BEGIN IMMEDIATE", NULL, 0);
}

int dl_offsets_end(dl_offsets_t *o, int commit)
{
    return dl_sqlite_exec(o->db, commit ? "COMMIT" : "ROLLBACK", NULL, 0);
}

int dl_offsets_put(dl_offsets_t *o, const char *group, const char *topic, int32_t partition,
                   int64_t offset, const char *metadata)
{
    sqlite3_bind_text(o->put, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(o->put, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(o->put, 3, partition);
    sqlite3_bind_int64(o->put, 4, offset);
    if (metadata != NULL)
        sqlite3_bind_text(o->put, 5, metadata, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(o->put, 5);
    int rc = sqlite3_step(o->put);
    sqlite3_reset(o->put);
    sqlite3_clear_bindings(o->put);
    return rc == SQLITE_DONE ? 0 : dl_sqlite_error(o->db, rc, "committing an offset", NULL, 0);
}

int64_t dl_offsets_get(dl_offsets_t *o, const char *group, const char *topic, int32_t partition,
                       char **metadata)
{
    if (metadata != NULL)
        *metadata = NULL;
    sqlite3_bind_text(o->get, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(o->get, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(o->get, 3, partition);
    int64_t offset = -1;
    if (sqlite3_step(o->get) == SQLITE_ROW) {
        offset = sqlite3_column_int64(o->get, 0);
        const unsigned char *m = sqlite3_column_text(o->get, 1);
        if (metadata != NULL && m != NULL)
            *metadata = strdup((const char *)m);
    }
    sqlite3_reset(o->get);
    sqlite3_clear_bindings(o->get);
    return offset;
}

int dl_offsets_each(dl_offsets_t *o, const char *group,
                    void (*fn)(void *ctx, const char *topic, int32_t partition, int64_t offset,
                               const char *metadata),
                    void *ctx)
{
    sqlite3_bind_text(o->each, 1, group, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(o->each)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(o->each, 0), sqlite3_column_int(o->each, 1),
           sqlite3_column_int64(o->each, 2), (const char *)sqlite3_column_text(o->each, 3));
    sqlite3_reset(o->each);
    sqlite3_clear_bindings(o->each);
    return rc == SQLITE_DONE ? 0 : dl_sqlite_error(o->db, rc, "reading offsets", NULL, 0);
}

int dl_offsets_delete_topic(dl_offsets_t *o, const char *topic)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(o->db, "DELETE FROM offsets WHERE topic = ?", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return dl_sqlite_error(o->db, rc, "deleting a topic's offsets", NULL, 0);
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0
                             : dl_sqlite_error(o->db, rc, "deleting a topic's offsets", NULL, 0);
}
