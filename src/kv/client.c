/* Placeholder until the kv client lands. */
#include <stdio.h>

#include "kv/client.h"

int dl_kv_client_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab kv %s: the client is not built yet\n", argc > 0 ? argv[0] : "");
    return 1;
}
