/*
 * Scenario scripts of the txn lab: text in, steps out (the format is in script.h).
 *
 * A line is checked byte by byte first (length, NUL, control characters, UTF-8), so everything
 * after that, error messages included, handles printable text only. Its statement is then split
 * into whitespace-separated words; the where and set clauses, where operators may touch their
 * operands (`value%3==0`), are read again character by character from the statement's text.
 * Parsing records spans of the input; a statement that parses is copied into one allocation.
 */
#include "txn/script.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/value.h"

/* A line of DL_TXN_SCRIPT_MAX_LINE bytes holds at most this many whitespace-separated words. */
#define MAX_WORDS ((DL_TXN_SCRIPT_MAX_LINE + 1) / 2)
/* How many bytes of the input an error message quotes, at most, in one place. */
#define QUOTE_MAX 60

typedef struct {
    const char *p;
    size_t len;
} span_t;

/* One token of a where or set clause: a word or an operator, or the end of the clause. */
typedef enum { TOKEN_END = 0, TOKEN_WORD, TOKEN_OPERATOR } token_kind_t;
typedef struct {
    token_kind_t kind;
    span_t text;
} token_t;

/* The state of one parse: the line at hand and what its statement says, as spans of the input.
 * Large (two arrays of spans per possible word), so it lives on the heap. */
typedef struct {
    int line;
    char *err;
    size_t errlen;
    char quotes[2][QUOTE_MAX + 8];
    int seen_statement; /* a statement other than setup came before */

    span_t stmt; /* trimmed, comment removed */
    span_t words[MAX_WORDS];
    size_t n_words;
    size_t verb; /* index of the statement keyword in words */

    dl_txn_step_kind_t kind;
    span_t txn; /* len 0: autocommit */
    int has_level;
    dl_txn_level_t level;
    span_t keys[MAX_WORDS], values[MAX_WORDS];
    size_t n_keys, n_values;
    dl_txn_pred_t pred; /* operand is set when the step is built */
    span_t operand;
    dl_txn_set_t set; /* value is set when the step is built */
    span_t set_value;
} parser_t;

static const char *const kind_names[DL_TXN_STEP_N_KINDS] = {
    [DL_TXN_STEP_SETUP] = "setup",
    [DL_TXN_STEP_BEGIN] = "begin",
    [DL_TXN_STEP_GET] = "get",
    [DL_TXN_STEP_SCAN] = "scan",
    [DL_TXN_STEP_PUT] = "put",
    [DL_TXN_STEP_INSERT] = "insert",
    [DL_TXN_STEP_DELETE] = "delete",
    [DL_TXN_STEP_UPDATE] = "update",
    [DL_TXN_STEP_DELETE_WHERE] = "delete-where",
    [DL_TXN_STEP_COMMIT] = "commit",
    [DL_TXN_STEP_ABORT] = "abort",
};

const char *dl_txn_step_kind_name(dl_txn_step_kind_t kind)
{
    if ((unsigned)kind >= DL_TXN_STEP_N_KINDS)
        return "?";
    return kind_names[kind];
}

/* ---- messages ---------------------------------------------------------------------------- */

/* The length of the UTF-8 sequence a lead byte starts, or 0 for a byte that starts none. */
static size_t utf8_sequence_length(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if ((c & 0xf0) == 0xe0)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/* Cuts a message that snprintf cut in the middle of a character back to the whole ones. */
static void cut_to_character(char *s)
{
    size_t len = strlen(s), lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xc0) == 0x80)
        lead--;
    if (lead > 0 && (unsigned char)s[lead - 1] >= 0xc0 &&
        len - (lead - 1) < utf8_sequence_length((unsigned char)s[lead - 1]))
        s[lead - 1] = '\0';
}

static void vreport(char *err, size_t errlen, int line, const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return;
    int n = snprintf(err, errlen, "line %d: ", line);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    cut_to_character(err);
}

__attribute__((format(printf, 4, 5))) static int report(char *err, size_t errlen, int line,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(err, errlen, line, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Writes "line N: <message>" for the line at hand and returns -EINVAL, so that a check can
 * `return fail(p, ...)`. */
__attribute__((format(printf, 2, 3))) static int fail(parser_t *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(p->err, p->errlen, p->line, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Input quoted in a message, cut to QUOTE_MAX bytes on a character boundary: its head, or its
 * tail (for "after '...'", where the end is what the reader needs). Tabs become spaces, so that
 * a message holds printable characters only. Valid until the next quote into the same slot. */
static const char *quote(parser_t *p, int slot, span_t s, int tail)
{
    char *q = p->quotes[slot];
    if (s.len <= QUOTE_MAX) {
        memcpy(q, s.p, s.len);
        q[s.len] = '\0';
    } else if (tail) {
        size_t from = s.len - QUOTE_MAX;
        while (from < s.len && ((unsigned char)s.p[from] & 0xc0) == 0x80)
            from++;
        memcpy(q, "...", 3);
        memcpy(q + 3, s.p + from, s.len - from);
        q[3 + s.len - from] = '\0';
    } else {
        size_t n = QUOTE_MAX;
        while (n > 0 && ((unsigned char)s.p[n] & 0xc0) == 0x80)
            n--;
        memcpy(q, s.p, n);
        memcpy(q + n, "...", 4);
    }
    for (char *c = q; *c != '\0'; c++)
        if (*c == '\t')
            *c = ' ';
    return q;
}

/* The statement from its keyword up to done: what an "after '...'" in a message refers to. */
static const char *so_far(parser_t *p, const char *done)
{
    const char *from = p->words[p->verb].p;
    assert(done >= from && done <= p->stmt.p + p->stmt.len);
    return quote(p, 0, (span_t){from, (size_t)(done - from)}, 1);
}

/* "expected WHAT after 'STATEMENT SO FAR'[, found 'FOUND']". */
static int expected(parser_t *p, const char *what, const char *done, span_t found)
{
    if (found.len == 0)
        return fail(p, "expected %s after '%s'", what, so_far(p, done));
    return fail(p, "expected %s after '%s', found '%s'", what, so_far(p, done),
                quote(p, 1, found, 0));
}

static int unexpected(parser_t *p, const char *done, span_t found)
{
    return fail(p, "unexpected '%s' after '%s'", quote(p, 1, found, 0), so_far(p, done));
}

/* Refuses a token longer than DL_TXN_SCRIPT_MAX_TOKEN; what says what it is ("key"). */
static int check_length(parser_t *p, const char *what, span_t token)
{
    if (token.len <= DL_TXN_SCRIPT_MAX_TOKEN)
        return 0;
    return fail(p, "the %s '%s' is longer than %d bytes", what, quote(p, 1, token, 0),
                DL_TXN_SCRIPT_MAX_TOKEN);
}

/* ---- words ------------------------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_spaces(const char *pos, const char *end)
{
    while (pos < end && is_space(*pos))
        pos++;
    return pos;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* 1 when word is the keyword kw (lower case), in any case: keywords read as in SQL. */
static int is_keyword(span_t word, const char *kw)
{
    size_t n = strlen(kw);
    if (word.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(word.p[i]) != kw[i])
            return 0;
    return 1;
}

/* The statement a word names, as *kind; 0 when it names none. */
static int statement_keyword(span_t word, dl_txn_step_kind_t *kind)
{
    static const dl_txn_step_kind_t statements[] = {
        DL_TXN_STEP_SETUP,  DL_TXN_STEP_BEGIN,  DL_TXN_STEP_GET,    DL_TXN_STEP_SCAN,
        DL_TXN_STEP_PUT,    DL_TXN_STEP_INSERT, DL_TXN_STEP_DELETE, DL_TXN_STEP_UPDATE,
        DL_TXN_STEP_COMMIT, DL_TXN_STEP_ABORT};
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++)
        if (is_keyword(word, kind_names[statements[i]])) {
            *kind = statements[i];
            return 1;
        }
    return 0;
}

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* 1 when word has the shape of a transaction name: a letter, then letters, digits, _ or -. */
static int is_name(span_t word)
{
    if (word.len == 0 || !is_letter(word.p[0]))
        return 0;
    for (size_t i = 1; i < word.len; i++) {
        char c = word.p[i];
        if (!is_letter(c) && !(c >= '0' && c <= '9') && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* 1 and *out when the token is a whole decimal integer that fits 64 bits. */
static int integer(span_t token, int64_t *out)
{
    char text[32];
    if (token.len == 0 || token.len >= sizeof(text))
        return 0;
    memcpy(text, token.p, token.len);
    text[token.len] = '\0';
    return dl_txn_value_integer(text, out);
}

/* ---- where and set clauses --------------------------------------------------------------- */

static int is_operator_char(char c)
{
    return c != '\0' && memchr("=!<>%", c, 5) != NULL;
}

/* The next token of a where clause in [*pos, end): an operator (== != <= >= < > % and, to be
 * refused by name, = and !) or a word running up to whitespace or an operator. */
static token_t next_token(const char **pos, const char *end)
{
    const char *s = skip_spaces(*pos, end);
    token_t t = {TOKEN_END, {s, 0}};
    if (s == end) {
        *pos = s;
        return t;
    }
    const char *e = s + 1;
    if (is_operator_char(*s)) {
        t.kind = TOKEN_OPERATOR;
        if (*s != '%' && e < end && *e == '=')
            e++;
    } else {
        t.kind = TOKEN_WORD;
        while (e < end && !is_space(*e) && !is_operator_char(*e))
            e++;
    }
    t.text = (span_t){s, (size_t)(e - s)};
    *pos = e;
    return t;
}

/* The comparison an operator token names; 0 when it names none. */
static int comparison(token_t t, dl_txn_cmp_t *cmp)
{
    static const struct {
        const char *text;
        dl_txn_cmp_t cmp;
    } comparisons[] = {{"==", DL_TXN_CMP_EQ}, {"!=", DL_TXN_CMP_NE}, {"<", DL_TXN_CMP_LT},
                       {"<=", DL_TXN_CMP_LE}, {">", DL_TXN_CMP_GT},  {">=", DL_TXN_CMP_GE}};
    if (t.kind != TOKEN_OPERATOR)
        return 0;
    for (size_t i = 0; i < sizeof(comparisons) / sizeof(comparisons[0]); i++)
        if (is_keyword(t.text, comparisons[i].text)) {
            *cmp = comparisons[i].cmp;
            return 1;
        }
    return 0;
}

/* Reads the predicate in [pos, end of the statement): FIELD [% D] CMP OPERAND. done is the end
 * of the `where` before it. */
static int parse_predicate(parser_t *p, const char *pos, const char *done)
{
    const char *end = p->stmt.p + p->stmt.len;
    token_t t = next_token(&pos, end);
    if (t.kind != TOKEN_WORD || !(is_keyword(t.text, "key") || is_keyword(t.text, "value")))
        return expected(p, "'key' or 'value'", done, t.text);
    p->pred.all = 0;
    p->pred.field = is_keyword(t.text, "key") ? DL_TXN_FIELD_KEY : DL_TXN_FIELD_VALUE;
    done = pos;

    t = next_token(&pos, end);
    if (t.kind == TOKEN_OPERATOR && is_keyword(t.text, "%")) {
        done = pos;
        t = next_token(&pos, end);
        int64_t mod;
        if (t.kind != TOKEN_WORD || !integer(t.text, &mod) || mod <= 0)
            return expected(p, "a positive 64-bit integer", done, t.text);
        p->pred.mod = mod;
        done = pos;
        t = next_token(&pos, end);
    }
    if (t.kind == TOKEN_OPERATOR && is_keyword(t.text, "="))
        return fail(p, "'=' after '%s' is not a comparison (write '==')", so_far(p, done));
    if (!comparison(t, &p->pred.cmp))
        return expected(p, "a comparison (==, !=, <, <=, >, >=)", done, t.text);
    done = pos;

    t = next_token(&pos, end);
    if (t.kind != TOKEN_WORD)
        return expected(p, "a value to compare with", done, t.text);
    int64_t remainder;
    if (p->pred.mod > 0 && !integer(t.text, &remainder))
        return expected(p, "an integer", done, t.text);
    int rv = check_length(p, "operand", t.text);
    if (rv != 0)
        return rv;
    p->operand = t.text;
    done = pos;

    t = next_token(&pos, end);
    if (t.kind != TOKEN_END)
        return unexpected(p, done, t.text);
    return 0;
}

/* The word of a set clause at [pos, end): up to whitespace, or up to stop when it is not 0. */
static span_t set_word(const char *pos, const char *end, char stop)
{
    const char *e = pos;
    while (e < end && !is_space(*e) && (stop == 0 || *e != stop))
        e++;
    return (span_t){pos, (size_t)(e - pos)};
}

/* Reads the set clause in [pos, end): `value = value + N`, `value = value - N` or
 * `value = CONST`. done is the end of the `set` before it. */
static int parse_set(parser_t *p, const char *pos, const char *end, const char *done)
{
    pos = skip_spaces(pos, end);
    span_t w = set_word(pos, end, '=');
    if (is_keyword(w, "key"))
        return fail(p, "only 'value' can be set, not 'key'");
    if (!is_keyword(w, "value"))
        return expected(p, "'value = ...'", done, w.len > 0 ? w : set_word(pos, end, 0));
    done = pos = w.p + w.len;

    pos = skip_spaces(pos, end);
    if (pos == end || *pos != '=' || (pos + 1 < end && pos[1] == '='))
        return expected(p, "'='", done, set_word(pos, end, 0));
    done = pos = pos + 1;

    pos = skip_spaces(pos, end);
    if (pos == end)
        return expected(p, "a value or 'value + N'", done, (span_t){pos, 0});
    const char *after = end - pos >= 5 ? pos + 5 : NULL;
    if (after != NULL && is_keyword((span_t){pos, 5}, "value") &&
        (after == end || is_space(*after) || *after == '+' || *after == '-')) {
        /* value = value + N */
        done = pos = after;
        pos = skip_spaces(pos, end);
        if (pos == end || (*pos != '+' && *pos != '-'))
            return expected(p, "'+' or '-'", done, set_word(pos, end, 0));
        int minus = *pos == '-';
        done = pos = pos + 1;
        pos = skip_spaces(pos, end);
        w = set_word(pos, end, 0);
        int64_t n;
        if (!integer(w, &n) || (minus && n == INT64_MIN))
            return expected(p, "a 64-bit integer", done, w);
        p->set.add = 1;
        p->set.delta = minus ? -n : n;
    } else {
        /* value = CONST */
        w = set_word(pos, end, 0);
        int rv = check_length(p, "value", w);
        if (rv != 0)
            return rv;
        p->set.add = 0;
        p->set_value = w;
    }
    done = pos = w.p + w.len;
    pos = skip_spaces(pos, end);
    if (pos < end)
        return unexpected(p, done, set_word(pos, end, 0));
    return 0;
}

/* ---- statements -------------------------------------------------------------------------- */

/* The end of a word, for the "after '...'" of a message. */
static const char *end_of(span_t word)
{
    return word.p + word.len;
}

static int expect_no_more(parser_t *p, const span_t *args, size_t n_args, size_t used)
{
    if (n_args <= used)
        return 0;
    return unexpected(p, end_of(used > 0 ? args[used - 1] : p->words[p->verb]), args[used]);
}

static int parse_setup(parser_t *p, const span_t *args, size_t n_args)
{
    if (p->seen_statement)
        return fail(p, "setup must come before every other statement");
    if (n_args == 0)
        return expected(p, "key=value pairs", end_of(p->words[p->verb]), (span_t){NULL, 0});
    for (size_t i = 0; i < n_args; i++) {
        const char *eq = memchr(args[i].p, '=', args[i].len);
        if (eq == NULL || eq == args[i].p || eq == end_of(args[i]) - 1)
            return fail(p, "expected key=value (no spaces around '='), found '%s'",
                        quote(p, 1, args[i], 0));
        span_t key = {args[i].p, (size_t)(eq - args[i].p)};
        span_t value = {eq + 1, (size_t)(end_of(args[i]) - eq - 1)};
        int rv = check_length(p, "key", key);
        if (rv == 0)
            rv = check_length(p, "value", value);
        if (rv != 0)
            return rv;
        p->keys[p->n_keys++] = key;
        p->values[p->n_values++] = value;
    }
    return 0;
}

static int parse_begin(parser_t *p, const span_t *args, size_t n_args)
{
    if (n_args > 0) {
        char name[32];
        size_t i;
        for (i = 0; i < args[0].len && i < sizeof(name) - 1; i++)
            name[i] = lower(args[0].p[i]);
        name[i] = '\0';
        if (args[0].len >= sizeof(name) || dl_txn_level_parse(name, &p->level) != 0)
            return fail(p,
                        "unknown isolation level '%s' (expected read-uncommitted, "
                        "read-committed, snapshot, repeatable-read, serial, 2pl, ssi or "
                        "serializable)",
                        quote(p, 1, args[0], 0));
        p->has_level = 1;
    }
    return expect_no_more(p, args, n_args, 1);
}

static int parse_get(parser_t *p, const span_t *args, size_t n_args)
{
    if (n_args == 0)
        return expected(p, "a key", end_of(p->words[p->verb]), (span_t){NULL, 0});
    for (size_t i = 0; i < n_args; i++) {
        if (is_keyword(args[i], "where"))
            return fail(p, "get reads keys; to read the rows a predicate matches, write "
                           "'scan where ...'");
        int rv = check_length(p, "key", args[i]);
        if (rv != 0)
            return rv;
        p->keys[p->n_keys++] = args[i];
    }
    return 0;
}

/* put KEY VALUE and insert KEY VALUE. */
static int parse_write(parser_t *p, const span_t *args, size_t n_args)
{
    if (n_args == 0)
        return expected(p, "a key", end_of(p->words[p->verb]), (span_t){NULL, 0});
    if (n_args == 1)
        return expected(p, "a value", end_of(args[0]), (span_t){NULL, 0});
    int rv = check_length(p, "key", args[0]);
    if (rv == 0)
        rv = check_length(p, "value", args[1]);
    if (rv != 0)
        return rv;
    p->keys[p->n_keys++] = args[0];
    p->values[p->n_values++] = args[1];
    return expect_no_more(p, args, n_args, 2);
}

/* The predicate after the `where` in args[0], which must have one. */
static int parse_where(parser_t *p, const span_t *args, size_t n_args)
{
    assert(n_args >= 1 && is_keyword(args[0], "where"));
    if (n_args == 1)
        return expected(p, "a predicate such as 'value == 20'", end_of(args[0]), (span_t){NULL, 0});
    return parse_predicate(p, end_of(args[0]), end_of(args[0]));
}

static int parse_scan(parser_t *p, const span_t *args, size_t n_args)
{
    p->pred.all = 1;
    if (n_args == 0)
        return 0;
    if (!is_keyword(args[0], "where"))
        return expected(p, "'where' or the end of the line", end_of(p->words[p->verb]), args[0]);
    return parse_where(p, args, n_args);
}

/* delete KEY and delete where PRED. */
static int parse_delete(parser_t *p, const span_t *args, size_t n_args)
{
    if (n_args == 0)
        return expected(p, "a key or 'where'", end_of(p->words[p->verb]), (span_t){NULL, 0});
    if (is_keyword(args[0], "where")) {
        p->kind = DL_TXN_STEP_DELETE_WHERE;
        return parse_where(p, args, n_args);
    }
    int rv = check_length(p, "key", args[0]);
    if (rv != 0)
        return rv;
    p->keys[p->n_keys++] = args[0];
    return expect_no_more(p, args, n_args, 1);
}

static int parse_update(parser_t *p, const span_t *args, size_t n_args)
{
    if (n_args == 0 || !is_keyword(args[0], "set"))
        return expected(p, "'set'", end_of(p->words[p->verb]),
                        n_args > 0 ? args[0] : (span_t){NULL, 0});
    size_t where = 1;
    while (where < n_args && !is_keyword(args[where], "where"))
        where++;
    const char *set_end = where < n_args ? args[where].p : p->stmt.p + p->stmt.len;
    int rv = parse_set(p, end_of(args[0]), set_end, end_of(args[0]));
    if (rv != 0)
        return rv;
    p->pred.all = 1;
    if (where == n_args)
        return 0;
    return parse_where(p, args + where, n_args - where);
}

/* Reads the statement in p->words: an optional transaction name, a keyword, its arguments. */
static int parse_statement(parser_t *p)
{
    const span_t *w = p->words;
    size_t n = p->n_words;
    assert(n > 0);
    p->txn = (span_t){NULL, 0};
    p->has_level = 0;
    p->n_keys = p->n_values = 0;
    memset(&p->pred, 0, sizeof(p->pred));
    memset(&p->set, 0, sizeof(p->set));
    p->operand = p->set_value = (span_t){NULL, 0};

    size_t verb = 0;
    if (!statement_keyword(w[0], &p->kind)) {
        if (!is_name(w[0]))
            return fail(p,
                        "'%s' is neither a statement nor a transaction name (a name starts "
                        "with a letter, followed by letters, digits, '_' or '-')",
                        quote(p, 1, w[0], 0));
        int rv = check_length(p, "transaction name", w[0]);
        if (rv != 0)
            return rv;
        if (n == 1)
            return fail(p, "expected a statement after the transaction name '%s'",
                        quote(p, 1, w[0], 0));
        if (!statement_keyword(w[1], &p->kind))
            return fail(p,
                        "unknown statement '%s' after '%s' (expected begin, get, scan, put, "
                        "insert, delete, update, commit or abort)",
                        quote(p, 1, w[1], 0), quote(p, 0, w[0], 0));
        if (p->kind == DL_TXN_STEP_SETUP)
            return fail(p, "setup takes no transaction name");
        p->txn = w[0];
        verb = 1;
    }
    p->verb = verb;
    const span_t *args = w + verb + 1;
    size_t n_args = n - verb - 1;

    if (p->txn.len == 0 && (p->kind == DL_TXN_STEP_BEGIN || p->kind == DL_TXN_STEP_COMMIT ||
                            p->kind == DL_TXN_STEP_ABORT))
        return fail(p, "%s needs a transaction name, e.g. 'T1 %s'", kind_names[p->kind],
                    kind_names[p->kind]);
    switch (p->kind) {
    case DL_TXN_STEP_SETUP:
        return parse_setup(p, args, n_args);
    case DL_TXN_STEP_BEGIN:
        return parse_begin(p, args, n_args);
    case DL_TXN_STEP_GET:
        return parse_get(p, args, n_args);
    case DL_TXN_STEP_SCAN:
        return parse_scan(p, args, n_args);
    case DL_TXN_STEP_PUT:
    case DL_TXN_STEP_INSERT:
        return parse_write(p, args, n_args);
    case DL_TXN_STEP_DELETE:
        return parse_delete(p, args, n_args);
    case DL_TXN_STEP_UPDATE:
        return parse_update(p, args, n_args);
    case DL_TXN_STEP_COMMIT:
    case DL_TXN_STEP_ABORT:
        return expect_no_more(p, args, n_args, 0);
    default:
        break;
    }
    assert(!"statement_keyword returned a kind without a parser");
    return fail(p, "internal error: no parser for this statement");
}

/* ---- lines ------------------------------------------------------------------------------- */

/* Refuses a line (without its line ending) that is too long or holds a NUL byte, a control
 * character other than tab, or bytes that are not UTF-8. */
static int check_line(parser_t *p, const char *line, size_t len)
{
    if (len > DL_TXN_SCRIPT_MAX_LINE)
        return fail(p, "the line is longer than %d bytes", DL_TXN_SCRIPT_MAX_LINE);
    const unsigned char *s = (const unsigned char *)line;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == '\0')
            return fail(p, "the line contains a NUL byte");
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(p, "the line contains the control character 0x%02x", c);
        size_t n = utf8_sequence_length(c);
        if (n == 0 || n > len - i)
            return fail(p, "the line is not valid UTF-8");
        uint32_t code = n == 1 ? c : c & (0x7f >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return fail(p, "the line is not valid UTF-8");
            code = code << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < smallest[n] || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
            return fail(p, "the line is not valid UTF-8");
        if (code >= 0x80 && code <= 0x9f) /* C1 controls, e.g. the terminal's CSI */
            return fail(p, "the line contains the control character U+%04X", (unsigned)code);
        i += n;
    }
    return 0;
}

/* Reads the line [line, line + len): 1 for a blank or comment line, 0 with p's statement
 * fields set, or -EINVAL. */
static int parse_line(parser_t *p, const char *line, size_t len)
{
    int rv = check_line(p, line, len);
    if (rv != 0)
        return rv;
    const char *hash = memchr(line, '#', len);
    const char *end = hash != NULL ? hash : line + len;
    const char *start = skip_spaces(line, end);
    while (end > start && is_space(end[-1]))
        end--;
    if (start == end)
        return 1;
    p->stmt = (span_t){start, (size_t)(end - start)};
    p->n_words = 0;
    for (const char *pos = start; pos < end;) {
        const char *e = pos;
        while (e < end && !is_space(*e))
            e++;
        assert(p->n_words < MAX_WORDS);
        p->words[p->n_words++] = (span_t){pos, (size_t)(e - pos)};
        pos = skip_spaces(e, end);
    }
    return parse_statement(p);
}

/* ---- steps ------------------------------------------------------------------------------- */

/* Copies s to *dst as a NUL-terminated string, advances *dst past it, returns the copy. */
static char *copy_span(char **dst, span_t s)
{
    char *start = *dst;
    if (s.len > 0)
        memcpy(start, s.p, s.len);
    start[s.len] = '\0';
    *dst += s.len + 1;
    return start;
}

/* Fills *step with the statement p has just read: every string in one allocation that
 * step->text starts. 0 or -ENOMEM (nothing allocated then). */
static int build_step(const parser_t *p, dl_txn_step_t *step)
{
    int has_operand =
        !p->pred.all && (p->kind == DL_TXN_STEP_SCAN || p->kind == DL_TXN_STEP_UPDATE ||
                         p->kind == DL_TXN_STEP_DELETE_WHERE);
    int has_set_value = p->kind == DL_TXN_STEP_UPDATE && !p->set.add;
    size_t size = p->stmt.len + 1;
    if (p->txn.len > 0)
        size += p->txn.len + 1;
    for (size_t i = 0; i < p->n_keys; i++)
        size += p->keys[i].len + 1;
    for (size_t i = 0; i < p->n_values; i++)
        size += p->values[i].len + 1;
    if (has_operand)
        size += p->operand.len + 1;
    if (has_set_value)
        size += p->set_value.len + 1;

    memset(step, 0, sizeof(*step));
    char *strings = malloc(size);
    char **keys = p->n_keys > 0 ? calloc(p->n_keys, sizeof(*keys)) : NULL;
    char **values = p->n_values > 0 ? calloc(p->n_values, sizeof(*values)) : NULL;
    if (strings == NULL || (p->n_keys > 0 && keys == NULL) || (p->n_values > 0 && values == NULL)) {
        free(strings);
        free(keys);
        free(values);
        return -ENOMEM;
    }

    char *dst = strings;
    step->line = p->line;
    step->text = copy_span(&dst, p->stmt);
    if (p->txn.len > 0)
        step->txn = copy_span(&dst, p->txn);
    step->kind = p->kind;
    step->has_level = p->has_level;
    step->level = p->has_level ? p->level : DL_TXN_READ_UNCOMMITTED;
    for (size_t i = 0; i < p->n_keys; i++)
        keys[i] = copy_span(&dst, p->keys[i]);
    for (size_t i = 0; i < p->n_values; i++)
        values[i] = copy_span(&dst, p->values[i]);
    step->keys = keys;
    step->n_keys = p->n_keys;
    step->values = values;
    step->n_values = p->n_values;
    step->pred = p->pred;
    if (has_operand)
        step->pred.operand = copy_span(&dst, p->operand);
    step->set = p->set;
    if (has_set_value)
        step->set.value = copy_span(&dst, p->set_value);
    assert(dst == strings + size);
    return 0;
}

static void step_free(dl_txn_step_t *step)
{
    free(step->text); /* every string of the step */
    free(step->keys);
    free(step->values);
}

void dl_txn_script_free(dl_txn_script_t *script)
{
    if (script == NULL)
        return;
    for (size_t i = 0; i < script->n; i++)
        step_free(&script->steps[i]);
    free(script->steps);
    script->steps = NULL;
    script->n = 0;
}

/* Appends the statement p has just read to out, whose array holds *cap steps. */
static int append_step(parser_t *p, dl_txn_script_t *out, size_t *cap)
{
    if (out->n == DL_TXN_SCRIPT_MAX_STEPS)
        return fail(p, "more than %d statements", DL_TXN_SCRIPT_MAX_STEPS);
    if (out->n == *cap) {
        size_t new_cap = *cap == 0 ? 16 : *cap * 2;
        if (new_cap > DL_TXN_SCRIPT_MAX_STEPS)
            new_cap = DL_TXN_SCRIPT_MAX_STEPS;
        dl_txn_step_t *steps = realloc(out->steps, new_cap * sizeof(*steps));
        if (steps == NULL)
            goto err_nomem;
        out->steps = steps;
        *cap = new_cap;
    }
    if (build_step(p, &out->steps[out->n]) != 0)
        goto err_nomem;
    out->n++;
    if (p->kind != DL_TXN_STEP_SETUP)
        p->seen_statement = 1;
    return 0;

err_nomem:
    fail(p, "out of memory");
    return -ENOMEM;
}

int dl_txn_script_parse(const char *text, size_t len, dl_txn_script_t *out, char *err,
                        size_t errlen)
{
    out->steps = NULL;
    out->n = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len == 0)
        return 0;
    if (text == NULL)
        return report(err, errlen, 1, "no script text");
    if (len > DL_TXN_SCRIPT_MAX_BYTES) {
        /* Names the line that crosses the limit. */
        int line = 1;
        for (size_t i = 0; i < DL_TXN_SCRIPT_MAX_BYTES; i++)
            line += text[i] == '\n';
        return report(err, errlen, line, "the script is longer than %d bytes (1 MiB)",
                      DL_TXN_SCRIPT_MAX_BYTES);
    }
    parser_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        report(err, errlen, 1, "out of memory");
        return -ENOMEM;
    }
    p->err = err;
    p->errlen = errlen;

    const char *pos = text, *end = text + len;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        pos += 3; /* a byte order mark some editors write */
    size_t cap = 0;
    int rv = 0;
    while (pos < end) {
        p->line++;
        const char *newline = memchr(pos, '\n', (size_t)(end - pos));
        const char *line_end = newline != NULL ? newline : end;
        const char *next = newline != NULL ? newline + 1 : end;
        if (line_end > pos && line_end[-1] == '\r')
            line_end--;
        rv = parse_line(p, pos, (size_t)(line_end - pos));
        if (rv < 0)
            goto err_after_parser;
        if (rv == 0) {
            rv = append_step(p, out, &cap);
            if (rv != 0)
                goto err_after_parser;
        }
        pos = next;
    }
    free(p);
    return 0;

err_after_parser:
    free(p);
    dl_txn_script_free(out);
    return rv;
}
