/*
 * The kv state machine: committed log entries applied to SQLite.
 *
 * A command is the payload of a normal log entry (encoded by dl_kv_command_encode). Conditions
 * (If-Match, If-None-Match) are evaluated when the entry is applied, so every node reaches the
 * same result in the same order. A key's version is the log index of the write that produced its
 * current value: it only grows and is never reused, even when a key is deleted and created again,
 * so a conditional write can never match a value it did not see (no ABA).
 *
 * Applied entries accumulate in one open SQLite transaction that a flush commits together with
 * the applied index (see dl_kv_store_mark_applied), so after a crash the node resumes exactly
 * after the last flushed entry and redoes the rest from the log.
 */
#ifndef DDIALAB_KV_STORE_H
#define DDIALAB_KV_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"

typedef enum {
    DL_KV_OP_PUT = 1,
    DL_KV_OP_DELETE = 2,
} dl_kv_op_t;

typedef enum {
    DL_KV_COND_NONE = 0,
    DL_KV_COND_VERSION = 1, /* If-Match: <version> */
    DL_KV_COND_ABSENT = 2,  /* If-None-Match: * (create only) */
    DL_KV_COND_PRESENT = 3, /* If-Match: * */
} dl_kv_cond_t;

typedef struct dl_kv_command_s {
    uint8_t op;   /* dl_kv_op_t */
    uint8_t cond; /* dl_kv_cond_t */
    uint64_t expected_version;
    const void *key;
    size_t key_len;
    const void *value; /* PUT only */
    size_t value_len;
} dl_kv_command_t;

/* Appends the encoded command to out. 0 or -ENOMEM. */
int dl_kv_command_encode(dl_buf_t *out, const dl_kv_command_t *cmd);
/* Decodes data into cmd (pointers into data). 0 or DL_EPROTO. */
int dl_kv_command_decode(const void *data, size_t len, dl_kv_command_t *cmd);

typedef struct dl_kv_result_s {
    int rv;                   /* 0, DL_EPRECONDITION or DL_ENOTFOUND */
    uint64_t version;         /* the key's version after the write (PUT) */
    uint64_t current_version; /* on DL_EPRECONDITION: what the key had (0 = absent) */
} dl_kv_result_t;

typedef struct dl_kv_store_s dl_kv_store_t;

int dl_kv_store_open(const char *path, dl_kv_store_t **out, char *errmsg, size_t errlen);
void dl_kv_store_close(dl_kv_store_t *s);
uint64_t dl_kv_store_applied(const dl_kv_store_t *s);

/* Applying: begin, apply each entry in index order, then mark the last index applied. A noop
 * entry is applied with cmd == NULL (it only moves the applied index).
 *
 * Marking does not commit the SQLite transaction: applied entries are visible to this store's
 * reads at once, and dl_kv_store_flush commits many chunks together (as etcd's backend batches
 * its transactions), so that a page written by many entries reaches the WAL once. What a crash
 * loses of the unflushed tail is redone from the Raft log, which holds every committed entry
 * after the flushed index. dl_kv_store_begin joins the open transaction when there is one. */
int dl_kv_store_begin(dl_kv_store_t *s);
int dl_kv_store_apply(dl_kv_store_t *s, uint64_t index, const void *cmd, size_t len,
                      dl_kv_result_t *result);
int dl_kv_store_mark_applied(dl_kv_store_t *s, uint64_t applied_index, uint64_t applied_term);
/* Commits the open transaction, if any; afterwards the flushed index is the applied index. */
int dl_kv_store_flush(dl_kv_store_t *s);
/* The applied index as of the last SQLite commit: what another connection (a snapshot copy) or
 * a restart after a clean close sees. */
uint64_t dl_kv_store_flushed(const dl_kv_store_t *s);
/* Applying a configuration entry (within the transaction): records its payload as the
 * membership in force. */
int dl_kv_store_apply_config(dl_kv_store_t *s, const void *payload, size_t len);
/* The membership payload recorded by the store; *payload NULL when none (the initial
 * membership from the flags). The caller frees *payload. */
int dl_kv_store_members(dl_kv_store_t *s, void **payload, size_t *len);
/* The term of the entry at the applied index, recorded with it (0 before anything applied). */
uint64_t dl_kv_store_applied_term(const dl_kv_store_t *s);
/* Abandons the open transaction: every applied but unflushed entry with it (the applied index
 * goes back to the flushed one). */
void dl_kv_store_rollback(dl_kv_store_t *s);

/* Empties the state machine (applied index 0) so it can be rebuilt from the log. */
int dl_kv_store_reset(dl_kv_store_t *s);

/*
 * Snapshots. dl_kv_store_snapshot copies the database at db_path into a new file at path from
 * one read transaction of its own connection (so it may run on another thread while the store
 * applies entries), makes the copy self-contained and fsyncs it; *index and *term are the
 * applied index and term the copy holds, *size its bytes. dl_kv_store_restore replaces the
 * store's contents with a snapshot file, durably. dl_kv_snapshot_info reads a snapshot's applied
 * index and term.
 */
int dl_kv_store_snapshot(const char *db_path, const char *path, uint64_t *index, uint64_t *term,
                         uint64_t *size, char *errmsg, size_t errlen);
int dl_kv_store_restore(dl_kv_store_t *s, const char *path);
int dl_kv_snapshot_info(const char *path, uint64_t *index, uint64_t *term);

/* Reads a key: 0 with *value malloc'd (caller frees) and *version, or DL_ENOTFOUND. */
int dl_kv_store_get(dl_kv_store_t *s, const void *key, size_t key_len, void **value,
                    size_t *value_len, uint64_t *version);
/* Lists up to limit keys that start with prefix, in key order, as a JSON array of
 * {"key", "value" (or "value_base64" when not UTF-8), "version"}; *more says whether more exist.
 * A listing stops early, with *more set, once it holds DL_KV_LIST_MAX_BYTES of keys and values. */
#define DL_KV_LIST_MAX_BYTES (16u << 20)
int dl_kv_store_list(dl_kv_store_t *s, const void *prefix, size_t prefix_len, size_t limit,
                     json_t **items, int *more);
/* Number of keys (for /status), kept up to date by apply: no scan. */
int64_t dl_kv_store_count(const dl_kv_store_t *s);

#endif
