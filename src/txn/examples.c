/* Lookup in the bundled scenario scripts. */
#include <string.h>

#include "txn/examples.h"

const dl_txn_example_t *dl_txn_example_find(const char *name)
{
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".txn") == 0)
        n -= 4;
    for (size_t i = 0; i < dl_txn_n_examples; i++)
        if (strlen(dl_txn_examples[i].name) == n && strncmp(dl_txn_examples[i].name, name, n) == 0)
            return &dl_txn_examples[i];
    return NULL;
}
