/* Read-only views of the replication core, for drivers, /status and tests. */
#include "raft/raft_internal.h"

const char *dl_raft_role_name(dl_raft_role_t role)
{
    switch (role) {
    case DL_RAFT_LEADER:
        return "leader";
    case DL_RAFT_CANDIDATE:
        return "candidate";
    case DL_RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    default:
        return "follower";
    }
}

dl_raft_role_t dl_raft_role(const dl_raft_t *r)
{
    return r->role;
}

uint64_t dl_raft_id(const dl_raft_t *r)
{
    return r->config.id;
}

uint64_t dl_raft_term(const dl_raft_t *r)
{
    return r->hs.term;
}

uint64_t dl_raft_leader(const dl_raft_t *r)
{
    return r->leader;
}

int dl_raft_reclaiming(const dl_raft_t *r)
{
    return r->reclaiming;
}

uint64_t dl_raft_first_index(const dl_raft_t *r)
{
    return r->first_index;
}

uint64_t dl_raft_commit_index(const dl_raft_t *r)
{
    return r->commit;
}

uint64_t dl_raft_persisted_index(const dl_raft_t *r)
{
    return r->persisted;
}

uint64_t dl_raft_applied_index(const dl_raft_t *r)
{
    return r->applied;
}

size_t dl_raft_commit_quorum(const dl_raft_t *r)
{
    return r->config.commit_quorum;
}

size_t dl_raft_progress(const dl_raft_t *r, dl_raft_progress_t *out, size_t cap)
{
    for (size_t i = 0; i < r->n_peers && i < cap; i++) {
        const struct progress *p = &r->peers[i];
        out[i].id = p->id;
        out[i].match_index = p->match;
        out[i].next_index = p->next;
        out[i].last_index = p->last_index;
        out[i].last_ack_ms = p->last_ack_ms;
        out[i].probing = p->probing;
        out[i].learner = p->learner;
        out[i].snap_index = p->snapshot ? p->snap_index : 0;
        out[i].snap_acked = p->snapshot ? p->snap_acked : 0;
    }
    return r->n_peers;
}

size_t dl_raft_replicas_of(const dl_raft_t *r, uint64_t index)
{
    size_t n = r->self_voter && r->persisted >= index ? 1 : 0;
    for (size_t i = 0; i < r->n_peers; i++)
        if (!r->peers[i].learner && r->peers[i].match >= index)
            n++;
    return n;
}
