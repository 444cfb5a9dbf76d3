/* Dispatch for "ddialab txn": one verb each. */
#include <stdio.h>

#include "ddialab/flags.h"
#include "ddialab/txn.h"
#include "txn/cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: ddialab txn <verb> [args]   (ddialab txn <verb> --help for each)\n\n"
                 "verbs:\n"
                 "  run FILE    replay a scenario script step by step at one or every level\n"
                 "  demo        run the bundled scenarios at every level: anomaly x level\n"
                 "  stress      real threads on a workload; throughput, aborts, anomalies\n"
                 "  serve       sessions over HTTP (127.0.0.1:7070) to replay scenarios by hand\n\n"
                 "levels: read-uncommitted, read-committed, snapshot (repeatable-read), serial,\n"
                 "        2pl, ssi (serializable)\n");
}

static const dl_verb_t verbs[] = {
    {"run", dl_txn_run_main},
    {"demo", dl_txn_demo_main},
    {"stress", dl_txn_stress_main},
    {"serve", dl_txn_serve_main},
};

int dl_txn_main(int argc, char **argv)
{
    return dl_flags_run_verb("txn", verbs, sizeof(verbs) / sizeof(verbs[0]), usage, argc, argv);
}
