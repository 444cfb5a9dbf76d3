/*
 * The `#!` directives of a scenario script (name, explanation, anomaly conditions) and the
 * evaluation of its anomaly conditions against a run. See txn/runner.h for the grammar.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/runner.h"
#include "txn/value.h"

static char *copy_trimmed(const char *p, size_t n)
{
    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
        n--;
    return strndup(p, n);
}

int dl_txn_meta_parse(const char *text, size_t len, dl_txn_meta_t *meta, char *err, size_t errlen)
{
    memset(meta, 0, sizeof(*meta));
    int line = 0;
    for (size_t at = 0; at < len;) {
        const char *start = text + at;
        const char *nl = memchr(start, '\n', len - at);
        size_t n = nl ? (size_t)(nl - start) : len - at;
        at += n + 1;
        line++;
        if (n < 2 || start[0] != '#' || start[1] != '!')
            continue;
        const char *colon = memchr(start, ':', n);
        if (colon == NULL) {
            snprintf(err, errlen,
                     "line %d: a #! directive is 'name: ...', 'explain: ...' or "
                     "'anomaly: ...'",
                     line);
            dl_txn_meta_free(meta);
            return -EINVAL;
        }
        char *word = copy_trimmed(start + 2, (size_t)(colon - start - 2));
        char *rest = copy_trimmed(colon + 1, n - (size_t)(colon + 1 - start));
        int rv = 0;
        if (word == NULL || rest == NULL) {
            rv = -ENOMEM;
        } else if (strcmp(word, "name") == 0) {
            free(meta->name);
            meta->name = rest;
            rest = NULL;
        } else if (strcmp(word, "explain") == 0) {
            free(meta->explain);
            meta->explain = rest;
            rest = NULL;
        } else if (strcmp(word, "anomaly") == 0) {
            char **a = realloc(meta->anomaly, (meta->n_anomaly + 1) * sizeof(*a));
            if (a == NULL) {
                rv = -ENOMEM;
            } else {
                meta->anomaly = a;
                a[meta->n_anomaly++] = rest;
                rest = NULL;
            }
        } else {
            snprintf(err, errlen, "line %d: unknown directive '#! %s'", line, word);
            rv = -EINVAL;
        }
        free(word);
        free(rest);
        if (rv != 0) {
            if (rv == -ENOMEM)
                snprintf(err, errlen, "line %d: out of memory", line);
            dl_txn_meta_free(meta);
            return rv;
        }
    }
    return 0;
}

void dl_txn_meta_free(dl_txn_meta_t *meta)
{
    free(meta->name);
    free(meta->explain);
    for (size_t i = 0; i < meta->n_anomaly; i++)
        free(meta->anomaly[i]);
    free(meta->anomaly);
    memset(meta, 0, sizeof(*meta));
}

static const char *find_value(const dl_txn_rows_t *rows, const char *key)
{
    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->rows[i].key, key) == 0)
            return rows->rows[i].value;
    return NULL;
}

/*
 * Evaluates one condition of words w[0..n): `final KEY OP VALUE`, `line N OP VALUE`,
 * `line N sum OP VALUE`, `line N count OP VALUE`. 1, 0 or -EINVAL.
 */
static int condition(char **w, size_t n, const dl_txn_script_t *script, const dl_txn_run_t *run,
                     char *err, size_t errlen)
{
    char number[32];
    const char *actual = NULL;
    size_t op = 2;
    if (n == 3 && strcmp(w[0], "line") == 0 &&
        (strcmp(w[2], "ok") == 0 || strcmp(w[2], "aborted") == 0 || strcmp(w[2], "error") == 0)) {
        int64_t line;
        size_t i = 0;
        if (dl_txn_value_integer(w[1], &line))
            while (i < script->n && script->steps[i].line != line)
                i++;
        if (!dl_txn_value_integer(w[1], &line) || i == script->n) {
            snprintf(err, errlen, "line %s is not a statement of the script", w[1]);
            return -EINVAL;
        }
        const dl_txn_step_result_t *res = &run->results[i];
        return res->done && strcmp(dl_txn_event_kind_name(res->kind), w[2]) == 0;
    }
    if (n >= 4 && strcmp(w[0], "final") == 0) {
        actual = find_value(&run->final, w[1]);
    } else if (n >= 4 && strcmp(w[0], "line") == 0) {
        int64_t line;
        if (!dl_txn_value_integer(w[1], &line)) {
            snprintf(err, errlen, "'line' wants a line number, not '%s'", w[1]);
            return -EINVAL;
        }
        size_t i = 0;
        while (i < script->n && script->steps[i].line != line)
            i++;
        if (i == script->n || (script->steps[i].kind != DL_TXN_STEP_GET &&
                               script->steps[i].kind != DL_TXN_STEP_SCAN)) {
            snprintf(err, errlen, "line %s is not a get or a scan", w[1]);
            return -EINVAL;
        }
        const dl_txn_step_result_t *res = &run->results[i];
        if (!res->done || res->kind != DL_TXN_EV_OK)
            return 0; /* the read never happened: nothing anomalous was seen */
        if (strcmp(w[2], "sum") == 0 || strcmp(w[2], "count") == 0) {
            int64_t total = 0;
            for (size_t r = 0; r < res->rows.n; r++) {
                int64_t v = 0;
                if (w[2][0] == 's' && !dl_txn_value_integer(res->rows.rows[r].value, &v))
                    return 0;
                total += w[2][0] == 's' ? v : 1;
            }
            snprintf(number, sizeof(number), "%lld", (long long)total);
            actual = number;
            op = 3;
        } else {
            const dl_txn_step_t *step = &script->steps[i];
            actual = step->kind == DL_TXN_STEP_GET ? find_value(&res->rows, step->keys[0])
                                                   : (res->rows.n ? res->rows.rows[0].value : NULL);
        }
    } else {
        snprintf(err, errlen, "a condition starts with 'final KEY' or 'line N'");
        return -EINVAL;
    }
    if (op + 2 != n || (strcmp(w[op], "==") != 0 && strcmp(w[op], "!=") != 0)) {
        snprintf(err, errlen,
                 "a condition is 'final KEY == VALUE' or 'line N [sum|count] == "
                 "VALUE' (or !=)");
        return -EINVAL;
    }
    const char *expected = w[op + 1];
    int equal = strcmp(expected, "none") == 0
                    ? actual == NULL
                    : actual != NULL && dl_txn_value_compare(actual, expected) == 0;
    return strcmp(w[op], "==") == 0 ? equal : !equal;
}

int dl_txn_meta_anomaly(const dl_txn_meta_t *meta, const dl_txn_script_t *script,
                        const dl_txn_run_t *run, char *err, size_t errlen)
{
    int any = 0;
    for (size_t a = 0; a < meta->n_anomaly; a++) {
        char *copy = strdup(meta->anomaly[a]);
        if (copy == NULL)
            return -ENOMEM;
        char *words[64];
        size_t n = 0;
        int all = 1, rv = 0;
        for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w != NULL;
             w = strtok_r(NULL, " \t", &save)) {
            if (strcmp(w, "and") == 0) {
                int c = condition(words, n, script, run, err, errlen);
                if (c < 0) {
                    rv = c;
                    break;
                }
                all = all && c;
                n = 0;
            } else if (n < sizeof(words) / sizeof(words[0])) {
                words[n++] = w;
            }
        }
        if (rv == 0) {
            int c = condition(words, n, script, run, err, errlen);
            if (c < 0)
                rv = c;
            else
                all = all && c;
        }
        free(copy);
        if (rv != 0)
            return rv;
        any = any || all;
    }
    return any;
}

const char *dl_txn_verdict(const dl_txn_meta_t *meta, const dl_txn_script_t *script,
                           const dl_txn_run_t *run, char *err, size_t errlen)
{
    int anomaly = dl_txn_meta_anomaly(meta, script, run, err, errlen);
    if (anomaly < 0)
        return NULL;
    if (anomaly)
        return "anomaly";
    if (run->aborted)
        return "prevented (aborted)";
    if (run->blocked)
        return "prevented (blocked)";
    return "prevented";
}
