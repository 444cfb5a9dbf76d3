/*
 * The txn engine at read-uncommitted, read-committed and snapshot isolation: what each level lets
 * a transaction see and which concurrent writes wait, go on or abort.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_fixture.h"
#include "txn/engine.h"
#include "txn/value.h"

/* Asserts that transaction id reads key as expected (NULL: absent). */
static void assert_reads(dl_txn_engine_t *e, uint64_t id, const char *key, const char *expected)
{
    char *value = NULL;
    dl_txn_outcome_t o = dl_txn_get(e, id, key, &value);
    assert_int_equal(o.status, DL_TXN_OK);
    if (expected == NULL)
        assert_null(value);
    else
        assert_string_equal(value, expected);
    free(value);
}

static void test_read_uncommitted_reads_a_value_that_is_then_rolled_back(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_READ_UNCOMMITTED), t2 = begin(e, DL_TXN_READ_UNCOMMITTED);
    ok(dl_txn_put(e, t1, "1", "11"));
    assert_reads(e, t2, "1", "11"); /* dirty read */
    ok(dl_txn_abort(e, t1));
    assert_reads(e, t2, "1", "10");
}

static void test_read_committed_and_snapshot_never_read_uncommitted_data(void **state)
{
    dl_txn_engine_t *e = *state;
    for (dl_txn_level_t level = DL_TXN_READ_COMMITTED; level <= DL_TXN_SNAPSHOT; level++) {
        uint64_t writer = begin(e, DL_TXN_READ_COMMITTED), reader = begin(e, level);
        ok(dl_txn_put(e, writer, "1", "99"));
        assert_reads(e, writer, "1", "99"); /* its own write */
        assert_reads(e, reader, "1", "10");
        ok(dl_txn_abort(e, writer));
        ok(dl_txn_commit(e, reader));
    }
}

static void test_a_write_waits_for_the_rows_writer_at_every_level(void **state)
{
    dl_txn_engine_t *e = *state;
    for (dl_txn_level_t level = 0; level < DL_TXN_N_LEVELS; level++) {
        uint64_t t1 = begin(e, level), t2 = begin(e, level);
        ok(dl_txn_put(e, t1, "1", "11"));
        dl_txn_outcome_t o = dl_txn_put(e, t2, "1", "12");
        assert_int_equal(o.status, DL_TXN_BLOCKED); /* no dirty write */
        assert_int_equal(o.waiting_for, t1);
        ok(dl_txn_abort(e, t1));
        ok(dl_txn_put(e, t2, "1", "12")); /* the writer rolled back: it goes on */
        ok(dl_txn_abort(e, t2));
    }
}

static void test_read_committed_loses_an_update_that_snapshot_isolation_refuses(void **state)
{
    dl_txn_engine_t *e = *state;
    /* Both read 10 and write 10 + 1. */
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    assert_reads(e, t1, "1", "10");
    assert_reads(e, t2, "1", "10");
    ok(dl_txn_put(e, t1, "1", "11"));
    assert_int_equal(dl_txn_put(e, t2, "1", "11").status, DL_TXN_BLOCKED);
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_put(e, t2, "1", "11")); /* goes on over t1's write */
    ok(dl_txn_commit(e, t2));
    dl_txn_rows_t rows;
    assert_int_equal(dl_txn_engine_committed(e, &rows), 0);
    assert_string_equal(rows.rows[0].value, "11"); /* one increment lost */
    dl_txn_rows_free(&rows);

    uint64_t t3 = begin(e, DL_TXN_SNAPSHOT), t4 = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, t3, "1", "11");
    assert_reads(e, t4, "1", "11");
    ok(dl_txn_put(e, t3, "1", "12"));
    assert_int_equal(dl_txn_put(e, t4, "1", "12").status, DL_TXN_BLOCKED);
    ok(dl_txn_commit(e, t3));
    dl_txn_outcome_t o = dl_txn_put(e, t4, "1", "12");
    assert_int_equal(o.status, DL_TXN_ABORTED);
    assert_int_equal(o.error, DL_TXN_ERR_SERIALIZATION);
    assert_false(dl_txn_active(e, t4));
    assert_int_equal(dl_txn_get(e, t4, "1", &(char *){NULL}).error, DL_TXN_ERR_NOT_ACTIVE);
}

static void test_snapshot_isolation_reads_one_moment_read_committed_does_not(void **state)
{
    dl_txn_engine_t *e = *state;
    /* Read skew: a transfer of 5 from 2 to 1 commits between the reader's two reads. */
    uint64_t rc = begin(e, DL_TXN_READ_COMMITTED), si = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, rc, "1", "10");
    assert_reads(e, si, "1", "10");
    uint64_t transfer = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_put(e, transfer, "1", "15"));
    ok(dl_txn_put(e, transfer, "2", "15"));
    ok(dl_txn_commit(e, transfer));
    assert_reads(e, rc, "2", "15"); /* 10 + 15: the total looks like 25, not 30 */
    assert_reads(e, si, "2", "20");
}

static void test_the_snapshot_is_taken_at_the_first_statement_not_at_begin(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t si = begin(e, DL_TXN_SNAPSHOT);
    uint64_t w = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_put(e, w, "1", "11"));
    ok(dl_txn_commit(e, w));
    assert_reads(e, si, "1", "11");
    ok(dl_txn_put(e, si, "1", "12")); /* no concurrent update since its snapshot */
    ok(dl_txn_commit(e, si));
}

static void test_an_insert_waits_for_an_uncommitted_insert_of_the_same_key(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_insert(e, t1, "3", "30"));
    assert_int_equal(dl_txn_insert(e, t2, "3", "31").status, DL_TXN_BLOCKED);
    ok(dl_txn_commit(e, t1));
    dl_txn_outcome_t o = dl_txn_insert(e, t2, "3", "31");
    assert_int_equal(o.status, DL_TXN_REFUSED);
    assert_int_equal(o.error, DL_TXN_ERR_DUPLICATE_KEY);
    assert_true(dl_txn_active(e, t2)); /* a refused statement does not end the transaction */
    int deleted = -1;
    ok(dl_txn_delete(e, t2, "3", &deleted));
    assert_int_equal(deleted, 1);
    assert_reads(e, t2, "3", NULL);
    ok(dl_txn_insert(e, t2, "3", "32"));
    ok(dl_txn_commit(e, t2));
    assert_reads(e, begin(e, DL_TXN_SNAPSHOT), "3", "32");
}

static void test_read_committed_delete_after_a_concurrent_delete_finds_nothing(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    int deleted = -1;
    ok(dl_txn_delete(e, t1, "2", &deleted));
    assert_int_equal(deleted, 1);
    assert_int_equal(dl_txn_delete(e, t2, "2", &deleted).status, DL_TXN_BLOCKED);
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_delete(e, t2, "2", &deleted));
    assert_int_equal(deleted, 0);
}

static void test_scans_filter_and_sort_numerically(void **state)
{
    dl_txn_engine_t *e = *state;
    assert_int_equal(dl_txn_engine_load(e, "10", "30"), 0);
    assert_int_equal(dl_txn_engine_load(e, "9", "33"), 0);
    uint64_t t = begin(e, DL_TXN_SNAPSHOT);
    dl_txn_pred_t pred = {
        .field = DL_TXN_FIELD_VALUE, .mod = 3, .cmp = DL_TXN_CMP_EQ, .operand = "0"};
    dl_txn_rows_t rows;
    ok(dl_txn_scan(e, t, &pred, &rows));
    assert_int_equal(rows.n, 2);
    assert_string_equal(rows.rows[0].key, "9");
    assert_string_equal(rows.rows[1].key, "10");
    dl_txn_rows_free(&rows);
    dl_txn_pred_t gt = {.field = DL_TXN_FIELD_KEY, .cmp = DL_TXN_CMP_GT, .operand = "2"};
    ok(dl_txn_scan(e, t, &gt, &rows));
    assert_int_equal(rows.n, 2);
    dl_txn_rows_free(&rows);
}

static void test_load_refuses_a_key_a_running_transaction_wrote(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t = begin(e, DL_TXN_SNAPSHOT);
    ok(dl_txn_put(e, t, "1", "11"));
    assert_int_equal(dl_txn_engine_load(e, "1", "99"), -EBUSY);
    assert_int_equal(dl_txn_engine_load(e, "2", "22"), 0);
    ok(dl_txn_commit(e, t));
    uint64_t r = begin(e, DL_TXN_READ_COMMITTED);
    assert_reads(e, r, "1", "11");
    assert_reads(e, r, "2", "22");
    ok(dl_txn_commit(e, r));
}

static void test_keys_and_values_of_every_size_are_kept_whole(void **state)
{
    dl_txn_engine_t *e = *state;
    /* Sizes around the engine's allocation classes: small pieces, whole cache lines, malloc. */
    size_t sizes[] = {0, 1, 15, 16, 47, 48, 63, 64, 200, 511, 512, 513, 4000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        char *key = malloc(sizes[i] + 2), *value = malloc(sizes[i] + 1);
        memset(key, 'k', sizes[i] + 1);
        key[sizes[i] + 1] = '\0';
        memset(value, 'a' + (int)(i % 26), sizes[i]);
        value[sizes[i]] = '\0';
        for (int round = 0; round < 6; round++) { /* overwritten: old versions pruned */
            uint64_t t = begin(e, DL_TXN_SNAPSHOT);
            ok(dl_txn_put(e, t, key, value));
            ok(round == 5 ? dl_txn_abort(e, t) : dl_txn_commit(e, t));
        }
        uint64_t t = begin(e, DL_TXN_READ_COMMITTED);
        assert_reads(e, t, key, value);
        ok(dl_txn_commit(e, t));
        free(key);
        free(value);
    }
}

static void test_a_snapshot_reads_its_versions_after_thousands_of_later_commits(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t old = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, old, "1", "10");
    char value[32] = "";
    for (int i = 0; i < 40000; i++) {
        snprintf(value, sizeof(value), "%d", i);
        uint64_t t = begin(e, i % 2 ? DL_TXN_SNAPSHOT : DL_TXN_READ_COMMITTED);
        ok(dl_txn_put(e, t, "1", value));
        ok(dl_txn_commit(e, t));
    }
    assert_reads(e, old, "1", "10"); /* versions pruned around it, not the one it reads */
    ok(dl_txn_commit(e, old));
    uint64_t now = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, now, "1", value);
    ok(dl_txn_commit(e, now));
}

static void test_old_versions_stay_readable_while_a_snapshot_needs_them(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t old = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, old, "1", "10");
    for (int i = 0; i < 100; i++) { /* each write prunes what no snapshot can read */
        char value[16];
        snprintf(value, sizeof(value), "%d", 100 + i);
        uint64_t w = begin(e, DL_TXN_READ_COMMITTED);
        ok(dl_txn_put(e, w, "1", value));
        ok(dl_txn_commit(e, w));
    }
    assert_reads(e, old, "1", "10");
    uint64_t mid = begin(e, DL_TXN_SNAPSHOT);
    assert_reads(e, mid, "1", "199");
    ok(dl_txn_commit(e, old));
    uint64_t w = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_put(e, w, "1", "200"));
    ok(dl_txn_commit(e, w));
    assert_reads(e, mid, "1", "199");
}

static void test_values_compare_as_integers_when_both_are(void **state)
{
    (void)state;
    assert_true(dl_txn_value_compare("9", "10") < 0);
    assert_true(dl_txn_value_compare("-3", "2") < 0);
    assert_true(dl_txn_value_compare("10", "abc") < 0);
    assert_true(dl_txn_value_compare("b", "abc") > 0);
    assert_int_equal(dl_txn_value_compare("007", "7"), 0);
    int64_t v;
    assert_false(dl_txn_value_integer("12a", &v));
    assert_false(dl_txn_value_integer("", &v));
    assert_false(dl_txn_value_integer("99999999999999999999", &v));
    dl_txn_pred_t odd = {
        .field = DL_TXN_FIELD_VALUE, .mod = 2, .cmp = DL_TXN_CMP_EQ, .operand = "1"};
    assert_true(dl_txn_pred_matches(&odd, "k", "7"));
    assert_false(dl_txn_pred_matches(&odd, "k", "x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_read_uncommitted_reads_a_value_that_is_then_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_read_committed_and_snapshot_never_read_uncommitted_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_write_waits_for_the_rows_writer_at_every_level,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_read_committed_loses_an_update_that_snapshot_isolation_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_snapshot_isolation_reads_one_moment_read_committed_does_not, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_the_snapshot_is_taken_at_the_first_statement_not_at_begin, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_an_insert_waits_for_an_uncommitted_insert_of_the_same_key, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_read_committed_delete_after_a_concurrent_delete_finds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scans_filter_and_sort_numerically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_refuses_a_key_a_running_transaction_wrote, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_values_of_every_size_are_kept_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_a_snapshot_reads_its_versions_after_thousands_of_later_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_versions_stay_readable_while_a_snapshot_needs_them,
                                        setup, teardown),
        cmocka_unit_test(test_values_compare_as_integers_when_both_are),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
