/*
 * Linearizable reads by ReadIndex (Raft thesis section 6.4): a read notes the leader's commit
 * index and is answered once a majority acknowledged a heartbeat round sent after it.
 */
#include <errno.h>
#include <string.h>

#include "ddialab/error.h"
#include "raft/raft_internal.h"

#define MAX_PENDING_READS 65536

static void out_read(dl_raft_t *r, uint64_t ctx, uint64_t index)
{
    if (dl__raft_grow((void **)&r->out_reads, &r->cap_out_reads, r->n_out_reads + 1,
                      sizeof(dl_raft_read_state_t))) {
        r->oom = 1;
        return;
    }
    r->out_reads[r->n_out_reads].ctx = ctx;
    r->out_reads[r->n_out_reads].index = index;
    r->n_out_reads++;
}

/* Answers the reads whose heartbeat round a majority has acknowledged, oldest first. */
void dl__raft_confirm_reads(dl_raft_t *r)
{
    size_t done = 0;
    while (done < r->n_reads && r->reads[done].round != 0) {
        size_t acks = r->self_voter ? 1 : 0;
        for (size_t i = 0; i < r->n_peers; i++)
            if (!r->peers[i].learner && r->peers[i].read_ack >= r->reads[done].round)
                acks++;
        if (acks < dl__raft_quorum(r))
            break;
        out_read(r, r->reads[done].ctx, r->reads[done].index);
        done++;
    }
    if (done > 0) {
        memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
        r->n_reads -= done;
    }
}

/*
 * Starts one heartbeat round for every read that has none yet. A leader answers reads only
 * once it has committed an entry of its own term: before that its commit index may lag what an
 * earlier leader committed.
 */
void dl__raft_new_round(dl_raft_t *r, uint64_t now_ms)
{
    r->read_round++;
    r->round_sent_ms[r->read_round % 64] = now_ms;
}

int dl_raft_lease_valid(const dl_raft_t *r, uint64_t now_ms)
{
    /* A transfer forces the target's election past the others' leases: from its start, the
     * lease is no longer this leader's to rely on. */
    if (r->role != DL_RAFT_LEADER || !r->config.elections || r->config.disable_check_quorum ||
        r->transfer_target != 0 || r->lease_forfeited ||
        dl_raft_term_at(r, r->commit) != r->hs.term)
        return 0;
    /* The newest round a majority (this leader included) has acknowledged. */
    uint64_t acked[DL_RAFT_MAX_MEMBERS];
    size_t n = 0;
    if (!r->self_voter)
        return 0;
    for (size_t i = 0; i < r->n_peers && n < DL_RAFT_MAX_MEMBERS; i++)
        if (!r->peers[i].learner)
            acked[n++] = r->peers[i].read_ack;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && acked[j] > acked[j - 1]; j--) {
            uint64_t t = acked[j];
            acked[j] = acked[j - 1];
            acked[j - 1] = t;
        }
    size_t others = dl__raft_quorum(r) - 1;
    if (others == 0)
        return 1; /* a cluster of one */
    uint64_t round = acked[others - 1];
    if (round == 0 || r->read_round - round >= 64)
        return 0; /* nothing acknowledged yet, or too long ago to remember when it was sent */
    uint64_t sent = r->round_sent_ms[round % 64];
    uint64_t lease = r->config.election_timeout_ms - r->config.election_timeout_ms / 10;
    return now_ms < sent + lease;
}

void dl__raft_start_read_round(dl_raft_t *r, uint64_t now_ms)
{
    if (r->role != DL_RAFT_LEADER || dl_raft_term_at(r, r->commit) != r->hs.term)
        return;
    int fresh = 0;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].round == 0) {
            if (!fresh)
                dl__raft_new_round(r, now_ms);
            fresh = 1;
            r->reads[i].round = r->read_round;
            r->reads[i].index = r->commit;
        }
    if (!fresh)
        return;
    for (size_t i = 0; i < r->n_peers; i++)
        dl__raft_send_append(r, &r->peers[i], now_ms, 0);
    dl__raft_confirm_reads(r); /* a cluster of one needs no round trip */
}

/* Refuses every waiting read: this node no longer leads. */
void dl__raft_fail_reads(dl_raft_t *r)
{
    for (size_t i = 0; i < r->n_reads; i++)
        out_read(r, r->reads[i].ctx, 0);
    r->n_reads = 0;
}

int dl_raft_read_index(dl_raft_t *r, uint64_t ctx, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    int rv = 0;
    if (r->role != DL_RAFT_LEADER)
        rv = DL_ENOTLEADER;
    else if (r->n_reads >= MAX_PENDING_READS)
        rv = -ENOBUFS;
    else if (dl__raft_grow((void **)&r->reads, &r->cap_reads, r->n_reads + 1, sizeof(*r->reads)))
        rv = -ENOMEM;
    if (rv == 0) {
        /* The round starts at the next flush, so that one round serves a whole iteration. */
        r->reads[r->n_reads].ctx = ctx;
        r->reads[r->n_reads].index = 0;
        r->reads[r->n_reads].round = 0;
        r->n_reads++;
    }
    dl__raft_finish(r, u);
    return rv;
}
