/*
 * The txn engine's three serializable implementations (serial execution, two-phase locking,
 * serializable snapshot isolation), deadlock detection, and multi-row update/delete statements
 * that block part-way and resume.
 */
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

static void blocked_on(dl_txn_outcome_t o, uint64_t holder)
{
    assert_int_equal(o.status, DL_TXN_BLOCKED);
    assert_int_equal(o.waiting_for, holder);
}

static void aborted_with(dl_txn_outcome_t o, dl_txn_error_t error)
{
    assert_int_equal(o.status, DL_TXN_ABORTED);
    assert_int_equal(o.error, error);
}

static char *get(dl_txn_engine_t *e, uint64_t id, const char *key, dl_txn_outcome_t *o)
{
    char *value = NULL;
    *o = dl_txn_get(e, id, key, &value);
    return value;
}

static void reads(dl_txn_engine_t *e, uint64_t id, const char *key, const char *expected)
{
    dl_txn_outcome_t o;
    char *value = get(e, id, key, &o);
    ok(o);
    if (expected == NULL)
        assert_null(value);
    else
        assert_string_equal(value, expected);
    free(value);
}

/* The committed value of key (NULL when absent), from a fresh read committed transaction. */
static void committed_is(dl_txn_engine_t *e, const char *key, const char *expected)
{
    uint64_t t = begin(e, DL_TXN_READ_COMMITTED);
    reads(e, t, key, expected);
    ok(dl_txn_commit(e, t));
}

static const dl_txn_pred_t value_is_30 = {
    .field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_EQ, .operand = "30"};

/* ---- serial --------------------------------------------------------------------------------- */

static void test_serial_runs_one_transaction_at_a_time(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SERIAL), t2 = begin(e, DL_TXN_SERIAL);
    reads(e, t1, "1", "10");
    dl_txn_outcome_t o;
    free(get(e, t2, "1", &o));
    blocked_on(o, t1); /* even a read waits: the whole transaction runs after t1 */
    ok(dl_txn_put(e, t1, "1", "11"));
    ok(dl_txn_commit(e, t1));
    reads(e, t2, "1", "11");
    ok(dl_txn_commit(e, t2));
}

/* ---- two-phase locking ------------------------------------------------------------------- */

static void test_2pl_a_read_lock_makes_a_writer_wait_until_the_reader_ends(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t reader = begin(e, DL_TXN_2PL), writer = begin(e, DL_TXN_2PL);
    reads(e, reader, "1", "10");
    blocked_on(dl_txn_put(e, writer, "1", "11"), reader);
    reads(e, reader, "1", "10"); /* repeatable: nobody changed it */
    ok(dl_txn_commit(e, reader));
    ok(dl_txn_put(e, writer, "1", "11"));
    dl_txn_outcome_t o;
    uint64_t other = begin(e, DL_TXN_2PL);
    free(get(e, other, "1", &o));
    blocked_on(o, writer); /* and a write lock makes a reader wait */
    ok(dl_txn_commit(e, writer));
    reads(e, other, "1", "11");
}

static void test_2pl_lost_update_ends_in_a_deadlock_with_one_victim(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_2PL), t2 = begin(e, DL_TXN_2PL);
    reads(e, t1, "1", "10");
    reads(e, t2, "1", "10");
    blocked_on(dl_txn_put(e, t1, "1", "11"), t2); /* upgrade: t2 shares the lock */
    aborted_with(dl_txn_put(e, t2, "1", "11"), DL_TXN_ERR_DEADLOCK);
    assert_false(dl_txn_active(e, t2));
    ok(dl_txn_put(e, t1, "1", "11")); /* the victim's locks are gone */
    ok(dl_txn_commit(e, t1));
    committed_is(e, "1", "11");
}

static void test_2pl_predicate_lock_blocks_a_matching_insert_only(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_2PL), t2 = begin(e, DL_TXN_2PL);
    dl_txn_rows_t rows;
    ok(dl_txn_scan(e, t1, &value_is_30, &rows));
    assert_int_equal(rows.n, 0);
    dl_txn_rows_free(&rows);
    ok(dl_txn_insert(e, t2, "4", "40"));             /* does not match: goes on */
    blocked_on(dl_txn_insert(e, t2, "3", "30"), t1); /* would be a phantom for t1 */
    ok(dl_txn_scan(e, t1, &value_is_30, &rows));     /* still nothing */
    assert_int_equal(rows.n, 0);
    dl_txn_rows_free(&rows);
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_insert(e, t2, "3", "30"));
    ok(dl_txn_commit(e, t2));
}

static void test_2pl_a_read_of_a_missing_key_blocks_its_insert(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_2PL), t2 = begin(e, DL_TXN_READ_COMMITTED);
    reads(e, t1, "9", NULL);
    blocked_on(dl_txn_insert(e, t2, "9", "90"), t1); /* locks bind every level's writers */
    ok(dl_txn_abort(e, t1));
    ok(dl_txn_insert(e, t2, "9", "90"));
}

/* ---- deadlocks at any level ---------------------------------------------------------------- */

static void test_crossed_updates_deadlock_and_the_closing_request_is_the_victim(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_put(e, t1, "1", "11"));
    ok(dl_txn_put(e, t2, "2", "21"));
    blocked_on(dl_txn_put(e, t1, "2", "12"), t2);
    aborted_with(dl_txn_put(e, t2, "1", "22"), DL_TXN_ERR_DEADLOCK);
    ok(dl_txn_put(e, t1, "2", "12"));
    ok(dl_txn_commit(e, t1));
    committed_is(e, "1", "11");
    committed_is(e, "2", "12");
}

/* ---- serializable snapshot isolation ----------------------------------------------------- */

/* Both doctors (keys 1 and 2) read both rows, then each takes itself off call. */
static void write_skew(dl_txn_engine_t *e, uint64_t t1, uint64_t t2)
{
    reads(e, t1, "1", "10");
    reads(e, t1, "2", "20");
    reads(e, t2, "1", "10");
    reads(e, t2, "2", "20");
    ok(dl_txn_put(e, t1, "1", "0"));
}

static void test_ssi_write_skew_fails_the_pivot_at_its_write_once_the_other_committed(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    write_skew(e, t1, t2);
    ok(dl_txn_commit(e, t1));
    aborted_with(dl_txn_put(e, t2, "2", "0"), DL_TXN_ERR_SSI);
    committed_is(e, "2", "20");
}

static void test_ssi_write_skew_fails_the_second_commit_when_both_wrote(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    write_skew(e, t1, t2);
    ok(dl_txn_put(e, t2, "2", "0"));
    ok(dl_txn_commit(e, t1));
    aborted_with(dl_txn_commit(e, t2), DL_TXN_ERR_SSI);
}

/* A get on the fast path marks its row only at commit (docs/txn.md, "Read marks at commit"): a
 * write of that row in between leaves no edge at once, and the commit must find it. Here
 * t0 -rw-> t1 -rw-> t2 with t2 committed first: t1 must fail, though its own statements all
 * took the fast path. */
static void test_ssi_a_write_after_a_fast_read_is_found_at_the_readers_commit(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI), t0 = begin(e, DL_TXN_SSI);
    reads(e, t1, "1", "10");
    ok(dl_txn_put(e, t2, "1", "11"));
    ok(dl_txn_commit(e, t2));
    ok(dl_txn_put(e, t1, "2", "21"));
    reads(e, t0, "2", "20");
    aborted_with(dl_txn_commit(e, t1), DL_TXN_ERR_SSI);
    ok(dl_txn_commit(e, t0));
    committed_is(e, "1", "11");
    committed_is(e, "2", "20");
}

/* A row the reader then wrote needs no mark: a concurrent writer of it fails by first updater
 * wins, so the reader's later commit stays fast and nothing is flagged. */
static void
test_ssi_read_then_write_of_a_row_commits_and_excludes_the_concurrent_writer(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    reads(e, t1, "1", "10");
    reads(e, t2, "2", "20");
    ok(dl_txn_put(e, t1, "1", "11"));
    ok(dl_txn_commit(e, t1));
    aborted_with(dl_txn_put(e, t2, "1", "12"), DL_TXN_ERR_SERIALIZATION);
    committed_is(e, "1", "11");
}

/* Commits n ssi transactions, each reading one key of its own and writing another. */
static void commit_unrelated(dl_txn_engine_t *e, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char x[32], y[32];
        snprintf(x, sizeof(x), "x%d", i);
        snprintf(y, sizeof(y), "y%d", i);
        uint64_t t = begin(e, DL_TXN_SSI);
        reads(e, t, x, NULL);
        ok(dl_txn_put(e, t, y, "1"));
        ok(dl_txn_commit(e, t));
    }
}

static void
test_ssi_catches_write_skew_across_many_transactions_whose_records_were_recycled(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t first = begin(e, DL_TXN_SSI);
    ok(dl_txn_commit(e, first));
    commit_unrelated(e, 0, 40000);
    /* Records of transactions no running one can conflict with are recycled: an old id is no
     * longer known (this is what keeps a long run's memory bounded). */
    assert_int_equal(dl_txn_commit_ts(e, first), 0);
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    write_skew(e, t1, t2);
    commit_unrelated(e, 40000, 40000); /* while the two run: their records must stay */
    ok(dl_txn_put(e, t2, "2", "0"));
    dl_txn_outcome_t committed = dl_txn_commit(e, t1);
    ok(committed);
    assert_int_not_equal(committed.commit_ts, 0);
    assert_int_equal(dl_txn_commit_ts(e, t1), committed.commit_ts);
    aborted_with(dl_txn_commit(e, t2), DL_TXN_ERR_SSI);
    committed_is(e, "2", "20");
}

/* The read-only transaction anomaly (Fekete, O'Neil and O'Neil) where the transaction that
 * committed first is long forgotten by the time the read closes the dangerous structure. */
static void
test_ssi_read_only_anomaly_is_caught_after_the_first_committer_was_forgotten(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI);
    commit_unrelated(e, 0, 20000); /* t1's chunk of records: every other one ends */
    uint64_t t2 = begin(e, DL_TXN_SSI);
    reads(e, t2, "1", "10");
    reads(e, t2, "2", "20");
    ok(dl_txn_put(e, t1, "1", "11")); /* t2 -rw-> t1 */
    dl_txn_outcome_t first = dl_txn_commit(e, t1);
    ok(first);
    commit_unrelated(e, 20000, 200);
    uint64_t t3 = begin(e, DL_TXN_SSI);
    reads(e, t3, "1", "11"); /* sees t1 */
    ok(dl_txn_put(e, t2, "2", "21"));
    ok(dl_txn_commit(e, t2)); /* no dangerous structure yet */
    commit_unrelated(e, 20200, 1000);
    assert_int_equal(dl_txn_commit_ts(e, t1), 0); /* forgotten: its record was recycled */
    /* t3 -rw-> t2 -rw-> t1, t1 committed first: t3 must not see 2 as t2 left it unseen. */
    char *value = NULL;
    aborted_with(dl_txn_get(e, t3, "2", &value), DL_TXN_ERR_SSI);
    free(value);
}

static void test_snapshot_isolation_allows_the_write_skew_that_ssi_prevents(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SNAPSHOT), t2 = begin(e, DL_TXN_SNAPSHOT);
    write_skew(e, t1, t2);
    ok(dl_txn_put(e, t2, "2", "0"));
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_commit(e, t2));
    committed_is(e, "1", "0");
    committed_is(e, "2", "0"); /* nobody on call */
}

static void test_ssi_predicate_reads_catch_a_phantom(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    dl_txn_rows_t rows;
    ok(dl_txn_scan(e, t1, &value_is_30, &rows)); /* is slot 30 free? */
    dl_txn_rows_free(&rows);
    ok(dl_txn_scan(e, t2, &value_is_30, &rows));
    dl_txn_rows_free(&rows);
    ok(dl_txn_insert(e, t1, "a", "30"));
    ok(dl_txn_insert(e, t2, "b", "30"));
    ok(dl_txn_commit(e, t1));
    aborted_with(dl_txn_commit(e, t2), DL_TXN_ERR_SSI);
}

static void test_ssi_disjoint_reads_and_writes_commit(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SSI), t2 = begin(e, DL_TXN_SSI);
    reads(e, t1, "1", "10");
    reads(e, t2, "2", "20");
    ok(dl_txn_put(e, t1, "1", "11"));
    ok(dl_txn_put(e, t2, "2", "21"));
    ok(dl_txn_commit(e, t2));
    ok(dl_txn_commit(e, t1));
}

static void test_ssi_one_antidependency_alone_is_not_a_failure(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t reader = begin(e, DL_TXN_SSI), writer = begin(e, DL_TXN_SSI);
    reads(e, reader, "1", "10");
    ok(dl_txn_put(e, writer, "1", "11"));
    ok(dl_txn_commit(e, writer));
    reads(e, reader, "1", "10"); /* its snapshot: serializable as reader before writer */
    ok(dl_txn_commit(e, reader));
}

/* ---- update / delete where ------------------------------------------------------------------ */

static const dl_txn_pred_t value_gt_5 = {
    .field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_GT, .operand = "5"};

static void test_read_committed_update_rechecks_a_row_changed_while_it_waited(void **state)
{
    dl_txn_engine_t *e = *state;
    /* PostgreSQL's documented case: t2's "where value = 20" finds the row t1 changed to 21
     * no longer matching once t1 commits, and skips it. */
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    dl_txn_pred_t is_20 = {.field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_EQ, .operand = "20"};
    dl_txn_set_t plus_one = {.add = 1, .delta = 1};
    size_t n = 99;
    ok(dl_txn_update(e, t1, &is_20, &plus_one, &n));
    assert_int_equal(n, 1);
    assert_int_equal(dl_txn_update(e, t2, &is_20, &plus_one, &n).status, DL_TXN_BLOCKED);
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_update(e, t2, &is_20, &plus_one, &n));
    assert_int_equal(n, 0);
    ok(dl_txn_commit(e, t2));
    committed_is(e, "2", "21");
}

static void test_a_blocked_update_resumes_without_updating_a_row_twice(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_READ_COMMITTED), t2 = begin(e, DL_TXN_READ_COMMITTED);
    ok(dl_txn_put(e, t1, "2", "25")); /* holds row 2 */
    dl_txn_set_t plus_ten = {.add = 1, .delta = 10};
    size_t n = 0;
    dl_txn_outcome_t o = dl_txn_update(e, t2, &value_gt_5, &plus_ten, &n);
    blocked_on(o, t1);
    assert_int_equal(n, 1); /* row 1 done before it reached row 2 */
    ok(dl_txn_commit(e, t1));
    ok(dl_txn_update(e, t2, &value_gt_5, &plus_ten, &n));
    assert_int_equal(n, 2);
    ok(dl_txn_commit(e, t2));
    committed_is(e, "1", "20"); /* once, not twice */
    committed_is(e, "2", "35"); /* over t1's 25: the statement re-read the row */
}

static void test_snapshot_update_of_a_concurrently_updated_row_fails(void **state)
{
    dl_txn_engine_t *e = *state;
    uint64_t t1 = begin(e, DL_TXN_SNAPSHOT), t2 = begin(e, DL_TXN_SNAPSHOT);
    reads(e, t2, "1", "10"); /* t2's snapshot */
    ok(dl_txn_put(e, t1, "2", "21"));
    ok(dl_txn_commit(e, t1));
    dl_txn_set_t plus_one = {.add = 1, .delta = 1};
    size_t n;
    aborted_with(dl_txn_update(e, t2, &value_gt_5, &plus_one, &n), DL_TXN_ERR_SERIALIZATION);
    committed_is(e, "1", "10"); /* the statement's first row was rolled back with it */
}

static void test_delete_where_and_a_non_integer_update(void **state)
{
    dl_txn_engine_t *e = *state;
    assert_int_equal(dl_txn_engine_load(e, "3", "x"), 0);
    uint64_t t = begin(e, DL_TXN_SNAPSHOT);
    size_t n = 0;
    dl_txn_pred_t is_20 = {.field = DL_TXN_FIELD_VALUE, .cmp = DL_TXN_CMP_EQ, .operand = "20"};
    ok(dl_txn_delete_where(e, t, &is_20, &n));
    assert_int_equal(n, 1);
    reads(e, t, "2", NULL);
    dl_txn_pred_t all = {.all = 1};
    dl_txn_set_t plus_one = {.add = 1, .delta = 1};
    aborted_with(dl_txn_update(e, t, &all, &plus_one, &n), DL_TXN_ERR_NOT_INTEGER);
    committed_is(e, "2", "20");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_serial_runs_one_transaction_at_a_time),
        T(test_2pl_a_read_lock_makes_a_writer_wait_until_the_reader_ends),
        T(test_2pl_lost_update_ends_in_a_deadlock_with_one_victim),
        T(test_2pl_predicate_lock_blocks_a_matching_insert_only),
        T(test_2pl_a_read_of_a_missing_key_blocks_its_insert),
        T(test_crossed_updates_deadlock_and_the_closing_request_is_the_victim),
        T(test_ssi_write_skew_fails_the_pivot_at_its_write_once_the_other_committed),
        T(test_ssi_write_skew_fails_the_second_commit_when_both_wrote),
        T(test_ssi_a_write_after_a_fast_read_is_found_at_the_readers_commit),
        T(test_ssi_read_then_write_of_a_row_commits_and_excludes_the_concurrent_writer),
        T(test_snapshot_isolation_allows_the_write_skew_that_ssi_prevents),
        T(test_ssi_catches_write_skew_across_many_transactions_whose_records_were_recycled),
        T(test_ssi_read_only_anomaly_is_caught_after_the_first_committer_was_forgotten),
        T(test_ssi_predicate_reads_catch_a_phantom),
        T(test_ssi_disjoint_reads_and_writes_commit),
        T(test_ssi_one_antidependency_alone_is_not_a_failure),
        T(test_read_committed_update_rechecks_a_row_changed_while_it_waited),
        T(test_a_blocked_update_resumes_without_updating_a_row_twice),
        T(test_snapshot_update_of_a_concurrently_updated_row_fails),
        T(test_delete_where_and_a_non_integer_update),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
