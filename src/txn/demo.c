/* "ddialab txn demo": not built yet (issue 4 in progress). */
#include <stdio.h>

#include "txn/cli.h"

int dl_txn_demo_main(int argc, char **argv)
{
    fprintf(stderr, "ddialab txn demo: not available yet\n");
    return 2;
}
