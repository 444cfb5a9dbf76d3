/*
 * The driver of each simulated node: its disk (a log with a durable prefix), the network it sends
 * on (delay, drop, duplication, reordering, cut links), and sim_carry_out, which executes a
 * dl_raft_update_t in the order raft.h prescribes while checking what the core asks for.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

/* ---- Disk --------------------------------------------------------------------------------- */

void sim_ensure_log(struct sim_node *n, uint64_t index)
{
    if (index < n->log_cap)
        return;
    size_t cap = n->log_cap ? n->log_cap : 256;
    while (cap <= index)
        cap *= 2;
    n->log = realloc(n->log, cap * sizeof(*n->log));
    if (n->log == NULL)
        abort();
    memset(n->log + n->log_cap, 0, (cap - n->log_cap) * sizeof(*n->log));
    n->log_cap = cap;
}

/* ---- Network ------------------------------------------------------------------------------ */

size_t sim_node_index(struct sim_world *w, uint64_t id)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->ids[i] == id)
            return i;
    return SIZE_MAX;
}

static struct sim_msg *msg_alloc(uint32_t n_entries, uint32_t chunk_bytes)
{
    size_t bytes = sizeof(struct sim_msg) + n_entries * sizeof(dl_raft_entry_t) +
                   n_entries * (size_t)SIM_MAX_PAYLOAD + chunk_bytes;
    struct sim_msg *sm = malloc(bytes);
    if (sm == NULL)
        abort();
    sm->ents = (dl_raft_entry_t *)(sm + 1);
    sm->payload = (uint8_t(*)[SIM_MAX_PAYLOAD])(sm->ents + n_entries);
    sm->chunk = (uint8_t *)(sm->payload + n_entries);
    return sm;
}

void sim_msg_fix(struct sim_msg *sm)
{
    sm->m.entries = sm->m.n_entries ? sm->ents : NULL;
    for (uint32_t k = 0; k < sm->m.n_entries; k++)
        sm->ents[k].data = sm->payload[k];
    sm->chunk = (uint8_t *)(sm->payload + sm->m.n_entries);
    sm->m.data = sm->m.data_len ? sm->chunk : NULL;
}

static struct sim_msg *msg_dup(const struct sim_msg *src)
{
    struct sim_msg *sm = msg_alloc(src->m.n_entries, src->m.data_len);
    sm->m = src->m;
    memcpy(sm->ents, src->ents, src->m.n_entries * sizeof(dl_raft_entry_t));
    memcpy(sm->payload, src->payload, src->m.n_entries * (size_t)SIM_MAX_PAYLOAD);
    sim_msg_fix(sm);
    if (src->m.data_len)
        memcpy(sm->chunk, src->chunk, src->m.data_len);
    return sm;
}

const dl_raft_membership_t *sim_conf_at(struct sim_world *w, struct sim_node *n, uint64_t index)
{
    if (index > 0 && index == n->snap_index)
        return &n->snap_conf;
    for (size_t i = n->n_confs; i > 0; i--)
        if (n->confs[i - 1].index <= index)
            return &n->confs[i - 1].m;
    return &w->initial;
}

uint64_t sim_snap_size(struct sim_world *w, struct sim_node *n, uint64_t index)
{
    return index * SIM_SNAP_ENTRY_BYTES +
           dl_raft_membership_encode(sim_conf_at(w, n, index), NULL, 0, NULL, 0);
}

/* Byte `off` of n's snapshot at index as it would be stored: per index, term then content
 * hash; then the membership (conf, encoded). */
static uint8_t snap_byte(const struct sim_node *n, uint64_t index, const uint8_t *conf,
                         uint64_t off)
{
    if (off >= index * SIM_SNAP_ENTRY_BYTES)
        return conf[off - index * SIM_SNAP_ENTRY_BYTES];
    uint64_t i = off / SIM_SNAP_ENTRY_BYTES + 1, k = off % SIM_SNAP_ENTRY_BYTES;
    uint64_t v = k < 8 ? n->snap[i].term : n->snap[i].chash;
    return (uint8_t)(v >> (8 * (k % 8)));
}

void sim_record_conf(struct sim_node *n, uint64_t index, const dl_raft_membership_t *m)
{
    while (n->n_confs > 0 && n->confs[n->n_confs - 1].index >= index)
        n->n_confs--;
    if (n->n_confs == n->cap_confs) {
        n->cap_confs = n->cap_confs ? 2 * n->cap_confs : 8;
        n->confs = realloc(n->confs, n->cap_confs * sizeof(*n->confs));
        if (n->confs == NULL)
            abort();
    }
    n->confs[n->n_confs].index = index;
    n->confs[n->n_confs].m = *m;
    n->n_confs++;
}

void sim_forget_confs_after(struct sim_node *n, uint64_t applied)
{
    while (n->n_confs > 0 && n->confs[n->n_confs - 1].index > applied)
        n->n_confs--;
}

static uint64_t net_delay(struct sim_world *w)
{
    uint64_t d = sim_rng_range(&w->rng, 1, w->delay_max);
    if (!w->healing && sim_rng_chance(&w->rng, w->long_delay_pm))
        d += sim_rng_range(&w->rng, w->delay_max, 10 * w->delay_max);
    return d;
}

/* Puts a message on the wire; the driver fills APPEND payloads from the sender's log. */
static void net_send(struct sim_world *w, struct sim_node *from, const dl_raft_msg_t *m)
{
    size_t to = sim_node_index(w, m->to);
    size_t fi = (size_t)(from - w->nodes);
    if (to == SIZE_MAX || m->from != from->id) {
        sim_fail(w, "n%" PRIu64 " sends a message from n%" PRIu64 " to unknown node n%" PRIu64,
                 from->id, m->from, m->to);
        return;
    }
    /* A transfer may go on with an older snapshot than the latest; its bytes are a prefix of
     * the latest one's (the driver keeps snapshots that are being sent). */
    if (m->type == DL_RAFT_MSG_SNAPSHOT &&
        (m->snap_index > from->snap_index || m->snap_term != from->snap[m->snap_index].term ||
         m->snap_size != sim_snap_size(w, from, m->snap_index) || m->data != NULL)) {
        sim_fail(w,
                 "n%" PRIu64 " sends a chunk of snapshot %" PRIu64 "/%" PRIu64 " (%" PRIu64
                 " bytes) but holds snapshot %" PRIu64 "/%" PRIu64,
                 from->id, m->snap_index, m->snap_term, m->snap_size, from->snap_index,
                 from->snap_term);
        return;
    }
    struct sim_msg *sm = msg_alloc(m->n_entries, m->data_len);
    sm->m = *m;
    if (m->data_len > 0) {
        uint8_t conf[2 + 9 * SIM_MAX_NODES];
        dl_raft_membership_encode(sim_conf_at(w, from, m->snap_index), NULL, 0, conf, sizeof(conf));
        for (uint32_t k = 0; k < m->data_len; k++)
            sm->chunk[k] = snap_byte(from, m->snap_index, conf, m->snap_offset + k);
    }
    for (uint32_t k = 0; k < m->n_entries; k++) {
        const dl_raft_entry_t *e = &m->entries[k];
        if (e->index != m->prev_index + 1 + k || e->index > from->last ||
            e->index < from->log_first || from->log[e->index].term != e->term ||
            from->log[e->index].len != e->len) {
            sim_fail(w,
                     "n%" PRIu64 " sends APPEND entry %" PRIu64 " term %" PRIu64 " (prev %" PRIu64
                     ", k %" PRIu32 ") that its log (last %" PRIu64 ") does not hold that way",
                     from->id, e->index, e->term, m->prev_index, k, from->last);
            free(sm);
            return;
        }
        sm->ents[k] = *e;
        memcpy(sm->payload[k], from->log[e->index].data, e->len);
    }
    sim_msg_fix(sm);
    sim_result_t *res = w->res;
    res->hash = sim_hash_u64(res->hash, ((uint64_t)m->type << 32) | (m->from << 16) | m->to);
    res->hash = sim_hash_u64(res->hash, m->term);
    res->hash = sim_hash_u64(res->hash, m->prev_index ^ (m->prev_term << 20) ^ (m->commit << 40));
    res->hash = sim_hash_u64(res->hash, m->n_entries ^ ((uint64_t)m->reject << 32) ^
                                            (m->match_index << 33) ^ m->hint_index);
    res->hash = sim_hash_u64(res->hash, m->snap_index ^ (m->snap_offset << 24) ^ m->data_len);
    char desc[200];
    if (w->opt.verbose)
        sim_describe_msg(m, desc, sizeof(desc));
    if (w->cut[fi][to]) {
        sim_trace(w, from, "send %s: lost (link cut)", desc);
        free(sm);
        return;
    }
    if (!w->healing && sim_rng_chance(&w->rng, w->drop_pm)) {
        sim_trace(w, from, "send %s: dropped", desc);
        free(sm);
        return;
    }
    uint64_t d = net_delay(w);
    sim_trace(w, from, "send %s (arrives +%" PRIu64 " ms)", desc, d);
    struct event e = {.time = w->now + d, .type = EV_DELIVER, .node = (uint8_t)to, .msg = sm};
    if (!w->healing && sim_rng_chance(&w->rng, w->dup_pm)) {
        struct event e2 = e;
        e2.msg = msg_dup(sm);
        e2.time = w->now + net_delay(w);
        sim_trace(w, from, "  duplicated (copy arrives at %" PRIu64 ")", e2.time);
        sim_push(w, e2);
    }
    sim_push(w, e);
}

/* ---- The driver: one update, in order ----------------------------------------------------- */

static void apply_entries(struct sim_world *w, struct sim_node *n, uint64_t upto);
static void receive_chunk(struct sim_world *w, struct sim_node *n,
                          const dl_raft_snapshot_chunk_t *c);
static void take_file_snapshot(struct sim_world *w, struct sim_node *n);

void sim_carry_out(struct sim_world *w, struct sim_node *n, const dl_raft_update_t *u)
{
    sim_result_t *res = w->res;
    res->hash = sim_hash_u64(res->hash, u->hardstate_changed ? u->hardstate.term : 0);
    res->hash = sim_hash_u64(res->hash, u->hardstate_changed ? u->hardstate.vote : 0);
    res->hash = sim_hash_u64(res->hash, u->truncate_from ^ (u->n_entries << 40));
    res->hash = sim_hash_u64(res->hash, u->n_msgs ^ (u->apply_to << 16));
    res->hash = sim_hash_u64(res->hash, ((uint64_t)u->reset_all << 62) ^
                                            (u->chunk ? u->chunk->offset ^ u->chunk->len : 0));
    /* 1. The hard state, durably, before any message leaves. */
    if (u->hardstate_changed) {
        if (u->hardstate.term < n->hs.term)
            return sim_fail(w, "n%" PRIu64 ": term goes back from %" PRIu64 " to %" PRIu64, n->id,
                            n->hs.term, u->hardstate.term);
        if (u->hardstate.term == n->hs.term && n->hs.vote != 0 && u->hardstate.vote != 0 &&
            u->hardstate.vote != n->hs.vote)
            return sim_fail(w,
                            "n%" PRIu64 ": votes twice in term %" PRIu64 " (n%" PRIu64
                            ", then n%" PRIu64 ")",
                            n->id, n->hs.term, n->hs.vote, u->hardstate.vote);
        sim_trace(w, n, "persist hardstate term %" PRIu64 " vote %" PRIu64, u->hardstate.term,
                  u->hardstate.vote);
        n->hs = u->hardstate;
    } else if (u->hardstate.term != n->hs.term || u->hardstate.vote != n->hs.vote) {
        return sim_fail(w,
                        "n%" PRIu64 ": hard state is term %" PRIu64 " vote %" PRIu64
                        " but the update does not ask to persist it (disk has %" PRIu64 "/%" PRIu64
                        ")",
                        n->id, u->hardstate.term, u->hardstate.vote, n->hs.term, n->hs.vote);
    }
    /* 2. Truncate, then write. */
    if (u->reset_all) {
        if (w->opt.mode == SIM_ELECTIONS)
            return sim_fail(w,
                            "State Machine Safety: n%" PRIu64
                            " finds entries of its snapshot (up to %" PRIu64
                            ") in conflict with the leader and resets everything",
                            n->id, n->snap_index);
        sim_trace(w, n, "RESET ALL: log, snapshot %" PRIu64 " and state machine", n->snap_index);
        if (sim_check_reset(w, n, 1, u->discarded_applied))
            return;
        n->last = n->durable = 0;
        n->log_first = 1;
        n->snap_index = n->snap_term = 0;
        n->sm_applied = n->sm_durable = 0;
        n->fsync_trunc = 1;
        n->n_confs = 0;
    }
    if (u->truncate_from) {
        if (u->truncate_from > n->last || u->truncate_from < n->log_first ||
            u->truncate_from <= n->snap_index)
            return sim_fail(w,
                            "n%" PRIu64 ": truncates from %" PRIu64 " but its log ends at %" PRIu64,
                            n->id, u->truncate_from, n->last);
        if (dl_raft_role(n->r) == DL_RAFT_LEADER)
            return sim_fail(w,
                            "Leader Append-Only: n%" PRIu64 ", leader of term %" PRIu64
                            ", truncates its log from %" PRIu64,
                            n->id, dl_raft_term(n->r), u->truncate_from);
        sim_trace(w, n, "truncate from %" PRIu64 " (%" PRIu64 " entries, %" PRIu64 " applied)",
                  u->truncate_from, u->discarded, u->discarded_applied);
        if (sim_check_truncate(w, n, u->truncate_from))
            return;
        n->last = u->truncate_from - 1;
        if (n->durable > n->last)
            n->durable = n->last;
        if (u->truncate_from < n->fsync_trunc)
            n->fsync_trunc = u->truncate_from;
    }
    if (u->reset_state_machine && !u->reset_all) {
        sim_trace(w, n, "reset the state machine (applied %" PRIu64 ")", n->sm_applied);
        if (sim_check_reset(w, n, u->truncate_from, u->discarded_applied))
            return;
        /* Only possible while the log still starts at 1: it is rebuilt from the log. */
        if (n->log_first != 1)
            return sim_fail(
                w, "n%" PRIu64 ": state machine reset with a compacted log (first %" PRIu64 ")",
                n->id, n->log_first);
        n->sm_applied = n->sm_durable = 0;
        sim_forget_confs_after(n, 0);
    }
    for (size_t i = 0; i < u->n_entries; i++) {
        const dl_raft_entry_t *e = &u->entries[i];
        if (e->index != n->last + 1 || e->index < n->log_first)
            return sim_fail(w,
                            "%sn%" PRIu64 " writes index %" PRIu64 " but its log ends at %" PRIu64,
                            dl_raft_role(n->r) == DL_RAFT_LEADER ? "Leader Append-Only: " : "",
                            n->id, e->index, n->last);
        if (e->len > SIM_MAX_PAYLOAD || (e->len > 0 && e->data == NULL))
            return sim_fail(
                w, "n%" PRIu64 " writes index %" PRIu64 " with a bad payload (%" PRIu32 " bytes)",
                n->id, e->index, e->len);
        sim_ensure_log(n, e->index);
        struct sim_entry *s = &n->log[e->index];
        s->term = e->term;
        s->type = e->type;
        s->len = e->len;
        memset(s->data, 0, sizeof(s->data));
        if (e->len)
            memcpy(s->data, e->data, e->len);
        s->chash = sim_hash_bytes(sim_hash_u64(e->term, e->type), s->data, s->len);
        s->phash = sim_hash_u64(n->log[e->index - 1].phash, s->chash ^ e->index);
        n->last = e->index;
        res->hash = sim_hash_u64(res->hash, s->chash);
        if (sim_check_write(w, n, e->index))
            return;
    }
    if (u->n_entries)
        sim_trace(w, n, "write %" PRIu64 "..%" PRIu64 " term %" PRIu64, u->entries[0].index,
                  u->entries[u->n_entries - 1].index, u->entries[u->n_entries - 1].term);
    /* 3. Send. */
    for (size_t i = 0; i < u->n_msgs && !w->stop; i++)
        net_send(w, n, &u->msgs[i]);

    /* 4. Apply. */
    if (!w->stop && u->apply_to > n->sm_applied)
        apply_entries(w, n, u->apply_to);
    if (!w->stop)
        sim_check_roles(w, n);
    if (u->snapshot_needed && !w->stop)
        take_file_snapshot(w, n);
    if (u->chunk && !w->stop)
        receive_chunk(w, n, u->chunk); /* installs it, calling into the core, when complete */
}

static void apply_entries(struct sim_world *w, struct sim_node *n, uint64_t upto)
{
    if (n->sm_applied + 1 < n->log_first)
        return sim_fail(w,
                        "n%" PRIu64 " is told to apply from %" PRIu64
                        " but its log starts at %" PRIu64 " (snapshot %" PRIu64 ")",
                        n->id, n->sm_applied + 1, n->log_first, n->snap_index);
    if (upto > n->durable)
        return sim_fail(w,
                        "n%" PRIu64 " is told to apply up to %" PRIu64
                        " but its log is durable only up to %" PRIu64 " (last %" PRIu64 ")",
                        n->id, upto, n->durable, n->last);
    sim_applied_reserve(&n->sm, &n->sm_cap, upto);
    for (uint64_t i = n->sm_applied + 1; i <= upto; i++) {
        const struct sim_entry *e = &n->log[i];
        n->sm[i].term = e->term;
        n->sm[i].chash = e->chash;
        n->sm_applied = i;
        if (e->type == DL_RAFT_ENTRY_CONFIG) {
            dl_raft_membership_t m;
            if (dl_raft_membership_decode(e->data, e->len, &m, NULL, NULL) != 0)
                return sim_fail(w,
                                "n%" PRIu64 " applies a configuration entry at %" PRIu64
                                " that does not decode",
                                n->id, i);
            sim_record_conf(n, i, &m);
        }
        if (sim_check_apply(w, n, i))
            return;
        if (e->type == DL_RAFT_ENTRY_NORMAL && e->len >= 8) {
            uint64_t id;
            memcpy(&id, e->data, 8);
            if (id < w->n_props) {
                struct proposal *p = &w->props[id];
                if (!p->committed && p->node == (uint32_t)(n - w->nodes) && p->index == i &&
                    p->term == e->term) {
                    p->committed = 1;
                    w->res->committed++;
                    if (w->healing && p->at >= w->heal_at && w->live_index == 0) {
                        w->live_index = i;
                        w->res->liveness_ms = w->now - w->heal_at;
                    }
                }
            }
        }
    }
    sim_trace(w, n, "apply up to %" PRIu64, upto);
    dl_raft_applied(n->r, upto);
    if (sim_rng_chance(&w->rng, 500))
        n->sm_durable = n->sm_applied; /* the state machine's own commit */
    sim_maybe_snapshot(w, n);
}

/* Writes a snapshot file of the state machine (the leader's driver, when a follower needs one). */
static void take_file_snapshot(struct sim_world *w, struct sim_node *n)
{
    uint64_t index = n->sm_applied;
    if (index == 0 || (n->snap_index > 0 && n->snap_index + 1 >= dl_raft_first_index(n->r)))
        return; /* the file it has still reaches the log */
    sim_applied_reserve(&n->snap, &n->snap_cap, index);
    for (uint64_t i = 1; i <= index; i++)
        n->snap[i] = n->sm[i];
    int rv = dl_raft_snapshot_taken(n->r, index, sim_snap_size(w, n, index));
    if (rv != 0)
        return sim_fail(w, "n%" PRIu64 ": dl_raft_snapshot_taken(%" PRIu64 ") failed: %d", n->id,
                        index, rv);
    n->snap_conf = *sim_conf_at(w, n, index); /* before snap_index moves */
    n->snap_index = index;
    n->snap_term = n->sm[index].term;
    sim_trace(w, n, "snapshot file at %" PRIu64 " term %" PRIu64 " for a follower", index,
              n->snap_term);
}

/* Every snapshot_every applied entries: the state machine is made durable (as the kv node
 * fsyncs SQLite's files), and the log before it compacted, but for a random margin. */
void sim_maybe_snapshot(struct sim_world *w, struct sim_node *n)
{
    if (w->snapshot_every == 0 || n->sm_applied < n->compacted_at + w->snapshot_every)
        return;
    uint64_t index = n->sm_applied;
    n->sm_durable = index;
    n->compacted_at = index;
    uint64_t keep = sim_rng_below(&w->rng, w->snapshot_every + 1);
    uint64_t before = index + 1 > keep ? index + 1 - keep : 1;
    uint64_t first = dl_raft_compact(n->r, before);
    if (first < n->log_first || first > index + 1)
        return sim_fail(w,
                        "n%" PRIu64 ": compacting before %" PRIu64 " leaves first index %" PRIu64,
                        n->id, before, first);
    n->log_first = first;
    sim_trace(w, n, "state machine durable at %" PRIu64 "; log now starts at %" PRIu64, index,
              first);
}

/* Stores a chunk of an incoming snapshot; the last one installs it, as raft.h prescribes. */
static void receive_chunk(struct sim_world *w, struct sim_node *n,
                          const dl_raft_snapshot_chunk_t *c)
{
    if (c->offset == 0)
        n->rcv_len = 0;
    if (c->offset != n->rcv_len || c->size < c->index * SIM_SNAP_ENTRY_BYTES + 2 ||
        c->offset + c->len > c->size)
        return sim_fail(w,
                        "n%" PRIu64 ": snapshot chunk at %" PRIu64 " (+%" PRIu32 " of %" PRIu64
                        ") does not follow the %zu bytes received",
                        n->id, c->offset, c->len, c->size, n->rcv_len);
    if (n->rcv_cap < c->size) {
        n->rcv = realloc(n->rcv, c->size);
        if (n->rcv == NULL)
            abort();
        n->rcv_cap = c->size;
    }
    memcpy(n->rcv + c->offset, c->data, c->len);
    n->rcv_len += c->len;
    sim_trace(w, n, "snapshot %" PRIu64 " chunk %" PRIu64 "+%" PRIu32 "%s", c->index, c->offset,
              c->len, c->last ? " (last: install)" : "");
    if (!c->last)
        return;
    uint64_t index = c->index, term = c->term;
    if (index <= n->sm_applied)
        return sim_fail(w,
                        "n%" PRIu64 " is told to install snapshot %" PRIu64
                        " but has applied up to %" PRIu64,
                        n->id, index, n->sm_applied);
    /* Decode; the state machine becomes the snapshot, each entry checked like an apply. */
    sim_applied_reserve(&n->snap, &n->snap_cap, index);
    sim_applied_reserve(&n->sm, &n->sm_cap, index);
    for (uint64_t i = 1; i <= index; i++) {
        uint64_t t = 0, h = 0;
        for (int k = 0; k < 8; k++) {
            t |= (uint64_t)n->rcv[(i - 1) * SIM_SNAP_ENTRY_BYTES + k] << (8 * k);
            h |= (uint64_t)n->rcv[(i - 1) * SIM_SNAP_ENTRY_BYTES + 8 + k] << (8 * k);
        }
        n->snap[i] = (struct sim_applied){.term = t, .chash = h};
    }
    dl_raft_membership_t conf;
    if (dl_raft_membership_decode(n->rcv + index * SIM_SNAP_ENTRY_BYTES,
                                  c->size - index * SIM_SNAP_ENTRY_BYTES, &conf, NULL, NULL) != 0)
        return sim_fail(w, "n%" PRIu64 ": snapshot %" PRIu64 " holds no valid membership", n->id,
                        index);
    if (n->snap[index].term != term)
        return sim_fail(
            w, "n%" PRIu64 ": snapshot %" PRIu64 " says term %" PRIu64 " but holds %" PRIu64, n->id,
            index, term, n->snap[index].term);
    for (uint64_t i = 1; i <= index; i++) {
        if (i <= n->sm_applied && n->sm[i].chash != n->snap[i].chash) {
            if (w->opt.mode == SIM_ELECTIONS)
                return sim_fail(w,
                                "State Machine Safety: n%" PRIu64
                                " installs a snapshot whose entry %" PRIu64
                                " differs from the one it applied there",
                                n->id, i);
            /* Static mode: it had applied writes that a weaker-than-majority quorum committed
             * and the new leader never had; the snapshot replaces them (lost writes). */
            sim_trace(w, n, "the snapshot replaces entries applied here from %" PRIu64, i);
            if (sim_check_reset(w, n, i, n->sm_applied - i + 1))
                return;
            n->sm_applied = i - 1;
        }
        n->sm[i] = n->snap[i];
        if (i > n->sm_applied && sim_check_apply(w, n, i))
            return;
    }
    n->snap_index = index;
    n->snap_term = term;
    n->snap_conf = conf;
    n->sm_applied = n->sm_durable = index;
    sim_record_conf(n, index, &conf);
    /* The log: kept after the snapshot if it agrees there, else started anew after it. */
    if (dl_raft_term_at(n->r, index) == term && index <= n->last) {
        if (n->durable < index)
            n->durable = index;
    } else {
        if (n->fsync_trunc > index + 1)
            n->fsync_trunc = index + 1;
        sim_ensure_log(n, index + 1);
        struct sim_entry *s = &n->log[index];
        memset(s, 0, sizeof(*s));
        s->term = term;
        s->chash = n->snap[index].chash;
        s->phash = sim_check_phash(w, index, term);
        if (s->phash == 0)
            return sim_fail(w,
                            "n%" PRIu64 " installs snapshot %" PRIu64 "/%" PRIu64
                            " of an entry never written",
                            n->id, index, term);
        n->last = n->durable = index;
    }
    n->log_first = index + 1;
    sim_trace(w, n, "installed snapshot %" PRIu64 "/%" PRIu64 "; log %" PRIu64 "..%" PRIu64, index,
              term, n->log_first, n->last);
    dl_raft_update_t u;
    dl_raft_snapshot_installed(n->r, &conf, w->now, &u);
    sim_carry_out(w, n, &u);
}
