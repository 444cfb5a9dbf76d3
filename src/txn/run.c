/* "ddialab txn run": not built yet (issue 4 in progress). */
#include <stdio.h>

#include "txn/cli.h"

int dl_txn_run_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab txn run: not available yet\n");
    return 2;
}
