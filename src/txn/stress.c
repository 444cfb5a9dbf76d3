/* "ddialab txn stress": not built yet (issue 4 in progress). */
#include <stdio.h>

#include "txn/cli.h"

int dl_txn_stress_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab txn stress: not available yet\n");
    return 2;
}
