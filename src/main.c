/* ddialab: one binary, one subcommand per lab. */
#include <stdio.h>
#include <string.h>

#include "ddialab/events.h"
#include "ddialab/kv.h"
#include "ddialab/txn.h"

static void usage(FILE *out)
{
    fprintf(out,
            "ddialab %s: hands-on labs for Designing Data-Intensive Applications\n\n"
            "usage: ddialab <lab> [args]   (ddialab <lab> --help for each)\n\n"
            "labs:\n"
            "  kv        replicated key-value store node, local cluster and client\n"
            "  events    a Kafka-protocol event log broker (kcat, librdkafka, kafkajs)\n"
            "  txn       isolation levels: anomalies shown, prevented, and three serializables\n"
            "  version   print the version\n",
            DDIALAB_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *lab = argv[1];
    if (strcmp(lab, "kv") == 0)
        return dl_kv_main(argc - 1, argv + 1);
    if (strcmp(lab, "events") == 0)
        return dl_events_main(argc - 1, argv + 1);
    if (strcmp(lab, "txn") == 0)
        return dl_txn_main(argc - 1, argv + 1);
    if (strcmp(lab, "version") == 0 || strcmp(lab, "--version") == 0) {
        printf("ddialab %s\n", DDIALAB_VERSION);
        return 0;
    }
    if (strcmp(lab, "help") == 0 || strcmp(lab, "--help") == 0 || strcmp(lab, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ddialab: unknown lab '%s' (try: ddialab --help)\n", lab);
    return 2;
}
