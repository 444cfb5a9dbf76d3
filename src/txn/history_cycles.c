/*
 * The Adya checker's cycles: strongly connected components of the serialization graph (iterative
 * Tarjan), a shortest cycle through each candidate edge (breadth-first search), most specific
 * class first, each cycle counted once and named; and dl_txn_hist_check, which runs the whole
 * check. See history.h for the definitions, history_model.c for the graph.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "txn/history_internal.h"

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
        rv = dl__txn_hist_build_model(&c);
    if (rv == 0)
        rv = dl__txn_hist_build_edges(&c);
    if (rv == 0)
        rv = dl__txn_hist_build_graph(&c);
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
