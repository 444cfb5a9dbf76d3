/*
 * The history checker on hand-made histories: a serial history has no anomaly, each of Adya's
 * classes is found on its smallest example and named with the right transactions, reads whose
 * version cannot be known add no edge, and long histories are checked in bounded time.
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

#include "txn/history.h"

/* ---- Helpers: one line per operation, as the histories are written in papers ---------------- */

static dl_txn_hist_txn_t *begin(dl_txn_hist_t *h, uint64_t id)
{
    dl_txn_hist_txn_t *t = dl_txn_hist_begin(h, id, DL_TXN_SNAPSHOT);
    assert_non_null(t);
    return t;
}

/* Ti read key = value (NULL: absent) written by writer (0: setup). */
static void r(dl_txn_hist_txn_t *t, const char *key, const char *value, uint64_t writer)
{
    assert_int_equal(dl_txn_hist_read(t, key, value, writer), 0);
}

/* Ti wrote key = value (NULL: deleted it). */
static void w(dl_txn_hist_txn_t *t, const char *key, const char *value)
{
    assert_int_equal(dl_txn_hist_write(t, key, value), 0);
}

/* Ti scanned `value == operand` and got rows given as key, value, writer triples. */
static void scan_value_eq(dl_txn_hist_txn_t *t, const char *operand, size_t n, ...)
{
    dl_txn_pred_t pred = {.field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_EQ, .operand = operand};
    dl_txn_row_t rows[8];
    assert_true(n <= 8);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        rows[i].key = va_arg(ap, char *);
        rows[i].value = va_arg(ap, char *);
        rows[i].writer = va_arg(ap, uint64_t);
    }
    va_end(ap);
    dl_txn_rows_t list = {.rows = rows, .n = n, .cap = n};
    assert_int_equal(dl_txn_hist_scan(t, &pred, &list), 0);
}

static void commit(dl_txn_hist_txn_t *t, uint64_t ts)
{
    assert_int_equal(dl_txn_hist_commit(t, ts), 0);
}

static void abort_txn(dl_txn_hist_txn_t *t)
{
    assert_int_equal(dl_txn_hist_abort(t), 0);
}

static void check(dl_txn_hist_t *h, dl_txn_hist_report_t *report)
{
    assert_int_equal(dl_txn_hist_check(h, NULL, report), 0);
}

/* Asserts that the report has exactly `count` anomalies in all, all of class a. */
static void assert_only(const dl_txn_hist_report_t *report, dl_txn_anomaly_t a, uint64_t count)
{
    for (int i = 0; i < DL_TXN_N_ANOMALIES; i++)
        if (report->count[i] != (i == (int)a ? count : 0)) {
            fprintf(stderr, "%s: %llu\n", dl_txn_anomaly_name((dl_txn_anomaly_t)i),
                    (unsigned long long)report->count[i]);
            fail();
        }
}

/* The first example of class a. */
static const dl_txn_hist_example_t *example(const dl_txn_hist_report_t *report, dl_txn_anomaly_t a)
{
    for (size_t i = 0; i < report->n_examples; i++)
        if (report->examples[i].anomaly == a)
            return &report->examples[i];
    fail_msg("no example of %s", dl_txn_anomaly_name(a));
    return NULL;
}

/* Asserts that the example names these transactions, in this order. */
static void assert_txns(const dl_txn_hist_example_t *ex, size_t n, ...)
{
    assert_int_equal(ex->n_txns, n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ex->txns[i], va_arg(ap, uint64_t));
    va_end(ap);
}

static int setup(void **state)
{
    dl_txn_hist_t *h = dl_txn_hist_new();
    assert_non_null(h);
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    dl_txn_hist_free(*state);
    return 0;
}

/* ---- No anomaly -------------------------------------------------------------------------- */

static void test_a_serial_history_has_no_anomaly(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "0"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    r(t1, "x", "0", 0);
    w(t1, "x", "1");
    w(t1, "y", "1");
    commit(t1, 1);
    dl_txn_hist_txn_t *t2 = begin(h, 2);
    r(t2, "x", "1", 1);
    r(t2, "y", "1", 1);
    r(t2, "z", NULL, 0);
    w(t2, "x", "2");
    w(t2, "y", NULL);
    commit(t2, 2);
    dl_txn_hist_txn_t *t3 = begin(h, 3);
    r(t3, "y", NULL, 0);
    scan_value_eq(t3, "2", 1, "x", "2", (uint64_t)2);
    w(t3, "z", "2");
    commit(t3, 3);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    assert_int_equal(report.n_committed, 3);
    assert_int_equal(report.n_operations, 11);
    assert_true(report.n_edges >= 4); /* T1 -> T2 -> T3 by ww, wr and rw */
    assert_int_equal(report.n_ambiguous, 0);
    dl_txn_hist_report_free(&report);
}

static void test_concurrent_transactions_that_serialize_have_no_anomaly(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "0"), 0);
    /* T1 reads x while T2 overwrites it: T1 -rw-> T2 only, equivalent to T1; T2. */
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    r(t1, "x", "0", 0);
    w(t2, "x", "5");
    commit(t2, 1);
    w(t1, "y", "0");
    commit(t1, 2);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    dl_txn_hist_report_free(&report);
}

/* ---- One example of each class ----------------------------------------------------------- */

static void test_a_lost_update_is_g_single(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "10"), 0);
    dl_txn_hist_txn_t *bystander = begin(h, 7);
    r(bystander, "x", "10", 0);
    commit(bystander, 1);
    /* Both read 10 and write 11 (read committed lets the second write go on). */
    dl_txn_hist_txn_t *t8 = begin(h, 8), *t9 = begin(h, 9);
    r(t8, "x", "10", 0);
    r(t9, "x", "10", 0);
    w(t8, "x", "11");
    commit(t8, 2);
    w(t9, "x", "11");
    commit(t9, 3);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G_SINGLE, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G_SINGLE);
    assert_txns(ex, 2, (uint64_t)8, (uint64_t)9);
    assert_string_equal(ex->text, "T8 -ww(key x)-> T9 -rw(key x)-> T8");
    dl_txn_hist_report_free(&report);
}

static void test_read_skew_is_g_single(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "a", "50"), 0);
    assert_int_equal(dl_txn_hist_load(h, "b", "50"), 0);
    dl_txn_hist_txn_t *audit = begin(h, 1);
    r(audit, "a", "50", 0);
    dl_txn_hist_txn_t *transfer = begin(h, 2);
    r(transfer, "a", "50", 0);
    r(transfer, "b", "50", 0);
    w(transfer, "a", "40");
    w(transfer, "b", "60");
    commit(transfer, 1);
    r(audit, "b", "60", 2); /* sees 110 in all */
    commit(audit, 2);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G_SINGLE, 1);
    assert_string_equal(example(&report, DL_TXN_G_SINGLE)->text,
                        "T1 -rw(key a)-> T2 -wr(key b)-> T1");
    dl_txn_hist_report_free(&report);
}

static void test_write_skew_is_g2_item(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "alice", "1"), 0);
    assert_int_equal(dl_txn_hist_load(h, "bob", "1"), 0);
    /* Both doctors see two on call and each takes one off. */
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    r(t1, "alice", "1", 0);
    r(t1, "bob", "1", 0);
    r(t2, "alice", "1", 0);
    r(t2, "bob", "1", 0);
    w(t1, "alice", "0");
    w(t2, "bob", "0");
    commit(t1, 1);
    commit(t2, 2);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G2_ITEM, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G2_ITEM);
    assert_txns(ex, 2, (uint64_t)1, (uint64_t)2);
    assert_string_equal(ex->text, "T1 -rw(key bob)-> T2 -rw(key alice)-> T1");
    dl_txn_hist_report_free(&report);
}

static void test_a_phantom_double_booking_is_g2(void **state)
{
    dl_txn_hist_t *h = *state;
    /* Both check that slot 3 is free with a predicate read, then each books it. */
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    scan_value_eq(t1, "3", 0);
    scan_value_eq(t2, "3", 0);
    w(t1, "booking-1", "3");
    w(t2, "booking-2", "3");
    commit(t1, 1);
    commit(t2, 2);
    dl_txn_hist_txn_t *t3 = begin(h, 3); /* later: sees both */
    scan_value_eq(t3, "3", 2, "booking-1", "3", (uint64_t)1, "booking-2", "3", (uint64_t)2);
    commit(t3, 3);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G2, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G2);
    assert_txns(ex, 2, (uint64_t)1, (uint64_t)2);
    assert_string_equal(ex->text, "T1 -rw(value == 3: key booking-2)-> "
                                  "T2 -rw(value == 3: key booking-1)-> T1");
    dl_txn_hist_report_free(&report);
}

static void test_an_aborted_read_is_g1a(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "1"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "99");
    r(t2, "x", "99", 1); /* read uncommitted */
    abort_txn(t1);
    commit(t2, 1);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G1A, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G1A);
    assert_txns(ex, 2, (uint64_t)2, (uint64_t)1);
    assert_string_equal(ex->text, "T2 read key x = 99 written by T1, which aborted");
    assert_int_equal(report.n_aborted, 1);
    dl_txn_hist_report_free(&report);
}

static void test_an_aborted_readers_reads_do_not_count(void **state)
{
    dl_txn_hist_t *h = *state;
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "99");
    r(t2, "x", "99", 1);
    abort_txn(t1);
    abort_txn(t2);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    dl_txn_hist_report_free(&report);
}

static void test_an_intermediate_read_is_g1b(void **state)
{
    dl_txn_hist_t *h = *state;
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "5");
    r(t2, "x", "5", 1);
    w(t1, "x", "6");
    commit(t1, 1);
    commit(t2, 2);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G1B, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G1B);
    assert_txns(ex, 2, (uint64_t)2, (uint64_t)1);
    assert_non_null(strstr(ex->text, "intermediate version of T1"));
    dl_txn_hist_report_free(&report);
}

static void test_circular_information_flow_is_g1c(void **state)
{
    dl_txn_hist_t *h = *state;
    /* Each reads what the other wrote before either committed. */
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "1");
    w(t2, "y", "2");
    r(t1, "y", "2", 2);
    r(t2, "x", "1", 1);
    commit(t1, 1);
    commit(t2, 2);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G1C, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G1C);
    assert_txns(ex, 2, (uint64_t)1, (uint64_t)2);
    assert_string_equal(ex->text, "T1 -wr(key x)-> T2 -wr(key y)-> T1");
    dl_txn_hist_report_free(&report);
}

static void test_a_dirty_write_cycle_is_g0(void **state)
{
    dl_txn_hist_t *h = *state;
    /* w1(x) w2(x) w2(y) w1(y) on a system without write locks: x1 << x2 but y2 << y1. */
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "1");
    w(t2, "x", "2");
    w(t2, "y", "2");
    w(t1, "y", "1");
    commit(t1, 1);
    commit(t2, 2);
    assert_int_equal(dl_txn_hist_order(h, "x", (uint64_t[]){1, 2}, 2), 0);
    assert_int_equal(dl_txn_hist_order(h, "y", (uint64_t[]){2, 1}, 2), 0);
    assert_int_equal(dl_txn_hist_order(h, "never-touched", (uint64_t[]){1}, 1), 0);

    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G0, 1);
    const dl_txn_hist_example_t *ex = example(&report, DL_TXN_G0);
    assert_txns(ex, 2, (uint64_t)1, (uint64_t)2);
    assert_string_equal(ex->text, "T1 -ww(key x)-> T2 -ww(key y)-> T1");
    dl_txn_hist_report_free(&report);
}

static void test_the_same_writes_in_commit_order_have_no_g0(void **state)
{
    dl_txn_hist_t *h = *state;
    dl_txn_hist_txn_t *t1 = begin(h, 1), *t2 = begin(h, 2);
    w(t1, "x", "1");
    w(t2, "x", "2");
    w(t2, "y", "2");
    w(t1, "y", "1");
    commit(t1, 1);
    commit(t2, 2);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    dl_txn_hist_report_free(&report);
}

/* ---- Reads that no version explains, and reads whose version is unknown ---------------------- */

static void test_a_value_its_writer_never_wrote_is_an_impossible_read(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "1"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    w(t1, "x", "5");
    commit(t1, 1);
    dl_txn_hist_txn_t *t2 = begin(h, 2);
    r(t2, "x", "7", 1);
    r(t2, "x", "2", 0);
    r(t2, "x", "5", 42);
    commit(t2, 2);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_IMPOSSIBLE_READ, 3);
    dl_txn_hist_report_free(&report);
}

static void test_a_scan_that_misses_a_row_present_all_along_is_an_impossible_read(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "b", "3"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    scan_value_eq(t1, "3", 0);
    commit(t1, 1);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_IMPOSSIBLE_READ, 1);
    assert_non_null(strstr(example(&report, DL_TXN_IMPOSSIBLE_READ)->text, "missed key b"));
    dl_txn_hist_report_free(&report);
}

static void test_a_row_created_and_removed_while_a_scan_ran_adds_no_edge(void **state)
{
    dl_txn_hist_t *h = *state;
    dl_txn_hist_txn_t *t1 = begin(h, 1); /* scans at some moment while T2 and T3 commit */
    dl_txn_hist_txn_t *t2 = begin(h, 2);
    w(t2, "b", "3");
    commit(t2, 1);
    dl_txn_hist_txn_t *t3 = begin(h, 3);
    w(t3, "b", NULL);
    commit(t3, 2);
    scan_value_eq(t1, "3", 0); /* before T2, or after T3? */
    commit(t1, 3);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    assert_int_equal(report.n_ambiguous, 1);
    dl_txn_hist_report_free(&report);
}

static void test_a_scan_after_a_commit_sees_its_row_or_is_flagged(void **state)
{
    dl_txn_hist_t *h = *state;
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    w(t1, "b", "3");
    commit(t1, 1);
    dl_txn_hist_txn_t *t2 = begin(h, 2); /* began after T1 committed: must see b */
    scan_value_eq(t2, "3", 0);
    commit(t2, 2);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_IMPOSSIBLE_READ, 1);
    dl_txn_hist_report_free(&report);
}

static void test_at_read_uncommitted_a_missed_row_may_be_an_uncommitted_delete(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "b", "3"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    w(t1, "b", NULL);
    dl_txn_hist_txn_t *t2 = dl_txn_hist_begin(h, 2, DL_TXN_READ_UNCOMMITTED);
    assert_non_null(t2);
    scan_value_eq(t2, "3", 0); /* saw T1's deletion before T1 rolled back */
    r(t2, "b", NULL, 0);
    abort_txn(t1);
    commit(t2, 1);
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_int_equal(dl_txn_hist_report_total(&report), 0);
    assert_int_equal(report.n_ambiguous, 2);
    dl_txn_hist_report_free(&report);
}

static void test_a_deleted_row_read_as_absent_anti_depends_on_its_recreator(void **state)
{
    dl_txn_hist_t *h = *state;
    assert_int_equal(dl_txn_hist_load(h, "x", "1"), 0);
    dl_txn_hist_txn_t *t1 = begin(h, 1);
    w(t1, "x", NULL);
    commit(t1, 1);
    /* T2 sees x deleted and writes y; T3 finds y absent and re-creates x. */
    dl_txn_hist_txn_t *t2 = begin(h, 2), *t3 = begin(h, 3);
    r(t2, "x", NULL, 0);
    r(t3, "y", NULL, 0);
    w(t3, "x", "2");
    w(t2, "y", "2");
    commit(t2, 2);
    commit(t3, 3);
    dl_txn_hist_report_t report;
    check(h, &report);
    /* T2 -rw(x)-> T3 (T3 writes the version after the tombstone T2 saw) and T3 -rw(y)-> T2. */
    assert_only(&report, DL_TXN_G2_ITEM, 1);
    assert_txns(example(&report, DL_TXN_G2_ITEM), 2, (uint64_t)2, (uint64_t)3);
    dl_txn_hist_report_free(&report);
}

static void test_duplicate_transaction_ids_are_refused(void **state)
{
    dl_txn_hist_t *h = *state;
    commit(begin(h, 1), 1);
    commit(begin(h, 1), 2);
    dl_txn_hist_report_t report;
    assert_int_equal(dl_txn_hist_check(h, NULL, &report), -EINVAL);
}

/* ---- Scale ------------------------------------------------------------------------------- */

/* n lost updates in a row on 100 keys, each between a pair of transactions, amid serial ones. */
static void record_lost_updates(dl_txn_hist_t *h, int n)
{
    char key[32], value[32];
    uint64_t id = 1, ts = 1;
    uint64_t writer[100] = {0};
    int counter[100] = {0};
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        assert_int_equal(dl_txn_hist_load(h, key, "0"), 0);
    }
    for (int i = 0; i < n; i++) {
        int k = i % 100;
        snprintf(key, sizeof(key), "k%d", k);
        snprintf(value, sizeof(value), "%d", counter[k]);
        dl_txn_hist_txn_t *a = begin(h, id++), *b = begin(h, id++), *c = begin(h, id++);
        uint64_t a_id = id - 3, b_id = id - 2, c_id = id - 1;
        r(a, key, value, writer[k]);
        r(b, key, value, writer[k]);
        snprintf(value, sizeof(value), "%d", ++counter[k]);
        w(a, key, value);
        commit(a, ts++);
        w(b, key, value);
        commit(b, ts++);
        writer[k] = b_id;
        r(c, key, value, b_id); /* a serial reader */
        commit(c, ts++);
        (void)a_id;
        (void)c_id;
    }
}

static void test_a_long_history_counts_every_lost_update(void **state)
{
    dl_txn_hist_t *h = *state;
    record_lost_updates(h, 50000); /* 150,000 transactions, 250,000 operations */
    dl_txn_hist_report_t report;
    check(h, &report);
    assert_only(&report, DL_TXN_G_SINGLE, 50000);
    assert_int_equal(report.lower_bound[DL_TXN_G_SINGLE], 0);
    assert_int_equal(report.n_examples, 10); /* bounded */
    assert_int_equal(report.n_committed, 150000);
    dl_txn_hist_report_free(&report);
}

static void test_a_search_budget_makes_the_count_a_lower_bound(void **state)
{
    dl_txn_hist_t *h = *state;
    record_lost_updates(h, 2000);
    dl_txn_hist_options_t opts = {.max_examples = 3, .search_budget = 100};
    dl_txn_hist_report_t report;
    assert_int_equal(dl_txn_hist_check(h, &opts, &report), 0);
    assert_int_equal(report.lower_bound[DL_TXN_G_SINGLE], 1);
    assert_true(report.count[DL_TXN_G_SINGLE] < 2000);
    assert_true(report.n_examples <= 3);
    dl_txn_hist_report_free(&report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_serial_history_has_no_anomaly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_transactions_that_serialize_have_no_anomaly,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_update_is_g_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_skew_is_g_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_skew_is_g2_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_phantom_double_booking_is_g2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_aborted_read_is_g1a, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_aborted_readers_reads_do_not_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_intermediate_read_is_g1b, setup, teardown),
        cmocka_unit_test_setup_teardown(test_circular_information_flow_is_g1c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dirty_write_cycle_is_g0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_same_writes_in_commit_order_have_no_g0, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_value_its_writer_never_wrote_is_an_impossible_read,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_scan_that_misses_a_row_present_all_along_is_an_impossible_read, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_row_created_and_removed_while_a_scan_ran_adds_no_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_scan_after_a_commit_sees_its_row_or_is_flagged,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_at_read_uncommitted_a_missed_row_may_be_an_uncommitted_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_deleted_row_read_as_absent_anti_depends_on_its_recreator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_transaction_ids_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_long_history_counts_every_lost_update, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_search_budget_makes_the_count_a_lower_bound, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
