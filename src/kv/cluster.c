/* Placeholder until the kv cluster launcher lands. */
#include <stdio.h>

#include "kv/cluster.h"

int dl_kv_cluster_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab kv %s: the cluster launcher is not built yet\n", argc > 0 ? argv[0] : "");
    return 1;
}
