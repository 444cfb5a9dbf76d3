/* Dispatch for "ddialab kv": a node, a local cluster, or a client verb. */
#include <stdio.h>
#include <string.h>

#include "ddialab/kv.h"
#include "kv/client.h"
#include "kv/cluster.h"
#include "kv/node.h"

int dl_kv_main(int argc, char **argv)
{
    if (argc >= 2) {
        const char *verb = argv[1];
        if (strcmp(verb, "cluster") == 0)
            return dl_kv_cluster_main(argc - 1, argv + 1);
        if (strcmp(verb, "get") == 0 || strcmp(verb, "put") == 0 || strcmp(verb, "del") == 0 ||
            strcmp(verb, "status") == 0)
            return dl_kv_client_main(argc - 1, argv + 1);
    }
    return dl_kv_node_main(argc, argv);
}
