/*
 * Histories and the Adya checker. Recording appends operations to a per-transaction record (one
 * text arena, offsets into it); checking interns the keys, orders each key's versions by commit
 * timestamp, turns every read into edges of the serialization graph, and looks for cycles inside
 * strongly connected components. See history.h for the definitions.
 */
#include "txn/history.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/value.h"

#define NONE UINT32_MAX

/* ---- Recording --------------------------------------------------------------------------- */

enum { OP_READ = 0, OP_WRITE, OP_SCAN, OP_ROW };

/* One operation. Strings are offsets into the record's text; NONE is "absent" (a read that found
 * nothing, a deletion, a predicate without operand). OP_SCAN is followed by its OP_ROW rows. */
typedef struct op_s {
    uint8_t kind;
    uint8_t all, field, cmp; /* OP_SCAN: the predicate */
    uint32_t key;            /* OP_SCAN: the operand */
    uint32_t value;          /* OP_SCAN: how many rows follow */
    union {
        uint64_t writer; /* OP_READ, OP_ROW */
        int64_t mod;     /* OP_SCAN */
    } u;
} op_t;

struct dl_txn_hist_txn_s {
    dl_txn_hist_t *hist;
    uint64_t id, floor, commit_ts; /* floor: commits known to precede the first statement */
    dl_txn_level_t level;
    int committed, failed;
    op_t *ops;
    size_t n_ops, cap_ops;
    char *text;
    size_t n_text, cap_text;
};

typedef struct order_s {
    char *key;
    uint64_t *writers;
    size_t n;
} order_t;

struct dl_txn_hist_s {
    pthread_mutex_t mu;
    order_t *orders; /* declared version orders */
    size_t n_orders;
    dl_txn_hist_txn_t initial; /* setup data, as the writes of a committed transaction 0 */
    dl_txn_hist_txn_t **txns;  /* ended transactions, in the order they ended */
    size_t n_txns, cap_txns;
    uint64_t watermark; /* the highest commit timestamp recorded */
    int incomplete;
};

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

/* ---- The checker's model ----------------------------------------------------------------- */

enum { E_WW = 0, E_WR, E_RW, E_PWR, E_PRW }; /* edge kinds; P: predicate */
#define BIT(kind) (1u << (kind))
#define DEPS      (BIT(E_WW) | BIT(E_WR) | BIT(E_PWR))
#define ALL_EDGES (DEPS | BIT(E_RW) | BIT(E_PRW))

typedef struct version_s {
    uint32_t txn; /* index into the checker's transactions; 0: the initial version */
    uint32_t op;  /* the installing write; NONE: unborn (the key did not exist) */
    uint64_t ts;
} version_t;

typedef struct key_s {
    const char *name;
    version_t *v; /* v[0] initial, then in commit order (or as declared) */
    uint32_t n, cap;
    int declared; /* the version order was declared: not by timestamp */
} keyrec_t;

typedef struct installed_s {
    uint32_t key, op, version; /* a committed transaction's last write of key */
} installed_t;

typedef struct txn_s {
    dl_txn_hist_txn_t *rec;
    uint32_t *op_key; /* per operation: key index; OP_SCAN: predicate index */
    installed_t *inst;
    uint32_t n_inst;
} txn_t;

/* Per predicate and key that ever matches it: match flag and run bounds of every version. */
typedef struct pred_key_s {
    uint32_t key;
    uint8_t *match;
    uint32_t *run_start, *run_end;
} pred_key_t;

typedef struct pred_s {
    dl_txn_pred_t pred; /* operand points into a record's text */
    char *text;         /* "value == 3" */
    pred_key_t *keys;   /* by key index */
    uint32_t n_keys, cap_keys;
    int built;
} pred_t;

typedef struct edge_s {
    uint32_t from, to, key, pred; /* pred: NONE for item edges */
    uint8_t kind;
} edge_t;

typedef struct checker_s {
    dl_txn_hist_t *h;
    size_t max_examples;
    uint64_t budget;
    txn_t *t;
    uint32_t n_t;
    uint32_t *id_slots; /* open addressing: transaction id -> index + 1 */
    size_t id_cap;
    keyrec_t *keys;
    uint32_t n_keys, cap_keys, *key_slots; /* key name -> index + 1 */
    size_t key_cap;
    pred_t *preds;
    uint32_t n_preds, cap_preds, all_pred;
    edge_t *edges;
    size_t n_edges, cap_edges;
    uint32_t *adj;     /* adjacency: edges[adj[v] .. adj[v + 1]) leave v */
    uint32_t *written; /* per key: index of the transaction that wrote it before (scratch) */
    uint32_t *seen, seen_stamp;
    uint32_t *stamp, gen, *parent, *queue; /* breadth-first search */
    uint64_t *cycles;                      /* hashes of the cycles counted */
    size_t n_cycles, cap_cycles;
    dl_txn_hist_example_t *ex[DL_TXN_N_ANOMALIES];
    size_t n_ex[DL_TXN_N_ANOMALIES];
    dl_txn_hist_report_t *r;
} checker_t;

static uint64_t hash_bytes(const char *s)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ull;
    return x;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static const char *text_at(const txn_t *t, uint32_t offset)
{
    return offset == NONE ? NULL : t->rec->text + offset;
}

/* The value of version v (NULL: unborn or a tombstone). */
static const char *version_value(const checker_t *c, const version_t *v)
{
    return v->op == NONE ? NULL : text_at(&c->t[v->txn], c->t[v->txn].rec->ops[v->op].value);
}

static uint64_t txn_id(const checker_t *c, uint32_t i)
{
    return c->t[i].rec->id;
}

static uint32_t find_txn(const checker_t *c, uint64_t id)
{
    for (size_t i = mix(id) & (c->id_cap - 1);; i = (i + 1) & (c->id_cap - 1)) {
        uint32_t slot = c->id_slots[i];
        if (slot == 0)
            return NONE;
        if (txn_id(c, slot - 1) == id)
            return slot - 1;
    }
}

/* The key's index; NONE when it is not there. */
static uint32_t find_key(const checker_t *c, const char *name)
{
    if (c->key_cap == 0)
        return NONE;
    for (size_t i = hash_bytes(name) & (c->key_cap - 1); c->key_slots[i] != 0;
         i = (i + 1) & (c->key_cap - 1))
        if (strcmp(c->keys[c->key_slots[i] - 1].name, name) == 0)
            return c->key_slots[i] - 1;
    return NONE;
}

/* The key's index, added if new; NONE when out of memory. */
static uint32_t intern_key(checker_t *c, const char *name)
{
    if (2 * (size_t)(c->n_keys + 1) > c->key_cap) {
        size_t cap = c->key_cap ? c->key_cap * 2 : 1024;
        uint32_t *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL)
            return NONE;
        for (uint32_t k = 0; k < c->n_keys; k++) {
            size_t i = hash_bytes(c->keys[k].name) & (cap - 1);
            while (slots[i] != 0)
                i = (i + 1) & (cap - 1);
            slots[i] = k + 1;
        }
        free(c->key_slots);
        c->key_slots = slots;
        c->key_cap = cap;
    }
    size_t i = hash_bytes(name) & (c->key_cap - 1);
    for (; c->key_slots[i] != 0; i = (i + 1) & (c->key_cap - 1))
        if (strcmp(c->keys[c->key_slots[i] - 1].name, name) == 0)
            return c->key_slots[i] - 1;
    if (c->n_keys == c->cap_keys) {
        uint32_t cap = c->cap_keys ? c->cap_keys * 2 : 256;
        keyrec_t *keys = realloc(c->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return NONE;
        c->keys = keys;
        c->cap_keys = cap;
    }
    memset(&c->keys[c->n_keys], 0, sizeof(keyrec_t));
    c->keys[c->n_keys].name = name;
    c->key_slots[i] = c->n_keys + 1;
    return c->n_keys++;
}

static int pred_describe(const dl_txn_pred_t *p, char *buf, size_t len)
{
    static const char *const cmps[] = {"==", "!=", "<", "<=", ">", ">="};
    const char *field = p->field == DL_TXN_FIELD_KEY ? "key" : "value";
    if (p->all)
        return snprintf(buf, len, "all rows");
    if (p->mod != 0)
        return snprintf(buf, len, "%s %% %" PRId64 " %s %s", field, p->mod, cmps[p->cmp],
                        p->operand);
    return snprintf(buf, len, "%s %s %s", field, cmps[p->cmp], p->operand);
}

/* The index of the predicate (by its text), added if new; NONE when out of memory. */
static uint32_t intern_pred(checker_t *c, const dl_txn_pred_t *p)
{
    char text[512];
    pred_describe(p, text, sizeof(text));
    for (uint32_t i = 0; i < c->n_preds; i++) /* programs use a handful of predicates */
        if (strcmp(c->preds[i].text, text) == 0)
            return i;
    if (c->n_preds == c->cap_preds) {
        uint32_t cap = c->cap_preds ? c->cap_preds * 2 : 16;
        pred_t *preds = realloc(c->preds, cap * sizeof(*preds));
        if (preds == NULL)
            return NONE;
        c->preds = preds;
        c->cap_preds = cap;
    }
    pred_t *q = &c->preds[c->n_preds];
    memset(q, 0, sizeof(*q));
    q->pred = *p;
    if ((q->text = strdup(text)) == NULL)
        return NONE;
    return c->n_preds++;
}

/* ---- Building the model ------------------------------------------------------------------ */

static int cmp_installed(const void *a, const void *b)
{
    const installed_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

/* Commit order; two transactions with one timestamp (a broken history) in the order they ended. */
static int cmp_versions(const void *a, const void *b)
{
    const version_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->txn < y->txn ? -1 : x->txn > y->txn;
}

typedef struct ranked_s {
    uint64_t rank;
    version_t v;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Puts the versions of a key in its declared order (those not listed after, as they were). */
static int apply_order(checker_t *c, keyrec_t *key, const order_t *o)
{
    ranked_t *r = malloc(key->n * sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    for (uint32_t j = 1; j < key->n; j++) {
        r[j].v = key->v[j];
        r[j].rank = o->n + j;
        for (size_t i = 0; i < o->n; i++)
            if (o->writers[i] == txn_id(c, key->v[j].txn))
                r[j].rank = i;
    }
    qsort(r + 1, key->n - 1, sizeof(*r), cmp_ranked);
    for (uint32_t j = 1; j < key->n; j++)
        key->v[j] = r[j].v;
    key->declared = 1;
    free(r);
    return 0;
}

static const installed_t *find_installed(const txn_t *t, uint32_t key)
{
    uint32_t lo = 0, hi = t->n_inst;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->inst[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n_inst && t->inst[lo].key == key ? &t->inst[lo] : NULL;
}

static int add_version(keyrec_t *k, uint32_t txn, uint32_t op, uint64_t ts)
{
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 4;
        version_t *v = realloc(k->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = (version_t){.txn = txn, .op = op, .ts = ts};
    return 0;
}

/* Collects the ended transactions (index 0: setup), indexes them by id, interns keys and
 * predicates, finds every committed transaction's installed writes and orders each key's
 * versions. */
static int build_model(checker_t *c)
{
    dl_txn_hist_t *h = c->h;
    c->n_t = (uint32_t)h->n_txns + 1;
    if ((c->t = calloc(c->n_t, sizeof(*c->t))) == NULL)
        return -ENOMEM;
    c->t[0].rec = &h->initial;
    for (uint32_t i = 1; i < c->n_t; i++)
        c->t[i].rec = h->txns[i - 1];
    for (c->id_cap = 16; c->id_cap < 2 * (size_t)c->n_t;)
        c->id_cap *= 2;
    if ((c->id_slots = calloc(c->id_cap, sizeof(*c->id_slots))) == NULL)
        return -ENOMEM;
    for (uint32_t i = 1; i < c->n_t; i++) {
        uint64_t id = txn_id(c, i);
        if (id == 0 || find_txn(c, id) != NONE)
            return -EINVAL;
        size_t s = mix(id) & (c->id_cap - 1);
        while (c->id_slots[s] != 0)
            s = (s + 1) & (c->id_cap - 1);
        c->id_slots[s] = i + 1;
    }
    for (uint32_t i = 0; i < c->n_t; i++) {
        txn_t *t = &c->t[i];
        const dl_txn_hist_txn_t *rec = t->rec;
        if (rec->committed)
            c->r->n_committed += i > 0;
        else
            c->r->n_aborted++;
        if (rec->n_ops == 0)
            continue;
        if ((t->op_key = malloc(rec->n_ops * sizeof(*t->op_key))) == NULL)
            return -ENOMEM;
        uint32_t n_writes = 0;
        for (size_t j = 0; j < rec->n_ops; j++) {
            const op_t *op = &rec->ops[j];
            if (op->kind == OP_SCAN) {
                dl_txn_pred_t p = {.all = op->all,
                                   .field = op->field,
                                   .cmp = op->cmp,
                                   .mod = op->u.mod,
                                   .operand = text_at(t, op->key)};
                t->op_key[j] = intern_pred(c, &p);
            } else {
                t->op_key[j] = intern_key(c, text_at(t, op->key));
            }
            if (t->op_key[j] == NONE)
                return -ENOMEM;
            n_writes += op->kind == OP_WRITE;
            c->r->n_operations += i > 0 && op->kind != OP_ROW;
        }
        if (!rec->committed || n_writes == 0)
            continue;
        if ((t->inst = malloc(n_writes * sizeof(*t->inst))) == NULL)
            return -ENOMEM;
        for (uint32_t j = 0; j < rec->n_ops; j++)
            if (rec->ops[j].kind == OP_WRITE)
                t->inst[t->n_inst++] = (installed_t){.key = t->op_key[j], .op = j};
        qsort(t->inst, t->n_inst, sizeof(*t->inst), cmp_installed);
        uint32_t n = 0; /* keep the last write of each key */
        for (uint32_t j = 0; j < t->n_inst; j++) {
            if (n > 0 && t->inst[n - 1].key == t->inst[j].key)
                n--;
            t->inst[n++] = t->inst[j];
        }
        t->n_inst = n;
    }
    for (uint32_t k = 0; k < c->n_keys; k++)
        if (add_version(&c->keys[k], 0, NONE, 0) != 0) /* unborn unless setup loaded it */
            return -ENOMEM;
    for (uint32_t j = 0; j < c->t[0].n_inst; j++) {
        installed_t *in = &c->t[0].inst[j];
        c->keys[in->key].v[0].op = in->op;
        in->version = 0;
    }
    for (uint32_t i = 1; i < c->n_t; i++)
        for (uint32_t j = 0; j < c->t[i].n_inst; j++)
            if (add_version(&c->keys[c->t[i].inst[j].key], i, c->t[i].inst[j].op,
                            c->t[i].rec->commit_ts) != 0)
                return -ENOMEM;
    for (uint32_t k = 0; k < c->n_keys; k++)
        qsort(c->keys[k].v + 1, c->keys[k].n - 1, sizeof(*c->keys[k].v), cmp_versions);
    for (size_t i = 0; i < h->n_orders; i++) {
        uint32_t k = find_key(c, h->orders[i].key); /* NONE: nobody read or wrote it */
        if (k != NONE && apply_order(c, &c->keys[k], &h->orders[i]) != 0)
            return -ENOMEM;
    }
    for (uint32_t k = 0; k < c->n_keys; k++) {
        keyrec_t *key = &c->keys[k];
        for (uint32_t j = 1; j < key->n; j++)
            ((installed_t *)find_installed(&c->t[key->v[j].txn], k))->version = j;
    }
    if ((c->written = malloc((c->n_keys + 1) * sizeof(*c->written))) == NULL ||
        (c->seen = calloc(c->n_keys + 1, sizeof(*c->seen))) == NULL)
        return -ENOMEM;
    memset(c->written, 0xff, (c->n_keys + 1) * sizeof(*c->written));
    dl_txn_pred_t all = {.all = 1};
    c->all_pred = intern_pred(c, &all);
    return c->all_pred == NONE ? -ENOMEM : 0;
}

/* Computes, once, which versions of which keys match predicate p, and the runs of versions that
 * match (or do not) alike. */
static int build_pred(checker_t *c, pred_t *p)
{
    if (p->built)
        return 0;
    p->built = 1;
    for (uint32_t k = 0; k < c->n_keys; k++) {
        const keyrec_t *key = &c->keys[k];
        uint8_t *match = malloc(key->n);
        if (match == NULL)
            return -ENOMEM;
        int any = 0;
        for (uint32_t j = 0; j < key->n; j++) {
            const char *value = version_value(c, &key->v[j]);
            match[j] = value != NULL && dl_txn_pred_matches(&p->pred, key->name, value);
            any |= match[j];
        }
        if (!any) {
            free(match);
            continue;
        }
        if (p->n_keys == p->cap_keys) {
            uint32_t cap = p->cap_keys ? p->cap_keys * 2 : 16;
            pred_key_t *keys = realloc(p->keys, cap * sizeof(*keys));
            if (keys == NULL) {
                free(match);
                return -ENOMEM;
            }
            p->keys = keys;
            p->cap_keys = cap;
        }
        pred_key_t *pk = &p->keys[p->n_keys++];
        pk->key = k;
        pk->match = match;
        pk->run_start = malloc(key->n * sizeof(uint32_t));
        pk->run_end = malloc(key->n * sizeof(uint32_t));
        if (pk->run_start == NULL || pk->run_end == NULL)
            return -ENOMEM;
        for (uint32_t j = 0; j < key->n; j++)
            pk->run_start[j] = j > 0 && match[j] == match[j - 1] ? pk->run_start[j - 1] : j;
        for (uint32_t j = key->n; j-- > 0;)
            pk->run_end[j] = j + 1 < key->n && match[j] == match[j + 1] ? pk->run_end[j + 1] : j;
    }
    return 0;
}

static const pred_key_t *find_pred_key(const pred_t *p, uint32_t key)
{
    uint32_t lo = 0, hi = p->n_keys;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->keys[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_keys && p->keys[lo].key == key ? &p->keys[lo] : NULL;
}

/* The first version of key committed after ts (key->n if none). */
static uint32_t first_after(const keyrec_t *key, uint64_t ts, int inclusive)
{
    uint32_t lo = 0, hi = key->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (key->v[mid].ts < ts || (!inclusive && key->v[mid].ts == ts))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Which run of versions with match == want could reader t have observed of the key (pk), given
 * that it read at a moment after every commit up to its floor and before its own commit? 0 none,
 * 1 one (*first, *last), 2 more than one.
 */
static int find_run(const checker_t *c, const txn_t *t, const pred_key_t *pk, int want,
                    uint32_t *first, uint32_t *last)
{
    const keyrec_t *key = &c->keys[pk->key];
    uint32_t a = first_after(key, t->rec->floor, 0) - 1; /* newest version surely committed */
    uint32_t b = first_after(key, t->rec->commit_ts, 1); /* first version surely not seen */
    if (key->declared) { /* timestamps say nothing about the order */
        a = 0;
        b = key->n;
    }
    int found = 0;
    for (uint32_t j = a; j < b; j = pk->run_end[j] + 1)
        if (pk->match[j] == want) {
            if (found)
                return 2;
            found = 1;
            *first = pk->run_start[j];
            *last = pk->run_end[j];
        }
    return found;
}

/* ---- Reads into edges -------------------------------------------------------------------- */

static int emit(checker_t *c, uint32_t from, uint32_t to, int kind, uint32_t key, uint32_t pred)
{
    if (from == 0 || to == 0 || from == to)
        return 0;
    if (c->n_edges == c->cap_edges) {
        size_t cap = c->cap_edges ? c->cap_edges * 2 : 4096;
        edge_t *e = cap < NONE ? realloc(c->edges, cap * sizeof(*e)) : NULL;
        if (e == NULL)
            return -ENOMEM;
        c->edges = e;
        c->cap_edges = cap;
    }
    c->edges[c->n_edges++] =
        (edge_t){.from = from, .to = to, .key = key, .pred = pred, .kind = (uint8_t)kind};
    return 0;
}

/* Records a read anomaly (counted; an example while there is room). */
static int read_anomaly(checker_t *c, dl_txn_anomaly_t a, uint64_t reader, uint64_t writer,
                        const char *fmt, ...)
{
    c->r->count[a]++;
    if (c->n_ex[a] >= c->max_examples)
        return 0;
    dl_txn_hist_example_t *ex = &c->ex[a][c->n_ex[a]];
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ex->anomaly = a;
    ex->n_txns = writer != 0 ? 2 : 1;
    if ((ex->txns = malloc(2 * sizeof(uint64_t))) == NULL || (ex->text = strdup(text)) == NULL) {
        free(ex->txns);
        return -ENOMEM;
    }
    ex->txns[0] = reader;
    ex->txns[1] = writer;
    c->n_ex[a]++;
    return 0;
}

/*
 * The version that reader r observed when it read key = value (non-NULL) written by transaction
 * id writer: *version, or NONE when the read adds no edge (its own write, an aborted or unknown
 * writer: those are reported here).
 */
static int observed(checker_t *c, uint32_t r, uint32_t k, const char *value, uint64_t writer,
                    uint32_t *version)
{
    const char *name = c->keys[k].name;
    uint64_t reader = txn_id(c, r);
    *version = NONE;
    if (writer == reader)
        return 0;
    uint32_t w = writer == 0 ? 0 : find_txn(c, writer);
    if (w == NONE)
        return read_anomaly(c, DL_TXN_IMPOSSIBLE_READ, reader, 0,
                            "T%" PRIu64 " read key %s = %s written by T%" PRIu64
                            ", which the history does not have",
                            reader, name, value, writer);
    const txn_t *wt = &c->t[w];
    if (!wt->rec->committed)
        return read_anomaly(c, DL_TXN_G1A, reader, writer,
                            "T%" PRIu64 " read key %s = %s written by T%" PRIu64 ", which aborted",
                            reader, name, value, writer);
    const installed_t *in = find_installed(wt, k);
    const char *last = in ? version_value(c, &c->keys[k].v[in->version]) : NULL;
    if (in != NULL && last != NULL && strcmp(last, value) == 0) {
        *version = in->version;
        return 0;
    }
    for (uint32_t j = 0; in != NULL && j < in->op; j++) {
        const op_t *op = &wt->rec->ops[j];
        if (op->kind == OP_WRITE && wt->op_key[j] == k && op->value != NONE &&
            strcmp(text_at(wt, op->value), value) == 0) {
            *version = in->version; /* Adya: it still read from the writer */
            return read_anomaly(c, DL_TXN_G1B, reader, writer,
                                "T%" PRIu64 " read key %s = %s, an intermediate version of "
                                "T%" PRIu64 " (its last write of the key: %s)",
                                reader, name, value, writer, last ? last : "deleted");
        }
    }
    if (w == 0)
        return read_anomaly(c, DL_TXN_IMPOSSIBLE_READ, reader, 0,
                            "T%" PRIu64 " read key %s = %s as setup data, which setup %s", reader,
                            name, value, last ? "did not load" : "never had");
    return read_anomaly(c, DL_TXN_IMPOSSIBLE_READ, reader, writer,
                        "T%" PRIu64 " read key %s = %s written by T%" PRIu64
                        ", which never wrote that",
                        reader, name, value, writer);
}

/* Edges for reader r that observed versions first..last of key k (one run): a dependency on the
 * run's first writer, an anti-dependency on the writer of the version after it. */
static int run_edges(checker_t *c, uint32_t r, uint32_t k, uint32_t first, uint32_t last,
                     uint32_t pred)
{
    const keyrec_t *key = &c->keys[k];
    int wr = pred == NONE ? E_WR : E_PWR, rw = pred == NONE ? E_RW : E_PRW;
    int rv = emit(c, key->v[first].txn, r, wr, k, pred);
    if (rv == 0 && last + 1 < key->n)
        rv = emit(c, r, key->v[last + 1].txn, rw, k, pred);
    return rv;
}

/* Reader r found key k absent (or not matching predicate p): edges from the run it observed. */
static int unseen_edges(checker_t *c, uint32_t r, uint32_t k, const pred_key_t *pk, uint32_t p)
{
    uint32_t first, last;
    int n = find_run(c, &c->t[r], pk, 0, &first, &last);
    if (n == 2) {
        c->r->n_ambiguous++;
        return 0;
    }
    if (n == 1)
        return run_edges(c, r, k, first, last, p == c->all_pred ? NONE : p);
    if (c->t[r].rec->level == DL_TXN_READ_UNCOMMITTED) {
        c->r->n_ambiguous++; /* it may have seen an uncommitted deletion */
        return 0;
    }
    uint64_t reader = txn_id(c, r);
    if (p == c->all_pred)
        return read_anomaly(c, DL_TXN_IMPOSSIBLE_READ, reader, 0,
                            "T%" PRIu64
                            " found key %s absent, but it existed all the time T%" PRIu64 " ran",
                            reader, c->keys[k].name, reader);
    return read_anomaly(c, DL_TXN_IMPOSSIBLE_READ, reader, 0,
                        "T%" PRIu64 " scanned %s and missed key %s, which matched all the time "
                        "T%" PRIu64 " ran",
                        reader, c->preds[p].text, c->keys[k].name, reader);
}

/* An item read of key k by committed transaction r. */
static int item_read(checker_t *c, uint32_t r, uint32_t k, const char *value, uint64_t writer)
{
    if (value == NULL) {
        if (c->written[k] == r)
            return 0; /* it deleted the key itself */
        const pred_key_t *pk = find_pred_key(&c->preds[c->all_pred], k);
        return pk != NULL ? unseen_edges(c, r, k, pk, c->all_pred) : 0;
    }
    uint32_t v;
    int rv = observed(c, r, k, value, writer, &v);
    if (rv != 0 || v == NONE)
        return rv;
    return run_edges(c, r, k, v, v, NONE);
}

/* Predicate read ops[s] of committed transaction r and the rows that follow it. */
static int scan_read(checker_t *c, uint32_t r, uint32_t s)
{
    const txn_t *t = &c->t[r];
    uint32_t p = t->op_key[s];
    int rv = build_pred(c, &c->preds[p]);
    if (++c->seen_stamp == 0)
        c->seen_stamp = 1;
    for (uint32_t j = s + 1; rv == 0 && j <= s + t->rec->ops[s].value; j++) {
        const op_t *op = &t->rec->ops[j];
        uint32_t k = t->op_key[j], v;
        c->seen[k] = c->seen_stamp;
        rv = observed(c, r, k, text_at(t, op->value), op->u.writer, &v);
        if (rv != 0 || v == NONE)
            continue;
        rv = run_edges(c, r, k, v, v, NONE); /* it read the row's value too */
        const pred_key_t *pk = find_pred_key(&c->preds[p], k);
        if (rv == 0 && pk != NULL && pk->match[v])
            rv = run_edges(c, r, k, pk->run_start[v], pk->run_end[v], p);
    }
    const pred_t *pred = &c->preds[p];
    for (uint32_t i = 0; rv == 0 && i < pred->n_keys; i++) {
        uint32_t k = pred->keys[i].key;
        if (c->seen[k] != c->seen_stamp && c->written[k] != r)
            rv = unseen_edges(c, r, k, &pred->keys[i], p);
    }
    return rv;
}

/* Turns every read of every committed transaction into edges, and adds the ww edges. */
static int build_edges(checker_t *c)
{
    int rv = build_pred(c, &c->preds[c->all_pred]);
    for (uint32_t r = 1; rv == 0 && r < c->n_t; r++) {
        const txn_t *t = &c->t[r];
        if (!t->rec->committed)
            continue;
        for (uint32_t j = 0; rv == 0 && j < t->rec->n_ops; j++) {
            const op_t *op = &t->rec->ops[j];
            if (op->kind == OP_WRITE)
                c->written[t->op_key[j]] = r;
            else if (op->kind == OP_READ)
                rv = item_read(c, r, t->op_key[j], text_at(t, op->value), op->u.writer);
            else if (op->kind == OP_SCAN)
                rv = scan_read(c, r, j);
        }
    }
    for (uint32_t k = 0; rv == 0 && k < c->n_keys; k++)
        for (uint32_t j = 1; rv == 0 && j + 1 < c->keys[k].n; j++)
            rv = emit(c, c->keys[k].v[j].txn, c->keys[k].v[j + 1].txn, E_WW, k, NONE);
    return rv;
}

static int cmp_edges(const void *a, const void *b)
{
    const edge_t *x = a, *y = b;
    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    if (x->to != y->to)
        return x->to < y->to ? -1 : 1;
    return (int)x->kind - (int)y->kind;
}

/* Sorts the edges by source, keeps one per (from, to, kind), and indexes them. */
static int build_graph(checker_t *c)
{
    if (c->n_edges > 0)
        qsort(c->edges, c->n_edges, sizeof(*c->edges), cmp_edges);
    size_t n = 0;
    for (size_t i = 0; i < c->n_edges; i++)
        if (n == 0 || cmp_edges(&c->edges[n - 1], &c->edges[i]) != 0)
            c->edges[n++] = c->edges[i];
    c->n_edges = n;
    c->r->n_edges = n;
    if ((c->adj = calloc(c->n_t + 1, sizeof(*c->adj))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        c->adj[c->edges[i].from + 1]++;
    for (uint32_t v = 0; v < c->n_t; v++)
        c->adj[v + 1] += c->adj[v];
    return 0;
}

/* ---- Cycles ------------------------------------------------------------------------------ */

/* Strongly connected components of the graph restricted to the edge kinds in mask (Tarjan,
 * iterative: histories are too long for recursion). comp[v] is v's component. */
static int components(checker_t *c, unsigned mask, uint32_t *comp)
{
    uint32_t n = c->n_t, next = 0, n_comp = 0, sp = 0, cp = 0;
    uint32_t *index = malloc(n * sizeof(*index)), *low = malloc(n * sizeof(*low));
    uint32_t *stack = malloc(n * sizeof(*stack)), *call = malloc(n * sizeof(*call));
    uint32_t *pos = malloc(n * sizeof(*pos));
    int rv = -ENOMEM;
    if (index == NULL || low == NULL || stack == NULL || call == NULL || pos == NULL)
        goto out;
    memset(index, 0xff, n * sizeof(*index));
    for (uint32_t root = 0; root < n; root++) {
        if (index[root] != NONE)
            continue;
        call[cp++] = root;
        index[root] = low[root] = next++;
        stack[sp++] = root;
        comp[root] = NONE; /* NONE: on the stack */
        pos[root] = c->adj[root];
        while (cp > 0) {
            uint32_t v = call[cp - 1];
            if (pos[v] < c->adj[v + 1]) {
                const edge_t *e = &c->edges[pos[v]++];
                uint32_t w = e->to;
                if (!(mask & BIT(e->kind)))
                    continue;
                if (index[w] == NONE) {
                    call[cp++] = w;
                    index[w] = low[w] = next++;
                    stack[sp++] = w;
                    comp[w] = NONE;
                    pos[w] = c->adj[w];
                } else if (comp[w] == NONE && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            cp--;
            if (cp > 0 && low[v] < low[call[cp - 1]])
                low[call[cp - 1]] = low[v];
            if (low[v] == index[v]) {
                uint32_t w;
                do {
                    w = stack[--sp];
                    comp[w] = n_comp;
                } while (w != v);
                n_comp++;
            }
        }
    }
    rv = 0;
out:
    free(index);
    free(low);
    free(stack);
    free(call);
    free(pos);
    return rv;
}

/*
 * A shortest path from `from` to `to` over edges in mask inside component comp[to]; with
 * max_ts, only through transactions committed no later than it. On success c->queue[0..*len)
 * holds the path's edges. 1 found, 0 none, -1 when the budget ran out.
 */
static int shortest_path(checker_t *c, uint32_t from, uint32_t to, unsigned mask,
                         const uint32_t *comp, uint64_t max_ts, uint64_t *budget, size_t *len)
{
    if (++c->gen == 0) {
        memset(c->stamp, 0, c->n_t * sizeof(*c->stamp));
        c->gen = 1;
    }
    size_t head = 0, tail = 0;
    c->queue[tail++] = from;
    c->stamp[from] = c->gen;
    int found = from == to;
    while (head < tail && !found) {
        uint32_t v = c->queue[head++];
        for (uint32_t i = c->adj[v]; i < c->adj[v + 1]; i++) {
            const edge_t *e = &c->edges[i];
            if (*budget == 0)
                return -1;
            (*budget)--;
            uint32_t w = e->to;
            if (!(mask & BIT(e->kind)) || c->stamp[w] == c->gen || comp[w] != comp[to] ||
                (max_ts != 0 && c->t[w].rec->commit_ts > max_ts))
                continue;
            c->stamp[w] = c->gen;
            c->parent[w] = i;
            c->queue[tail++] = w;
            if (w == to) {
                found = 1;
                break;
            }
        }
    }
    if (!found)
        return 0;
    size_t n = 0;
    for (uint32_t v = to; v != from; v = c->edges[c->parent[v]].from)
        n++;
    *len = n;
    for (uint32_t v = to; v != from; v = c->edges[c->parent[v]].from)
        c->queue[--n] = c->parent[v];
    return 1;
}

/* Which class a cycle of these edges belongs to: the most specific one. */
static dl_txn_anomaly_t classify(const checker_t *c, const uint32_t *cycle, size_t n)
{
    size_t wr = 0, rw = 0, prw = 0;
    for (size_t i = 0; i < n; i++) {
        int kind = c->edges[cycle[i]].kind;
        wr += kind == E_WR || kind == E_PWR;
        rw += kind == E_RW;
        prw += kind == E_PRW;
    }
    if (rw + prw == 0)
        return wr == 0 ? DL_TXN_G0 : DL_TXN_G1C;
    if (rw + prw == 1)
        return DL_TXN_G_SINGLE;
    return prw > 0 ? DL_TXN_G2 : DL_TXN_G2_ITEM;
}

/* Counts the cycle (edge indices) unless one through the same transactions in the same order
 * was counted before (the searches run from the most specific class on, so that one names it);
 * names it while there is room. */
static int add_cycle(checker_t *c, uint32_t *cycle, size_t n)
{
    size_t lowest = 0; /* rotate so that the lowest transaction starts it */
    for (size_t i = 1; i < n; i++)
        if (txn_id(c, c->edges[cycle[i]].from) < txn_id(c, c->edges[cycle[lowest]].from))
            lowest = i;
    uint64_t x = 1469598103934665603ull; /* the same transactions by other edges: one cycle */
    for (size_t i = 0; i < n; i++)
        x = mix(x ^ c->edges[cycle[(lowest + i) % n]].from) + i;
    x |= 1; /* 0 marks an empty slot */
    if (2 * (c->n_cycles + 1) > c->cap_cycles) {
        size_t cap = c->cap_cycles ? c->cap_cycles * 2 : 1024;
        uint64_t *set = calloc(cap, sizeof(*set));
        if (set == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < c->cap_cycles; i++)
            if (c->cycles[i] != 0) {
                size_t s = c->cycles[i] & (cap - 1);
                while (set[s] != 0)
                    s = (s + 1) & (cap - 1);
                set[s] = c->cycles[i];
            }
        free(c->cycles);
        c->cycles = set;
        c->cap_cycles = cap;
    }
    size_t s = x & (c->cap_cycles - 1);
    for (; c->cycles[s] != 0; s = (s + 1) & (c->cap_cycles - 1))
        if (c->cycles[s] == x)
            return 0;
    c->cycles[s] = x;
    c->n_cycles++;
    dl_txn_anomaly_t a = classify(c, cycle, n);
    c->r->count[a]++;
    if (c->n_ex[a] >= c->max_examples)
        return 0;
    static const char *const kinds[] = {"ww", "wr", "rw", "wr", "rw"};
    dl_txn_hist_example_t *ex = &c->ex[a][c->n_ex[a]];
    size_t cap = 256 * (n + 1), len = 0;
    if ((ex->txns = malloc(n * sizeof(uint64_t))) == NULL || (ex->text = malloc(cap)) == NULL) {
        free(ex->txns);
        return -ENOMEM;
    }
    ex->anomaly = a;
    ex->n_txns = n;
    for (size_t i = 0; i < n; i++) {
        const edge_t *e = &c->edges[cycle[(lowest + i) % n]];
        ex->txns[i] = txn_id(c, e->from);
        char what[300];
        if (e->pred != NONE)
            snprintf(what, sizeof(what), "%s: key %s", c->preds[e->pred].text,
                     c->keys[e->key].name);
        else
            snprintf(what, sizeof(what), "key %s", c->keys[e->key].name);
        len += (size_t)snprintf(ex->text + len, cap - len, "T%" PRIu64 " -%s(%s)-> ",
                                txn_id(c, e->from), kinds[e->kind], what);
    }
    snprintf(ex->text + len, cap - len, "T%" PRIu64, ex->txns[0]);
    c->n_ex[a]++;
    return 0;
}

/*
 * Searches a shortest cycle through every edge of the kinds in closing whose ends share a
 * component of comp: the edge u -> v and a path v -> u over edges in path_mask. done[] marks
 * edges that closed a cycle (skipped when given). anomaly is the class the search is for (its
 * count becomes a lower bound when the budget runs out).
 */
static int search(checker_t *c, dl_txn_anomaly_t anomaly, unsigned closing, unsigned path_mask,
                  const uint32_t *comp, int by_commit_order, uint8_t *done)
{
    uint64_t budget = c->budget;
    for (size_t i = 0; i < c->n_edges; i++) {
        const edge_t *e = &c->edges[i];
        if (!(closing & BIT(e->kind)) || comp[e->from] != comp[e->to] || (done && done[i]))
            continue;
        /* Dependencies point forward in commit order unless a transaction read data that was
         * not committed yet; then a path back to an older transaction cannot exist. */
        uint64_t max_ts = by_commit_order ? c->t[e->from].rec->commit_ts : 0;
        if (max_ts != 0 && c->t[e->to].rec->commit_ts > max_ts)
            continue;
        size_t len;
        int found = shortest_path(c, e->to, e->from, path_mask, comp, max_ts, &budget, &len);
        if (found < 0) {
            c->r->lower_bound[anomaly] = 1;
            return 0;
        }
        if (!found)
            continue;
        memmove(c->queue + 1, c->queue, len * sizeof(*c->queue));
        c->queue[0] = (uint32_t)i;
        if (done != NULL)
            done[i] = 1;
        int rv = add_cycle(c, c->queue, len + 1);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Looks for every class of cycle, the most specific classes first. */
static int find_cycles(checker_t *c)
{
    uint32_t n = c->n_t;
    uint32_t *ww = malloc(n * sizeof(*ww)), *deps = malloc(n * sizeof(*deps));
    uint32_t *items = malloc(n * sizeof(*items)), *all = malloc(n * sizeof(*all));
    uint8_t *done = calloc(c->n_edges + 1, 1);
    c->stamp = calloc(n, sizeof(*c->stamp));
    c->parent = malloc(n * sizeof(*c->parent));
    c->queue = malloc((n + 1) * sizeof(*c->queue));
    int rv = -ENOMEM;
    if (ww == NULL || deps == NULL || items == NULL || all == NULL || done == NULL ||
        c->stamp == NULL || c->parent == NULL || c->queue == NULL)
        goto out;
    if ((rv = components(c, BIT(E_WW), ww)) != 0 || (rv = components(c, DEPS, deps)) != 0 ||
        (rv = components(c, DEPS | BIT(E_RW), items)) != 0 ||
        (rv = components(c, ALL_EDGES, all)) != 0)
        goto out;
    int forward = 1; /* do all dependencies point forward in commit order? */
    for (size_t i = 0; i < c->n_edges; i++) {
        const edge_t *e = &c->edges[i];
        if ((DEPS & BIT(e->kind)) && c->t[e->from].rec->commit_ts >= c->t[e->to].rec->commit_ts)
            forward = 0;
    }
    if ((rv = search(c, DL_TXN_G0, BIT(E_WW), BIT(E_WW), ww, 0, NULL)) != 0 ||
        (rv = search(c, DL_TXN_G1C, BIT(E_WR) | BIT(E_PWR), DEPS, deps, 0, NULL)) != 0 ||
        (rv = search(c, DL_TXN_G_SINGLE, BIT(E_RW) | BIT(E_PRW), DEPS, all, forward, done)) != 0 ||
        (rv = search(c, DL_TXN_G2_ITEM, BIT(E_RW), DEPS | BIT(E_RW), items, 0, done)) != 0)
        goto out;
    rv = search(c, DL_TXN_G2, BIT(E_PRW), ALL_EDGES, all, 0, done);
out:
    free(ww);
    free(deps);
    free(items);
    free(all);
    free(done);
    return rv;
}

/* ---- Check ------------------------------------------------------------------------------- */

static void free_checker(checker_t *c)
{
    for (uint32_t i = 0; c->t != NULL && i < c->n_t; i++) {
        free(c->t[i].op_key);
        free(c->t[i].inst);
    }
    for (uint32_t k = 0; k < c->n_keys; k++)
        free(c->keys[k].v);
    for (uint32_t p = 0; p < c->n_preds; p++) {
        for (uint32_t i = 0; i < c->preds[p].n_keys; i++) {
            free(c->preds[p].keys[i].match);
            free(c->preds[p].keys[i].run_start);
            free(c->preds[p].keys[i].run_end);
        }
        free(c->preds[p].keys);
        free(c->preds[p].text);
    }
    for (int a = 0; a < DL_TXN_N_ANOMALIES; a++) {
        for (size_t i = 0; i < c->n_ex[a]; i++) {
            free(c->ex[a][i].txns);
            free(c->ex[a][i].text);
        }
        free(c->ex[a]);
    }
    free(c->t);
    free(c->id_slots);
    free(c->keys);
    free(c->key_slots);
    free(c->preds);
    free(c->edges);
    free(c->adj);
    free(c->written);
    free(c->seen);
    free(c->stamp);
    free(c->parent);
    free(c->queue);
    free(c->cycles);
}

int dl_txn_hist_check(dl_txn_hist_t *h, const dl_txn_hist_options_t *opts,
                      dl_txn_hist_report_t *report)
{
    memset(report, 0, sizeof(*report));
    if (h->incomplete)
        return -EINVAL;
    checker_t c = {.h = h, .r = report, .max_examples = 10, .budget = 50000000};
    if (opts != NULL && opts->max_examples > 0)
        c.max_examples = opts->max_examples;
    if (opts != NULL && opts->search_budget > 0)
        c.budget = opts->search_budget;
    int rv = 0;
    for (int a = 0; a < DL_TXN_N_ANOMALIES && rv == 0; a++)
        if ((c.ex[a] = calloc(c.max_examples, sizeof(*c.ex[a]))) == NULL)
            rv = -ENOMEM;
    if (rv == 0)
        rv = build_model(&c);
    if (rv == 0)
        rv = build_edges(&c);
    if (rv == 0)
        rv = build_graph(&c);
    if (rv == 0)
        rv = find_cycles(&c);
    size_t n = 0;
    for (int a = 0; a < DL_TXN_N_ANOMALIES; a++)
        n += c.n_ex[a];
    if (rv == 0 && n > 0 && (report->examples = calloc(n, sizeof(*report->examples))) == NULL)
        rv = -ENOMEM;
    if (rv == 0 && n > 0) {
        for (int a = 0; a < DL_TXN_N_ANOMALIES; a++) {
            memcpy(report->examples + report->n_examples, c.ex[a], c.n_ex[a] * sizeof(*c.ex[a]));
            report->n_examples += c.n_ex[a];
            c.n_ex[a] = 0; /* the report owns them now */
        }
    }
    free_checker(&c);
    if (rv != 0)
        dl_txn_hist_report_free(report);
    return rv;
}

void dl_txn_hist_report_free(dl_txn_hist_report_t *report)
{
    for (size_t i = 0; i < report->n_examples; i++) {
        free(report->examples[i].txns);
        free(report->examples[i].text);
    }
    free(report->examples);
    memset(report, 0, sizeof(*report));
}

uint64_t dl_txn_hist_report_total(const dl_txn_hist_report_t *report)
{
    uint64_t n = 0;
    for (int a = 0; a < DL_TXN_N_ANOMALIES; a++)
        n += report->count[a];
    return n;
}
