/*
 * Histories: recording appends operations to a per-transaction record (one text arena, offsets
 * into it), and the anomalies' names. The checker is in history_model.c and history_cycles.c.
 * See history.h for the definitions.
 */
#include "txn/history.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "txn/history_internal.h"

/* ---- Recording --------------------------------------------------------------------------- */

static uint32_t add_text(dl_txn_hist_txn_t *t, const char *s)
{
    if (s == NULL)
        return NONE;
    size_t n = strlen(s) + 1;
    if (t->n_text + n > t->cap_text) {
        size_t cap = t->cap_text ? t->cap_text : 256;
        while (cap < t->n_text + n)
            cap *= 2;
        char *text = cap < NONE ? realloc(t->text, cap) : NULL;
        if (text == NULL) {
            t->failed = 1;
            return NONE;
        }
        t->text = text;
        t->cap_text = cap;
    }
    memcpy(t->text + t->n_text, s, n);
    t->n_text += n;
    return (uint32_t)(t->n_text - n);
}

/* A new zeroed operation of kind at the end of t, NULL (t failed) when out of memory. */
static op_t *add_op(dl_txn_hist_txn_t *t, int kind)
{
    if (t->n_ops == t->cap_ops) {
        size_t cap = t->cap_ops ? t->cap_ops * 2 : 16;
        op_t *ops = realloc(t->ops, cap * sizeof(*ops));
        if (ops == NULL) {
            t->failed = 1;
            return NULL;
        }
        t->ops = ops;
        t->cap_ops = cap;
    }
    op_t *op = &t->ops[t->n_ops++];
    memset(op, 0, sizeof(*op));
    op->kind = (uint8_t)kind;
    op->key = op->value = NONE;
    return op;
}

/* Adds an operation on key with value (NULL: absent) and writer; 0 or -ENOMEM. */
static int add_key_op(dl_txn_hist_txn_t *t, int kind, const char *key, const char *value,
                      uint64_t writer)
{
    op_t *op = add_op(t, kind);
    if (op == NULL)
        return -ENOMEM;
    op->u.writer = writer;
    if ((op->key = add_text(t, key)) == NONE ||
        (value != NULL && (op->value = add_text(t, value)) == NONE))
        return -ENOMEM;
    return 0;
}

dl_txn_hist_t *dl_txn_hist_new(void)
{
    dl_txn_hist_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->initial.hist = h;
    h->initial.committed = 1;
    return h;
}

static void free_record(dl_txn_hist_txn_t *t)
{
    free(t->ops);
    free(t->text);
}

void dl_txn_hist_free(dl_txn_hist_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_txns; i++) {
        free_record(h->txns[i]);
        free(h->txns[i]);
    }
    free(h->txns);
    for (size_t i = 0; i < h->n_orders; i++) {
        free(h->orders[i].key);
        free(h->orders[i].writers);
    }
    free(h->orders);
    free_record(&h->initial);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int dl_txn_hist_load(dl_txn_hist_t *h, const char *key, const char *value)
{
    int rv = add_key_op(&h->initial, OP_WRITE, key, value, 0);
    if (rv != 0)
        h->incomplete = 1;
    return rv;
}

int dl_txn_hist_order(dl_txn_hist_t *h, const char *key, const uint64_t *writers, size_t n)
{
    order_t *orders = realloc(h->orders, (h->n_orders + 1) * sizeof(*orders));
    if (orders == NULL)
        return -ENOMEM;
    h->orders = orders;
    order_t *o = &orders[h->n_orders];
    o->key = strdup(key);
    o->writers = malloc((n ? n : 1) * sizeof(*writers));
    if (o->key == NULL || o->writers == NULL) {
        free(o->key);
        free(o->writers);
        return -ENOMEM;
    }
    if (n > 0)
        memcpy(o->writers, writers, n * sizeof(*writers));
    o->n = n;
    h->n_orders++;
    return 0;
}

dl_txn_hist_txn_t *dl_txn_hist_begin(dl_txn_hist_t *h, uint64_t id, dl_txn_level_t level)
{
    dl_txn_hist_txn_t *t = calloc(1, sizeof(*t));
    pthread_mutex_lock(&h->mu);
    if (t == NULL) {
        h->incomplete = 1;
    } else {
        t->hist = h;
        t->id = id;
        t->level = level;
        t->floor = h->watermark;
    }
    pthread_mutex_unlock(&h->mu);
    return t;
}

int dl_txn_hist_read(dl_txn_hist_txn_t *t, const char *key, const char *value, uint64_t writer)
{
    return add_key_op(t, OP_READ, key, value, value != NULL ? writer : 0);
}

int dl_txn_hist_write(dl_txn_hist_txn_t *t, const char *key, const char *value)
{
    return add_key_op(t, OP_WRITE, key, value, t->id);
}

int dl_txn_hist_scan(dl_txn_hist_txn_t *t, const dl_txn_pred_t *pred, const dl_txn_rows_t *rows)
{
    op_t *op = add_op(t, OP_SCAN);
    if (op == NULL)
        return -ENOMEM;
    op->all = (uint8_t)(pred->all != 0);
    op->field = (uint8_t)pred->field;
    op->cmp = (uint8_t)pred->cmp;
    op->u.mod = pred->mod;
    op->value = (uint32_t)rows->n;
    if (!pred->all && (t->ops[t->n_ops - 1].key = add_text(t, pred->operand)) == NONE)
        return -ENOMEM;
    for (size_t i = 0; i < rows->n; i++) {
        int rv =
            add_key_op(t, OP_ROW, rows->rows[i].key, rows->rows[i].value, rows->rows[i].writer);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Hands t to its history, ended. */
static int end_record(dl_txn_hist_txn_t *t, int committed, uint64_t commit_ts)
{
    dl_txn_hist_t *h = t->hist;
    int rv = t->failed ? -ENOMEM : 0;
    /* Long runs keep hundreds of thousands of records: drop the room left for growth. */
    op_t *ops = t->n_ops ? realloc(t->ops, t->n_ops * sizeof(*ops)) : NULL;
    char *text = t->n_text ? realloc(t->text, t->n_text) : NULL;
    if (ops != NULL)
        t->ops = ops;
    if (text != NULL)
        t->text = text;
    t->committed = committed;
    t->commit_ts = commit_ts;
    pthread_mutex_lock(&h->mu);
    if (committed && commit_ts > h->watermark)
        h->watermark = commit_ts;
    if (h->n_txns == h->cap_txns) {
        size_t cap = h->cap_txns ? h->cap_txns * 2 : 1024;
        dl_txn_hist_txn_t **txns = realloc(h->txns, cap * sizeof(*txns));
        if (txns != NULL) {
            h->txns = txns;
            h->cap_txns = cap;
        }
    }
    if (rv == 0 && h->n_txns < h->cap_txns) {
        h->txns[h->n_txns++] = t;
    } else {
        h->incomplete = 1;
        free_record(t);
        free(t);
        rv = -ENOMEM;
    }
    pthread_mutex_unlock(&h->mu);
    return rv;
}

int dl_txn_hist_commit(dl_txn_hist_txn_t *t, uint64_t commit_ts)
{
    return end_record(t, 1, commit_ts);
}

int dl_txn_hist_abort(dl_txn_hist_txn_t *t)
{
    return end_record(t, 0, 0);
}

size_t dl_txn_hist_size(dl_txn_hist_t *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n_txns;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---- Names ------------------------------------------------------------------------------- */

static const char *const anomaly_names[DL_TXN_N_ANOMALIES] = {
    "G0", "G1a", "G1b", "G1c", "G-single", "G2-item", "G2", "impossible-read"};
static const char *const anomaly_meanings[DL_TXN_N_ANOMALIES] = {
    "dirty write: a cycle of write-write dependencies",
    "aborted read: a committed transaction read data of one that aborted",
    "intermediate read: a committed transaction read a version its writer then overwrote",
    "circular information flow: a cycle of write and read dependencies",
    "a cycle with one anti-dependency (read skew, lost update)",
    "a cycle with item anti-dependencies (write skew)",
    "a cycle with a predicate anti-dependency (phantom)",
    "a read no version order explains (an engine bug)"};

const char *dl_txn_anomaly_name(dl_txn_anomaly_t a)
{
    return a < DL_TXN_N_ANOMALIES ? anomaly_names[a] : "unknown";
}

const char *dl_txn_anomaly_meaning(dl_txn_anomaly_t a)
{
    return a < DL_TXN_N_ANOMALIES ? anomaly_meanings[a] : "unknown";
}
