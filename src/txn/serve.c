/* "ddialab txn serve": not built yet (issue 4 in progress). */
#include <stdio.h>

#include "txn/cli.h"

int dl_txn_serve_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab txn serve: not available yet\n");
    return 2;
}
