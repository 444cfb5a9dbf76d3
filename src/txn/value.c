/* Values and predicates of the txn lab: integer-aware comparison. */
#include "txn/value.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int dl_txn_value_integer(const char *text, int64_t *out)
{
    const char *p = text;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return 0;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return 0;
    *out = (int64_t)v;
    return 1;
}

int dl_txn_value_compare(const char *a, const char *b)
{
    int64_t x, y;
    int ia = dl_txn_value_integer(a, &x), ib = dl_txn_value_integer(b, &y);
    if (ia && ib)
        return x < y ? -1 : x > y;
    if (ia != ib)
        return ia ? -1 : 1;
    return strcmp(a, b);
}

int dl_txn_pred_matches(const dl_txn_pred_t *pred, const char *key, const char *value)
{
    if (pred == NULL || pred->all)
        return 1;
    const char *field = pred->field == DL_TXN_FIELD_KEY ? key : value;
    int c;
    if (pred->mod < 0)
        return 0; /* the parser refuses these; never a division to trust */
    if (pred->mod > 0) {
        int64_t v, operand;
        if (!dl_txn_value_integer(field, &v) || !dl_txn_value_integer(pred->operand, &operand))
            return 0;
        int64_t r = v % pred->mod;
        c = r < operand ? -1 : r > operand;
    } else {
        c = dl_txn_value_compare(field, pred->operand);
    }
    switch (pred->cmp) {
    case DL_TXN_CMP_EQ:
        return c == 0;
    case DL_TXN_CMP_NE:
        return c != 0;
    case DL_TXN_CMP_LT:
        return c < 0;
    case DL_TXN_CMP_LE:
        return c <= 0;
    case DL_TXN_CMP_GT:
        return c > 0;
    case DL_TXN_CMP_GE:
        return c >= 0;
    }
    return 0;
}
