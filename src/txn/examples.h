/*
 * The bundled scenario scripts (examples/txn/NAME.txn), compiled into the binary by
 * scripts/embed-examples.cmake, sorted by name.
 */
#ifndef DDIALAB_TXN_EXAMPLES_H
#define DDIALAB_TXN_EXAMPLES_H

#include <stddef.h>

typedef struct dl_txn_example_s {
    const char *name; /* the file name without .txn, e.g. "lost-update" */
    const char *text; /* the script, NUL-terminated */
    size_t len;
} dl_txn_example_t;

extern const dl_txn_example_t dl_txn_examples[];
extern const size_t dl_txn_n_examples;

/* The bundled example called name (with or without ".txn"), or NULL. */
const dl_txn_example_t *dl_txn_example_find(const char *name);

#endif
