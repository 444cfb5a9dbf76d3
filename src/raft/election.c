/*
 * Leader election: randomized timeouts, PreVote, CheckQuorum and leadership transfer (Raft
 * chapter 3 and the thesis' sections 9.6 and 3.10). Pure like the rest of the core: the clock
 * arrives as now_ms and randomness from a generator seeded by config.seed.
 */
#include <string.h>

#include "raft/raft_internal.h"

/* xorshift64*: small, fast, and the same sequence for the same seed on every machine. */
static uint64_t next_random(dl_raft_t *r)
{
    r->rng ^= r->rng >> 12;
    r->rng ^= r->rng << 25;
    r->rng ^= r->rng >> 27;
    return r->rng * 0x2545F4914F6CDD1DULL;
}

void dl__raft_reset_election_timer(dl_raft_t *r, uint64_t now_ms)
{
    /* [t, 1.5t): spread enough that three nodes rarely split a vote (round trips are well under
     * a millisecond against hundreds of milliseconds of spread), and narrow enough that a new
     * leader takes over within 2t of the old one's last heartbeat. */
    uint64_t t = r->config.election_timeout_ms;
    r->election_deadline_ms = now_ms + t + next_random(r) % (t / 2 + 1);
}

static uint64_t last_term(const dl_raft_t *r)
{
    return dl_raft_term_at(r, dl_raft_last_index(r));
}

/* Raft's vote rule: grant only to a candidate whose log is at least as up to date as ours. */
static int log_up_to_date(const dl_raft_t *r, const dl_raft_msg_t *m)
{
    uint64_t t = last_term(r);
    return m->last_term > t || (m->last_term == t && m->last_index >= dl_raft_last_index(r));
}

int dl__raft_in_lease(const dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms)
{
    if (r->config.disable_check_quorum || m->force)
        return 0;
    /* A leader that still believes it leads is its own lease: CheckQuorum makes it step down
     * when it is not, and until then a vote request must not depose it (its lease reads rely
     * on that). */
    if (r->role == DL_RAFT_LEADER)
        return 1;
    /* A node that just started counts as having just heard from a leader (see dl_raft_start):
     * before a crash it may have acknowledged a heartbeat that a leader's lease counts on. */
    return now_ms - r->last_leader_contact_ms < r->config.election_timeout_ms;
}

static int record_vote(dl_raft_t *r, uint64_t from)
{
    for (size_t i = 0; i < r->n_votes; i++)
        if (r->votes[i] == from)
            return 0;
    r->votes[r->n_votes++] = from;
    return 1;
}

void dl__raft_campaign(dl_raft_t *r, int pre_vote, int force, uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_reset_election_timer(r, now_ms);
    if (!r->self_voter)
        return; /* a learner, or a node removed from the cluster, never campaigns */
    r->n_votes = 0;
    r->n_rejections = 0;
    record_vote(r, r->config.id);
    uint8_t type;
    uint64_t term;
    if (pre_vote) {
        /* Ask first, without touching the term: a node cut off from the others keeps failing
         * here and never comes back with an inflated term that deposes a healthy leader. */
        if (r->role != DL_RAFT_PRE_CANDIDATE)
            u->role_changed = 1;
        r->role = DL_RAFT_PRE_CANDIDATE;
        type = DL_RAFT_MSG_PRE_VOTE;
        term = r->hs.term + 1;
    } else {
        if (r->role != DL_RAFT_CANDIDATE)
            u->role_changed = 1;
        r->role = DL_RAFT_CANDIDATE;
        r->hs.term++;
        r->hs.vote = r->config.id; /* persisted before the requests leave (update order) */
        u->hardstate_changed = 1;
        type = DL_RAFT_MSG_VOTE;
        term = r->hs.term;
    }
    r->leader = 0;
    if (r->n_votes >= dl__raft_quorum(r)) {
        /* A cluster of one wins at once. */
        if (pre_vote)
            dl__raft_campaign(r, 0, force, now_ms, u);
        else
            dl__raft_become_leader(r, r->hs.term, now_ms, u);
        return;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        if (r->peers[i].learner)
            continue;
        dl_raft_msg_t *m = dl__raft_new_msg(r, type, r->peers[i].id);
        if (m == NULL)
            return;
        m->term = term;
        m->force = (uint8_t)force;
    }
}

/* Answers a VOTE or PRE_VOTE whose term handling step() already did. */
static void handle_vote(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms, dl_raft_update_t *u)
{
    int pre = m->type == DL_RAFT_MSG_PRE_VOTE;
    int grant;
    if (pre)
        /* Would we vote for it in its next term? Not if we still hear from a leader of ours. */
        grant = m->term > r->hs.term && log_up_to_date(r, m) && !dl__raft_in_lease(r, m, now_ms);
    else
        /* The lease applies within a term too: any message of a higher term (a stale
         * candidate's rejection, say) moves us into that term without a leader, and a vote
         * request of that term would otherwise pass a live leader's lease (found by the
         * simulator: seed 56685, elections, 3 nodes). */
        grant = m->term == r->hs.term && (r->hs.vote == 0 || r->hs.vote == m->from) &&
                log_up_to_date(r, m) && (r->hs.vote == m->from || !dl__raft_in_lease(r, m, now_ms));
    dl_raft_msg_t *resp =
        dl__raft_new_msg(r, pre ? DL_RAFT_MSG_PRE_VOTE_RESP : DL_RAFT_MSG_VOTE_RESP, m->from);
    if (resp == NULL)
        return;
    resp->reject = (uint8_t)!grant;
    /* A granted pre-vote answers in the term asked about, so the pre-candidate can count it. */
    resp->term = pre && grant ? m->term : r->hs.term;
    if (grant && !pre) {
        r->hs.vote = m->from;
        u->hardstate_changed = 1; /* the vote reaches the disk before the answer leaves */
        dl__raft_reset_election_timer(r, now_ms);
    }
}

static void handle_vote_resp(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                             dl_raft_update_t *u)
{
    int pre = m->type == DL_RAFT_MSG_PRE_VOTE_RESP;
    if (pre ? r->role != DL_RAFT_PRE_CANDIDATE || m->term != r->hs.term + 1
            : r->role != DL_RAFT_CANDIDATE || m->term != r->hs.term)
        return; /* an answer to an earlier campaign */
    size_t quorum = dl__raft_quorum(r);
    if (!dl_raft_is_voter(r, m->from))
        return; /* only voters of our membership count */
    if (m->reject) {
        if (++r->n_rejections >= quorum)
            dl__raft_become_follower(r, r->hs.term, 0, u);
        return;
    }
    record_vote(r, m->from);
    if (r->n_votes < quorum)
        return;
    if (pre)
        dl__raft_campaign(r, 0, m->force, now_ms, u);
    else
        dl__raft_become_leader(r, r->hs.term, now_ms, u);
}

int dl__raft_step_election(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                           dl_raft_update_t *u)
{
    switch (m->type) {
    case DL_RAFT_MSG_VOTE:
    case DL_RAFT_MSG_PRE_VOTE:
        handle_vote(r, m, now_ms, u);
        return 1;
    case DL_RAFT_MSG_VOTE_RESP:
    case DL_RAFT_MSG_PRE_VOTE_RESP:
        handle_vote_resp(r, m, now_ms, u);
        return 1;
    case DL_RAFT_MSG_TIMEOUT_NOW:
        /* The leader hands over: campaign at once, skipping PreVote, past the others' lease. */
        if (r->config.elections && r->role != DL_RAFT_LEADER && m->from == r->leader)
            dl__raft_campaign(r, 0, 1, now_ms, u);
        return 1;
    default:
        return 0;
    }
}

/* CheckQuorum: a leader that has not heard from a majority for an election timeout steps down,
 * so a leader cut off in a minority stops acting as one. */
static void check_quorum(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u)
{
    uint64_t timeout = r->config.election_timeout_ms;
    if (now_ms - r->last_quorum_check_ms < timeout)
        return;
    r->last_quorum_check_ms = now_ms;
    size_t active = 1;
    if (!r->self_voter)
        active = 0;
    for (size_t i = 0; i < r->n_peers; i++)
        if (!r->peers[i].learner && r->peers[i].last_ack_ms != 0 &&
            now_ms - r->peers[i].last_ack_ms < timeout)
            active++;
    if (active >= dl__raft_quorum(r)) {
        r->last_leader_contact_ms = now_ms;
        return;
    }
    if (!r->config.disable_check_quorum)
        dl__raft_become_follower(r, r->hs.term, 0, u);
}

void dl__raft_election_tick(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u)
{
    if (r->role == DL_RAFT_LEADER) {
        check_quorum(r, now_ms, u);
        if (r->role == DL_RAFT_LEADER && r->transfer_target != 0 &&
            now_ms >= r->transfer_deadline_ms)
            r->transfer_target = 0; /* the target did not take over in time: lead on */
        return;
    }
    if (now_ms >= r->election_deadline_ms)
        dl__raft_campaign(r, !r->config.disable_pre_vote, 0, now_ms, u);
}
