/*
 * The kv state machine: applies visible at once, committed to SQLite in batches by a flush,
 * rollback back to the last flush, conditions, and the key count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ddialab/error.h"
#include "kv/store.h"

#include "../storage/storage_test_util.h"

typedef struct {
    char *dir;
    char path[4200];
    dl_kv_store_t *s;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->dir = test_tmpdir();
    snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    char err[256];
    assert_int_equal(dl_kv_store_open(f->path, &f->s, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    dl_kv_store_close(f->s);
    test_remove_tree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Applies one command at index in the open transaction; returns the store's rv. */
static int apply(dl_kv_store_t *s, uint64_t index, uint8_t op, uint8_t cond, uint64_t expected,
                 const char *key, const char *value, dl_kv_result_t *res)
{
    dl_kv_command_t cmd = {.op = op,
                           .cond = cond,
                           .expected_version = expected,
                           .key = key,
                           .key_len = strlen(key),
                           .value = value,
                           .value_len = value ? strlen(value) : 0};
    dl_buf_t buf = {0};
    assert_int_equal(dl_kv_command_encode(&buf, &cmd), 0);
    assert_int_equal(dl_kv_store_begin(s), 0);
    int rv = dl_kv_store_apply(s, index, buf.data, buf.len, res);
    dl_buf_free(&buf);
    return rv;
}

static void put(dl_kv_store_t *s, uint64_t index, const char *key, const char *value)
{
    dl_kv_result_t res;
    assert_int_equal(apply(s, index, DL_KV_OP_PUT, DL_KV_COND_NONE, 0, key, value, &res), 0);
    assert_int_equal(res.rv, 0);
    assert_int_equal(res.version, index);
    assert_int_equal(dl_kv_store_mark_applied(s, index, 1), 0);
}

/* The value of key, or NULL when absent (caller frees). */
static char *get(dl_kv_store_t *s, const char *key, uint64_t *version)
{
    void *value;
    size_t len;
    int rv = dl_kv_store_get(s, key, strlen(key), &value, &len, version);
    if (rv == DL_ENOTFOUND)
        return NULL;
    assert_int_equal(rv, 0);
    char *text = malloc(len + 1);
    memcpy(text, value, len);
    text[len] = '\0';
    free(value);
    return text;
}

/* Asserts that key holds value at version. */
static void assert_holds(dl_kv_store_t *s, const char *key, const char *value, uint64_t version)
{
    uint64_t got_version = 0;
    char *got = get(s, key, &got_version);
    assert_non_null(got);
    assert_string_equal(got, value);
    assert_int_equal(got_version, version);
    free(got);
}

/* The applied index another connection sees: what a crash would keep. */
static uint64_t durable_index(const fixture_t *f)
{
    uint64_t index = 0, term = 0;
    assert_int_equal(dl_kv_snapshot_info(f->path, &index, &term), 0);
    return index;
}

static void test_applied_entries_are_read_at_once_and_committed_by_a_flush(void **state)
{
    fixture_t *f = *state;
    put(f->s, 1, "a", "one");
    put(f->s, 2, "b", "two");
    assert_holds(f->s, "b", "two", 2);
    assert_int_equal(dl_kv_store_applied(f->s), 2);
    assert_int_equal(dl_kv_store_count(f->s), 2);
    assert_int_equal(dl_kv_store_flushed(f->s), 0);
    assert_int_equal(durable_index(f), 0);

    assert_int_equal(dl_kv_store_flush(f->s), 0);
    assert_int_equal(dl_kv_store_flushed(f->s), 2);
    assert_int_equal(durable_index(f), 2);
    assert_int_equal(dl_kv_store_flush(f->s), 0); /* nothing open: a no-op */
}

static void test_rollback_returns_to_the_last_flush(void **state)
{
    fixture_t *f = *state;
    put(f->s, 1, "a", "one");
    assert_int_equal(dl_kv_store_flush(f->s), 0);
    put(f->s, 2, "a", "changed");
    put(f->s, 3, "c", "three");
    assert_int_equal(dl_kv_store_count(f->s), 2);

    dl_kv_store_rollback(f->s);
    assert_int_equal(dl_kv_store_applied(f->s), 1);
    assert_int_equal(dl_kv_store_count(f->s), 1);
    assert_holds(f->s, "a", "one", 1);
    uint64_t version;
    assert_null(get(f->s, "c", &version));

    /* Applying goes on from the flushed index. */
    put(f->s, 2, "c", "again");
    assert_int_equal(dl_kv_store_flush(f->s), 0);
    assert_int_equal(durable_index(f), 2);
}

static void test_an_unconditional_put_replaces_without_counting_a_new_key(void **state)
{
    fixture_t *f = *state;
    put(f->s, 1, "k", "first");
    put(f->s, 2, "k", "second");
    put(f->s, 3, "other", "x");
    assert_int_equal(dl_kv_store_count(f->s), 2);
    assert_holds(f->s, "k", "second", 2);

    dl_kv_result_t res;
    assert_int_equal(apply(f->s, 4, DL_KV_OP_DELETE, DL_KV_COND_NONE, 0, "k", NULL, &res), 0);
    assert_int_equal(res.rv, 0);
    assert_int_equal(dl_kv_store_mark_applied(f->s, 4, 1), 0);
    assert_int_equal(dl_kv_store_count(f->s), 1);
    put(f->s, 5, "k", "reborn");
    assert_int_equal(dl_kv_store_count(f->s), 2);
    assert_holds(f->s, "k", "reborn", 5);
}

static void test_conditions_are_evaluated_on_the_unflushed_state(void **state)
{
    fixture_t *f = *state;
    dl_kv_result_t res;
    assert_int_equal(apply(f->s, 1, DL_KV_OP_PUT, DL_KV_COND_ABSENT, 0, "k", "v1", &res), 0);
    assert_int_equal(res.rv, 0);
    /* Not flushed, yet the create-only condition sees the key. */
    assert_int_equal(apply(f->s, 2, DL_KV_OP_PUT, DL_KV_COND_ABSENT, 0, "k", "v2", &res), 0);
    assert_int_equal(res.rv, DL_EPRECONDITION);
    assert_int_equal(res.current_version, 1);
    assert_int_equal(apply(f->s, 3, DL_KV_OP_PUT, DL_KV_COND_VERSION, 1, "k", "v3", &res), 0);
    assert_int_equal(res.rv, 0);
    assert_int_equal(res.version, 3);
    assert_int_equal(apply(f->s, 4, DL_KV_OP_PUT, DL_KV_COND_VERSION, 1, "k", "v4", &res), 0);
    assert_int_equal(res.rv, DL_EPRECONDITION);
    assert_int_equal(res.current_version, 3);
    assert_int_equal(apply(f->s, 5, DL_KV_OP_DELETE, DL_KV_COND_NONE, 0, "nope", NULL, &res), 0);
    assert_int_equal(res.rv, DL_ENOTFOUND);
    assert_int_equal(dl_kv_store_mark_applied(f->s, 5, 1), 0);
    assert_int_equal(dl_kv_store_count(f->s), 1);
}

static void test_close_keeps_what_was_applied(void **state)
{
    fixture_t *f = *state;
    put(f->s, 1, "a", "one");
    put(f->s, 2, "b", "two");
    dl_kv_store_close(f->s);
    char err[256];
    assert_int_equal(dl_kv_store_open(f->path, &f->s, err, sizeof(err)), 0);
    assert_int_equal(dl_kv_store_applied(f->s), 2);
    assert_int_equal(dl_kv_store_flushed(f->s), 2);
    assert_int_equal(dl_kv_store_count(f->s), 2);
}

static void test_reset_empties_even_an_open_transaction(void **state)
{
    fixture_t *f = *state;
    put(f->s, 1, "a", "one");
    assert_int_equal(dl_kv_store_flush(f->s), 0);
    put(f->s, 2, "b", "two");
    assert_int_equal(dl_kv_store_reset(f->s), 0);
    assert_int_equal(dl_kv_store_applied(f->s), 0);
    assert_int_equal(dl_kv_store_count(f->s), 0);
    assert_int_equal(durable_index(f), 0);
    uint64_t version;
    assert_null(get(f->s, "a", &version));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_applied_entries_are_read_at_once_and_committed_by_a_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_returns_to_the_last_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_unconditional_put_replaces_without_counting_a_new_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions_are_evaluated_on_the_unflushed_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_keeps_what_was_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_empties_even_an_open_transaction, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
