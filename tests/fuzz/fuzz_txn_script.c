/*
 * libFuzzer target for the txn lab's scenario scripts, which users write by hand and the runner
 * and the HTTP server read from files and requests. Any input must either be refused with
 * -EINVAL and a printable message that names a line, leaving the script empty, or parse into
 * steps that keep the rules of src/txn/script.h: lines in increasing order, the fields each kind
 * promises and nothing else, every string within its limits.
 *
 * A script that parses is printed back, one step's text a line, and parsed again: it must give
 * the same steps. So the text kept for printing says exactly what the step does.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/script.h"
#include "txn/value.h"

static void fail(const char *what, size_t step)
{
    fprintf(stderr, "fuzz_txn_script: step %zu: %s\n", step, what);
    abort();
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int same_keyword(const char *s, const char *kw)
{
    for (; *s != '\0' && *kw != '\0'; s++, kw++)
        if (lower((unsigned char)*s) != *kw)
            return 0;
    return *s == '\0' && *kw == '\0';
}

/* 1 when s is a key, value, name or operand a script can hold: 1 to 256 bytes, no whitespace,
 * no '#'. */
static int is_token(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    if (len == 0 || len > DL_TXN_SCRIPT_MAX_TOKEN)
        return 0;
    return strpbrk(s, " \t\r\n#") == NULL;
}

static int is_name(const char *s)
{
    static const char *const keywords[] = {"setup",  "begin",  "get",    "scan",   "put",
                                           "insert", "delete", "update", "commit", "abort"};
    if (!is_token(s) || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    if (strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != strlen(s))
        return 0;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (same_keyword(s, keywords[i]))
            return 0;
    return 1;
}

static void check_step(const dl_txn_step_t *s, size_t i, int previous_line, int setup_allowed)
{
    if (s->line <= previous_line)
        fail("line numbers do not increase", i);
    if (s->text == NULL || s->text[0] == '\0' || strlen(s->text) > DL_TXN_SCRIPT_MAX_LINE)
        fail("text missing or too long", i);
    size_t len = strlen(s->text);
    if (strpbrk(s->text, "#\n\r") != NULL || s->text[0] == ' ' || s->text[0] == '\t' ||
        s->text[len - 1] == ' ' || s->text[len - 1] == '\t')
        fail("text not trimmed or holds a comment", i);
    if ((unsigned)s->kind >= DL_TXN_STEP_N_KINDS ||
        strcmp(dl_txn_step_kind_name(s->kind), "?") == 0)
        fail("unknown kind", i);
    if (s->txn != NULL && !is_name(s->txn))
        fail("transaction name is not an identifier, or is a keyword", i);
    if (s->has_level && s->kind != DL_TXN_STEP_BEGIN)
        fail("level on a step other than begin", i);
    if ((unsigned)s->level >= DL_TXN_N_LEVELS)
        fail("unknown level", i);
    for (size_t k = 0; k < s->n_keys; k++)
        if (!is_token(s->keys[k]))
            fail("bad key", i);
    for (size_t k = 0; k < s->n_values; k++)
        if (!is_token(s->values[k]))
            fail("bad value", i);

    size_t want_keys = 0, want_values = 0;
    int named = s->txn != NULL, has_pred = 0;
    switch (s->kind) {
    case DL_TXN_STEP_SETUP:
        if (!setup_allowed || named || s->n_keys == 0 || s->n_values != s->n_keys)
            fail("setup out of place, named or without pairs", i);
        want_keys = want_values = s->n_keys;
        break;
    case DL_TXN_STEP_BEGIN:
    case DL_TXN_STEP_COMMIT:
    case DL_TXN_STEP_ABORT:
        if (!named)
            fail("begin, commit or abort without a transaction name", i);
        break;
    case DL_TXN_STEP_GET:
        if (s->n_keys == 0)
            fail("get without keys", i);
        want_keys = s->n_keys;
        break;
    case DL_TXN_STEP_PUT:
    case DL_TXN_STEP_INSERT:
        want_keys = want_values = 1;
        break;
    case DL_TXN_STEP_DELETE:
        want_keys = 1;
        break;
    case DL_TXN_STEP_SCAN:
    case DL_TXN_STEP_UPDATE:
        has_pred = 1;
        break;
    case DL_TXN_STEP_DELETE_WHERE:
        has_pred = 1;
        if (s->pred.all)
            fail("delete where without a predicate", i);
        break;
    default:
        fail("unknown kind", i);
    }
    if (s->n_keys != want_keys || s->n_values != want_values ||
        (want_keys == 0) != (s->keys == NULL) || (want_values == 0) != (s->values == NULL))
        fail("keys or values do not fit the kind", i);

    const dl_txn_pred_t *p = &s->pred;
    if (!has_pred) {
        if (p->all || p->mod != 0 || p->operand != NULL)
            fail("predicate on a step that has none", i);
    } else if (p->all) {
        if (p->operand != NULL || p->mod != 0)
            fail("predicate of every row with an operand", i);
    } else {
        int64_t ignored;
        if (!is_token(p->operand) || p->mod < 0 || (unsigned)p->cmp > DL_TXN_CMP_GE ||
            (unsigned)p->field > DL_TXN_FIELD_VALUE ||
            (p->mod > 0 && !dl_txn_value_integer(p->operand, &ignored)))
            fail("malformed predicate", i);
        /* Evaluated on a few rows: must not trap (e.g. a division by a bad modulus). */
        dl_txn_pred_matches(p, "1", "10");
        dl_txn_pred_matches(p, "-9223372036854775808", "-1");
        dl_txn_pred_matches(p, "alice", p->operand);
    }

    if (s->kind == DL_TXN_STEP_UPDATE) {
        if (s->set.add ? s->set.value != NULL : !is_token(s->set.value))
            fail("malformed set", i);
    } else if (s->set.add || s->set.delta != 0 || s->set.value != NULL) {
        fail("set on a step other than update", i);
    }
}

/* 1 when steps a and b say the same, line numbers aside. */
static int same_step(const dl_txn_step_t *a, const dl_txn_step_t *b)
{
    if (strcmp(a->text, b->text) != 0 || a->kind != b->kind ||
        (a->txn == NULL) != (b->txn == NULL) || (a->txn != NULL && strcmp(a->txn, b->txn) != 0) ||
        a->has_level != b->has_level || a->level != b->level || a->n_keys != b->n_keys ||
        a->n_values != b->n_values)
        return 0;
    for (size_t k = 0; k < a->n_keys; k++)
        if (strcmp(a->keys[k], b->keys[k]) != 0)
            return 0;
    for (size_t k = 0; k < a->n_values; k++)
        if (strcmp(a->values[k], b->values[k]) != 0)
            return 0;
    if (a->pred.all != b->pred.all || a->pred.field != b->pred.field ||
        a->pred.mod != b->pred.mod || a->pred.cmp != b->pred.cmp ||
        (a->pred.operand == NULL) != (b->pred.operand == NULL) ||
        (a->pred.operand != NULL && strcmp(a->pred.operand, b->pred.operand) != 0))
        return 0;
    return a->set.add == b->set.add && a->set.delta == b->set.delta &&
           (a->set.value == NULL) == (b->set.value == NULL) &&
           (a->set.value == NULL || strcmp(a->set.value, b->set.value) == 0);
}

/* Prints the steps back, one a line, and checks that they parse into the same steps. */
static void check_reparse(const dl_txn_script_t *script, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    size_t len = 0;
    for (size_t i = 0; i < script->n; i++) {
        size_t n = strlen(script->steps[i].text);
        if (len + n + 1 > size + 1)
            fail("the texts are longer than the script", i);
        memcpy(text + len, script->steps[i].text, n);
        len += n;
        text[len++] = '\n';
    }
    dl_txn_script_t again;
    char err[256];
    if (dl_txn_script_parse(text, len, &again, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_txn_script: reparse: %s\n", err);
        fail("the printed steps do not parse", 0);
    }
    if (again.n != script->n)
        fail("the printed steps parse into another number of steps", again.n);
    for (size_t i = 0; i < again.n; i++)
        if (again.steps[i].line != (int)i + 1 || !same_step(&script->steps[i], &again.steps[i]))
            fail("a printed step parses into another step", i);
    dl_txn_script_free(&again);
    free(text);
}

static void check_error(const char *err, int rv, const dl_txn_script_t *script)
{
    if (rv != -EINVAL && rv != -ENOMEM)
        fail("an error other than -EINVAL or -ENOMEM", 0);
    if (script->steps != NULL || script->n != 0)
        fail("a refused script is not left empty", 0);
    if (strncmp(err, "line ", 5) != 0 || err[5] < '1' || err[5] > '9' || strlen(err) < 10)
        fail("the message does not name a line", 0);
    for (const unsigned char *c = (const unsigned char *)err; *c != '\0'; c++)
        if (*c < 0x20 || *c == 0x7f)
            fail("the message holds a control character", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so that a read past the end is caught by ASan. */
    char *copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        return 0;
    if (size > 0)
        memcpy(copy, data, size);

    dl_txn_script_t script;
    char err[512];
    int rv = dl_txn_script_parse(copy, size, &script, err, sizeof(err));
    if (rv != 0) {
        check_error(err, rv, &script);
        /* The same message cut to a small buffer: a NUL-terminated prefix of it. */
        char small[24];
        size_t small_len = 1 + (size > 0 ? (unsigned char)copy[0] % sizeof(small) : 0);
        dl_txn_script_t again;
        if (dl_txn_script_parse(copy, size, &again, small, small_len) != rv)
            fail("the same script is refused differently", 0);
        if (strlen(small) >= small_len || strncmp(small, err, strlen(small)) != 0)
            fail("a cut message is not a prefix of the whole one", 0);
        dl_txn_script_free(&script);
        free(copy);
        return 0;
    }
    if (script.n > DL_TXN_SCRIPT_MAX_STEPS)
        fail("more steps than the limit", script.n);
    int previous_line = 0, setup_allowed = 1;
    for (size_t i = 0; i < script.n; i++) {
        setup_allowed = setup_allowed && script.steps[i].kind == DL_TXN_STEP_SETUP;
        check_step(&script.steps[i], i, previous_line, setup_allowed);
        previous_line = script.steps[i].line;
    }
    check_reparse(&script, size);
    dl_txn_script_free(&script);
    free(copy);
    return 0;
}
