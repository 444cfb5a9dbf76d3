/*
 * The Adya checker's model of a history: interns the keys and predicates, orders each key's
 * versions by commit timestamp (or as declared), and turns every read into edges of the
 * serialization graph, reporting the reads no version order explains. See history.h for the
 * definitions, history_cycles.c for the cycles.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/history_internal.h"
#include "txn/value.h"

/* ---- The checker's model ----------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s)
{
    uint64_t x = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ull;
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

/* The element with this key in an array of n structs of size bytes, sorted by their first
 * member, a uint32_t key; NULL when none. (installed_t and pred_key_t.) */
static const void *find_by_key(const void *base, uint32_t n, size_t size, uint32_t key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, at;
        memcpy(&at, (const char *)base + (size_t)mid * size, sizeof(at));
        if (at < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t found;
    if (lo == n)
        return NULL;
    memcpy(&found, (const char *)base + (size_t)lo * size, sizeof(found));
    return found == key ? (const char *)base + (size_t)lo * size : NULL;
}

static const installed_t *find_installed(const txn_t *t, uint32_t key)
{
    return find_by_key(t->inst, t->n_inst, sizeof(*t->inst), key);
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
int dl__txn_hist_build_model(checker_t *c)
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
    return find_by_key(p->keys, p->n_keys, sizeof(*p->keys), key);
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
int dl__txn_hist_build_edges(checker_t *c)
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
int dl__txn_hist_build_graph(checker_t *c)
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
