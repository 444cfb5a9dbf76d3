/*
 * The replication core: Raft's AppendEntries, commit by quorum, promotion and step-down.
 * Pure: every input arrives as an argument, every effect leaves through dl_raft_update_t.
 */
#include "ddialab/raft.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "raft/raft_internal.h"

int dl__raft_grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap * 2 : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *p = realloc(*buf, cap2 * elem);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = cap2;
    return 0;
}

uint64_t dl_raft_last_index(const dl_raft_t *r)
{
    return r->first_index + r->n_meta - 1;
}

uint64_t dl_raft_term_at(const dl_raft_t *r, uint64_t index)
{
    if (index == 0)
        return 0;
    if (index == r->first_index - 1)
        return r->prev_term;
    if (index < r->first_index || index > dl_raft_last_index(r))
        return 0;
    return r->meta[index - r->first_index].term;
}

size_t dl__raft_majority(size_t n)
{
    return n / 2 + 1;
}

/* Starts a fresh update: every call that takes an update clears it first. */
void dl__raft_begin(dl_raft_t *r, dl_raft_update_t *u)
{
    memset(u, 0, sizeof(*u));
    r->oom = 0;
    r->n_out_reads = 0;
    r->n_out_entries = 0;
    r->n_out_msgs = 0;
    r->n_out_msg_ents = 0;
    memset(&r->out_chunk, 0, sizeof(r->out_chunk));
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Fills the update's pointers once no buffer will move any more. */
void dl__raft_finish(dl_raft_t *r, dl_raft_update_t *u)
{
    if (r->n_cfgs > 1 || (r->role == DL_RAFT_LEADER && !r->self_voter))
        dl__raft_config_committed(r, u);
    for (size_t i = 0; i < r->n_out_msgs; i++)
        r->out_msgs[i].entries =
            r->out_msgs[i].n_entries ? r->out_msg_ents + r->out_msg_ent_off[i] : NULL;
    u->msgs = r->out_msgs;
    u->n_msgs = r->n_out_msgs;
    u->entries = r->out_entries;
    u->n_entries = r->n_out_entries;
    u->read_states = r->out_reads;
    u->n_read_states = r->n_out_reads;
    u->hardstate = r->hs;
    u->apply_to = min_u64(r->commit, r->persisted);
    if (u->apply_to < r->applied && !u->reset_state_machine)
        u->apply_to = r->applied;
    u->chunk = r->out_chunk.len > 0 || r->out_chunk.last ? &r->out_chunk : NULL;
    /* A file is worth making only for a follower that answers its heartbeats now (not one
     * that is down: it would be out of date again by the time the follower returns). */
    if (r->role == DL_RAFT_LEADER)
        for (size_t i = 0; i < r->n_peers; i++)
            if (r->peers[i].snapshot && r->peers[i].snap_index == 0 &&
                r->peers[i].last_ack_ms != 0 &&
                r->now_ms - r->peers[i].last_ack_ms < 3 * r->config.heartbeat_ms)
                u->snapshot_needed = 1;
}

dl_raft_msg_t *dl__raft_new_msg(dl_raft_t *r, uint8_t type, uint64_t to)
{
    if (dl__raft_grow((void **)&r->out_msgs, &r->cap_out_msgs, r->n_out_msgs + 1,
                      sizeof(dl_raft_msg_t)) ||
        dl__raft_grow((void **)&r->out_msg_ent_off, &r->cap_out_msg_off, r->n_out_msgs + 1,
                      sizeof(size_t))) {
        r->oom = 1;
        return NULL;
    }
    dl_raft_msg_t *m = &r->out_msgs[r->n_out_msgs];
    memset(m, 0, sizeof(*m));
    r->out_msg_ent_off[r->n_out_msgs] = r->n_out_msg_ents;
    r->n_out_msgs++;
    m->type = type;
    m->from = r->config.id;
    m->to = to;
    m->term = r->hs.term;
    m->last_index = dl_raft_last_index(r);
    m->last_term = dl_raft_term_at(r, m->last_index);
    return m;
}

struct progress *dl__raft_find_peer(dl_raft_t *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_peers; i++)
        if (r->peers[i].id == id)
            return &r->peers[i];
    return NULL;
}

/* Where to probe a follower whose stream broke: just past the end of its log as it last
 * reported it, which the consistency check and the rejection hints correct quickly, rather
 * than match + 1, which often means re-sending the whole log. */
static uint64_t probe_start(const struct progress *p, uint64_t last_index)
{
    uint64_t next = p->last_index + 1;
    if (next <= p->match)
        next = p->match + 1;
    if (next > last_index + 1)
        next = last_index + 1;
    return next;
}

void dl__raft_reset_to_probe(struct progress *p, uint64_t last_index)
{
    p->probing = 1;
    p->probe_sent = 0;
    p->inflight_count = 0;
    p->inflight_head = 0;
    if (p->next == 0 || p->next > last_index + 1)
        p->next = last_index + 1;
    if (p->next <= p->match)
        p->next = p->match + 1;
}

/*
 * Sends one APPEND to p starting at p->next, carrying as many entries as the size limit allows
 * (none for a pure heartbeat). In probe mode the leader waits for the answer before moving on;
 * in replicate mode it advances next optimistically and remembers the message as in flight.
 */
void dl__raft_send_append(dl_raft_t *r, struct progress *p, uint64_t now_ms, int with_entries)
{
    uint64_t last = dl_raft_last_index(r);
    if (p->snapshot && with_entries)
        return dl__raft_send_snapshot_chunks(r, p, now_ms);
    if (!p->snapshot && p->next < r->first_index) {
        /* What it needs next was compacted away. */
        dl__raft_start_snapshot(r, p);
        return dl__raft_send_snapshot_chunks(r, p, now_ms);
    }
    dl_raft_msg_t *m = dl__raft_new_msg(r, DL_RAFT_MSG_APPEND, p->id);
    if (m == NULL)
        return;
    /* A heartbeat to a streaming follower names the point known to match, not next - 1:
     * entries still in flight may not have arrived, and a heartbeat overtaking them would be
     * refused. One to a follower receiving a snapshot names index 0, which always matches. */
    if (p->snapshot)
        m->prev_index = 0;
    else
        m->prev_index = with_entries || p->probing ? p->next - 1 : p->match;
    m->prev_term = dl_raft_term_at(r, m->prev_index);
    m->commit = r->commit;
    m->context = r->read_round;
    p->commit_sent = r->commit;
    size_t bytes = 0;
    size_t max_bytes = r->config.max_msg_bytes;
    uint64_t idx = p->next;
    while (with_entries && idx <= last && m->n_entries < DL_RAFT_MSG_MAX_ENTRIES) {
        const struct entry_meta *e = &r->meta[idx - r->first_index];
        if (m->n_entries > 0 && bytes + e->len > max_bytes)
            break;
        if (dl__raft_grow((void **)&r->out_msg_ents, &r->cap_out_msg_ents, r->n_out_msg_ents + 1,
                          sizeof(dl_raft_entry_t))) {
            r->oom = 1;
            break;
        }
        dl_raft_entry_t *out = &r->out_msg_ents[r->n_out_msg_ents++];
        out->index = idx;
        out->term = e->term;
        out->type = e->type;
        out->len = e->len;
        out->data = NULL;
        bytes += e->len;
        m->n_entries++;
        idx++;
    }
    p->last_sent_ms = now_ms;
    if (p->probing) {
        p->probe_sent = 1;
    } else if (m->n_entries > 0) {
        p->next = idx;
        size_t slot = (p->inflight_head + p->inflight_count) % INFLIGHT_CAP;
        p->inflight[slot] = idx - 1;
        p->inflight_count++;
    }
}

/*
 * Sends every follower what it is missing, within the in-flight limit. With commit_only, a
 * follower that gets no entries but lags behind the commit index is told it in an empty APPEND;
 * that is done once per loop iteration (dl_raft_flush), not for every acknowledgement, so that
 * under load the commit index rides on the next entries instead of doubling the messages.
 */
void dl__raft_replicate(dl_raft_t *r, uint64_t now_ms, int commit_only)
{
    if (r->role != DL_RAFT_LEADER)
        return;
    uint64_t last = dl_raft_last_index(r);
    size_t max_inflight = r->config.max_inflight;
    for (size_t i = 0; i < r->n_peers; i++) {
        struct progress *p = &r->peers[i];
        if (p->snapshot) {
            dl__raft_send_snapshot_chunks(r, p, now_ms);
            continue;
        }
        if (p->probing) {
            if (!p->probe_sent)
                dl__raft_send_append(r, p, now_ms, 1);
            continue;
        }
        while (p->next <= last && p->inflight_count < max_inflight && !r->oom && !p->snapshot)
            dl__raft_send_append(r, p, now_ms, 1);
        /* Tell followers about a new commit index at once, not at the next heartbeat, so that
         * stale reads on followers lag by one round trip only. */
        if (commit_only && p->commit_sent < r->commit)
            dl__raft_send_append(r, p, now_ms, 0);
    }
}

/* Commits the highest index of the current term that commit_quorum nodes hold durably. */
void dl__raft_maybe_commit(dl_raft_t *r)
{
    if (r->role != DL_RAFT_LEADER)
        return;
    uint64_t matches[DL_RAFT_MAX_MEMBERS];
    size_t n = 0;
    if (r->self_voter)
        matches[n++] = r->persisted;
    for (size_t i = 0; i < r->n_peers && n < DL_RAFT_MAX_MEMBERS; i++)
        if (!r->peers[i].learner)
            matches[n++] = r->peers[i].match;
    /* Sort descending; n is small. */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && matches[j] > matches[j - 1]; j--) {
            uint64_t t = matches[j];
            matches[j] = matches[j - 1];
            matches[j - 1] = t;
        }
    size_t q = r->config.commit_quorum;
    if (q == 0 || q > n)
        return; /* cannot happen: a membership has a voter, and the quorum counts voters */
    uint64_t candidate = matches[q - 1];
    if (candidate > dl_raft_last_index(r))
        candidate = dl_raft_last_index(r);
    /* Raft commits only entries of the leader's own term by counting; earlier ones follow. */
    if (candidate > r->commit && dl_raft_term_at(r, candidate) == r->hs.term)
        r->commit = candidate;
}

static int append_meta(dl_raft_t *r, uint64_t term, uint8_t type, uint32_t len)
{
    if (dl__raft_grow((void **)&r->meta, &r->cap_meta, r->n_meta + 1, sizeof(struct entry_meta)))
        return -ENOMEM;
    r->meta[r->n_meta].term = term;
    r->meta[r->n_meta].type = type;
    r->meta[r->n_meta].len = len;
    r->n_meta++;
    return 0;
}

static int out_entry(dl_raft_t *r, uint64_t index, uint64_t term, uint8_t type, const void *data,
                     uint32_t len)
{
    if (dl__raft_grow((void **)&r->out_entries, &r->cap_out_entries, r->n_out_entries + 1,
                      sizeof(dl_raft_entry_t)))
        return -ENOMEM;
    dl_raft_entry_t *e = &r->out_entries[r->n_out_entries++];
    e->index = index;
    e->term = term;
    e->type = type;
    e->data = data;
    e->len = len;
    return 0;
}

/* The smallest term above r's current one that this node may lead (see term_stride). */
static uint64_t next_term(const dl_raft_t *r)
{
    uint64_t k = r->config.term_stride;
    uint64_t want = r->config.id % k;
    uint64_t t = r->hs.term + 1;
    return t + (want + k - t % k) % k;
}

void dl__raft_become_leader(dl_raft_t *r, uint64_t term, uint64_t now_ms, dl_raft_update_t *u)
{
    r->role = DL_RAFT_LEADER;
    r->reclaiming = 0;
    r->transfer_target = 0;
    r->lease_forfeited = 0;
    r->last_quorum_check_ms = now_ms;
    r->last_leader_contact_ms = now_ms;
    r->leader = r->config.id;
    if (r->hs.term != term || r->hs.vote != r->config.id) {
        r->hs.term = term;
        r->hs.vote = r->config.id;
        u->hardstate_changed = 1;
    }
    u->role_changed = 1;
    r->ack_pending = 0;
    uint64_t last = dl_raft_last_index(r);
    for (size_t i = 0; i < r->n_peers; i++) {
        struct progress *p = &r->peers[i];
        p->match = 0;
        p->next = last + 1;
        p->last_ack_ms = 0;
        p->snapshot = 0;
        dl__raft_reset_to_probe(p, last);
    }
    /* A no-op of the new term lets entries of earlier terms commit with it. */
    if (append_meta(r, term, DL_RAFT_ENTRY_NOOP, 0) == 0)
        out_entry(r, last + 1, term, DL_RAFT_ENTRY_NOOP, NULL, 0);
    else
        r->oom = 1;
    r->last_heartbeat_ms = now_ms;
    dl__raft_replicate(r, now_ms, 0);
    dl__raft_maybe_commit(r);
}

void dl__raft_become_follower(dl_raft_t *r, uint64_t term, uint64_t leader, dl_raft_update_t *u)
{
    if (r->role != DL_RAFT_FOLLOWER)
        u->role_changed = 1;
    r->role = DL_RAFT_FOLLOWER;
    dl__raft_fail_reads(r);
    if (r->config.elections) {
        /* A vote is for one term: a new term starts with none. Whom we follow is not a vote. */
        if (term != r->hs.term) {
            r->hs.term = term;
            r->hs.vote = 0;
            u->hardstate_changed = 1;
        }
        dl__raft_reset_election_timer(r, r->now_ms);
    } else if (term != r->hs.term || r->hs.vote != leader) {
        r->hs.term = term;
        r->hs.vote = leader;
        u->hardstate_changed = 1;
    }
    r->leader = leader;
    r->matched_upto = 0;
    r->ack_pending = 0;
    r->reclaiming = 0;
}

int dl_raft_new(const dl_raft_config_t *config, const dl_raft_hardstate_t *hardstate,
                uint64_t first_index, dl_raft_t **out)
{
    size_t members = config->n_nodes + config->n_learners;
    if (config->id == 0 || config->n_nodes == 0 || members > DL_RAFT_MAX_MEMBERS ||
        first_index == 0 || (config->n_learners > 0 && config->learners == NULL))
        return -EINVAL;
    dl_raft_membership_t initial = {.n = 0};
    for (size_t i = 0; i < members; i++) {
        uint64_t id =
            i < config->n_nodes ? config->nodes[i] : config->learners[i - config->n_nodes];
        if (id == 0)
            return -EINVAL;
        for (size_t j = 0; j < initial.n; j++)
            if (initial.ids[j] == id)
                return -EINVAL;
        initial.ids[initial.n] = id;
        initial.learner[initial.n++] = i >= config->n_nodes;
    }
    if (config->commit_quorum > config->n_nodes)
        return -EINVAL;
    dl_raft_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->config = *config;
    r->quorum_fixed = config->commit_quorum != 0;
    if (r->config.heartbeat_ms == 0)
        r->config.heartbeat_ms = 100;
    if (r->config.max_msg_bytes == 0)
        r->config.max_msg_bytes = 1 << 20;
    if (r->config.term_stride == 0)
        r->config.term_stride = 16;
    if (r->config.election_timeout_ms == 0)
        r->config.election_timeout_ms = 1000;
    r->rng = (config->seed ^ (config->id * 0x9E3779B97F4A7C15ULL)) | 1;
    if (r->config.max_inflight == 0 || r->config.max_inflight > INFLIGHT_CAP)
        r->config.max_inflight = 64;
    r->nodes = malloc(config->n_nodes * sizeof(uint64_t));
    r->peers = calloc(DL_RAFT_MAX_MEMBERS, sizeof(struct progress));
    r->cfgs = calloc(4, sizeof(*r->cfgs));
    if (r->nodes == NULL || r->peers == NULL || r->cfgs == NULL) {
        dl_raft_free(r);
        return -ENOMEM;
    }
    r->cap_cfgs = 4;
    memcpy(r->nodes, config->nodes, config->n_nodes * sizeof(uint64_t));
    r->config.nodes = r->nodes;
    r->config.learners = NULL;
    r->hs = *hardstate;
    r->first_index = first_index;
    r->role = DL_RAFT_FOLLOWER;
    r->initial = initial;
    r->cfgs[0].index = 0;
    r->cfgs[0].m = initial;
    r->n_cfgs = 1;
    dl__raft_apply_membership(r, &initial);
    *out = r;
    return 0;
}

int dl_raft_restore_entry(dl_raft_t *r, uint64_t term, uint8_t type, const void *data, uint32_t len)
{
    assert(!r->started);
    if (type == DL_RAFT_ENTRY_CONFIG &&
        (data == NULL ||
         dl_raft_membership_decode(data, len, &(dl_raft_membership_t){0}, NULL, NULL) != 0))
        return DL_ECORRUPT;
    int rv = append_meta(r, term, type, len);
    if (rv == 0 && type == DL_RAFT_ENTRY_CONFIG)
        dl__raft_config_appended(r, dl_raft_last_index(r), data, len, NULL);
    return rv;
}

void dl_raft_start(dl_raft_t *r, uint64_t persisted_index, uint64_t applied_index, uint64_t now_ms,
                   dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->started = 1;
    uint64_t last = dl_raft_last_index(r);
    r->persisted = min_u64(persisted_index, last);
    r->applied = applied_index;
    /* Everything applied was committed once; that much stays committed here. */
    r->commit = min_u64(applied_index, last);
    r->now_ms = now_ms;
    if (r->config.elections) {
        /* Everyone starts as a follower; the first election timeout starts an election. Until
         * then it grants no vote: it may have acknowledged a live leader just before a crash. */
        r->last_leader_contact_ms = now_ms;
        dl__raft_reset_election_timer(r, now_ms);
    } else if (r->hs.term == 0) {
        if (r->config.static_leader == r->config.id)
            dl__raft_become_leader(r, next_term(r), now_ms, u);
        else
            r->leader = r->config.static_leader;
    } else if (r->hs.vote == r->config.id) {
        /* It led before the restart. Someone may have been promoted meanwhile, or the others
         * may hold entries we lost: ask before leading again (see handle_reclaim_resp). */
        r->reclaiming = 1;
        r->n_reclaim_acks = 0;
    } else {
        r->leader = r->hs.vote;
    }
    dl__raft_finish(r, u);
}

void dl_raft_free(dl_raft_t *r)
{
    if (r == NULL)
        return;
    free(r->nodes);
    free(r->peers);
    free(r->meta);
    free(r->out_entries);
    free(r->out_msgs);
    free(r->out_msg_ent_off);
    free(r->out_msg_ents);
    free(r->reads);
    free(r->out_reads);
    free(r->cfgs);
    free(r);
}

static int propose(dl_raft_t *r, const dl_raft_entry_t *entries, size_t n, uint64_t *first_index,
                   dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    if (r->role != DL_RAFT_LEADER) {
        dl__raft_finish(r, u);
        return DL_ENOTLEADER;
    }
    if (r->transfer_target != 0) {
        dl__raft_finish(r, u);
        return DL_EBUSY; /* leadership is being handed over */
    }
    uint64_t first = dl_raft_last_index(r) + 1;
    for (size_t i = 0; i < n; i++) {
        if (append_meta(r, r->hs.term, entries[i].type, entries[i].len) != 0 ||
            out_entry(r, first + i, r->hs.term, entries[i].type, entries[i].data, entries[i].len) !=
                0) {
            /* Keep meta and output in step: drop what was added for this entry. */
            if (r->n_meta > 0 && dl_raft_last_index(r) == first + i)
                r->n_meta--;
            dl__raft_finish(r, u);
            u->n_entries = i;
            if (first_index)
                *first_index = first;
            return i > 0 ? 0 : -ENOMEM;
        }
        if (entries[i].type == DL_RAFT_ENTRY_CONFIG)
            dl__raft_config_appended(r, first + i, entries[i].data, entries[i].len, u);
    }
    if (first_index)
        *first_index = first;
    dl__raft_finish(r, u);
    return 0;
}

int dl_raft_propose(dl_raft_t *r, const dl_raft_entry_t *entries, size_t n, uint64_t *first_index,
                    dl_raft_update_t *u)
{
    for (size_t i = 0; i < n; i++)
        if (entries[i].type == DL_RAFT_ENTRY_CONFIG) {
            dl__raft_begin(r, u);
            dl__raft_finish(r, u);
            return -EINVAL; /* membership changes go through dl_raft_propose_membership */
        }
    return propose(r, entries, n, first_index, u);
}

int dl__raft_propose_config(dl_raft_t *r, const void *payload, uint32_t len, uint64_t *index,
                            dl_raft_update_t *u)
{
    dl_raft_entry_t e = {.type = DL_RAFT_ENTRY_CONFIG, .data = payload, .len = len};
    return propose(r, &e, 1, index, u);
}

void dl_raft_flush(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    dl__raft_replicate(r, now_ms, 1);
    dl__raft_start_read_round(r, now_ms);
    dl__raft_finish(r, u);
}

/* Answers an APPEND; match is only ever what this node holds durably. */
dl_raft_msg_t *dl__raft_append_resp(dl_raft_t *r, uint64_t to, int reject, uint64_t match,
                                    uint64_t hint)
{
    dl_raft_msg_t *m = dl__raft_new_msg(r, DL_RAFT_MSG_APPEND_RESP, to);
    if (m == NULL)
        return NULL;
    m->reject = (uint8_t)reject;
    m->match_index = match;
    m->hint_index = hint;
    return m;
}

/* Drops index `from` and everything after it, counting what was lost. Returns 1 if that
 * reaches into the snapshot, which resets everything (dl__raft_reset_all). */
static int truncate_from(dl_raft_t *r, uint64_t from, dl_raft_update_t *u)
{
    uint64_t last = dl_raft_last_index(r);
    assert(from >= r->first_index && from <= last);
    if (r->applied >= from && r->first_index > 1) {
        /* Applied entries go, and the log no longer reaches back far enough to rebuild the
         * state machine without them: start over from the leader. */
        dl__raft_reset_all(r, from, u);
        return 1;
    }
    u->truncate_from = from;
    u->discarded += last - from + 1;
    if (r->applied >= from) {
        for (uint64_t i = from; i <= r->applied && i <= last; i++)
            if (r->meta[i - r->first_index].type == DL_RAFT_ENTRY_NORMAL)
                u->discarded_applied++;
        u->reset_state_machine = 1;
        r->applied = 0; /* the driver rebuilds its state machine from the log */
    }
    r->n_meta = from - r->first_index;
    if (r->persisted >= from)
        r->persisted = from - 1;
    if (r->commit >= from)
        r->commit = from - 1;
    dl__raft_config_truncated(r, from, u);
    return 0;
}

/*
 * Tells `to` to campaign at once (leadership transfer). Its forced election may come whenever
 * the message arrives, however late in this term, so this leader's lease is forfeit for the rest
 * of the term: lease reads fall back to ReadIndex.
 */
static void send_timeout_now(dl_raft_t *r, uint64_t to)
{
    r->lease_forfeited = 1;
    dl__raft_new_msg(r, DL_RAFT_MSG_TIMEOUT_NOW, to);
}

/* An immediate answer to a heartbeat echoes its ReadIndex round: the leader may count it. */
static void echo_context(dl_raft_msg_t *resp, const dl_raft_msg_t *m)
{
    if (resp != NULL)
        resp->context = m->context;
}

int dl__raft_accept_leader(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                           dl_raft_update_t *u)
{
    if (r->role == DL_RAFT_LEADER) {
        /* Cannot happen: with elections, Election Safety; without, a node leads only terms of
         * its own residue class (term_stride). */
        return -1;
    }
    if (r->config.elections) {
        /* A leader of our term exists: a candidate of that term gives up. */
        if (r->role != DL_RAFT_FOLLOWER) {
            r->role = DL_RAFT_FOLLOWER;
            u->role_changed = 1;
        }
        r->leader = m->from;
        r->last_leader_contact_ms = now_ms;
        dl__raft_reset_election_timer(r, now_ms);
    } else {
        /* Like a vote, following is once per term in static mode: two promotions can never
         * make this node flip between two logs. */
        if (r->hs.vote != 0 && r->hs.vote != m->from)
            return -1;
        r->leader = m->from;
        if (r->hs.vote != m->from) {
            r->hs.vote = m->from;
            u->hardstate_changed = 1;
        }
    }
    return 0;
}

static void handle_append(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                          dl_raft_update_t *u)
{
    if (dl__raft_accept_leader(r, m, now_ms, u) != 0)
        return;
    uint64_t last = dl_raft_last_index(r);
    if (m->prev_index > last) {
        echo_context(dl__raft_append_resp(r, m->from, 1, m->prev_index, last), m);
        return;
    }
    if (m->prev_index >= r->first_index - 1 && dl_raft_term_at(r, m->prev_index) != m->prev_term) {
        /* Skip back over the whole conflicting term in one step. */
        uint64_t t = dl_raft_term_at(r, m->prev_index);
        uint64_t i = m->prev_index;
        while (i > r->first_index && dl_raft_term_at(r, i - 1) == t)
            i--;
        echo_context(dl__raft_append_resp(r, m->from, 1, m->prev_index, i - 1), m);
        return;
    }
    /* matched_upto speaks of one leader's log: a new term (even our own campaign in between)
     * makes it meaningless. Keeping it let a follower commit entries of an earlier leader that
     * the new one does not have (found by the simulator: a State Machine Safety violation). */
    if (r->matched_term != m->term) {
        r->matched_upto = 0;
        r->ack_pending = 0;
        r->matched_term = m->term;
    }
    /* The message may start inside the compacted prefix. Those entries are in our snapshot;
     * the one at the snapshot's own index can still be checked (a mismatch is possible only
     * where commit quorums are not majorities). */
    uint64_t base = r->first_index - 1;
    if (base > 0 && m->prev_index < base && base <= m->prev_index + m->n_entries &&
        m->entries[base - m->prev_index - 1].term != r->prev_term) {
        dl__raft_reset_all(r, base, u);
        echo_context(dl__raft_append_resp(r, m->from, 1, m->prev_index, 0), m);
        return;
    }
    int truncated = 0;
    for (uint32_t k = 0; k < m->n_entries; k++) {
        const dl_raft_entry_t *e = &m->entries[k];
        uint64_t idx = m->prev_index + 1 + k;
        if (idx < r->first_index)
            continue;
        if (idx <= dl_raft_last_index(r)) {
            if (dl_raft_term_at(r, idx) == e->term)
                continue;
            if (truncate_from(r, idx, u)) {
                echo_context(dl__raft_append_resp(r, m->from, 1, m->prev_index, 0), m);
                return;
            }
            truncated = 1;
        }
        if (append_meta(r, e->term, e->type, e->len) != 0 ||
            out_entry(r, idx, e->term, e->type, e->data, e->len) != 0) {
            r->oom = 1;
            if (dl_raft_last_index(r) == idx)
                r->n_meta--;
            echo_context(dl__raft_append_resp(r, m->from, 1, m->prev_index, dl_raft_last_index(r)),
                         m);
            return;
        }
        if (e->type == DL_RAFT_ENTRY_CONFIG)
            dl__raft_config_appended(r, idx, e->data, e->len, u);
    } /* What this message proves matches. A reordered older message proves less, but takes
       * nothing back: only a truncation in this very message lowers the point. */
    uint64_t matched = m->prev_index + m->n_entries;
    if (truncated || matched > r->matched_upto)
        r->matched_upto = matched;
    matched = r->matched_upto;
    uint64_t commit = min_u64(m->commit, matched);
    if (commit > r->commit)
        r->commit = commit;
    if (matched <= r->persisted || m->n_entries == 0) {
        echo_context(dl__raft_append_resp(r, m->from, 0, min_u64(matched, r->persisted), 0), m);
        r->ack_pending = matched > r->persisted;
    } else {
        r->ack_pending = 1;
    }
    (void)now_ms;
}

/*
 * A restarted former leader counts peers that answered its probe at its own term with a log no
 * more up to date than its own (Raft's vote rule); with a majority it leads again, at a new term
 * so that it never writes a second, different entry at an index and term it used before.
 */
static void handle_reclaim_resp(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                                dl_raft_update_t *u)
{
    uint64_t last = dl_raft_last_index(r);
    uint64_t last_term = dl_raft_term_at(r, last);
    int ours_up_to_date =
        last_term != m->last_term ? last_term > m->last_term : last >= m->last_index;
    if (!ours_up_to_date)
        return; /* that peer holds entries we lack: an operator should promote it instead */
    for (size_t i = 0; i < r->n_reclaim_acks; i++)
        if (r->reclaim_acks[i] == m->from)
            return;
    r->reclaim_acks[r->n_reclaim_acks++] = m->from;
    if (r->n_reclaim_acks + 1 >= dl__raft_majority(r->config.n_nodes))
        dl__raft_become_leader(r, next_term(r), now_ms, u);
}

static void handle_append_resp(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                               dl_raft_update_t *u)
{
    if (r->reclaiming) {
        handle_reclaim_resp(r, m, now_ms, u);
        return;
    }
    if (r->role != DL_RAFT_LEADER)
        return;
    struct progress *p = dl__raft_find_peer(r, m->from);
    if (p == NULL)
        return;
    p->last_ack_ms = now_ms;
    p->last_index = m->last_index;
    if (m->context > p->read_ack) {
        p->read_ack = m->context;
        dl__raft_confirm_reads(r);
    }
    uint64_t last = dl_raft_last_index(r);
    if (m->reject && p->snapshot)
        return; /* a heartbeat refused while the snapshot is on its way */
    if (m->reject) {
        /* match_index of a rejection names the prev_index it refused. Like etcd, ignore a
         * rejection about an earlier position: messages may arrive out of order. */
        uint64_t refused = m->match_index;
        if (m->hint_index < p->match && refused == p->match) {
            /* It refuses the point it once matched: it lost its disk. Start over from what it
             * has. */
            p->match = m->hint_index;
        } else if (p->probing ? refused != p->next - 1 : refused <= p->match) {
            return;
        }
        uint64_t next = m->hint_index + 1 < refused ? m->hint_index + 1 : refused;
        if (next <= p->match)
            next = p->match + 1;
        if (next < 1)
            next = 1;
        p->next = next;
        dl__raft_reset_to_probe(p, last);
        dl__raft_send_append(r, p, now_ms, 1);
        return;
    }
    if (m->match_index > last)
        return; /* cannot be: a follower never holds more of this term's log than the leader */
    if (m->match_index > p->match)
        p->match = m->match_index;
    while (p->inflight_count > 0 && p->inflight[p->inflight_head] <= p->match) {
        p->inflight_head = (p->inflight_head + 1) % INFLIGHT_CAP;
        p->inflight_count--;
    }
    if (p->snapshot && p->match + 1 < r->first_index) {
        /* It installed the snapshot we were sending, but our log was compacted past it
         * meanwhile: the latest one then. Otherwise the snapshot is still on its way. */
        if (p->match >= p->snap_index) {
            dl__raft_start_snapshot(r, p);
            dl__raft_send_snapshot_chunks(r, p, now_ms);
        }
        return;
    }
    if (p->probing || p->snapshot) {
        /* The logs agree up to match: stream from there on. */
        p->snapshot = 0;
        p->probing = 0;
        p->probe_sent = 0;
        p->inflight_count = 0;
        p->inflight_head = 0;
        p->next = p->match + 1;
    }
    dl__raft_maybe_commit(r);
    dl__raft_start_read_round(r, now_ms);
    if (r->transfer_target == p->id && p->match == dl_raft_last_index(r))
        send_timeout_now(r, p->id);
    dl__raft_replicate(r, now_ms, 0);
}

void dl_raft_step(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    /* Messages from nodes outside our membership are handled too (thesis 4.1): a leader may
     * lead under a configuration we have not heard of yet, or we one it has not. Only voters'
     * votes and members' acknowledgements count. */
    if (m->to != r->config.id || m->from == 0 || m->from == r->config.id) {
        dl__raft_finish(r, u);
        return;
    }
    int vote_request = m->type == DL_RAFT_MSG_VOTE || m->type == DL_RAFT_MSG_PRE_VOTE;
    if (m->term > r->hs.term) {
        if (vote_request && dl__raft_in_lease(r, m, now_ms)) {
            /* We hear from a live leader: a node asking for votes (one that was cut off, or
             * one that just restarted) must not depose it. */
            dl__raft_finish(r, u);
            return;
        }
        int future =
            m->type == DL_RAFT_MSG_PRE_VOTE || (m->type == DL_RAFT_MSG_PRE_VOTE_RESP && !m->reject);
        /* A higher term always wins: step down and follow whoever leads it. A pre-vote and its
         * granted answer only speak of a term that may come, so they change nothing. */
        int from_leader = m->type == DL_RAFT_MSG_APPEND || m->type == DL_RAFT_MSG_SNAPSHOT;
        if (!future)
            dl__raft_become_follower(r, m->term, from_leader ? m->from : 0, u);
    } else if (m->term < r->hs.term) {
        /* Tell a deposed leader or a stale candidate about the newer term. */
        if (m->type == DL_RAFT_MSG_APPEND || m->type == DL_RAFT_MSG_SNAPSHOT)
            dl__raft_append_resp(r, m->from, 1, 0, dl_raft_last_index(r));
        else if (vote_request && r->config.elections)
            dl__raft_step_election(r, m, now_ms, u); /* answers with a rejection in our term */
        dl__raft_finish(r, u);
        return;
    }
    switch (m->type) {
    case DL_RAFT_MSG_APPEND:
        handle_append(r, m, now_ms, u);
        break;
    case DL_RAFT_MSG_APPEND_RESP:
        handle_append_resp(r, m, now_ms, u);
        break;
    case DL_RAFT_MSG_SNAPSHOT:
        dl__raft_handle_snapshot(r, m, now_ms, u);
        break;
    case DL_RAFT_MSG_SNAPSHOT_RESP:
        dl__raft_handle_snapshot_resp(r, m, now_ms);
        break;
    default:
        if (r->config.elections)
            dl__raft_step_election(r, m, now_ms, u);
        break;
    }
    dl__raft_finish(r, u);
}

void dl_raft_tick(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    if (r->config.elections)
        dl__raft_election_tick(r, now_ms, u);
    if (r->reclaiming && now_ms - r->last_heartbeat_ms >= r->config.heartbeat_ms) {
        /* Probe every peer with an empty APPEND of our term: it changes nothing on them, and
         * each answer says their term and how far their log reaches. */
        r->last_heartbeat_ms = now_ms;
        uint64_t last = dl_raft_last_index(r);
        for (size_t i = 0; i < r->n_peers; i++) {
            dl_raft_msg_t *m = dl__raft_new_msg(r, DL_RAFT_MSG_APPEND, r->peers[i].id);
            if (m == NULL)
                break;
            m->prev_index = last;
            m->prev_term = dl_raft_term_at(r, last);
        }
    }
    if (r->role == DL_RAFT_LEADER && now_ms - r->last_heartbeat_ms >= r->config.heartbeat_ms) {
        r->last_heartbeat_ms = now_ms;
        dl__raft_new_round(r, now_ms); /* its acknowledgements renew the lease */
        for (size_t i = 0; i < r->n_peers; i++) {
            struct progress *p = &r->peers[i];
            if (p->snapshot) {
                dl__raft_snapshot_heartbeat(r, p, now_ms);
                continue;
            }
            /* Entries in flight and no progress for two heartbeats: they were lost (a dropped
             * message, a connection that broke without our noticing). Probe from the match. */
            int stalled = !p->probing && p->inflight_count > 0 && p->match == p->match_at_heartbeat;
            p->stalled_heartbeats = stalled ? p->stalled_heartbeats + 1 : 0;
            p->match_at_heartbeat = p->match;
            if (p->stalled_heartbeats >= 2) {
                p->stalled_heartbeats = 0;
                p->next = probe_start(p, dl_raft_last_index(r));
                dl__raft_reset_to_probe(p, dl_raft_last_index(r));
            }
            if (p->probing) {
                /* Re-send the probe: the last one may have gone to a closed connection. */
                p->probe_sent = 0;
                dl__raft_send_append(r, p, now_ms, 1);
            } else {
                dl__raft_send_append(r, p, now_ms, 0);
            }
        }
    }
    dl__raft_finish(r, u);
}

void dl_raft_persisted(dl_raft_t *r, uint64_t index, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    index = min_u64(index, dl_raft_last_index(r));
    if (index > r->persisted)
        r->persisted = index;
    if (r->role == DL_RAFT_LEADER) {
        dl__raft_maybe_commit(r);
    } else if (r->ack_pending && r->leader != 0) {
        dl__raft_append_resp(r, r->leader, 0, min_u64(r->matched_upto, r->persisted), 0);
        r->ack_pending = r->matched_upto > r->persisted;
    }
    (void)now_ms;
    dl__raft_finish(r, u);
}

void dl_raft_applied(dl_raft_t *r, uint64_t index)
{
    r->applied = index;
}

void dl_raft_peer_down(dl_raft_t *r, uint64_t id)
{
    struct progress *p = dl__raft_find_peer(r, id);
    if (p == NULL)
        return;
    if (p->snapshot) {
        p->snap_sent = p->snap_acked; /* resend what may have gone to the closed connection */
        return;
    }
    p->next = probe_start(p, dl_raft_last_index(r));
    dl__raft_reset_to_probe(p, dl_raft_last_index(r));
}

int dl_raft_promote(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    if (r->role == DL_RAFT_LEADER) {
        dl__raft_finish(r, u);
        return -EALREADY;
    }
    r->now_ms = now_ms;
    if (r->config.elections && !r->config.disable_check_quorum && r->leader != 0 &&
        now_ms - r->last_leader_contact_ms < r->config.election_timeout_ms) {
        /* Voting for itself now would break the live leader's read lease, which this node is
         * part of: a healthy leader is moved with dl_raft_transfer_leader. */
        dl__raft_finish(r, u);
        return DL_ELEADERALIVE;
    }
    if (r->config.elections)
        /* An operator's campaign starts at once but is not forced: voters that still hear a
         * live leader ignore it, so a leader's read lease is never broken from outside. */
        dl__raft_campaign(r, 0, 0, now_ms, u);
    else
        dl__raft_become_leader(r, next_term(r), now_ms, u);
    dl__raft_finish(r, u);
    return 0;
}

int dl_raft_transfer_leader(dl_raft_t *r, uint64_t to, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    int rv = 0;
    struct progress *p = dl__raft_find_peer(r, to);
    if (r->role != DL_RAFT_LEADER || !r->config.elections)
        rv = -EPERM;
    else if (p == NULL || p->learner)
        rv = -EINVAL;
    if (rv == 0) {
        r->transfer_target = to;
        r->transfer_deadline_ms = now_ms + r->config.election_timeout_ms;
        if (p->match == dl_raft_last_index(r))
            send_timeout_now(r, to);
        else
            dl__raft_replicate(r, now_ms, 0); /* TIMEOUT_NOW follows once it has caught up */
    }
    dl__raft_finish(r, u);
    return rv;
}
