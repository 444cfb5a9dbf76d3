/* Placeholder until the kv node lands. */
#include <stdio.h>

#include "kv/node.h"

int dl_kv_node_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab kv %s: the node is not built yet\n", argc > 0 ? argv[0] : "");
    return 1;
}
