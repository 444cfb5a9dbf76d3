/*
 * "ddialab txn run FILE": replays a scenario script step by step at one level or at every level,
 * printing each step's result as it happens (text, or one JSON object per event), the committed
 * state at the end, and whether the scenario's anomaly showed.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/cli.h"
#include "txn/examples.h"
#include "txn/runner.h"
#include "txn/script.h"

static const char usage_text[] =
    "usage: ddialab txn run FILE [--isolation LEVEL | --all-levels] [--json] [--strict]\n\n"
    "Replays a scenario script step by step. FILE is a path or the name of a bundled scenario\n"
    "(ddialab txn run --list). A step that must wait prints 'blocked' and the script goes on;\n"
    "when it is released its result is printed with the step that released it.\n\n"
    "  --isolation LEVEL  read-uncommitted, read-committed (default), snapshot (repeatable-read),\n"
    "                     serial, 2pl, ssi (serializable): the level of every begin without one\n"
    "  --all-levels       run the script once at each level\n"
    "  --json             one JSON object per event\n"
    "  --strict           a line for a blocked transaction is a script error (default: it waits\n"
    "                     behind the blocked statement, as typed-ahead input to psql does)\n"
    "  --list             list the bundled scenarios\n";

/* The script file, or the bundled scenario of that name. malloc'd text in *text. */
static int load(const char *name, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(name, "rb");
    if (f == NULL) {
        const dl_txn_example_t *ex = dl_txn_example_find(name);
        if (ex == NULL) {
            snprintf(err, errlen, "cannot open %s: %s (and no bundled scenario has that name)",
                     name, strerror(errno));
            return -1;
        }
        *text = malloc(ex->len + 1);
        if (*text == NULL)
            return -1;
        memcpy(*text, ex->text, ex->len + 1);
        *len = ex->len;
        return 0;
    }
    size_t cap = DL_TXN_SCRIPT_MAX_BYTES + 1;
    *text = malloc(cap);
    if (*text == NULL) {
        fclose(f);
        return -1;
    }
    *len = fread(*text, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || *len == cap) {
        snprintf(err, errlen, "%s: %s", name,
                 bad ? "read error" : "larger than the 1 MiB a script may be");
        free(*text);
        return -1;
    }
    (*text)[*len] = '\0';
    return 0;
}

typedef struct output_s {
    int json;
} output_t;

static void rows_text(char *buf, size_t size, const dl_txn_rows_t *rows)
{
    size_t at = 0;
    buf[0] = '\0';
    if (rows->n == 0) {
        snprintf(buf, size, "(nothing)");
        return;
    }
    for (size_t i = 0; i < rows->n && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s=%s", i ? " " : "", rows->rows[i].key,
                               rows->rows[i].value);
}

/* What an ended step returned, in words. */
static void result_text(char *buf, size_t size, const dl_txn_event_t *ev, dl_txn_event_kind_t kind)
{
    if (kind == DL_TXN_EV_ABORTED) {
        snprintf(buf, size, "ABORTED: %s", ev->message);
        return;
    }
    if (kind == DL_TXN_EV_ERROR) {
        snprintf(buf, size, "error: %s", ev->message);
        return;
    }
    switch (ev->step->kind) {
    case DL_TXN_STEP_BEGIN:
        snprintf(buf, size, "began at %s", ev->message);
        break;
    case DL_TXN_STEP_GET:
    case DL_TXN_STEP_SCAN:
        rows_text(buf, size, ev->rows);
        break;
    case DL_TXN_STEP_COMMIT:
        snprintf(buf, size, "committed");
        break;
    case DL_TXN_STEP_ABORT:
        snprintf(buf, size, "rolled back");
        break;
    default:
        if (ev->has_count)
            snprintf(buf, size, "ok, %zu row%s", ev->count, ev->count == 1 ? "" : "s");
        else
            snprintf(buf, size, "ok");
    }
}

static void print_text(const dl_txn_event_t *ev)
{
    char result[1024];
    switch (ev->kind) {
    case DL_TXN_EV_BLOCKED:
        snprintf(result, sizeof(result), "blocked: waits for %s", ev->waiting_for);
        break;
    case DL_TXN_EV_QUEUED:
        snprintf(result, sizeof(result), "queued: %s is blocked", ev->txn);
        break;
    case DL_TXN_EV_NOTE:
        printf("     -  %s\n", ev->message);
        return;
    case DL_TXN_EV_RESUMED: {
        char inner[900];
        result_text(inner, sizeof(inner), ev, ev->result);
        if (ev->released_by != NULL)
            snprintf(result, sizeof(result), "resumed after line %d (%s): %s",
                     ev->released_by->line, ev->released_by->text, inner);
        else
            snprintf(result, sizeof(result), "resumed: %s", inner);
        break;
    }
    default:
        result_text(result, sizeof(result), ev, ev->kind);
    }
    printf("%6d  %-32s %s\n", ev->step->line, ev->step->text, result);
}

static json_t *rows_json(const dl_txn_rows_t *rows)
{
    json_t *a = json_array();
    for (size_t i = 0; rows != NULL && i < rows->n; i++)
        json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "key", rows->rows[i].key, "value",
                                           rows->rows[i].value, "writer",
                                           (json_int_t)rows->rows[i].writer));
    return a;
}

static void print_json(const dl_txn_event_t *ev)
{
    json_t *o = json_object();
    json_object_set_new(o, "level", json_string(dl_txn_level_name(ev->level)));
    if (ev->step != NULL) {
        json_object_set_new(o, "step", json_integer(ev->step->line));
        json_object_set_new(o, "statement", json_string(ev->step->text));
        json_object_set_new(o, "op", json_string(dl_txn_step_kind_name(ev->step->kind)));
    }
    if (ev->txn != NULL)
        json_object_set_new(o, "transaction", json_string(ev->txn));
    if (ev->txn_id != 0)
        json_object_set_new(o, "txn_id", json_integer((json_int_t)ev->txn_id));
    json_object_set_new(o, "status", json_string(dl_txn_event_kind_name(ev->kind)));
    dl_txn_event_kind_t end = ev->kind == DL_TXN_EV_RESUMED ? ev->result : ev->kind;
    if (ev->kind == DL_TXN_EV_RESUMED) {
        json_object_set_new(o, "result", json_string(dl_txn_event_kind_name(ev->result)));
        if (ev->released_by != NULL)
            json_object_set_new(o, "released_by",
                                json_pack("{s:i, s:s}", "step", ev->released_by->line, "statement",
                                          ev->released_by->text));
    }
    if (ev->waiting_for != NULL)
        json_object_set_new(o, "waiting_for", json_string(ev->waiting_for));
    if (end == DL_TXN_EV_OK && ev->rows != NULL) {
        json_object_set_new(o, "rows", rows_json(ev->rows));
        if (ev->step->kind == DL_TXN_STEP_GET && ev->step->n_keys == 1)
            json_object_set_new(o, "value",
                                ev->rows->n ? json_string(ev->rows->rows[0].value) : json_null());
    }
    if (end == DL_TXN_EV_OK && ev->has_count)
        json_object_set_new(o, "count", json_integer((json_int_t)ev->count));
    if (ev->message != NULL &&
        (end == DL_TXN_EV_ABORTED || end == DL_TXN_EV_ERROR || ev->kind == DL_TXN_EV_NOTE))
        json_object_set_new(
            o, end == DL_TXN_EV_ABORTED || end == DL_TXN_EV_ERROR ? "error" : "message",
            json_string(ev->message));
    char *s = json_dumps(o, JSON_COMPACT);
    if (s != NULL)
        puts(s);
    free(s);
    json_decref(o);
}

static void on_event(const dl_txn_event_t *ev, void *ctx)
{
    const output_t *out = ctx;
    if (out->json)
        print_json(ev);
    else
        print_text(ev);
}

/* Runs the script at one level and prints the end: state and verdict. 0, or 1 on a script
 * error. */
static int run_level(const dl_txn_script_t *script, const dl_txn_meta_t *meta, dl_txn_level_t level,
                     int strict, output_t *out)
{
    if (!out->json) {
        printf("== %s%s%s\n", dl_txn_level_name(level), meta->name ? ": " : "",
               meta->name ? meta->name : "");
        printf("%6s  %-32s %s\n", "line", "statement", "result");
    }
    dl_txn_run_t run;
    int rv = dl_txn_run_script(script, level, strict, on_event, out, &run);
    if (rv == -ENOMEM) {
        fprintf(stderr, "ddialab txn run: out of memory\n");
        dl_txn_run_free(&run);
        return 1;
    }
    char err[256] = "";
    const char *verdict =
        rv == 0 && meta->n_anomaly ? dl_txn_verdict(meta, script, &run, err, sizeof(err)) : NULL;
    if (out->json) {
        json_t *state = json_object();
        for (size_t i = 0; i < run.final.n; i++)
            json_object_set_new(state, run.final.rows[i].key, json_string(run.final.rows[i].value));
        json_t *o = json_pack("{s:s, s:s, s:o}", "event", "final", "level",
                              dl_txn_level_name(level), "state", state);
        if (verdict != NULL)
            json_object_set_new(o, "verdict", json_string(verdict));
        if (rv != 0)
            json_object_set_new(o, "error", json_string(run.error));
        char *s = json_dumps(o, JSON_COMPACT);
        if (s != NULL)
            puts(s);
        free(s);
        json_decref(o);
    } else if (rv == 0) {
        char state[2048];
        rows_text(state, sizeof(state), &run.final);
        printf("final state: %s\n", state);
        if (verdict != NULL)
            printf("verdict: %s\n", verdict);
        printf("\n");
    }
    if (rv != 0)
        fprintf(stderr, "ddialab txn run: %s\n", run.error);
    if (err[0] != '\0')
        fprintf(stderr, "ddialab txn run: anomaly condition: %s\n", err);
    dl_txn_run_free(&run);
    return rv != 0 || err[0] != '\0';
}

int dl_txn_run_main(int argc, char **argv)
{
    const char *file = NULL, *isolation = NULL;
    int all = 0, strict = 0, list = 0;
    output_t out = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            out.json = 1;
        } else if (strcmp(a, "--all-levels") == 0) {
            all = 1;
        } else if (strcmp(a, "--strict") == 0) {
            strict = 1;
        } else if (strcmp(a, "--list") == 0) {
            list = 1;
        } else if (strcmp(a, "--isolation") == 0 && i + 1 < argc) {
            isolation = argv[++i];
        } else if (strncmp(a, "--isolation=", 12) == 0) {
            isolation = a + 12;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "ddialab txn run: unknown or incomplete flag '%s' (try --help)\n", a);
            return 2;
        } else if (file == NULL) {
            file = a;
        } else {
            fprintf(stderr, "ddialab txn run: one script at a time ('%s' is extra)\n", a);
            return 2;
        }
    }
    if (list) {
        for (size_t i = 0; i < dl_txn_n_examples; i++)
            printf("%s\n", dl_txn_examples[i].name);
        return 0;
    }
    if (file == NULL) {
        fprintf(stderr, "ddialab txn run: which script? (try --help or --list)\n");
        return 2;
    }
    dl_txn_level_t level = DL_TXN_READ_COMMITTED;
    if (isolation != NULL && all) {
        fprintf(stderr, "ddialab txn run: --isolation and --all-levels exclude each other\n");
        return 2;
    }
    if (isolation != NULL && dl_txn_level_parse(isolation, &level) != 0) {
        fprintf(stderr,
                "ddialab txn run: unknown isolation level '%s' (read-uncommitted, "
                "read-committed, snapshot, repeatable-read, serial, 2pl, ssi, serializable)\n",
                isolation);
        return 2;
    }
    char err[512];
    char *text;
    size_t len;
    if (load(file, &text, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab txn run: %s\n", err);
        return 2;
    }
    dl_txn_script_t script;
    dl_txn_meta_t meta;
    if (dl_txn_script_parse(text, len, &script, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab txn run: %s: %s\n", file, err);
        free(text);
        return 2;
    }
    if (dl_txn_meta_parse(text, len, &meta, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab txn run: %s: %s\n", file, err);
        dl_txn_script_free(&script);
        free(text);
        return 2;
    }
    free(text);
    int failed = 0;
    for (int l = all ? 0 : (int)level; l <= (all ? DL_TXN_N_LEVELS - 1 : (int)level); l++)
        failed |= run_level(&script, &meta, (dl_txn_level_t)l, strict, &out);
    dl_txn_meta_free(&meta);
    dl_txn_script_free(&script);
    return failed ? 1 : 0;
}
