/*
 * The invariants of Raft (Ongaro, figure 3.2), checked as the simulated cluster runs:
 *
 *   Election Safety       at most one leader per term, ever;
 *   Leader Append-Only    a leader never truncates or overwrites its log (checked by the driver
 *                         in sim_world.c, which sees every truncation and write);
 *   Log Matching          one (index, term) names one entry with one log before it, ever: every
 *                         write is compared with the first write of that (index, term) anywhere;
 *   Leader Completeness   (elections) a new leader holds every entry applied anywhere, and no
 *                         node truncates an entry that was applied somewhere;
 *   State Machine Safety  per node: no index is applied with two different entries unless a
 *                         state-machine reset dropped it in between (both modes); across nodes
 *                         (elections): one entry per index everywhere, and no reset at all.
 *
 * Static mode with manual promotions loses committed entries on purpose (the kv lab's lesson),
 * so there only Election Safety, Leader Append-Only, Log Matching and the per-node State Machine
 * Safety apply.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct slot {
    uint64_t k1, k2; /* k1 == 0: empty (indexes and terms start at 1) */
    uint64_t v1, v2, v3;
};

struct map {
    struct slot *s;
    size_t cap, n;
};

struct checker {
    struct map entries; /* (index, term) -> (content hash, prefix hash, first writer) */
    struct map leaders; /* (term, 0) -> leader id */
    /* Elections: what was applied at each index, anywhere; 1..max_committed are all set. */
    struct sim_applied *committed;
    /* The lowest term any node had when it applied the index: the term in which it was
     * known committed, or later. Leaders of higher terms must hold the entry. */
    uint64_t *commit_term;
    size_t cap_commit_term;
    size_t cap_committed;
    uint64_t max_committed;
};

static uint64_t slot_hash(uint64_t k1, uint64_t k2)
{
    return sim_hash_u64(k1, k2);
}

static struct slot *map_find(struct map *m, uint64_t k1, uint64_t k2, int insert)
{
    if (insert && (m->n + 1) * 2 > m->cap) {
        struct map old = *m;
        m->cap = old.cap ? old.cap * 2 : 1024;
        m->s = calloc(m->cap, sizeof(struct slot));
        if (m->s == NULL)
            abort();
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.s[i].k1) {
                struct slot *d = map_find(m, old.s[i].k1, old.s[i].k2, 1);
                *d = old.s[i];
            }
        free(old.s);
    }
    if (m->cap == 0)
        return NULL;
    size_t i = slot_hash(k1, k2) & (m->cap - 1);
    for (;;) {
        struct slot *s = &m->s[i];
        if (s->k1 == k1 && s->k2 == k2)
            return s;
        if (s->k1 == 0) {
            if (!insert)
                return NULL;
            s->k1 = k1;
            s->k2 = k2;
            m->n++;
            return s;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

static struct checker *C(struct sim_world *w)
{
    return sim_world_checker(w);
}

static int elections(struct sim_world *w)
{
    return sim_world_options(w)->mode == SIM_ELECTIONS;
}

int sim_check_init(struct sim_world *w)
{
    struct checker *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    sim_world_set_checker(w, c);
    return 0;
}

void sim_check_free(struct sim_world *w)
{
    struct checker *c = C(w);
    if (c == NULL)
        return;
    free(c->entries.s);
    free(c->leaders.s);
    free(c->committed);
    free(c->commit_term);
    free(c);
}

/* The first index at which two nodes' current logs differ, up to `upto`; 0 if none. */
static uint64_t first_difference(const struct sim_node *a, const struct sim_node *b, uint64_t upto)
{
    for (uint64_t i = 1; i <= upto; i++) {
        if (i > a->last || i > b->last)
            return i;
        if (a->log[i].chash != b->log[i].chash)
            return i;
    }
    return 0;
}

int sim_check_write(struct sim_world *w, struct sim_node *n, uint64_t index)
{
    const struct sim_entry *e = &n->log[index];
    if (e->term == 0) {
        sim_fail(w, "n%" PRIu64 " writes index %" PRIu64 " with term 0", n->id, index);
        return -1;
    }
    struct slot *s = map_find(&C(w)->entries, index, e->term, 1);
    if (s->v3 == 0) {
        s->v1 = e->chash;
        s->v2 = e->phash;
        s->v3 = n->id;
        return 0;
    }
    if (s->v1 == e->chash && s->v2 == e->phash)
        return 0;
    /* Point at where the logs part, if the first writer still holds that entry. */
    char where[160] = "";
    struct sim_node *o = sim_world_node(w, (size_t)s->v3 - 1);
    if (o != n && index <= o->last && o->log[index].term == e->term) {
        uint64_t d = first_difference(o, n, index);
        snprintf(where, sizeof(where),
                 "; the logs differ first at index %" PRIu64 " (n%" PRIu64 " term %" PRIu64
                 ", n%" PRIu64 " term %" PRIu64 ")",
                 d, o->id, d <= o->last ? o->log[d].term : 0, n->id,
                 d <= n->last ? n->log[d].term : 0);
    }
    sim_fail(w,
             "Log Matching: n%" PRIu64 " writes index %" PRIu64 " term %" PRIu64
             " with %s than n%" PRIu64 " wrote there%s",
             n->id, index, e->term,
             s->v1 != e->chash ? "a different payload"
                               : "the same payload but a different log "
                                 "before it",
             s->v3, where);
    return -1;
}

uint64_t sim_check_phash(struct sim_world *w, uint64_t index, uint64_t term)
{
    struct slot *s = map_find(&C(w)->entries, index, term, 0);
    return s ? s->v2 : 0;
}

uint64_t sim_entry_chash(const struct sim_node *n, uint64_t index)
{
    if (index < n->log_first) /* compacted: the state machine holds it */
        return index <= n->sm_applied ? n->sm[index].chash : 0;
    return index <= n->last ? n->log[index].chash : 0;
}

int sim_check_truncate(struct sim_world *w, struct sim_node *n, uint64_t from)
{
    struct checker *c = C(w);
    if (!elections(w))
        return 0;
    for (uint64_t i = from; i <= n->last && i <= c->max_committed; i++)
        if (n->log[i].chash == c->committed[i].chash) {
            sim_fail(w,
                     "Leader Completeness: n%" PRIu64 " (term %" PRIu64 ") truncates from %" PRIu64
                     " and so drops entry %" PRIu64 " (term %" PRIu64
                     "), which was applied (committed)",
                     n->id, dl_raft_term(n->r), from, i, n->log[i].term);
            return -1;
        }
    return 0;
}

int sim_check_reset(struct sim_world *w, struct sim_node *n, uint64_t from,
                    uint64_t discarded_applied)
{
    if (from == 0) {
        sim_fail(w, "n%" PRIu64 ": state machine reset without a truncation", n->id);
        return -1;
    }
    if (elections(w)) {
        sim_fail(w,
                 "State Machine Safety: n%" PRIu64
                 " resets its state machine: the truncation from %" PRIu64 " drops %" PRIu64
                 " applied entries",
                 n->id, from, n->sm_applied - from + 1);
        return -1;
    }
    sim_world_result(w)->lost_applied += discarded_applied;
    /* What it applied from `from` on is gone; the rebuild may apply other entries there. */
    for (uint64_t i = from; i < n->hist_cap; i++)
        n->hist[i].chash = 0;
    return 0;
}

int sim_check_apply(struct sim_world *w, struct sim_node *n, uint64_t index)
{
    const struct sim_applied *a = &n->sm[index];
    sim_applied_reserve(&n->hist, &n->hist_cap, index);
    struct sim_applied *h = &n->hist[index];
    if (h->chash != 0 && h->chash != a->chash) {
        sim_fail(w,
                 "State Machine Safety: n%" PRIu64 " applies index %" PRIu64 " term %" PRIu64
                 " but applied a different entry (term %" PRIu64
                 ") there before, with no reset in between",
                 n->id, index, a->term, h->term);
        return -1;
    }
    *h = *a;
    if (!elections(w))
        return 0;
    struct checker *c = C(w);
    sim_applied_reserve(&c->committed, &c->cap_committed, index);
    struct sim_applied *g = &c->committed[index];
    if (g->chash != 0 && g->chash != a->chash) {
        sim_fail(w,
                 "State Machine Safety: n%" PRIu64 " applies index %" PRIu64 " term %" PRIu64
                 " but another node applied a different entry (term %" PRIu64 ") there",
                 n->id, index, a->term, g->term);
        return -1;
    }
    *g = *a;
    if (index >= c->cap_commit_term) {
        size_t cap = c->cap_commit_term ? c->cap_commit_term : 256;
        while (cap <= index)
            cap *= 2;
        c->commit_term = realloc(c->commit_term, cap * sizeof(uint64_t));
        if (c->commit_term == NULL)
            abort();
        memset(c->commit_term + c->cap_commit_term, 0,
               (cap - c->cap_commit_term) * sizeof(uint64_t));
        c->cap_commit_term = cap;
    }
    uint64_t term = dl_raft_term(n->r);
    if (c->commit_term[index] == 0 || term < c->commit_term[index])
        c->commit_term[index] = term;
    if (index > c->max_committed)
        c->max_committed = index;
    return 0;
}

int sim_check_roles(struct sim_world *w, struct sim_node *n)
{
    dl_raft_role_t role = dl_raft_role(n->r);
    uint64_t term = dl_raft_term(n->r);
    if (role == n->role && term == n->term)
        return 0;
    sim_result_t *res = sim_world_result(w);
    if (term > res->max_term)
        res->max_term = term;
    if (role != n->role)
        sim_trace(w, n, "becomes %s of term %" PRIu64, dl_raft_role_name(role), term);
    int new_leadership = role == DL_RAFT_LEADER && (n->role != DL_RAFT_LEADER || n->term != term);
    n->role = role;
    n->term = term;
    if (!new_leadership)
        return 0;
    struct checker *c = C(w);
    struct slot *s = map_find(&c->leaders, term, 1, 1);
    if (s->v1 != 0 && s->v1 != n->id) {
        sim_fail(w, "Election Safety: n%" PRIu64 " and n%" PRIu64 " both lead term %" PRIu64, s->v1,
                 n->id, term);
        return -1;
    }
    if (s->v1 == 0)
        res->leaders++;
    s->v1 = n->id;
    if (!elections(w))
        return 0;
    /* Lease safety: nobody becomes leader while another leader may still answer lease reads
     * (the simulated nodes share one clock, so the lease's drift margin is not exercised). */
    for (size_t i = 0; i < sim_world_n_nodes(w); i++) {
        struct sim_node *m = sim_world_node(w, i);
        if (m != n && m->up && m->r != NULL && term > dl_raft_term(m->r) &&
            dl_raft_lease_valid(m->r, sim_world_now(w))) {
            sim_fail(w,
                     "Lease safety: n%" PRIu64 " becomes leader of term %" PRIu64 " while n%" PRIu64
                     " (term %" PRIu64 ") still holds a read lease",
                     n->id, term, m->id, dl_raft_term(m->r));
            return -1;
        }
    }
    /* A leader elected late in a term older than the commit (its votes were granted before)
     * is stale, not a violation; it is deposed as soon as it meets the newer term. */
    for (uint64_t i = 1; i <= c->max_committed; i++)
        if (term > c->commit_term[i] && sim_entry_chash(n, i) != c->committed[i].chash) {
            sim_fail(w,
                     "Leader Completeness: n%" PRIu64 " leads term %" PRIu64
                     " without entry %" PRIu64 " (term %" PRIu64 ") committed by term %" PRIu64
                     "; its log ends at %" PRIu64 " and has term %" PRIu64 " there",
                     n->id, term, i, c->committed[i].term, c->commit_term[i], n->last,
                     i <= n->last ? n->log[i].term : 0);
            return -1;
        }
    return 0;
}
