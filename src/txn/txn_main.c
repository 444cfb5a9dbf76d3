/* Dispatch for "ddialab txn": one verb each. */
#include <stdio.h>
#include <string.h>

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

typedef struct {
    const char *name;
    int (*main)(int argc, char **argv);
} verb_t;

static const verb_t verbs[] = {
    {"run", dl_txn_run_main},
    {"demo", dl_txn_demo_main},
    {"stress", dl_txn_stress_main},
    {"serve", dl_txn_serve_main},
};

int dl_txn_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(argv[1], verbs[i].name) == 0)
            return verbs[i].main(argc - 1, argv + 1);
    fprintf(stderr, "ddialab txn: unknown verb '%s' (try: ddialab txn --help)\n", argv[1]);
    return 2;
}
