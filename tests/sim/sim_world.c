/*
 * The simulated world: an event queue ordered by (time, sequence); nodes that start, crash and
 * restart from their durable disk as src/kv/node.c does; fsyncs that complete later; stalled
 * drivers; partitions; clients and operators; the healing phase and its liveness check; and
 * sim_run, which draws every parameter of a run from its seed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- Event queue -------------------------------------------------------------------------- */

static int ev_before(const struct event *a, const struct event *b)
{
    return a->time != b->time ? a->time < b->time : a->seq < b->seq;
}

void sim_push(struct sim_world *w, struct event e)
{
    if (w->n_heap == w->cap_heap) {
        w->cap_heap = w->cap_heap ? w->cap_heap * 2 : 256;
        w->heap = realloc(w->heap, w->cap_heap * sizeof(*w->heap));
        if (w->heap == NULL)
            abort();
    }
    e.seq = w->seq++;
    size_t i = w->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_before(&e, &w->heap[p]))
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
}

static struct event pop(struct sim_world *w)
{
    struct event top = w->heap[0];
    struct event last = w->heap[--w->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n_heap)
            break;
        if (c + 1 < w->n_heap && ev_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!ev_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->n_heap > 0)
        w->heap[i] = last;
    return top;
}

void sim_schedule(struct sim_world *w, uint64_t delay, uint8_t type, size_t node, uint64_t arg)
{
    struct event e = {.time = w->now + delay,
                      .type = type,
                      .node = (uint8_t)node,
                      .inc = w->nodes[node].incarnation,
                      .arg = arg};
    sim_push(w, e);
}

/* A random gap around a mean: [mean/2, 3*mean/2]. */
static uint64_t gap(struct sim_world *w, uint64_t mean)
{
    return sim_rng_range(&w->rng, mean / 2, mean + mean / 2);
}

void sim_schedule_iter(struct sim_world *w, struct sim_node *n)
{
    if (n->iter_pending || !n->up)
        return;
    n->iter_pending = 1;
    sim_schedule(w, sim_rng_below(&w->rng, 3), EV_ITER, (size_t)(n - w->nodes), 0);
}

/* ---- Nodes: start, crash, restart ---------------------------------------------------------- */

static void start_node(struct sim_world *w, struct sim_node *n)
{
    dl_raft_config_t cfg = w->base;
    cfg.id = n->id;
    cfg.seed = sim_rng_next(&w->rng);
    /* As src/kv/node.c: the core's log starts after what the durable state machine holds;
     * snapshot files do not survive a restart (one is made when a follower needs it). */
    uint64_t base = n->sm_durable;
    n->snap_index = n->snap_term = 0;
    if (n->log_first > base + 1)
        return sim_fail(w,
                        "n%" PRIu64 " restarts with a log compacted to %" PRIu64
                        " but a state machine durable only through %" PRIu64,
                        n->id, n->log_first - 1, base);
    if (n->last < base)
        return sim_fail(w,
                        "n%" PRIu64 " restarts with a log (last %" PRIu64
                        ") behind its state machine %" PRIu64,
                        n->id, n->last, base);
    int rv = dl_raft_new(&cfg, &n->hs, base + 1, &n->r);
    if (rv != 0)
        return sim_fail(w, "dl_raft_new for n%" PRIu64 " failed: %d", n->id, rv);
    if (base > 0) {
        rv = dl_raft_restore_snapshot(n->r, base, n->sm[base].term, 0, sim_conf_at(w, n, base));
        if (rv != 0)
            return sim_fail(w, "dl_raft_restore_snapshot failed: %d", rv);
    }
    n->log_first = base + 1;
    n->compacted_at = base;
    n->rcv_len = 0;
    for (uint64_t i = base + 1; i <= n->last; i++) {
        rv = dl_raft_restore_entry(n->r, n->log[i].term, n->log[i].type, n->log[i].data,
                                   n->log[i].len);
        if (rv != 0)
            return sim_fail(w, "dl_raft_restore_entry failed: %d", rv);
    }
    /* As src/kv/node.c: the state machine must agree with the log it was built from. */
    uint64_t applied = n->sm_applied;
    if (applied > n->last || (applied > base && n->log[applied].term != n->sm[applied].term))
        return sim_fail(w,
                        "n%" PRIu64 " restarts with a state machine at %" PRIu64
                        " that its durable log (last %" PRIu64 ") does not back",
                        n->id, applied, n->last);
    n->up = 1;
    n->iter_pending = 0;
    n->fsync_busy = 0;
    n->stalled_until = 0;
    n->role = DL_RAFT_FOLLOWER;
    n->term = n->hs.term;
    dl_raft_update_t u;
    dl_raft_start(n->r, n->last, applied, w->now, &u);
    sim_trace(w, n, "start (hardstate term %" PRIu64 " vote %" PRIu64 ", applied %" PRIu64 ")",
              n->hs.term, n->hs.vote, applied);
    sim_carry_out(w, n, &u);
    size_t i = (size_t)(n - w->nodes);
    sim_schedule(w, sim_rng_below(&w->rng, w->tick_ms), EV_TICK, i, 0);
    sim_schedule_iter(w, n);
}

/* Every other node's connection to n breaks (or comes back): each notices a little later. */
static void notify_links(struct sim_world *w, size_t a, size_t b)
{
    sim_schedule(w, sim_rng_below(&w->rng, 50), EV_PEER_DOWN, a, w->ids[b]);
    sim_schedule(w, sim_rng_below(&w->rng, 50), EV_PEER_DOWN, b, w->ids[a]);
}

static void crash_node(struct sim_world *w, struct sim_node *n)
{
    sim_trace(w, n,
              "CRASH: loses %" PRIu64 " unsynced log entries, %" PRIu64 " state-machine entries",
              n->last - n->durable, n->sm_applied - n->sm_durable);
    dl_raft_free(n->r);
    n->r = NULL;
    n->up = 0;
    n->incarnation++;
    n->last = n->durable;
    n->sm_applied = n->sm_durable;
    if (w->opt.inject == SIM_INJECT_LOSE_SYNCED) {
        n->durable -= sim_rng_below(&w->rng, n->durable < 3 ? n->durable + 1 : 4);
        n->last = n->durable;
        if (n->sm_applied > n->last)
            n->sm_applied = n->sm_durable = n->last;
    } else if (w->opt.inject == SIM_INJECT_FORGET_VOTE) {
        n->hs.vote = 0;
    }
    sim_forget_confs_after(n, n->sm_applied);
    /* Static mode: what the state machine loses here it no longer remembers applying, and a
     * promotion may legitimately put other entries there (lost writes, not a violation). With
     * elections every applied entry is committed, so the record stays. */
    if (w->opt.mode == SIM_STATIC)
        for (uint64_t k = n->sm_applied + 1; k < n->hist_cap; k++)
            n->hist[k].chash = 0;
    n->fsync_busy = 0;
    n->iter_pending = 0;
    n->stalled_until = 0;
    size_t i = (size_t)(n - w->nodes);
    for (size_t k = 0; k < w->n; k++)
        if (k != i)
            notify_links(w, i, k);
}

/* ---- Event handlers ----------------------------------------------------------------------- */

static void on_deliver(struct sim_world *w, struct event *e)
{
    struct sim_node *to = &w->nodes[e->node];
    struct sim_msg *sm = e->msg;
    size_t from = sim_node_index(w, sm->m.from);
    char desc[200];
    if (w->opt.verbose)
        sim_describe_msg(&sm->m, desc, sizeof(desc));
    if (!to->up) {
        sim_trace(w, to, "lost %s (node down)", desc);
        return;
    }
    if (w->cut[from][e->node]) {
        sim_trace(w, to, "lost %s (link cut)", desc);
        return;
    }
    sim_msg_fix(sm);
    sim_trace(w, to, "recv %s", desc);
    dl_raft_update_t u;
    dl_raft_step(to->r, &sm->m, w->now, &u);
    sim_carry_out(w, to, &u);
    sim_schedule_iter(w, to);
}

static void start_fsync(struct sim_world *w, struct sim_node *n)
{
    if (n->fsync_busy || n->last <= n->durable)
        return;
    n->fsync_busy = 1;
    n->fsync_target = n->last;
    n->fsync_trunc = UINT64_MAX;
    sim_schedule(w, sim_rng_range(&w->rng, 1, w->fsync_max), EV_FSYNC, (size_t)(n - w->nodes), 0);
}

static void on_iter(struct sim_world *w, struct sim_node *n)
{
    n->iter_pending = 0;
    dl_raft_update_t u;
    dl_raft_flush(n->r, w->now, &u);
    sim_carry_out(w, n, &u);
    start_fsync(w, n);
    if (sim_rng_chance(&w->rng, 300))
        n->sm_durable = n->sm_applied;
}

static void on_fsync(struct sim_world *w, struct sim_node *n)
{
    n->fsync_busy = 0;
    uint64_t upto = n->fsync_target;
    /* A truncation while the fsync ran: what was synced below it stays, the rest is new. */
    if (n->fsync_trunc != UINT64_MAX && n->fsync_trunc - 1 < upto)
        upto = n->fsync_trunc - 1;
    if (upto > n->last)
        upto = n->last;
    if (upto > n->durable)
        n->durable = upto;
    sim_trace(w, n, "fsync done: durable up to %" PRIu64, n->durable);
    dl_raft_update_t u;
    dl_raft_persisted(n->r, n->durable, w->now, &u);
    sim_carry_out(w, n, &u);
    sim_schedule_iter(w, n);
}

static int is_leader(const struct sim_node *n)
{
    return n->up && dl_raft_role(n->r) == DL_RAFT_LEADER;
}

static void on_client(struct sim_world *w)
{
    sim_schedule(w, gap(w, w->client_gap), EV_CLIENT, 0, 0);
    size_t cand[SIM_MAX_NODES], nc = 0;
    for (size_t i = 0; i < w->n; i++)
        if (is_leader(&w->nodes[i]) && w->nodes[i].stalled_until <= w->now)
            cand[nc++] = i;
    if (nc == 0)
        return;
    size_t ni = cand[sim_rng_below(&w->rng, nc)];
    struct sim_node *n = &w->nodes[ni];
    /* Back-pressure, as a server's write timeout gives: no more than SIM_MAX_BACKLOG entries
     * waiting for a commit (otherwise a leader without a quorum builds an unbounded backlog). */
    if (dl_raft_last_index(n->r) - dl_raft_commit_index(n->r) >= SIM_MAX_BACKLOG)
        return;
    size_t count = (size_t)sim_rng_range(&w->rng, 1, 3);
    dl_raft_entry_t ents[3];
    uint8_t data[3][SIM_CLIENT_PAYLOAD];
    for (size_t k = 0; k < count; k++) {
        uint64_t id = w->n_props + k;
        memcpy(data[k], &id, 8);
        uint32_t len = (uint32_t)sim_rng_range(&w->rng, 8, SIM_CLIENT_PAYLOAD);
        for (uint32_t b = 8; b < len; b++)
            data[k][b] = (uint8_t)sim_rng_next(&w->rng);
        ents[k] = (dl_raft_entry_t){.type = DL_RAFT_ENTRY_NORMAL, .data = data[k], .len = len};
    }
    uint64_t first = 0;
    dl_raft_update_t u;
    int rv = dl_raft_propose(n->r, ents, count, &first, &u);
    if (rv != 0) {
        sim_trace(w, n, "client proposal refused: %d", rv);
        sim_carry_out(w, n, &u);
        return;
    }
    if (u.n_entries != count)
        return sim_fail(w, "n%" PRIu64 ": propose of %zu entries writes %zu", n->id, count,
                        u.n_entries);
    for (size_t k = 0; k < count; k++) {
        if (w->n_props == w->cap_props) {
            w->cap_props = w->cap_props ? w->cap_props * 2 : 256;
            w->props = realloc(w->props, w->cap_props * sizeof(*w->props));
            if (w->props == NULL)
                abort();
        }
        w->props[w->n_props++] = (struct proposal){
            .node = (uint32_t)ni, .index = first + k, .term = dl_raft_term(n->r), .at = w->now};
        w->res->proposals++;
    }
    sim_trace(w, n, "client proposes %zu entries at %" PRIu64, count, first);
    sim_carry_out(w, n, &u);
    sim_schedule_iter(w, n);
}

static size_t random_up_node(struct sim_world *w)
{
    size_t cand[SIM_MAX_NODES], nc = 0;
    for (size_t i = 0; i < w->n; i++)
        if (w->nodes[i].up && w->nodes[i].stalled_until <= w->now)
            cand[nc++] = i;
    return nc ? cand[sim_rng_below(&w->rng, nc)] : SIZE_MAX;
}

static void on_crash(struct sim_world *w)
{
    if (w->healing)
        return;
    sim_schedule(w, gap(w, w->crash_gap), EV_CRASH, 0, 0);
    size_t i = random_up_node(w);
    if (i == SIZE_MAX)
        return;
    crash_node(w, &w->nodes[i]);
    sim_schedule(w, sim_rng_range(&w->rng, 50, 3000), EV_RESTART, i, 0);
}

static void on_partition(struct sim_world *w)
{
    if (w->healing)
        return;
    sim_schedule(w, gap(w, w->partition_gap), EV_PARTITION, 0, 0);
    if (w->partitioned)
        return;
    int kind = (int)sim_rng_below(&w->rng, 3);
    int any = 0;
    if (kind == 2) {
        /* One-way cuts: each direction of each link independently. */
        for (size_t a = 0; a < w->n; a++)
            for (size_t b = 0; b < w->n; b++)
                if (a != b && sim_rng_chance(&w->rng, 300))
                    w->cut[a][b] = any = 1;
    } else {
        /* Symmetric: a random side against the rest (kind 1: one node alone). */
        int side[SIM_MAX_NODES] = {0};
        if (kind == 1) {
            side[sim_rng_below(&w->rng, w->n)] = 1;
        } else {
            for (size_t a = 0; a < w->n; a++)
                side[a] = (int)sim_rng_below(&w->rng, 2);
        }
        for (size_t a = 0; a < w->n; a++)
            for (size_t b = 0; b < w->n; b++)
                if (side[a] != side[b])
                    w->cut[a][b] = any = 1;
    }
    if (!any)
        return;
    w->partitioned = 1;
    if (w->opt.verbose) {
        char buf[256];
        size_t off = 0;
        for (size_t a = 0; a < w->n; a++)
            for (size_t b = 0; b < w->n; b++)
                if (w->cut[a][b] && off + 16 < sizeof(buf))
                    off += (size_t)snprintf(buf + off, sizeof(buf) - off, " %" PRIu64 "->%" PRIu64,
                                            w->ids[a], w->ids[b]);
        sim_trace(w, NULL, "PARTITION (%s):%s", kind == 2 ? "one-way" : "symmetric", buf);
    }
    for (size_t a = 0; a < w->n; a++)
        for (size_t b = a + 1; b < w->n; b++)
            if (w->cut[a][b] || w->cut[b][a])
                notify_links(w, a, b);
    sim_schedule(w, sim_rng_range(&w->rng, 100, 4000), EV_PARTITION_HEAL, 0, 0);
}

static void heal_partition(struct sim_world *w)
{
    if (!w->partitioned)
        return;
    sim_trace(w, NULL, "partition healed");
    for (size_t a = 0; a < w->n; a++)
        for (size_t b = a + 1; b < w->n; b++)
            if (w->cut[a][b] || w->cut[b][a])
                notify_links(w, a, b);
    memset(w->cut, 0, sizeof(w->cut));
    w->partitioned = 0;
}

static void on_stall(struct sim_world *w)
{
    if (w->healing)
        return;
    sim_schedule(w, gap(w, w->stall_gap), EV_STALL, 0, 0);
    size_t i = random_up_node(w);
    if (i == SIZE_MAX)
        return;
    struct sim_node *n = &w->nodes[i];
    n->stalled_until = w->now + sim_rng_range(&w->rng, 10, 1500);
    sim_trace(w, n, "driver stalls until %" PRIu64, n->stalled_until);
}

static void on_promote(struct sim_world *w)
{
    if (w->healing)
        return;
    sim_schedule(w, gap(w, w->promote_gap), EV_PROMOTE, 0, 0);
    size_t i = random_up_node(w);
    if (i == SIZE_MAX)
        return;
    struct sim_node *n = &w->nodes[i];
    dl_raft_update_t u;
    if (w->opt.mode == SIM_ELECTIONS && is_leader(n) && sim_rng_chance(&w->rng, 700)) {
        size_t to = (i + 1 + sim_rng_below(&w->rng, w->n - 1)) % w->n;
        int rv = dl_raft_transfer_leader(n->r, w->ids[to], w->now, &u);
        sim_trace(w, n, "operator: transfer leadership to n%" PRIu64 " -> %d", w->ids[to], rv);
        sim_carry_out(w, n, &u);
    } else {
        int rv = dl_raft_promote(n->r, w->now, &u);
        sim_trace(w, n, "operator: promote -> %d", rv);
        sim_carry_out(w, n, &u);
    }
    sim_schedule_iter(w, n);
}

/* Is id a member (voter or learner) of m? Returns 1 + its index, or 0. */
static size_t member_slot(const dl_raft_membership_t *m, uint64_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id)
            return i + 1;
    return 0;
}

/*
 * An operator changes the membership through the leader, one step at a time: a node outside
 * the cluster joins as a learner; a learner is promoted to voter; a voter (the leader too) is
 * removed while more than two remain; now and then a learner is removed again.
 */
static void on_membership(struct sim_world *w)
{
    sim_schedule(w, gap(w, w->membership_gap), EV_MEMBERSHIP, 0, 0);
    if (w->healing)
        return;
    size_t li = SIZE_MAX;
    for (size_t i = 0; i < w->n; i++)
        if (is_leader(&w->nodes[i]) && w->nodes[i].stalled_until <= w->now)
            li = i;
    if (li == SIZE_MAX)
        return;
    struct sim_node *n = &w->nodes[li];
    dl_raft_membership_t m;
    dl_raft_membership(n->r, &m);
    size_t voters = 0, learners = 0, outside = 0;
    for (size_t i = 0; i < m.n; i++)
        m.learner[i] ? learners++ : voters++;
    outside = w->n - m.n;
    unsigned roll = (unsigned)sim_rng_below(&w->rng, 100);
    const char *what;
    if (outside > 0 && roll < 60) {
        size_t k = sim_rng_below(&w->rng, outside);
        for (size_t i = 0; i < w->n; i++)
            if (!member_slot(&m, w->ids[i]) && k-- == 0) {
                m.ids[m.n] = w->ids[i];
                m.learner[m.n++] = 1;
                break;
            }
        what = "add a learner";
    } else if (learners > 0 && roll < 85) {
        size_t k = sim_rng_below(&w->rng, learners);
        for (size_t i = 0; i < m.n; i++)
            if (m.learner[i] && k-- == 0)
                m.learner[i] = roll < 80 ? 0 : 1;
        if (roll >= 80) {
            /* remove that learner instead */
            for (size_t i = 0; i < m.n; i++)
                if (m.learner[i]) {
                    m.ids[i] = m.ids[m.n - 1];
                    m.learner[i] = m.learner[m.n - 1];
                    m.n--;
                    break;
                }
            what = "remove a learner";
        } else {
            what = "promote a learner";
        }
    } else if (voters > 2) {
        size_t k = sim_rng_below(&w->rng, voters);
        for (size_t i = 0; i < m.n; i++)
            if (!m.learner[i] && k-- == 0) {
                m.ids[i] = m.ids[m.n - 1];
                m.learner[i] = m.learner[m.n - 1];
                m.n--;
                break;
            }
        what = "remove a voter";
    } else {
        return;
    }
    uint8_t payload[SIM_MAX_PAYLOAD];
    size_t len = dl_raft_membership_encode(&m, NULL, 0, payload, sizeof(payload));
    dl_raft_update_t u;
    uint64_t index = 0;
    int rv = dl_raft_propose_membership(n->r, payload, (uint32_t)len, &index, &u);
    char desc[128];
    size_t off = 0;
    for (size_t i = 0; i < m.n && off + 8 < sizeof(desc); i++)
        off += (size_t)snprintf(desc + off, sizeof(desc) - off, " %s%" PRIu64,
                                m.learner[i] ? "l" : "v", m.ids[i]);
    sim_trace(w, n, "operator: %s ->%s: %d (index %" PRIu64 ")", what, desc, rv, index);
    if (rv == 0)
        w->res->membership_changes++;
    sim_carry_out(w, n, &u);
    sim_schedule_iter(w, n);
}

static void on_heal_all(struct sim_world *w)
{
    w->healing = 1;
    w->heal_at = w->now;
    sim_trace(w, NULL, "HEALING: partitions healed, every node up, no more drops");
    heal_partition(w);
    for (size_t i = 0; i < w->n && !w->stop; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->stalled_until > w->now)
            n->stalled_until = w->now;
        if (!n->up) {
            n->incarnation++; /* the pending restart is void */
            start_node(w, n);
        }
    }
    if (w->opt.mode == SIM_ELECTIONS) {
        sim_schedule(w, w->bound_ms, EV_DEADLINE, 0, 1);
        sim_schedule(w, SIM_CONVERGE_MS, EV_DEADLINE, 0, 2);
    } else {
        sim_schedule(w, 2000, EV_DEADLINE, 0, 0);
    }
}

/* Elections, after healing: a proposal made since then commits within bound_ms (liveness),
 * and every node applies it within SIM_CONVERGE_MS (convergence). */
static void check_liveness(struct sim_world *w, int deadline)
{
    uint64_t li = w->live_index;
    size_t lagging = SIZE_MAX;
    /* Convergence is owed by the members of the leader's membership (a removed node hears
     * nothing more). */
    dl_raft_membership_t members = w->initial;
    for (size_t i = 0; i < w->n; i++)
        if (is_leader(&w->nodes[i]))
            dl_raft_membership(w->nodes[i].r, &members);
    for (size_t i = 0; i < w->n && li; i++)
        if (member_slot(&members, w->ids[i]) && w->nodes[i].sm_applied < li) {
            lagging = i;
            break;
        }
    if (li && lagging == SIZE_MAX) {
        w->res->converge_ms = w->now - w->heal_at;
        sim_trace(w, NULL,
                  "live: proposal %" PRIu64 " committed after %" PRIu64
                  " ms, applied everywhere after %" PRIu64 " ms",
                  li, w->res->liveness_ms, w->res->converge_ms);
        w->stop = 1;
        return;
    }
    if (deadline == 1 && li == 0) {
        uint64_t leader = 0;
        for (size_t i = 0; i < w->n; i++)
            if (is_leader(&w->nodes[i]))
                leader = w->ids[i];
        if (leader)
            sim_fail(w,
                     "liveness: %" PRIu64 " ms after healing, leader n%" PRIu64
                     " has committed no proposal made since",
                     w->bound_ms, leader);
        else
            sim_fail(w, "liveness: no leader %" PRIu64 " ms after healing", w->bound_ms);
    } else if (deadline == 2) {
        sim_fail(w,
                 "convergence: %d ms after healing, n%" PRIu64 " has applied only %" PRIu64
                 " of index %" PRIu64 ", committed %" PRIu64 " ms after healing",
                 SIM_CONVERGE_MS, w->ids[lagging], w->nodes[lagging].sm_applied, li,
                 w->res->liveness_ms);
    }
}

/* Node events wait while that node's driver is stalled. */
static int deferred(struct sim_world *w, struct event *e)
{
    struct sim_node *n = &w->nodes[e->node];
    if (n->stalled_until <= w->now)
        return 0;
    e->time = n->stalled_until;
    sim_push(w, *e);
    return 1;
}

static void dispatch(struct sim_world *w, struct event *e)
{
    struct sim_node *n = &w->nodes[e->node];
    int node_event = e->type == EV_ITER || e->type == EV_TICK || e->type == EV_FSYNC ||
                     e->type == EV_PEER_DOWN || e->type == EV_RESTART;
    if (node_event && e->inc != n->incarnation)
        return;
    if ((node_event || e->type == EV_DELIVER) && e->type != EV_RESTART && deferred(w, e))
        return;
    switch (e->type) {
    case EV_DELIVER:
        on_deliver(w, e);
        free(e->msg);
        break;
    case EV_ITER:
        on_iter(w, n);
        break;
    case EV_TICK: {
        sim_schedule(w, w->tick_ms, EV_TICK, e->node, 0);
        dl_raft_update_t u;
        dl_raft_tick(n->r, w->now, &u);
        sim_carry_out(w, n, &u);
        sim_schedule_iter(w, n);
        break;
    }
    case EV_FSYNC:
        on_fsync(w, n);
        break;
    case EV_PEER_DOWN:
        if (n->up)
            dl_raft_peer_down(n->r, e->arg);
        break;
    case EV_CLIENT:
        on_client(w);
        break;
    case EV_CRASH:
        on_crash(w);
        break;
    case EV_RESTART:
        if (!n->up)
            start_node(w, n);
        break;
    case EV_PARTITION:
        on_partition(w);
        break;
    case EV_PARTITION_HEAL:
        heal_partition(w);
        break;
    case EV_STALL:
        on_stall(w);
        break;
    case EV_PROMOTE:
        on_promote(w);
        break;
    case EV_HEAL_ALL:
        on_heal_all(w);
        break;
    case EV_MEMBERSHIP:
        on_membership(w);
        break;
    case EV_DEADLINE:
        if (e->arg)
            check_liveness(w, (int)e->arg);
        if (e->arg != 1)
            w->stop = 1;
        break;
    }
}

/* ---- One run ------------------------------------------------------------------------------ */

static void choose_parameters(struct sim_world *w)
{
    sim_rng_t *g = &w->rng;
    int elections = w->opt.mode == SIM_ELECTIONS;
    dl_raft_config_t *c = &w->base;
    memset(c, 0, sizeof(*c));
    c->nodes = w->ids;
    c->n_nodes = w->n;
    c->elections = elections;
    c->max_msg_bytes = (size_t)sim_rng_range(g, 64, 2048);
    c->max_inflight = (size_t)sim_rng_range(g, 1, 16);
    if (elections) {
        c->election_timeout_ms = sim_rng_range(g, 150, 400);
        c->heartbeat_ms = c->election_timeout_ms / sim_rng_range(g, 3, 8);
        c->disable_pre_vote = sim_rng_chance(g, 200);
        c->disable_check_quorum = sim_rng_chance(g, 200);
        /* 10 election timeouts, plus one: a node that restarts grants no vote for an election
         * timeout (it may belong to a read lease it no longer remembers). */
        w->bound_ms = 12 * c->election_timeout_ms;
        w->res->bound_ms = w->bound_ms;
    } else {
        c->static_leader = 1;
        c->heartbeat_ms = sim_rng_range(g, 20, 100);
        static const size_t quorum_choice[4] = {0, 0, 1, 2};
        size_t q = quorum_choice[sim_rng_below(g, 4)];
        c->commit_quorum = sim_rng_chance(g, 150) ? w->n : q;
        c->term_stride = sim_rng_chance(g, 500) ? w->n + sim_rng_below(g, 3) : 0;
    }
    w->tick_ms = c->heartbeat_ms / 2 ? c->heartbeat_ms / 2 : 1;
    w->delay_max = sim_rng_range(g, 2, 30);
    w->long_delay_pm = (unsigned)sim_rng_range(g, 0, 30);
    w->drop_pm = (unsigned)sim_rng_range(g, 0, 150);
    w->dup_pm = (unsigned)sim_rng_range(g, 0, 50);
    w->fsync_max = sim_rng_range(g, 1, 30);
    w->crash_gap = sim_rng_range(g, 1000, 6000);
    w->partition_gap = sim_rng_range(g, 1000, 5000);
    w->stall_gap = sim_rng_range(g, 1000, 5000);
    w->promote_gap = elections ? sim_rng_range(g, 3000, 10000) : sim_rng_range(g, 1500, 6000);
    w->client_gap = sim_rng_range(g, 5, 60);
    /* Most runs snapshot and compact, often, so that followers need snapshots. */
    w->snapshot_every = sim_rng_chance(g, 700) ? sim_rng_range(g, 5, 80) : 0;
    /* Membership changes need PreVote and CheckQuorum: without them a removed node that never
     * learned of its removal disrupts the cluster with its campaigns (thesis 4.2.3). */
    w->membership_gap =
        elections && !c->disable_pre_vote && !c->disable_check_quorum && sim_rng_chance(g, 700)
            ? sim_rng_range(g, 500, 4000)
            : 0;
    if (w->opt.verbose)
        fprintf(w->opt.trace,
                "seed %" PRIu64 " %s, %zu nodes: heartbeat %" PRIu64
                " ms, election timeout %" PRIu64 " ms, quorum %zu, stride %" PRIu64
                ", max_msg_bytes %zu, max_inflight %zu, "
                "pre_vote %s, check_quorum %s; delay 1..%" PRIu64 " ms (+long %u‰), drop %u‰, dup "
                "%u‰, fsync 1..%" PRIu64 " ms; mean gaps: crash %" PRIu64 ", partition %" PRIu64
                ", stall %" PRIu64 ", promote %" PRIu64 ", client %" PRIu64
                " ms; snapshot every %" PRIu64 " entries; membership change every %" PRIu64 " ms\n",
                w->opt.seed, elections ? "elections" : "static", w->n, c->heartbeat_ms,
                c->election_timeout_ms, c->commit_quorum, c->term_stride, c->max_msg_bytes,
                c->max_inflight, c->disable_pre_vote ? "off" : "on",
                c->disable_check_quorum ? "off" : "on", w->delay_max, w->long_delay_pm, w->drop_pm,
                w->dup_pm, w->fsync_max, w->crash_gap, w->partition_gap, w->stall_gap,
                w->promote_gap, w->client_gap, w->snapshot_every, w->membership_gap);
}

int sim_run(const sim_options_t *opt, sim_result_t *res)
{
    memset(res, 0, sizeof(*res));
    struct sim_world *w = calloc(1, sizeof(*w));
    if (w == NULL)
        abort();
    w->opt = *opt;
    w->res = res;
    w->n = (size_t)opt->nodes;
    sim_rng_seed(&w->rng, opt->seed ^ ((uint64_t)opt->mode << 56) ^ ((uint64_t)opt->nodes << 48));
    for (size_t i = 0; i < w->n; i++) {
        w->ids[i] = i + 1;
        w->nodes[i].id = i + 1;
        w->nodes[i].fsync_trunc = UINT64_MAX;
        w->nodes[i].log_first = 1;
        sim_ensure_log(&w->nodes[i], 1);
    }
    choose_parameters(w);
    w->initial.n = w->n;
    for (size_t i = 0; i < w->n; i++)
        w->initial.ids[i] = w->ids[i];
    if (sim_check_init(w) != 0)
        abort();
    for (size_t i = 0; i < w->n && !w->stop; i++)
        start_node(w, &w->nodes[i]);
    sim_schedule(w, sim_rng_range(&w->rng, 1, 50), EV_CLIENT, 0, 0);
    sim_schedule(w, gap(w, w->crash_gap), EV_CRASH, 0, 0);
    sim_schedule(w, gap(w, w->partition_gap), EV_PARTITION, 0, 0);
    sim_schedule(w, gap(w, w->stall_gap), EV_STALL, 0, 0);
    sim_schedule(w, gap(w, w->promote_gap), EV_PROMOTE, 0, 0);
    if (w->membership_gap)
        sim_schedule(w, gap(w, w->membership_gap), EV_MEMBERSHIP, 0, 0);
    sim_schedule(w, opt->fault_ms, EV_HEAL_ALL, 0, 0);
    while (!w->stop && w->n_heap > 0) {
        struct event e = pop(w);
        w->now = e.time;
        res->events++;
        res->hash = sim_hash_u64(res->hash, e.time ^ ((uint64_t)e.type << 48) ^
                                                ((uint64_t)e.node << 40) ^ (e.arg << 8));
        dispatch(w, &e);
        if (!w->stop && w->healing && opt->mode == SIM_ELECTIONS)
            check_liveness(w, 0);
    }
    res->end_ms = w->now;
    while (w->n_heap > 0) {
        struct event e = pop(w);
        free(e.msg);
    }
    free(w->heap);
    for (size_t i = 0; i < w->n; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->r)
            dl_raft_free(n->r);
        if (n->up && n->hs.term > res->max_term)
            res->max_term = n->hs.term;
        free(n->log);
        free(n->sm);
        free(n->hist);
        free(n->snap);
        free(n->rcv);
        free(n->confs);
    }
    sim_check_free(w);
    free(w->props);
    free(w);
    return res->failed ? -1 : 0;
}
