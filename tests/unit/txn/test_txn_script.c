/*
 * Scenario scripts of the txn lab: every statement form a user writes by hand, comments and
 * autocommit statements, and every mistake refused with a message that names its line.
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

#include "txn/script.h"

/* Parses text, which must parse; the caller frees the script. */
static dl_txn_script_t parse_ok_len(const char *text, size_t len)
{
    dl_txn_script_t script;
    char err[256] = "";
    int rv = dl_txn_script_parse(text, len, &script, err, sizeof(err));
    if (rv != 0)
        fail_msg("refused (%d): %s", rv, err);
    return script;
}

static dl_txn_script_t parse_ok(const char *text)
{
    return parse_ok_len(text, strlen(text));
}

/* Asserts that text is refused with exactly message, leaving the script empty. */
static void assert_refused_len(const char *text, size_t len, const char *message)
{
    dl_txn_script_t script = {(dl_txn_step_t *)&script, 42}; /* garbage the parse must reset */
    char err[256] = "untouched";
    int rv = dl_txn_script_parse(text, len, &script, err, sizeof(err));
    if (rv != -EINVAL)
        fail_msg("'%s': expected -EINVAL, got %d", text, rv);
    assert_string_equal(err, message);
    assert_null(script.steps);
    assert_int_equal(script.n, 0);
    dl_txn_script_free(&script); /* harmless */
}

static void assert_refused(const char *text, const char *message)
{
    assert_refused_len(text, strlen(text), message);
}

/* A script with one statement, which must parse; returns it in *script, its step as the value. */
static const dl_txn_step_t *one_step(const char *text, dl_txn_script_t *script)
{
    *script = parse_ok(text);
    assert_int_equal(script->n, 1);
    return &script->steps[0];
}

static void test_script_parses_the_example_of_the_issue(void **state)
{
    const char *text = "setup 1=10 2=20\n"
                       "T1 begin read-committed\n"
                       "T2 begin\n"
                       "T1 get 1 2\n"
                       "T1 scan where value % 3 == 0\n"
                       "T1 put 1 11\n"
                       "T1 insert 3 30\n"
                       "T1 delete 1\n"
                       "T1 update set value = value + 10 where value % 3 == 0\n"
                       "T1 update set value = 12 where key == 1\n"
                       "T2 delete where value == 20\n"
                       "T1 commit\n"
                       "T2 abort\n"
                       "get 1                # runs on its own\n";
    static const dl_txn_step_kind_t kinds[] = {
        DL_TXN_STEP_SETUP,  DL_TXN_STEP_BEGIN,  DL_TXN_STEP_BEGIN,        DL_TXN_STEP_GET,
        DL_TXN_STEP_SCAN,   DL_TXN_STEP_PUT,    DL_TXN_STEP_INSERT,       DL_TXN_STEP_DELETE,
        DL_TXN_STEP_UPDATE, DL_TXN_STEP_UPDATE, DL_TXN_STEP_DELETE_WHERE, DL_TXN_STEP_COMMIT,
        DL_TXN_STEP_ABORT,  DL_TXN_STEP_GET};
    dl_txn_script_t script = parse_ok(text);
    assert_int_equal(script.n, sizeof(kinds) / sizeof(kinds[0]));
    for (size_t i = 0; i < script.n; i++) {
        assert_int_equal(script.steps[i].kind, kinds[i]);
        assert_int_equal(script.steps[i].line, (int)i + 1);
    }
    assert_null(script.steps[0].txn);
    assert_string_equal(script.steps[1].txn, "T1");
    assert_string_equal(script.steps[10].txn, "T2");
    assert_null(script.steps[13].txn);
    assert_string_equal(script.steps[13].text, "get 1");
    dl_txn_script_free(&script);
    assert_null(script.steps);
    assert_int_equal(script.n, 0);
}

static void test_script_parses_setup_pairs_split_at_the_first_equals(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("setup 1=10 alice=a=b", &script);
    assert_int_equal(s->kind, DL_TXN_STEP_SETUP);
    assert_null(s->txn);
    assert_int_equal(s->n_keys, 2);
    assert_int_equal(s->n_values, 2);
    assert_string_equal(s->keys[0], "1");
    assert_string_equal(s->values[0], "10");
    assert_string_equal(s->keys[1], "alice");
    assert_string_equal(s->values[1], "a=b");
    dl_txn_script_free(&script);
}

static void test_script_allows_several_setup_lines_before_other_statements(void **state)
{
    dl_txn_script_t script = parse_ok("# data\nsetup 1=10\n\nsetup 2=20\nT1 begin\n");
    assert_int_equal(script.n, 3);
    assert_int_equal(script.steps[0].line, 2);
    assert_int_equal(script.steps[1].line, 4);
    assert_string_equal(script.steps[1].keys[0], "2");
    dl_txn_script_free(&script);
}

static void test_script_parses_begin_with_and_without_a_level(void **state)
{
    static const struct {
        const char *text;
        dl_txn_level_t level;
    } cases[] = {
        {"T1 begin read-uncommitted", DL_TXN_READ_UNCOMMITTED},
        {"T1 begin read-committed", DL_TXN_READ_COMMITTED},
        {"T1 begin snapshot", DL_TXN_SNAPSHOT},
        {"T1 begin repeatable-read", DL_TXN_SNAPSHOT},
        {"T1 begin serial", DL_TXN_SERIAL},
        {"T1 begin 2pl", DL_TXN_2PL},
        {"T1 begin ssi", DL_TXN_SSI},
        {"T1 begin serializable", DL_TXN_SSI},
        {"T1 BEGIN Read-Committed", DL_TXN_READ_COMMITTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dl_txn_script_t script;
        const dl_txn_step_t *s = one_step(cases[i].text, &script);
        assert_int_equal(s->kind, DL_TXN_STEP_BEGIN);
        assert_string_equal(s->txn, "T1");
        assert_true(s->has_level);
        assert_int_equal(s->level, cases[i].level);
        dl_txn_script_free(&script);
    }
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("alice begin", &script);
    assert_string_equal(s->txn, "alice");
    assert_false(s->has_level);
    dl_txn_script_free(&script);
}

static void test_script_parses_get_of_every_key_named(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("T1 get 1 2 café", &script);
    assert_int_equal(s->kind, DL_TXN_STEP_GET);
    assert_int_equal(s->n_keys, 3);
    assert_string_equal(s->keys[0], "1");
    assert_string_equal(s->keys[1], "2");
    assert_string_equal(s->keys[2], "café");
    assert_int_equal(s->n_values, 0);
    dl_txn_script_free(&script);
}

static void test_script_parses_put_insert_and_delete_of_one_key(void **state)
{
    dl_txn_script_t script = parse_ok("T1 put 1 11\nT1 insert 3 -30\nT1 delete 1\n");
    assert_int_equal(script.n, 3);
    assert_int_equal(script.steps[0].kind, DL_TXN_STEP_PUT);
    assert_string_equal(script.steps[0].keys[0], "1");
    assert_string_equal(script.steps[0].values[0], "11");
    assert_int_equal(script.steps[1].kind, DL_TXN_STEP_INSERT);
    assert_string_equal(script.steps[1].keys[0], "3");
    assert_string_equal(script.steps[1].values[0], "-30");
    assert_int_equal(script.steps[2].kind, DL_TXN_STEP_DELETE);
    assert_int_equal(script.steps[2].n_keys, 1);
    assert_string_equal(script.steps[2].keys[0], "1");
    assert_int_equal(script.steps[2].n_values, 0);
    dl_txn_script_free(&script);
}

static void test_script_parses_commit_and_abort(void **state)
{
    dl_txn_script_t script = parse_ok("T1 commit\nT2 abort\n");
    assert_int_equal(script.steps[0].kind, DL_TXN_STEP_COMMIT);
    assert_string_equal(script.steps[0].txn, "T1");
    assert_int_equal(script.steps[1].kind, DL_TXN_STEP_ABORT);
    assert_string_equal(script.steps[1].txn, "T2");
    dl_txn_script_free(&script);
}

static void test_script_parses_scan_without_where_as_every_row(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("T1 scan", &script);
    assert_int_equal(s->kind, DL_TXN_STEP_SCAN);
    assert_true(s->pred.all);
    assert_null(s->pred.operand);
    dl_txn_script_free(&script);
}

static void test_script_parses_every_comparison_with_or_without_spaces(void **state)
{
    static const struct {
        const char *text;
        dl_txn_field_t field;
        dl_txn_cmp_t cmp;
        const char *operand;
    } cases[] = {
        {"T1 scan where value == 30", DL_TXN_FIELD_VALUE, DL_TXN_CMP_EQ, "30"},
        {"T1 scan where key == 2", DL_TXN_FIELD_KEY, DL_TXN_CMP_EQ, "2"},
        {"T1 scan where value > 5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_GT, "5"},
        {"T1 scan where value>5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_GT, "5"},
        {"T1 scan where key!=alice", DL_TXN_FIELD_KEY, DL_TXN_CMP_NE, "alice"},
        {"T1 scan where value <-5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_LT, "-5"},
        {"T1 scan where value\t<=\t5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_LE, "5"},
        {"T1 scan where value>= 5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_GE, "5"},
        {"T1 scan WHERE Value == 5", DL_TXN_FIELD_VALUE, DL_TXN_CMP_EQ, "5"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dl_txn_script_t script;
        const dl_txn_step_t *s = one_step(cases[i].text, &script);
        assert_int_equal(s->kind, DL_TXN_STEP_SCAN);
        assert_false(s->pred.all);
        assert_int_equal(s->pred.field, cases[i].field);
        assert_int_equal(s->pred.mod, 0);
        assert_int_equal(s->pred.cmp, cases[i].cmp);
        assert_string_equal(s->pred.operand, cases[i].operand);
        dl_txn_script_free(&script);
    }
}

static void test_script_parses_modulo_predicates_on_value_and_key(void **state)
{
    static const struct {
        const char *text;
        dl_txn_field_t field;
        int64_t mod;
        dl_txn_cmp_t cmp;
        const char *operand;
    } cases[] = {
        {"T1 scan where value % 3 == 0", DL_TXN_FIELD_VALUE, 3, DL_TXN_CMP_EQ, "0"},
        {"T1 scan where value%3==0", DL_TXN_FIELD_VALUE, 3, DL_TXN_CMP_EQ, "0"},
        {"T1 scan where key %2 != 1", DL_TXN_FIELD_KEY, 2, DL_TXN_CMP_NE, "1"},
        {"T1 scan where value % 10 >= 5", DL_TXN_FIELD_VALUE, 10, DL_TXN_CMP_GE, "5"},
        {"T1 scan where value % 9223372036854775807 < 1", DL_TXN_FIELD_VALUE, INT64_MAX,
         DL_TXN_CMP_LT, "1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dl_txn_script_t script;
        const dl_txn_step_t *s = one_step(cases[i].text, &script);
        assert_int_equal(s->pred.field, cases[i].field);
        assert_int_equal(s->pred.mod, cases[i].mod);
        assert_int_equal(s->pred.cmp, cases[i].cmp);
        assert_string_equal(s->pred.operand, cases[i].operand);
        dl_txn_script_free(&script);
    }
}

static void test_script_parses_update_with_modulo_predicate(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s =
        one_step("T1 update set value = value + 10 where value % 3 == 0", &script);
    assert_int_equal(s->kind, DL_TXN_STEP_UPDATE);
    assert_true(s->set.add);
    assert_int_equal(s->set.delta, 10);
    assert_false(s->pred.all);
    assert_int_equal(s->pred.field, DL_TXN_FIELD_VALUE);
    assert_int_equal(s->pred.mod, 3);
    assert_int_equal(s->pred.cmp, DL_TXN_CMP_EQ);
    assert_string_equal(s->pred.operand, "0");
    dl_txn_script_free(&script);
}

static void test_script_parses_every_form_of_update_set(void **state)
{
    static const struct {
        const char *text;
        int add;
        int64_t delta;
        const char *value;
    } cases[] = {
        {"T1 update set value = value + 10", 1, 10, NULL},
        {"T1 update set value = value - 10", 1, -10, NULL},
        {"T1 update set value=value-10", 1, -10, NULL},
        {"T1 update set value=value +10", 1, 10, NULL},
        {"T1 update set value = value - -3", 1, 3, NULL},
        {"T1 update set value = value + 9223372036854775807", 1, INT64_MAX, NULL},
        {"T1 update set value = value - 9223372036854775807", 1, -INT64_MAX, NULL},
        {"T1 update set value = 12", 0, 0, "12"},
        {"T1 update set value=12", 0, 0, "12"},
        {"T1 update set value = -5", 0, 0, "-5"},
        {"T1 update set value = values", 0, 0, "values"},
        {"T1 update SET VALUE = Value + 1", 1, 1, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dl_txn_script_t script;
        const dl_txn_step_t *s = one_step(cases[i].text, &script);
        assert_int_equal(s->kind, DL_TXN_STEP_UPDATE);
        assert_true(s->pred.all); /* no where clause: every row */
        assert_int_equal(s->set.add, cases[i].add);
        assert_int_equal(s->set.delta, cases[i].delta);
        if (cases[i].value == NULL)
            assert_null(s->set.value);
        else
            assert_string_equal(s->set.value, cases[i].value);
        dl_txn_script_free(&script);
    }
}

static void test_script_parses_update_of_a_constant_where_key_matches(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("T1 update set value = 12 where key == 1", &script);
    assert_false(s->set.add);
    assert_string_equal(s->set.value, "12");
    assert_false(s->pred.all);
    assert_int_equal(s->pred.field, DL_TXN_FIELD_KEY);
    assert_int_equal(s->pred.cmp, DL_TXN_CMP_EQ);
    assert_string_equal(s->pred.operand, "1");
    dl_txn_script_free(&script);
}

static void test_script_parses_delete_where_as_its_own_kind(void **state)
{
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step("T1 delete where value == 20", &script);
    assert_int_equal(s->kind, DL_TXN_STEP_DELETE_WHERE);
    assert_int_equal(s->n_keys, 0);
    assert_false(s->pred.all);
    assert_int_equal(s->pred.field, DL_TXN_FIELD_VALUE);
    assert_string_equal(s->pred.operand, "20");
    dl_txn_script_free(&script);
}

static void test_script_statement_without_a_name_runs_on_its_own(void **state)
{
    dl_txn_script_t script = parse_ok("get 1\nput 1 2\nscan where key > 1\n"
                                      "update set value = value + 1\ndelete where key == 1\n");
    assert_int_equal(script.n, 5);
    for (size_t i = 0; i < script.n; i++)
        assert_null(script.steps[i].txn);
    assert_int_equal(script.steps[3].kind, DL_TXN_STEP_UPDATE);
    dl_txn_script_free(&script);
}

static void test_script_skips_comments_and_blank_lines_but_counts_them(void **state)
{
    dl_txn_script_t script = parse_ok("# a lost update\n"
                                      "\n"
                                      "   \t  \n"
                                      "\tT1   begin\t  snapshot   # comment\r\n"
                                      "T1 get 1#no space before it\n"
                                      "  # only a comment\n"
                                      "T1 commit"); /* no newline at the end */
    assert_int_equal(script.n, 3);
    assert_int_equal(script.steps[0].line, 4);
    assert_string_equal(script.steps[0].text, "T1   begin\t  snapshot");
    assert_int_equal(script.steps[0].level, DL_TXN_SNAPSHOT);
    assert_int_equal(script.steps[1].line, 5);
    assert_string_equal(script.steps[1].text, "T1 get 1");
    assert_int_equal(script.steps[1].n_keys, 1);
    assert_int_equal(script.steps[2].line, 7);
    assert_string_equal(script.steps[2].text, "T1 commit");
    dl_txn_script_free(&script);
}

static void test_script_accepts_crlf_line_endings_and_a_byte_order_mark(void **state)
{
    dl_txn_script_t script = parse_ok("\xef\xbb\xbfT1 begin\r\nT1 put 1 11\r\nT1 commit\r");
    assert_int_equal(script.n, 3);
    assert_string_equal(script.steps[0].txn, "T1");
    assert_string_equal(script.steps[1].values[0], "11");
    assert_string_equal(script.steps[2].text, "T1 commit");
    assert_int_equal(script.steps[2].line, 3);
    dl_txn_script_free(&script);
}

static void test_script_of_nothing_but_comments_has_no_steps(void **state)
{
    dl_txn_script_t script = parse_ok("");
    assert_int_equal(script.n, 0);
    dl_txn_script_free(&script);
    script = parse_ok("# nothing\n\n\n");
    assert_int_equal(script.n, 0);
    dl_txn_script_free(&script);
    assert_int_equal(dl_txn_script_parse(NULL, 0, &script, NULL, 0), 0);
    assert_int_equal(script.n, 0);
}

static void test_script_transaction_names_are_identifiers_kept_as_written(void **state)
{
    dl_txn_script_t script = parse_ok("alice begin\nBob_2-x get 1\nt1 commit\n");
    assert_string_equal(script.steps[0].txn, "alice");
    assert_string_equal(script.steps[1].txn, "Bob_2-x");
    assert_string_equal(script.steps[2].txn, "t1");
    dl_txn_script_free(&script);
}

static void test_script_refuses_statements_missing_a_part(void **state)
{
    assert_refused("T1 begin\nT1 put 1\n", "line 2: expected a value after 'put 1'");
    assert_refused("T1 put", "line 1: expected a key after 'put'");
    assert_refused("T1 insert 3", "line 1: expected a value after 'insert 3'");
    assert_refused("T1 get", "line 1: expected a key after 'get'");
    assert_refused("T1 delete", "line 1: expected a key or 'where' after 'delete'");
    assert_refused("T1 delete where",
                   "line 1: expected a predicate such as 'value == 20' after 'delete where'");
    assert_refused("setup", "line 1: expected key=value pairs after 'setup'");
    assert_refused("T1 update", "line 1: expected 'set' after 'update'");
    assert_refused("T1 update value = 1", "line 1: expected 'set' after 'update', found 'value'");
    assert_refused("T1 update set", "line 1: expected 'value = ...' after 'update set'");
    assert_refused("T1 update set value = 1 where",
                   "line 1: expected a predicate such as 'value == 20' after "
                   "'update set value = 1 where'");
    assert_refused("T1", "line 1: expected a statement after the transaction name 'T1'");
}

static void test_script_refuses_extra_tokens(void **state)
{
    assert_refused("T1 put 1 11 12", "line 1: unexpected '12' after 'put 1 11'");
    assert_refused("T1 insert 1 11 12", "line 1: unexpected '12' after 'insert 1 11'");
    assert_refused("T1 delete 1 2", "line 1: unexpected '2' after 'delete 1'");
    assert_refused("T1 commit now", "line 1: unexpected 'now' after 'commit'");
    assert_refused("T1 abort 1", "line 1: unexpected '1' after 'abort'");
    assert_refused("T1 begin snapshot now", "line 1: unexpected 'now' after 'begin snapshot'");
    assert_refused("T1 scan 1",
                   "line 1: expected 'where' or the end of the line after 'scan', found '1'");
    assert_refused("T1 scan where value > 5 6",
                   "line 1: unexpected '6' after 'scan where value > 5'");
    assert_refused("T1 update set value = 5 6",
                   "line 1: unexpected '6' after 'update set value = 5'");
    /* Tabs in the quoted statement print as spaces: the message stays one printable line. */
    assert_refused("T1 put\t1\t11\t12", "line 1: unexpected '12' after 'put 1 11'");
    assert_refused("T1 update set value = value + 1 2",
                   "line 1: unexpected '2' after 'update set value = value + 1'");
}

static void test_script_refuses_statements_that_need_a_transaction_name(void **state)
{
    assert_refused("begin", "line 1: begin needs a transaction name, e.g. 'T1 begin'");
    assert_refused("commit", "line 1: commit needs a transaction name, e.g. 'T1 commit'");
    assert_refused("abort", "line 1: abort needs a transaction name, e.g. 'T1 abort'");
    /* A keyword is never a name: "begin begin" is a begin without one. */
    assert_refused("Begin begin", "line 1: begin needs a transaction name, e.g. 'T1 begin'");
}

static void test_script_refuses_names_that_are_not_identifiers(void **state)
{
    const char *hint = "(a name starts with a letter, followed by letters, digits, '_' or '-')";
    char message[256];
    snprintf(message, sizeof(message),
             "line 1: '1x' is neither a statement nor a transaction name %s", hint);
    assert_refused("1x get 1", message);
    snprintf(message, sizeof(message),
             "line 1: '_t' is neither a statement nor a transaction name %s", hint);
    assert_refused("_t get 1", message);
    snprintf(message, sizeof(message),
             "line 1: 'T.1' is neither a statement nor a transaction name %s", hint);
    assert_refused("T.1 get 1", message);
    assert_refused("T1 fetch 1", "line 1: unknown statement 'fetch' after 'T1' (expected begin, "
                                 "get, scan, put, insert, delete, update, commit or abort)");
}

static void test_script_refuses_setup_out_of_place_or_malformed(void **state)
{
    assert_refused("T1 setup 1=10", "line 1: setup takes no transaction name");
    assert_refused("setup 1=10\nget 1\n\nsetup 2=20",
                   "line 4: setup must come before every other statement");
    assert_refused("setup 1 = 10", "line 1: expected key=value (no spaces around '='), found '1'");
    assert_refused("setup =10", "line 1: expected key=value (no spaces around '='), found '=10'");
    assert_refused("setup 1=", "line 1: expected key=value (no spaces around '='), found '1='");
}

static void test_script_refuses_unknown_isolation_levels(void **state)
{
    assert_refused("T1 begin bogus",
                   "line 1: unknown isolation level 'bogus' (expected read-uncommitted, "
                   "read-committed, snapshot, repeatable-read, serial, 2pl, ssi or serializable)");
}

static void test_script_refuses_malformed_predicates(void **state)
{
    assert_refused("T1 scan where value = 5",
                   "line 1: '=' after 'scan where value' is not a comparison (write '==')");
    assert_refused("T1 scan where value",
                   "line 1: expected a comparison (==, !=, <, <=, >, >=) after 'scan where value'");
    assert_refused("T1 scan where value ! 5", "line 1: expected a comparison (==, !=, <, <=, >, "
                                              ">=) after 'scan where value', found '!'");
    assert_refused("T1 scan where value >",
                   "line 1: expected a value to compare with after 'scan where value >'");
    assert_refused(
        "T1 scan where value >> 5",
        "line 1: expected a value to compare with after 'scan where value >', found '>'");
    assert_refused("T1 scan where price > 5",
                   "line 1: expected 'key' or 'value' after 'scan where', found 'price'");
    assert_refused("T1 delete where == 5",
                   "line 1: expected 'key' or 'value' after 'delete where', found '=='");
    assert_refused("T1 get where value > 5", "line 1: get reads keys; to read the rows a "
                                             "predicate matches, write 'scan where ...'");
}

static void test_script_refuses_a_modulo_that_is_not_a_positive_integer(void **state)
{
    const char *prefix = "line 1: expected a positive 64-bit integer after 'scan where value %'";
    char message[256];
    static const char *const divisors[] = {"0", "-3", "x", "9223372036854775808", "3.5"};
    for (size_t i = 0; i < sizeof(divisors) / sizeof(divisors[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "T1 scan where value %% %s == 0", divisors[i]);
        snprintf(message, sizeof(message), "%s, found '%s'", prefix, divisors[i]);
        assert_refused(text, message);
    }
    assert_refused("T1 scan where value % == 0",
                   "line 1: expected a positive 64-bit integer after 'scan where value %', "
                   "found '=='");
    assert_refused("T1 scan where value % 3 == x",
                   "line 1: expected an integer after 'scan where value % 3 ==', found 'x'");
}

static void test_script_refuses_malformed_set_clauses(void **state)
{
    assert_refused("T1 update set key = 1", "line 1: only 'value' can be set, not 'key'");
    assert_refused("T1 update set value 1",
                   "line 1: expected '=' after 'update set value', found '1'");
    assert_refused("T1 update set value == 1",
                   "line 1: expected '=' after 'update set value', found '=='");
    assert_refused("T1 update set value =",
                   "line 1: expected a value or 'value + N' after 'update set value ='");
    assert_refused("T1 update set value = value * 2",
                   "line 1: expected '+' or '-' after 'update set value = value', found '*'");
    assert_refused("T1 update set value = value",
                   "line 1: expected '+' or '-' after 'update set value = value'");
    assert_refused("T1 update set value = value + x",
                   "line 1: expected a 64-bit integer after 'update set value = value +', "
                   "found 'x'");
    assert_refused("T1 update set value = value + 9223372036854775808",
                   "line 1: expected a 64-bit integer after 'update set value = value +', "
                   "found '9223372036854775808'");
    assert_refused("T1 update set value = value - -9223372036854775808",
                   "line 1: expected a 64-bit integer after 'update set value = value -', "
                   "found '-9223372036854775808'");
}

/* A string of n copies of c, in a buffer the caller frees. */
static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_script_limits_tokens_to_256_bytes(void **state)
{
    char *longest = repeat('k', DL_TXN_SCRIPT_MAX_TOKEN);
    char *too_long = repeat('k', DL_TXN_SCRIPT_MAX_TOKEN + 1);
    char text[1024], message[256];
    char *quoted = repeat('k', 60); /* messages quote 60 bytes of it */

    snprintf(text, sizeof(text), "T1 put %s %s", longest, longest);
    dl_txn_script_t script;
    const dl_txn_step_t *s = one_step(text, &script);
    assert_int_equal(strlen(s->keys[0]), DL_TXN_SCRIPT_MAX_TOKEN);
    dl_txn_script_free(&script);

    snprintf(text, sizeof(text), "T1 put %s 1", too_long);
    snprintf(message, sizeof(message), "line 1: the key '%s...' is longer than 256 bytes", quoted);
    assert_refused(text, message);
    snprintf(text, sizeof(text), "setup 1=%s", too_long);
    snprintf(message, sizeof(message), "line 1: the value '%s...' is longer than 256 bytes",
             quoted);
    assert_refused(text, message);
    snprintf(text, sizeof(text), "T1 scan where key == %s", too_long);
    snprintf(message, sizeof(message), "line 1: the operand '%s...' is longer than 256 bytes",
             quoted);
    assert_refused(text, message);
    too_long[0] = 'T';
    quoted[0] = 'T';
    snprintf(text, sizeof(text), "%s begin", too_long);
    snprintf(message, sizeof(message),
             "line 1: the transaction name '%s...' is longer than 256 bytes", quoted);
    assert_refused(text, message);
    free(longest);
    free(too_long);
    free(quoted);
}

static void test_script_limits_lines_to_4096_bytes(void **state)
{
    /* "get 1 #xxx...": exactly 4096 bytes parses, with "\r\n" after it too; 4097 does not. */
    char *text = malloc(2 * DL_TXN_SCRIPT_MAX_LINE + 64);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "get 1\nget 1 #");
    size_t line_start = 6;
    while (n - line_start < DL_TXN_SCRIPT_MAX_LINE)
        text[n++] = 'x';
    memcpy(text + n, "\r\nget 2\n", 9);
    dl_txn_script_t script = parse_ok(text);
    assert_int_equal(script.n, 3);
    assert_int_equal(script.steps[2].line, 3);
    dl_txn_script_free(&script);

    text[n] = 'x';
    text[n + 1] = '\n';
    assert_refused_len(text, n + 2, "line 2: the line is longer than 4096 bytes");
    free(text);
}

static void test_script_limits_steps_to_100000(void **state)
{
    size_t n = DL_TXN_SCRIPT_MAX_STEPS;
    char *text = malloc(6 * (n + 1) + 1);
    assert_non_null(text);
    for (size_t i = 0; i <= n; i++)
        memcpy(text + 6 * i, "get 1\n", 6);
    dl_txn_script_t script = parse_ok_len(text, 6 * n);
    assert_int_equal(script.n, n);
    assert_int_equal(script.steps[n - 1].line, (int)n);
    dl_txn_script_free(&script);
    assert_refused_len(text, 6 * (n + 1), "line 100001: more than 100000 statements");
    free(text);
}

static void test_script_limits_the_whole_script_to_one_mebibyte(void **state)
{
    /* 1 MiB of comment lines of 1 KiB each parses; one byte more is refused at the line that
     * crosses the limit. */
    size_t size = DL_TXN_SCRIPT_MAX_BYTES;
    char *text = malloc(size + 1);
    assert_non_null(text);
    memset(text, '#', size + 1);
    for (size_t i = 1023; i < size; i += 1024)
        text[i] = '\n';
    dl_txn_script_t script = parse_ok_len(text, size);
    assert_int_equal(script.n, 0);
    assert_refused_len(text, size + 1,
                       "line 1025: the script is longer than 1048576 bytes (1 MiB)");
    free(text);
}

static void test_script_refuses_nul_bytes_anywhere(void **state)
{
    assert_refused_len("T1 get 1\0 2\n", 12, "line 1: the line contains a NUL byte");
    assert_refused_len("T1 begin\n# a comment \0 too\n", 27,
                       "line 2: the line contains a NUL byte");
    assert_refused_len("\0", 1, "line 1: the line contains a NUL byte");
}

static void test_script_refuses_invalid_utf8_and_control_characters(void **state)
{
    static const char *const invalid[] = {
        "T1 get \xff",         "T1 get \xc0\xaf", /* overlong '/' */
        "T1 get \xed\xa0\x80", /* a UTF-16 surrogate */ "T1 get \xf4\x90\x80\x80", /* > U+10FFFF */
        "T1 get \xe2\x82",     /* cut short */ "# \x80 in a comment",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_refused(invalid[i], "line 1: the line is not valid UTF-8");
    assert_refused("T1 get 1\n\x1b[31mT1 get 2",
                   "line 2: the line contains the control character 0x1b");
    assert_refused("T1 get 1\rT1 get 2\n", "line 1: the line contains the control character 0x0d");
    assert_refused("T1 get \x7f", "line 1: the line contains the control character 0x7f");
    assert_refused("T1 get \xc2\x9b", "line 1: the line contains the control character U+009B");
    /* Any other character is fine in a key, a value or a comment. */
    dl_txn_script_t script = parse_ok("T1 put \xe2\x82\xac \xf0\x9f\x98\x80 # \xc3\xa9t\xc3\xa9");
    assert_string_equal(script.steps[0].keys[0], "\xe2\x82\xac");
    assert_string_equal(script.steps[0].values[0], "\xf0\x9f\x98\x80");
    dl_txn_script_free(&script);
}

static void test_script_error_message_is_cut_to_the_buffer_on_a_character_boundary(void **state)
{
    dl_txn_script_t script;
    /* "line 1: unknown statement '" is 27 bytes; a 29-byte buffer would end inside the 'é'. */
    char err[29];
    assert_int_equal(dl_txn_script_parse("T1 \xc3\xa9t\xc3\xa9", 8, &script, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "line 1: unknown statement '");
    assert_int_equal(dl_txn_script_parse("T1 put 1", 8, &script, NULL, 0), -EINVAL);
    assert_null(script.steps);
}

static void test_script_names_every_kind(void **state)
{
    assert_string_equal(dl_txn_step_kind_name(DL_TXN_STEP_SETUP), "setup");
    assert_string_equal(dl_txn_step_kind_name(DL_TXN_STEP_DELETE), "delete");
    assert_string_equal(dl_txn_step_kind_name(DL_TXN_STEP_DELETE_WHERE), "delete-where");
    assert_string_equal(dl_txn_step_kind_name(DL_TXN_STEP_ABORT), "abort");
    assert_string_equal(dl_txn_step_kind_name(DL_TXN_STEP_N_KINDS), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script_parses_the_example_of_the_issue),
        cmocka_unit_test(test_script_parses_setup_pairs_split_at_the_first_equals),
        cmocka_unit_test(test_script_allows_several_setup_lines_before_other_statements),
        cmocka_unit_test(test_script_parses_begin_with_and_without_a_level),
        cmocka_unit_test(test_script_parses_get_of_every_key_named),
        cmocka_unit_test(test_script_parses_put_insert_and_delete_of_one_key),
        cmocka_unit_test(test_script_parses_commit_and_abort),
        cmocka_unit_test(test_script_parses_scan_without_where_as_every_row),
        cmocka_unit_test(test_script_parses_every_comparison_with_or_without_spaces),
        cmocka_unit_test(test_script_parses_modulo_predicates_on_value_and_key),
        cmocka_unit_test(test_script_parses_update_with_modulo_predicate),
        cmocka_unit_test(test_script_parses_every_form_of_update_set),
        cmocka_unit_test(test_script_parses_update_of_a_constant_where_key_matches),
        cmocka_unit_test(test_script_parses_delete_where_as_its_own_kind),
        cmocka_unit_test(test_script_statement_without_a_name_runs_on_its_own),
        cmocka_unit_test(test_script_skips_comments_and_blank_lines_but_counts_them),
        cmocka_unit_test(test_script_accepts_crlf_line_endings_and_a_byte_order_mark),
        cmocka_unit_test(test_script_of_nothing_but_comments_has_no_steps),
        cmocka_unit_test(test_script_transaction_names_are_identifiers_kept_as_written),
        cmocka_unit_test(test_script_refuses_statements_missing_a_part),
        cmocka_unit_test(test_script_refuses_extra_tokens),
        cmocka_unit_test(test_script_refuses_statements_that_need_a_transaction_name),
        cmocka_unit_test(test_script_refuses_names_that_are_not_identifiers),
        cmocka_unit_test(test_script_refuses_setup_out_of_place_or_malformed),
        cmocka_unit_test(test_script_refuses_unknown_isolation_levels),
        cmocka_unit_test(test_script_refuses_malformed_predicates),
        cmocka_unit_test(test_script_refuses_a_modulo_that_is_not_a_positive_integer),
        cmocka_unit_test(test_script_refuses_malformed_set_clauses),
        cmocka_unit_test(test_script_limits_tokens_to_256_bytes),
        cmocka_unit_test(test_script_limits_lines_to_4096_bytes),
        cmocka_unit_test(test_script_limits_steps_to_100000),
        cmocka_unit_test(test_script_limits_the_whole_script_to_one_mebibyte),
        cmocka_unit_test(test_script_refuses_nul_bytes_anywhere),
        cmocka_unit_test(test_script_refuses_invalid_utf8_and_control_characters),
        cmocka_unit_test(test_script_error_message_is_cut_to_the_buffer_on_a_character_boundary),
        cmocka_unit_test(test_script_names_every_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
