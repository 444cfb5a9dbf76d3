/*
 * libFuzzer target for the kv command codec: the payload of every normal Raft log entry, which a
 * node reads back from its own log and receives from its leader. Any input must either be refused
 * with DL_EPROTO or decode into a command that re-encodes to exactly the same bytes.
 *
 * A command that decodes is also applied to an in-memory state machine inside a transaction that
 * is rolled back, and the result is checked against the rules of src/kv/store.h (conditions,
 * versions, delete of an absent key), so odd keys and values (empty, binary, NUL bytes) are
 * exercised all the way into SQLite.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/buf.h"
#include "ddialab/error.h"
#include "ddialab/logging.h"
#include "kv/store.h"

#define APPLY_INDEX     41
#define PREEXISTING_VER 7

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_kv_command: %s\n", what);
    abort();
}

static dl_kv_store_t *store(void)
{
    static dl_kv_store_t *s;
    if (s == NULL) {
        char err[256];
        dl_log_set_level(DL_LOG_ERROR);
        if (dl_kv_store_open(":memory:", &s, err, sizeof(err)) != 0) {
            fprintf(stderr, "fuzz_kv_command: cannot open the store: %s\n", err);
            abort();
        }
    }
    return s;
}

/* Applies cmd (encoded in data) to the store, with the key already present at version
   PREEXISTING_VER when preexisting is set, checks the outcome, and rolls back. */
static void check_apply(const uint8_t *data, size_t size, const dl_kv_command_t *cmd,
                        int preexisting)
{
    dl_kv_store_t *s = store();
    dl_kv_result_t res;
    if (dl_kv_store_begin(s) != 0)
        fail("begin failed");
    if (preexisting) {
        dl_buf_t put = {0};
        dl_kv_command_t old = {.op = DL_KV_OP_PUT,
                               .key = cmd->key,
                               .key_len = cmd->key_len,
                               .value = "old",
                               .value_len = 3};
        if (dl_kv_command_encode(&put, &old) != 0 ||
            dl_kv_store_apply(s, PREEXISTING_VER, put.data, put.len, &res) != 0 || res.rv != 0)
            fail("seeding the key failed");
        dl_buf_free(&put);
    }
    uint64_t before = preexisting ? PREEXISTING_VER : 0;
    if (dl_kv_store_apply(s, APPLY_INDEX, data, size, &res) != 0)
        fail("apply of a command that decodes failed");

    int holds = 1;
    if (cmd->cond == DL_KV_COND_VERSION)
        holds = before != 0 && before == cmd->expected_version;
    else if (cmd->cond == DL_KV_COND_ABSENT)
        holds = before == 0;
    else if (cmd->cond == DL_KV_COND_PRESENT)
        holds = before != 0;

    void *value = NULL;
    size_t value_len = 0;
    uint64_t version = 0;
    int got = dl_kv_store_get(s, cmd->key, cmd->key_len, &value, &value_len, &version);
    if (!holds) {
        if (res.rv != DL_EPRECONDITION || res.current_version != before)
            fail("a failed condition was not reported with the current version");
        if (before == 0 ? got != DL_ENOTFOUND : got != 0 || version != before)
            fail("a failed condition changed the key");
    } else if (cmd->op == DL_KV_OP_DELETE) {
        if (before == 0 ? res.rv != DL_ENOTFOUND : res.rv != 0)
            fail("delete reported the wrong outcome");
        if (got != DL_ENOTFOUND)
            fail("the key is still there after delete");
    } else {
        if (res.rv != 0 || res.version != APPLY_INDEX)
            fail("put did not report the entry's index as the version");
        if (got != 0 || version != APPLY_INDEX || value_len != cmd->value_len ||
            (value_len > 0 && memcmp(value, cmd->value, value_len) != 0))
            fail("put did not store the value byte for byte");
    }
    free(value);
    dl_kv_store_rollback(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that a read past the end is caught by ASan. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);

    dl_kv_command_t cmd;
    int rv = dl_kv_command_decode(copy, size, &cmd);
    if (rv != 0) {
        if (rv != DL_EPROTO)
            fail("decode failed with something other than DL_EPROTO");
        free(copy);
        return 0;
    }
    if (cmd.op != DL_KV_OP_PUT && cmd.op != DL_KV_OP_DELETE)
        fail("decoded an unknown op");
    if (cmd.cond > DL_KV_COND_PRESENT)
        fail("decoded an unknown condition");
    if (cmd.key_len > size || cmd.value_len > size - cmd.key_len)
        fail("decoded lengths exceed the input");
    if (cmd.op == DL_KV_OP_DELETE && cmd.value_len != 0)
        fail("decoded a delete with a value");

    dl_buf_t out = {0};
    if (dl_kv_command_encode(&out, &cmd) != 0)
        fail("encode failed");
    if (out.len != size || memcmp(out.data, copy, size) != 0)
        fail("decoded command does not re-encode to the same bytes");
    dl_buf_free(&out);

    check_apply(copy, size, &cmd, size % 2 == 1);
    free(copy);
    return 0;
}
