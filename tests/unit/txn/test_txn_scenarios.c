/*
 * Every bundled scenario (examples/txn) at every isolation level against its expected outcome:
 * the matrix of DDIA's chapter 7, as PostgreSQL (read committed, repeatable read, serializable)
 * and InnoDB (two-phase locking) would show it, plus step-level checks of the runner.
 */
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "txn/examples.h"
#include "txn/runner.h"
#include "txn/script.h"

#define A  "anomaly"
#define P  "prevented"
#define PB "prevented (blocked)"
#define PA "prevented (aborted)"

/* Levels in dl_txn_level_t order: read-uncommitted, read-committed, snapshot, serial, 2pl, ssi. */
static const struct {
    const char *scenario;
    const char *verdicts[DL_TXN_N_LEVELS];
} expected[] = {
    {"dirty-write", {PB, PB, PA, PB, PB, PA}},
    {"dirty-read-aborted", {A, P, P, PB, PB, P}},
    {"dirty-read-intermediate", {A, P, P, PB, PB, P}},
    {"read-skew", {A, A, P, PB, PB, P}},
    {"lost-update", {A, A, PA, PB, PA, PA}},
    {"write-skew", {A, A, A, PB, PA, PA}},
    {"phantom-read", {A, A, P, PB, PB, P}},
    {"phantom-write", {A, A, A, PB, PA, PA}},
    /* read-uncommitted's where clause sees T1's uncommitted 10 and waits for it. */
    {"predicate-update", {PB, A, PA, PB, PB, PA}},
    {"read-only-anomaly", {A, A, A, PB, PB, PA}},
};

static void load(const char *name, dl_txn_script_t *script, dl_txn_meta_t *meta)
{
    const dl_txn_example_t *ex = dl_txn_example_find(name);
    assert_non_null(ex);
    char err[256] = "";
    if (dl_txn_script_parse(ex->text, ex->len, script, err, sizeof(err)) != 0)
        fail_msg("%s: %s", name, err);
    assert_int_equal(dl_txn_meta_parse(ex->text, ex->len, meta, err, sizeof(err)), 0);
    assert_true(meta->n_anomaly > 0);
    assert_non_null(meta->name);
    assert_non_null(meta->explain);
}

static void test_every_scenario_at_every_level_gives_the_expected_verdict(void **state)
{
    (void)state;
    int wrong = 0;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        dl_txn_script_t script;
        dl_txn_meta_t meta;
        load(expected[i].scenario, &script, &meta);
        for (int l = 0; l < DL_TXN_N_LEVELS; l++) {
            dl_txn_run_t run;
            assert_int_equal(dl_txn_run_script(&script, (dl_txn_level_t)l, 0, NULL, NULL, &run), 0);
            char err[256] = "";
            const char *verdict = dl_txn_verdict(&meta, &script, &run, err, sizeof(err));
            if (verdict == NULL || strcmp(verdict, expected[i].verdicts[l]) != 0) {
                print_error("%s at %s: got %s, expected %s %s\n", expected[i].scenario,
                            dl_txn_level_name((dl_txn_level_t)l), verdict ? verdict : "(error)",
                            expected[i].verdicts[l], err);
                wrong++;
            }
            dl_txn_run_free(&run);
        }
        dl_txn_meta_free(&meta);
        dl_txn_script_free(&script);
    }
    assert_int_equal(wrong, 0);
}

static void test_every_bundled_scenario_has_an_expected_row(void **state)
{
    (void)state;
    for (size_t i = 0; i < dl_txn_n_examples; i++) {
        size_t j = 0;
        while (j < sizeof(expected) / sizeof(expected[0]) &&
               strcmp(expected[j].scenario, dl_txn_examples[i].name) != 0)
            j++;
        if (j == sizeof(expected) / sizeof(expected[0]))
            fail_msg("no expected verdicts for %s", dl_txn_examples[i].name);
    }
}

/* Records the events of a run as "line:kind" strings (resumed events with their result). */
typedef struct {
    char log[4096];
    size_t at;
    int released_by[64];
    size_t n_released;
} recorder_t;

static void record(const dl_txn_event_t *ev, void *ctx)
{
    recorder_t *r = ctx;
    const char *kind = dl_txn_event_kind_name(ev->kind);
    int line = ev->step ? ev->step->line : 0;
    r->at +=
        (size_t)snprintf(r->log + r->at, sizeof(r->log) - r->at, "%d:%s%s%s ", line, kind,
                         ev->kind == DL_TXN_EV_RESUMED ? "=" : "",
                         ev->kind == DL_TXN_EV_RESUMED ? dl_txn_event_kind_name(ev->result) : "");
    if (ev->kind == DL_TXN_EV_RESUMED && r->n_released < 64)
        r->released_by[r->n_released++] = ev->released_by ? ev->released_by->line : 0;
}

static void run_text(const char *text, dl_txn_level_t level, int strict, recorder_t *rec,
                     dl_txn_run_t *run, int expect_rv)
{
    dl_txn_script_t script;
    char err[256];
    assert_int_equal(dl_txn_script_parse(text, strlen(text), &script, err, sizeof(err)), 0);
    memset(rec, 0, sizeof(*rec));
    assert_int_equal(dl_txn_run_script(&script, level, strict, record, rec, run), expect_rv);
    dl_txn_script_free(&script);
}

static void test_a_blocked_step_resumes_naming_the_step_that_released_it(void **state)
{
    (void)state;
    recorder_t rec;
    dl_txn_run_t run;
    run_text("setup 1=10\n"
             "T1 begin\n"
             "T2 begin\n"
             "T1 put 1 11\n"
             "T2 put 1 12\n" /* line 5: waits for T1 */
             "T2 commit\n"   /* line 6: queued behind it */
             "get 1\n"       /* line 7: autocommit, reads the committed 10 */
             "T1 commit\n",  /* line 8: releases line 5, then line 6 runs */
             DL_TXN_READ_COMMITTED, 0, &rec, &run, 0);
    assert_string_equal(rec.log, "2:ok 3:ok 4:ok 5:blocked 6:queued 7:ok 8:ok 5:resumed=ok 6:ok ");
    assert_int_equal(rec.n_released, 1);
    assert_int_equal(rec.released_by[0], 8);
    assert_int_equal(run.final.n, 1);
    assert_string_equal(run.final.rows[0].value, "12");
    assert_string_equal(run.results[6].rows.rows[0].value, "10");
    dl_txn_run_free(&run);
}

static void test_strict_mode_refuses_a_line_for_a_blocked_transaction(void **state)
{
    (void)state;
    recorder_t rec;
    dl_txn_run_t run;
    run_text("setup 1=10\nT1 begin\nT2 begin\nT1 put 1 11\nT2 put 1 12\nT2 commit\n",
             DL_TXN_READ_COMMITTED, 1, &rec, &run, -EINVAL);
    assert_non_null(strstr(run.error, "line 6"));
    assert_non_null(strstr(run.error, "T2 is blocked"));
    dl_txn_run_free(&run);
}

static void test_open_transactions_roll_back_at_the_end_and_release_waiters(void **state)
{
    (void)state;
    recorder_t rec;
    dl_txn_run_t run;
    run_text("setup 1=10\nT1 begin\nT1 put 1 11\nput 1 13\n", DL_TXN_SNAPSHOT, 0, &rec, &run, 0);
    /* The autocommit put waits for T1; T1 never commits, so the end rolls it back and the put
     * goes on. */
    assert_string_equal(rec.log, "2:ok 3:ok 4:blocked 0:note 4:resumed=ok ");
    assert_string_equal(run.final.rows[0].value, "13");
    dl_txn_run_free(&run);
}

static void test_statements_of_a_transaction_that_ended_are_errors(void **state)
{
    (void)state;
    recorder_t rec;
    dl_txn_run_t run;
    run_text("setup 1=10\nT1 get 1\nT1 begin\nT1 begin\nT1 commit\nT1 commit\n",
             DL_TXN_READ_COMMITTED, 0, &rec, &run, 0);
    assert_string_equal(rec.log, "2:error 3:ok 4:error 5:ok 6:error ");
    dl_txn_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_scenario_at_every_level_gives_the_expected_verdict),
        cmocka_unit_test(test_every_bundled_scenario_has_an_expected_row),
        cmocka_unit_test(test_a_blocked_step_resumes_naming_the_step_that_released_it),
        cmocka_unit_test(test_strict_mode_refuses_a_line_for_a_blocked_transaction),
        cmocka_unit_test(test_open_transactions_roll_back_at_the_end_and_release_waiters),
        cmocka_unit_test(test_statements_of_a_transaction_that_ended_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
