/* The small languages of "ddialab txn serve": where clauses, update assignments, --setup. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "txn/serve.h"
#include "txn/value.h"

static char *skip_spaces(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Trims trailing spaces of p in place, then one pair of matching quotes around it. */
static char *unquote(char *p)
{
    size_t len = strlen(p);
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        p[--len] = '\0';
    if (len >= 2 && (p[0] == '\'' || p[0] == '"') && p[len - 1] == p[0]) {
        p[len - 1] = '\0';
        p++;
    }
    return p;
}

/* Matches word (case-insensitive) at p when no letter, digit or '_' follows it. */
static char *match_word(char *p, const char *word)
{
    size_t len = strlen(word);
    if (strncasecmp(p, word, len) != 0 || isalnum((unsigned char)p[len]) || p[len] == '_')
        return NULL;
    return p + len;
}

static const char where_help[] = "a where clause is key|value [% D] OP OPERAND with OP one of "
                                 "== != < <= > >=, e.g. 'value % 3 == 0' or 'key >= 2'";

/* Parses a where clause in place into pred. */
int dl__txn_serve_parse_where(char *text, dl_txn_pred_t *pred, char *err, size_t errlen)
{
    memset(pred, 0, sizeof(*pred));
    char *p = skip_spaces(text), *q;
    if (*p == '\0') {
        pred->all = 1;
        return 0;
    }
    if ((q = match_word(p, "key")) != NULL) {
        pred->field = DL_TXN_FIELD_KEY;
    } else if ((q = match_word(p, "value")) != NULL) {
        pred->field = DL_TXN_FIELD_VALUE;
    } else {
        snprintf(err, errlen, "bad where clause: it must start with key or value; ");
        goto help;
    }
    p = skip_spaces(q);
    if (*p == '%') {
        p = skip_spaces(p + 1);
        char *end;
        errno = 0;
        long long mod = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : 0;
        if (mod <= 0 || errno != 0) {
            snprintf(err, errlen, "bad where clause: %% must be followed by a positive integer; ");
            goto help;
        }
        pred->mod = mod;
        p = skip_spaces(end);
    }
    static const struct {
        const char *text;
        dl_txn_cmp_t cmp;
    } ops[] = {
        /* Two-character operators first, so that "<=" is not read as "<". */
        {"==", DL_TXN_CMP_EQ}, {"!=", DL_TXN_CMP_NE}, {"<>", DL_TXN_CMP_NE}, {"<=", DL_TXN_CMP_LE},
        {">=", DL_TXN_CMP_GE}, {"=", DL_TXN_CMP_EQ},  {"<", DL_TXN_CMP_LT},  {">", DL_TXN_CMP_GT},
    };
    size_t i = 0;
    while (i < sizeof(ops) / sizeof(ops[0]) && strncmp(p, ops[i].text, strlen(ops[i].text)) != 0)
        i++;
    if (i == sizeof(ops) / sizeof(ops[0])) {
        snprintf(err, errlen, "bad where clause: expected an operator after the field; ");
        goto help;
    }
    pred->cmp = ops[i].cmp;
    char *operand = unquote(skip_spaces(p + strlen(ops[i].text)));
    int64_t number;
    if (*operand == '\0') {
        snprintf(err, errlen, "bad where clause: the operand is missing; ");
        goto help;
    }
    if (pred->mod != 0 && !dl_txn_value_integer(operand, &number)) {
        snprintf(err, errlen, "bad where clause: with %% the operand must be an integer; ");
        goto help;
    }
    pred->operand = operand;
    return 0;

help:;
    size_t used = strlen(err);
    snprintf(err + used, errlen - used, "%s", where_help);
    return -EINVAL;
}

/* Parses an update's assignment in place into set. */
int dl__txn_serve_parse_set(char *text, dl_txn_set_t *set, char *err, size_t errlen)
{
    memset(set, 0, sizeof(*set));
    char *p = skip_spaces(text), *q;
    /* "value = EXPR" is SQL's SET clause; "value == 1" is not an assignment. */
    if ((q = match_word(p, "value")) != NULL && *(q = skip_spaces(q)) == '=' && q[1] != '=')
        p = skip_spaces(q + 1);
    if ((q = match_word(p, "value")) != NULL && (*(q = skip_spaces(q)) == '+' || *q == '-')) {
        int negative = *q == '-';
        char *digits = unquote(skip_spaces(q + 1));
        int64_t delta;
        if (!isdigit((unsigned char)*digits) || !dl_txn_value_integer(digits, &delta)) {
            snprintf(err, errlen,
                     "bad set: value %c must be followed by an integer, e.g. "
                     "'value + 1'",
                     negative ? '-' : '+');
            return -EINVAL;
        }
        set->add = 1;
        set->delta = negative ? -delta : delta;
        return 0;
    }
    if (*p == '\0') {
        snprintf(err, errlen, "bad set: it is empty; use 'value + N', 'value - N' or a constant");
        return -EINVAL;
    }
    /* In a query string '+' means a space, so set=value+1 arrives as "value 1". */
    if ((q = match_word(p, "value")) != NULL && isdigit((unsigned char)*skip_spaces(q)) &&
        q != skip_spaces(q)) {
        snprintf(err, errlen,
                 "bad set '%.64s': a '+' in a URL reads as a space; write %%2B "
                 "(curl --data-urlencode 'set=value + 1') or send JSON {\"set\": \"value + 1\"}",
                 p);
        return -EINVAL;
    }
    set->value = unquote(p);
    return 0;
}

/* Loads KEY=VALUE pairs into e as committed data. */
int dl__txn_serve_load_setup(dl_txn_engine_t *e, const char *text, char *err, size_t errlen)
{
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            return 0;
        size_t len = strcspn(p, " ,\t\n");
        const char *eq = memchr(p, '=', len);
        if (eq == NULL || eq == p) {
            snprintf(err, errlen, "bad setup pair '%.*s': expected KEY=VALUE, e.g. '1=10 2=20'",
                     (int)(len < 64 ? len : 64), p);
            return -EINVAL;
        }
        char *key = strndup(p, (size_t)(eq - p));
        char *value = strndup(eq + 1, len - (size_t)(eq - p) - 1);
        int rv = key != NULL && value != NULL ? dl_txn_engine_load(e, key, value) : -ENOMEM;
        free(key);
        free(value);
        if (rv != 0) {
            snprintf(err, errlen, "cannot load the setup: out of memory");
            return rv;
        }
        p += len;
    }
}
