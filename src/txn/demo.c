/*
 * "ddialab txn demo": every bundled scenario at every level, and the matrix anomaly x level that
 * DDIA's chapter 7 is about, produced by running them: `anomaly`, `prevented (blocked)`,
 * `prevented (aborted)` or `prevented` (the level read around it), with a line per anomaly.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/cli.h"
#include "txn/examples.h"
#include "txn/runner.h"
#include "txn/script.h"

static const char usage_text[] =
    "usage: ddialab txn demo [--json]\n\n"
    "Runs each bundled scenario (ddialab txn run --list) at every isolation level and prints\n"
    "which anomalies each level allows and how the others are prevented. `ddialab txn run NAME\n"
    "--all-levels` shows one scenario step by step.\n";

/* One scenario's verdicts, one per level; 0 or 1 on a broken scenario (message printed). */
static int run_example(const dl_txn_example_t *ex, dl_txn_meta_t *meta,
                       const char *verdicts[DL_TXN_N_LEVELS])
{
    char err[256];
    dl_txn_script_t script;
    if (dl_txn_script_parse(ex->text, ex->len, &script, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab txn demo: %s: %s\n", ex->name, err);
        return 1;
    }
    if (dl_txn_meta_parse(ex->text, ex->len, meta, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab txn demo: %s: %s\n", ex->name, err);
        dl_txn_script_free(&script);
        return 1;
    }
    int failed = 0;
    for (int l = 0; l < DL_TXN_N_LEVELS && !failed; l++) {
        dl_txn_run_t run;
        if (dl_txn_run_script(&script, (dl_txn_level_t)l, 0, NULL, NULL, &run) != 0) {
            fprintf(stderr, "ddialab txn demo: %s at %s: %s\n", ex->name,
                    dl_txn_level_name((dl_txn_level_t)l), run.error[0] ? run.error : "failed");
            failed = 1;
        } else if ((verdicts[l] = dl_txn_verdict(meta, &script, &run, err, sizeof(err))) == NULL) {
            fprintf(stderr, "ddialab txn demo: %s: %s\n", ex->name, err);
            failed = 1;
        }
        dl_txn_run_free(&run);
    }
    dl_txn_script_free(&script);
    return failed;
}

int dl_txn_demo_main(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "ddialab txn demo: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    json_t *rows = json_array();
    int failed = 0;
    if (!json) {
        printf("%-32s", "anomaly");
        for (int l = 0; l < DL_TXN_N_LEVELS; l++)
            printf("  %-19s", dl_txn_level_name((dl_txn_level_t)l));
        printf("\n");
    }
    for (size_t i = 0; i < dl_txn_n_examples; i++) {
        const dl_txn_example_t *ex = &dl_txn_examples[i];
        dl_txn_meta_t meta;
        const char *verdicts[DL_TXN_N_LEVELS] = {0};
        if (run_example(ex, &meta, verdicts) != 0) {
            failed = 1;
            continue;
        }
        const char *name = meta.name ? meta.name : ex->name;
        if (json) {
            json_t *levels = json_object();
            for (int l = 0; l < DL_TXN_N_LEVELS; l++)
                json_object_set_new(levels, dl_txn_level_name((dl_txn_level_t)l),
                                    json_string(verdicts[l]));
            json_array_append_new(
                rows, json_pack("{s:s, s:s, s:s, s:o}", "scenario", ex->name, "anomaly", name,
                                "explain", meta.explain ? meta.explain : "", "levels", levels));
        } else {
            printf("%-32s", name);
            for (int l = 0; l < DL_TXN_N_LEVELS; l++)
                printf("  %-19s", verdicts[l]);
            printf("\n%-32s  %s\n", "", meta.explain ? meta.explain : "");
        }
        dl_txn_meta_free(&meta);
    }
    if (json) {
        char *s = json_dumps(rows, JSON_INDENT(2));
        if (s != NULL)
            puts(s);
        free(s);
    } else {
        printf("\nprevented (blocked): a statement waited for a lock or for the transaction "
               "running alone;\nprevented (aborted): a transaction was rolled back "
               "(serialization failure, deadlock);\nprevented: the level read a committed "
               "version instead. Step by step: ddialab txn run NAME --all-levels\n");
    }
    json_decref(rows);
    return failed;
}
