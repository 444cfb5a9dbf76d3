/*
 * Values and predicates of the txn lab. Keys and values are strings; two of them compare as
 * integers when both are integers (so 9 < 10), else byte by byte, and an integer sorts before
 * any other string.
 */
#ifndef DDIALAB_TXN_VALUE_H
#define DDIALAB_TXN_VALUE_H

#include <stdint.h>

#include "txn/engine.h"

/* 1 and *out when text is a whole decimal integer (optional sign, no spaces), else 0. */
int dl_txn_value_integer(const char *text, int64_t *out);
/* <0, 0 or >0 as a sorts before, equal to or after b. */
int dl_txn_value_compare(const char *a, const char *b);
/* 1 when the row (key, value) satisfies pred. `value % D` of a value that is not an integer
 * never matches. */
int dl_txn_pred_matches(const dl_txn_pred_t *pred, const char *key, const char *value);

#endif
