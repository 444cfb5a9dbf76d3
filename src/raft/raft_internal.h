/* Internal to the Raft core: the state shared by raft.c and election.c. See ddialab/raft.h. */
#ifndef DDIALAB_RAFT_INTERNAL_H
#define DDIALAB_RAFT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/raft.h"

#define INFLIGHT_CAP 1024

struct entry_meta {
    uint64_t term;
    uint32_t len;
    uint8_t type;
};

struct progress {
    uint64_t id;
    int learner; /* receives the log; counts in no quorum */
    uint64_t match;
    uint64_t next;
    uint64_t last_index;
    uint64_t last_ack_ms;
    uint64_t last_sent_ms;
    uint64_t commit_sent;        /* the commit index the follower was last told */
    uint64_t read_ack;           /* highest ReadIndex round this follower answered */
    uint64_t match_at_heartbeat; /* match when the last heartbeat went out */
    int stalled_heartbeats;      /* heartbeats in a row with entries in flight and no progress */
    int probing;    /* searching for the point where the logs agree: one APPEND at a time */
    int probe_sent; /* a probe is out and unanswered */
    /* Sending a snapshot (the entries it needs are compacted away): which one, how far sent,
     * how far acknowledged, and where the acknowledgements stood at the last heartbeat. */
    int snapshot;
    uint64_t snap_index, snap_term, snap_size;
    uint64_t snap_sent;
    uint64_t snap_acked;
    uint64_t snap_acked_at_heartbeat;
    uint64_t snap_resent_from; /* went back to this offset after a gap; +1 (0 = not) */
    /* Last index of each APPEND with entries not yet acknowledged, oldest first. */
    uint64_t inflight[INFLIGHT_CAP];
    size_t inflight_head;
    size_t inflight_count;
};

struct dl_raft_s {
    dl_raft_config_t config;
    uint64_t *nodes;
    dl_raft_hardstate_t hs;
    dl_raft_role_t role;
    uint64_t leader;

    /* Log metadata: meta[i] describes index first_index + i. */
    struct entry_meta *meta;
    size_t n_meta;
    size_t cap_meta;
    uint64_t first_index;
    uint64_t prev_term; /* term of first_index - 1 (0 while the log starts at 1) */

    /* The latest snapshot of the state machine (snap_index 0: none). first_index - 1 is at
     * most snap_index: only what a snapshot holds is ever compacted. */
    uint64_t snap_index;
    uint64_t snap_term;
    uint64_t snap_size;
    /* Follower: the snapshot being received, and its chunk or completion in this update. */
    int rcv_active;
    uint64_t rcv_index, rcv_term, rcv_size, rcv_offset;
    int install_pending; /* the last chunk went out: dl_raft_snapshot_installed comes next */
    dl_raft_snapshot_chunk_t out_chunk;

    uint64_t commit;
    uint64_t persisted;
    uint64_t applied;
    int started;

    /* Follower: how far this log is known to match the current leader's, and whether an
     * acknowledgement waits for the disk. */
    uint64_t matched_upto;
    uint64_t matched_term; /* the term (so the leader) matched_upto was established in */
    int ack_pending;

    struct progress *peers; /* every member but this one (capacity DL_RAFT_MAX_MEMBERS) */
    size_t n_peers;

    /* Membership (membership.c): configuration entries still in the log above the newest
     * committed one, oldest first; cfgs[0] is the one in force at or before the commit index
     * (index 0: the initial membership). The last is in force. */
    struct cfg_entry {
        uint64_t index;
        dl_raft_membership_t m;
    } * cfgs;
    size_t n_cfgs, cap_cfgs;
    dl_raft_membership_t initial;
    size_t n_voters; /* in the membership in force, this node included if it votes */
    int self_voter;
    int quorum_fixed; /* config.commit_quorum was given: it does not follow the membership */
    uint64_t last_heartbeat_ms; /* A restarted former leader: peers that confirmed no newer term and
                                   no newer log. */
    int reclaiming;
    uint64_t reclaim_acks[64];
    size_t n_reclaim_acks;

    /* Elections (election.c). */
    uint64_t rng;                    /* xorshift state, from config.seed and the node id */
    uint64_t election_deadline_ms;   /* a follower or candidate campaigns at this time */
    uint64_t last_leader_contact_ms; /* last APPEND from the leader (the leader: last quorum) */
    uint64_t last_quorum_check_ms;
    uint64_t votes[64]; /* granted (pre-)votes this campaign, self included */
    size_t n_votes;
    size_t n_rejections;
    uint64_t transfer_target; /* leader: handing leadership to this node (0 = none) */
    int lease_forfeited;      /* sent a TIMEOUT_NOW this term: its lease is not to be trusted */
    uint64_t now_ms;          /* the time given to the call in progress */

    /* ReadIndex: reads waiting for a quorum round (and for a commit in the leader's term). */
    struct pending_read {
        uint64_t ctx;
        uint64_t index;
        uint64_t round; /* 0 until its confirming heartbeat round was sent */
    } * reads;
    size_t n_reads, cap_reads;
    uint64_t read_round;        /* the latest heartbeat round sent (ReadIndex and leases) */
    uint64_t round_sent_ms[64]; /* when round r was sent: round_sent_ms[r % 64] */
    dl_raft_read_state_t *out_reads;
    size_t n_out_reads, cap_out_reads;
    uint64_t transfer_deadline_ms;

    /* Output buffers, reused by every call. */
    dl_raft_entry_t *out_entries;
    size_t n_out_entries, cap_out_entries;
    dl_raft_msg_t *out_msgs;
    size_t n_out_msgs, cap_out_msgs;
    size_t *out_msg_ent_off; /* where each message's entries start in out_msg_ents */
    size_t cap_out_msg_off;
    dl_raft_entry_t *out_msg_ents;
    size_t n_out_msg_ents, cap_out_msg_ents;
    int oom; /* an output buffer could not grow: the update was cut short */
};

size_t dl__raft_majority(size_t n);
/* A majority of the voters in force. */
size_t dl__raft_quorum(const dl_raft_t *r);
dl_raft_msg_t *dl__raft_new_msg(dl_raft_t *r, uint8_t type, uint64_t to);
struct progress *dl__raft_find_peer(dl_raft_t *r, uint64_t id);
void dl__raft_become_leader(dl_raft_t *r, uint64_t term, uint64_t now_ms, dl_raft_update_t *u);
void dl__raft_become_follower(dl_raft_t *r, uint64_t term, uint64_t leader, dl_raft_update_t *u);

/* raft.c: shared plumbing. */
int dl__raft_grow(void **buf, size_t *cap, size_t need, size_t elem);
void dl__raft_begin(dl_raft_t *r, dl_raft_update_t *u);  /* clears u and the output buffers */
void dl__raft_finish(dl_raft_t *r, dl_raft_update_t *u); /* fills u's pointers */
/* Sends one APPEND to p (entries unless a heartbeat); see raft.c. */
void dl__raft_send_append(dl_raft_t *r, struct progress *p, uint64_t now_ms, int with_entries);

/* raft.c, for snapshot.c */
/* Answers an APPEND (or a snapshot) with an APPEND_RESP. */
dl_raft_msg_t *dl__raft_append_resp(dl_raft_t *r, uint64_t to, int reject, uint64_t match,
                                    uint64_t hint);
/* A message from the leader of the current term: follows it. 0, or -1 to ignore the message
 * (static mode: this node already follows another leader in this term). */
int dl__raft_accept_leader(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                           dl_raft_update_t *u);
void dl__raft_reset_to_probe(struct progress *p, uint64_t last_index);
void dl__raft_maybe_commit(dl_raft_t *r);
void dl__raft_replicate(dl_raft_t *r, uint64_t now_ms, int commit_only);

/* raft.c: appends a configuration entry (checked by the caller). */
int dl__raft_propose_config(dl_raft_t *r, const void *payload, uint32_t len, uint64_t *index,
                            dl_raft_update_t *u);

/* membership.c */
/* Puts membership m in force (rebuilding the leader's progress for new members). */
void dl__raft_apply_membership(dl_raft_t *r, const dl_raft_membership_t *m);
/* A configuration entry at index was appended: decode and put it in force. */
void dl__raft_config_appended(dl_raft_t *r, uint64_t index, const void *data, uint32_t len,
                              dl_raft_update_t *u);
/* Entries from index `from` on were dropped: the membership before them is in force again. */
void dl__raft_config_truncated(dl_raft_t *r, uint64_t from, dl_raft_update_t *u);
/* The commit index moved: forget configurations superseded by a committed one; a leader that
 * is no voter of a committed membership steps down. */
void dl__raft_config_committed(dl_raft_t *r, dl_raft_update_t *u);
/* Sets the membership in force at `index` as the only one known (snapshots). */
void dl__raft_config_reset(dl_raft_t *r, uint64_t index, const dl_raft_membership_t *m,
                           dl_raft_update_t *u);

/* snapshot.c */
/* Leader: p needs entries that were compacted away: starts sending it the latest snapshot. */
void dl__raft_start_snapshot(dl_raft_t *r, struct progress *p);
/* Leader: sends p the next chunks of its snapshot, within the in-flight window. */
void dl__raft_send_snapshot_chunks(dl_raft_t *r, struct progress *p, uint64_t now_ms);
/* Leader, every heartbeat: a transfer that made no progress for two heartbeats starts again
 * from what was acknowledged (with the latest snapshot if the follower got nothing yet). */
void dl__raft_snapshot_heartbeat(dl_raft_t *r, struct progress *p, uint64_t now_ms);
void dl__raft_handle_snapshot(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                              dl_raft_update_t *u);
void dl__raft_handle_snapshot_resp(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms);
/* Entries inside the snapshot were found to conflict with the leader's (async modes only):
 * forget the log, the snapshot and the state machine (update.reset_all). */
void dl__raft_reset_all(dl_raft_t *r, uint64_t conflict, dl_raft_update_t *u);

/* read_index.c */
/* Answers the reads whose heartbeat round a majority acknowledged. */
void dl__raft_confirm_reads(dl_raft_t *r);
/* Starts one heartbeat round for the reads that have none (once the leader committed in its
 * term). */
void dl__raft_start_read_round(dl_raft_t *r, uint64_t now_ms);
/* Starts a new heartbeat round, remembering when it was sent (for leases). */
void dl__raft_new_round(dl_raft_t *r, uint64_t now_ms);
/* Refuses every waiting read (index 0): this node no longer leads. */
void dl__raft_fail_reads(dl_raft_t *r);

/* election.c */
/* Sets the next election deadline, randomized in [timeout, 1.5 timeout). */
void dl__raft_reset_election_timer(dl_raft_t *r, uint64_t now_ms);
/* Elections mode, on every tick: campaigns when the deadline passed; a leader checks its quorum
 * and its leadership transfer. */
void dl__raft_election_tick(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u);
/* Starts a campaign: a pre-vote round unless disabled or forced, else a real election. */
void dl__raft_campaign(dl_raft_t *r, int pre_vote, int force, uint64_t now_ms, dl_raft_update_t *u);
/* Handles VOTE, VOTE_RESP, PRE_VOTE, PRE_VOTE_RESP and TIMEOUT_NOW. Returns 1 if m was one. */
int dl__raft_step_election(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                           dl_raft_update_t *u);
/* Whether a vote request must be ignored: this node heard from a live leader within an election
 * timeout (CheckQuorum's leader lease), and the request is not a forced one. */
int dl__raft_in_lease(const dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms);

#endif
