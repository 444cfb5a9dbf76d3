/*
 * The replication core: Raft's log replication as a pure state machine.
 *
 * No sockets, files, clocks or randomness live here. The driver (src/kv/node.c, or a simulator)
 * feeds inputs — a tick with the current time, a received message, proposals, "persisted up to"
 * notices, a manual promotion — and each call fills a dl_raft_update_t saying what to do, in order:
 *
 *   1. persist the hard state (term, vote) if hardstate_changed, durably, before anything else;
 *   2. truncate the log from truncate_from (if non-zero), then write entries[] (they may be
 *      written without fsync; durability is reported back with dl_raft_persisted());
 *   3. send msgs[] (an APPEND's entries carry index and term only: the driver fills in payloads
 *      from its log when it encodes the message);
 *   4. apply committed entries up to apply_to (never past what this node has persisted).
 *
 * Replication follows Raft's AppendEntries: every APPEND names the entry before its first one
 * (prev_index, prev_term); a follower whose log does not contain that entry rejects it with a
 * hint, and the leader backs off next_index; a follower truncates a conflicting suffix before
 * appending. A follower acknowledges only entries it has persisted. The leader counts itself
 * once its own write is durable, and commits an entry of its current term once commit_quorum
 * copies (itself included) are durable. The replication modes of the kv lab are commit quorums:
 * async = 1, semi-sync = 2, sync = all nodes, majority = floor(n/2)+1.
 *
 * Two ways to choose a leader. With config.elections, Raft's elections: randomized election
 * timeouts, PreVote, CheckQuorum, votes persisted before they are sent. Without, a static leader
 * starts the cluster, and a manual promotion (dl_raft_promote) makes a node leader at a higher
 * term. Either way anyone who sees a higher term steps down, so an old leader that returns
 * follows the new one and discards the entries the new leader never had; update.discarded
 * counts them.
 *
 * Memory: the core keeps the term and size of every entry from first_index on (12 bytes an
 * entry). Pointers in an update stay valid until the next call into the core.
 */
#ifndef DDIALAB_RAFT_H
#define DDIALAB_RAFT_H

#include <stddef.h>
#include <stdint.h>

typedef struct dl_raft_s dl_raft_t;

typedef enum {
    DL_RAFT_FOLLOWER = 0,
    DL_RAFT_LEADER = 1,
    DL_RAFT_PRE_CANDIDATE = 2, /* elections: asking whether it could win, without a new term */
    DL_RAFT_CANDIDATE = 3,     /* elections: asking for votes in a new term */
} dl_raft_role_t;

typedef enum {
    DL_RAFT_ENTRY_NORMAL = 0, /* a command for the state machine */
    DL_RAFT_ENTRY_NOOP = 1,   /* appended by a new leader to commit entries of earlier terms */
    DL_RAFT_ENTRY_CONFIG = 2, /* a new membership (dl_raft_membership_encode), in force once
                                 appended; the driver's state machine records it when applied */
} dl_raft_entry_type_t;

/*
 * Membership (thesis chapter 4, one voter at a time). Voters elect, commit and confirm reads by
 * majority; learners receive the log and count for nothing, which is how a new node catches up
 * before it votes. A configuration entry takes effect on every node as soon as it is in its log
 * (committed or not), and is undone if a truncation removes it. A leader accepts a change only
 * with elections on, once it has committed an entry of its term, and only while no earlier
 * change is uncommitted; a change may add or remove learners and add, remove or promote at most
 * one voter. A leader that removes itself leads until the change commits, then steps down.
 */
#define DL_RAFT_MAX_MEMBERS 64
typedef struct dl_raft_membership_s {
    size_t n;
    uint64_t ids[DL_RAFT_MAX_MEMBERS];
    uint8_t learner[DL_RAFT_MAX_MEMBERS]; /* 1 = learner, 0 = voter */
} dl_raft_membership_t;

/* A configuration entry's payload: [u8 version 1][u8 n][n x (u64 id, u8 learner)][ctx], where
 * ctx is the driver's (addresses, say). Returns the bytes needed; writes only if they fit cap. */
size_t dl_raft_membership_encode(const dl_raft_membership_t *m, const void *ctx, size_t ctx_len,
                                 void *out, size_t cap);
/* 0, or DL_EPROTO for a payload that is not a valid membership (no voter, a duplicate or zero
 * id). *ctx points into data. */
int dl_raft_membership_decode(const void *data, size_t len, dl_raft_membership_t *m,
                              const void **ctx, size_t *ctx_len);

typedef struct dl_raft_entry_s {
    uint64_t index;
    uint64_t term;
    uint8_t type;     /* dl_raft_entry_type_t */
    const void *data; /* payload; NULL in messages the core builds (the driver fills it in) */
    uint32_t len;
} dl_raft_entry_t;

typedef enum {
    DL_RAFT_MSG_APPEND = 1,        /* leader -> follower: entries and/or heartbeat */
    DL_RAFT_MSG_APPEND_RESP = 2,   /* follower -> leader: persisted match index, or a rejection */
    DL_RAFT_MSG_VOTE = 3,          /* candidate: vote for me in term (last_index/last_term) */
    DL_RAFT_MSG_VOTE_RESP = 4,     /* reject = 0 grants the vote */
    DL_RAFT_MSG_PRE_VOTE = 5,      /* pre-candidate: would you vote for me in term? */
    DL_RAFT_MSG_PRE_VOTE_RESP = 6, /* reject = 0: yes */
    DL_RAFT_MSG_TIMEOUT_NOW = 7,   /* leader -> transfer target: campaign now */
    DL_RAFT_MSG_SNAPSHOT = 8,      /* leader -> follower: one chunk of a snapshot */
    DL_RAFT_MSG_SNAPSHOT_RESP = 9, /* follower -> leader: chunks received so far, or a restart */
} dl_raft_msg_type_t;

#define DL_RAFT_MSG_MAX_ENTRIES 4096

typedef struct dl_raft_msg_s {
    uint8_t type;
    uint64_t from;
    uint64_t to;
    uint64_t term;
    /* APPEND */
    uint64_t prev_index;
    uint64_t prev_term;
    uint64_t commit;
    uint32_t n_entries;
    dl_raft_entry_t *entries; /* entries[i].index == prev_index + 1 + i */
    /* APPEND_RESP */
    uint8_t reject;
    /* accepted: this follower's log matches the leader's and is durable up to here; rejected:
     * the prev_index that was refused */
    uint64_t match_index;
    uint64_t hint_index; /* rejected: the leader should retry from hint_index + 1 or lower */
    /* Every message: the sender's last log index and its term (lag reporting; deciding between
     * two leaders of one term). */
    uint64_t last_index;
    uint64_t last_term;
    /* VOTE and PRE_VOTE: a leadership transfer or an operator's campaign, which voters grant
     * even while they still hear from a leader. */
    uint8_t force;
    /* APPEND (heartbeat) and its answer: the ReadIndex round being confirmed, echoed back. */
    uint64_t context;
    /* SNAPSHOT: the snapshot (it holds the state after entries up to snap_index, of snap_term;
     * snap_size bytes in all) and one chunk of it, data_len bytes at snap_offset. The core
     * leaves data NULL: the driver reads the chunk from its snapshot when it encodes the
     * message. SNAPSHOT_RESP: snap_index, and in snap_offset the bytes received so far; with
     * reject, the transfer should start again from snap_offset. */
    uint64_t snap_index;
    uint64_t snap_term;
    uint64_t snap_size;
    uint64_t snap_offset;
    const void *data;
    uint32_t data_len;
} dl_raft_msg_t;

typedef struct dl_raft_hardstate_s {
    uint64_t term;
    uint64_t vote; /* whom this node follows or voted for in term; 0 = nobody */
} dl_raft_hardstate_t;

typedef struct dl_raft_config_s {
    uint64_t id;
    /* The membership before any configuration entry in the log (or the snapshot's): voters in
     * nodes, learners in learners. A node may start without being in it (a new node, which
     * learns the membership from the leader's log). */
    const uint64_t *nodes;
    size_t n_nodes;
    const uint64_t *learners;
    size_t n_learners;
    size_t commit_quorum;   /* copies, leader included, that commit an entry; 0 = majority */
    uint64_t static_leader; /* the node that leads a fresh cluster (elections off) */
    uint64_t heartbeat_ms;  /* 0 = 100 */
    size_t max_msg_bytes;   /* entry bytes per APPEND; 0 = 1 MiB (one entry always fits) */
    size_t max_inflight;    /* unacknowledged APPENDs with entries per follower; 0 = 64 */
    /* Terms this node may lead are those t with t % term_stride == id % term_stride, so that
     * two nodes can never lead one term without votes to decide (manual failover). 0 = 16. */
    uint64_t term_stride;

    /* Elections (Raft chapter 3, with the thesis' PreVote and CheckQuorum). With elections off
     * (0) the core runs in the static-leader mode above. */
    int elections;
    uint64_t election_timeout_ms; /* 0 = 1000; the timeout is randomized in [t, 1.5t) */
    int disable_pre_vote;         /* PreVote is on unless this is set */
    int disable_check_quorum;     /* CheckQuorum is on unless this is set */
    uint64_t seed;                /* randomness for election timeouts; runs with one seed replay */
} dl_raft_config_t;

typedef struct dl_raft_read_state_s {
    uint64_t ctx;   /* the caller's id for the read */
    uint64_t index; /* serve once applied >= index; 0 = refused (not the leader any more) */
} dl_raft_read_state_t;

typedef struct dl_raft_update_s {
    int hardstate_changed;
    dl_raft_hardstate_t hardstate;
    uint64_t truncate_from; /* 0 = none; else drop this index and everything after it */
    size_t n_entries;
    const dl_raft_entry_t *entries; /* to write after the truncation, in index order */
    size_t n_msgs;
    const dl_raft_msg_t *msgs;
    uint64_t apply_to; /* apply every entry up to this index (it only grows, except after a
                          truncation below it: see discarded_applied) */
    int role_changed;
    int membership_changed; /* the membership in force changed (see dl_raft_membership) */
    /* Linearizable reads confirmed by a quorum (dl_raft_read_index): serve read `ctx` once the
     * state machine has applied `index`. Failed reads (leadership lost) have index 0. */
    size_t n_read_states;
    const struct dl_raft_read_state_s *read_states;
    uint64_t discarded;         /* entries dropped by truncate_from */
    uint64_t discarded_applied; /* of those, client entries (not no-ops) this node had already
                                   applied: writes that were acknowledged and are now lost */
    /* Applied entries were dropped (only where a commit quorum is not a majority): the driver
     * empties its state machine and re-applies the log, which starts at 1, up to apply_to. */
    int reset_state_machine;
    /* Applied entries were dropped and the log was compacted, so the state machine cannot be
     * rebuilt: the driver deletes its log, snapshot files and state machine, and the log
     * starts again at index 1, to be refilled by the leader. */
    int reset_all;
    /* Follower: a chunk of a snapshot arrived, to be written at chunk->offset of the incoming
     * snapshot (offset 0 starts a new one). With chunk->last it is complete: the driver makes
     * it durable, replaces its state machine with it, resets its log to start after
     * chunk->index (keeping the entries after it only if dl_raft_term_at(chunk->index) equals
     * chunk->term), and calls dl_raft_snapshot_installed before anything else. */
    const struct dl_raft_snapshot_chunk_s *chunk; /* NULL: none */
    /* Leader: a follower needs entries compacted away and there is no snapshot file that
     * reaches the log: the driver writes one of its state machine and reports it with
     * dl_raft_snapshot_taken (the transfer waits until then). */
    int snapshot_needed;
} dl_raft_update_t;

typedef struct dl_raft_snapshot_chunk_s {
    uint64_t index; /* the snapshot holds the state after entries up to here */
    uint64_t term;  /* the term of entry index */
    uint64_t size;  /* bytes in all */
    uint64_t offset;
    const void *data;
    uint32_t len;
    int last; /* offset + len == size */
} dl_raft_snapshot_chunk_t;

/* Progress of one node as the leader sees it (for /status and write-timeout replies). */
typedef struct dl_raft_progress_s {
    uint64_t id;
    uint64_t match_index;
    uint64_t next_index;
    uint64_t last_index;  /* the follower's last index from its latest reply */
    uint64_t last_ack_ms; /* time of its latest reply; 0 = never */
    int probing;          /* 1 while the leader searches for the point where logs agree */
    int learner;
    uint64_t snap_index; /* sending it this snapshot (0 = none) ... */
    uint64_t snap_acked; /* ... of which it has this many bytes */
} dl_raft_progress_t;

/*
 * Creates a core from what the node persisted: its hard state, the log's first index, and (with
 * dl_raft_restore_entry) the term, type and size of each entry in order. persisted_index is the
 * highest index known durable, applied_index what the state machine has applied. Returns 0,
 * -EINVAL for a bad config, or -ENOMEM. Call dl_raft_start() after restoring entries.
 */
int dl_raft_new(const dl_raft_config_t *config, const dl_raft_hardstate_t *hardstate,
                uint64_t first_index, dl_raft_t **out);
int dl_raft_restore_entry(dl_raft_t *r, uint64_t term, uint8_t type, const void *data,
                          uint32_t len); /* data: the payload; needed for DL_RAFT_ENTRY_CONFIG */
/* Begins. A fresh static leader takes its first term. A node that led its last term probes its
 * peers and leads again, at a higher term, once a majority answered with no newer term and no
 * more up-to-date log; a peer with a newer term makes it follow instead. */
void dl_raft_start(dl_raft_t *r, uint64_t persisted_index, uint64_t applied_index, uint64_t now_ms,
                   dl_raft_update_t *u);
void dl_raft_free(dl_raft_t *r);

/*
 * Log compaction and snapshots (thesis chapter 5), as etcd does them: the state machine is
 * durable on its own, so compaction needs no copy of it. Once the driver knows its state
 * machine durable through some applied index, dl_raft_compact drops the log before it. A
 * follower that needs dropped entries gets a snapshot file instead, in chunks of max_msg_bytes
 * (at most 4 in flight), restarted from where it stopped when a chunk is lost; the file is made
 * when needed (update.snapshot_needed) and reported with dl_raft_snapshot_taken. A restarted
 * node starts its log after the index its durable state machine holds:
 * dl_raft_new(first_index = index + 1), then dl_raft_restore_snapshot(index, term, 0, ...),
 * then the entries after it.
 */
/* A snapshot file of the state machine after applying index (<= applied), size bytes (> 0).
 * -EINVAL if index is not applied or its term is no longer known. */
int dl_raft_snapshot_taken(dl_raft_t *r, uint64_t index, uint64_t size);
/* Forgets the entries before `before` (at most applied + 1); the driver promises that its state
 * machine is durable through before - 1, and may drop them from its log. Returns the new first
 * index. */
uint64_t dl_raft_compact(dl_raft_t *r, uint64_t before);
/* membership: the one in force at the snapshot's index (the state machine records applied
 * configuration entries); NULL keeps config.nodes/learners. */
int dl_raft_restore_snapshot(dl_raft_t *r, uint64_t index, uint64_t term, uint64_t size,
                             const dl_raft_membership_t *membership);
/* The snapshot announced by a last chunk is durable and is now the state machine (see
 * dl_raft_update_t.chunk); membership as for dl_raft_restore_snapshot. */
void dl_raft_snapshot_installed(dl_raft_t *r, const dl_raft_membership_t *membership,
                                uint64_t now_ms, dl_raft_update_t *u);
/* The latest snapshot (0 = none). */
uint64_t dl_raft_snapshot_index(const dl_raft_t *r);

/* Appends client commands (leader only; -EPERM, DL_ENOTLEADER otherwise). *first_index gets the
 * index of entries[0]; the entries' index/term fields are ignored. Messages go out with
 * dl_raft_flush. */
int dl_raft_propose(dl_raft_t *r, const dl_raft_entry_t *entries, size_t n, uint64_t *first_index,
                    dl_raft_update_t *u);
/* Appends a configuration entry (payload from dl_raft_membership_encode). 0; DL_ENOTLEADER;
 * -EPERM without elections; DL_EBUSY while an earlier change is uncommitted, before the leader
 * committed an entry of its term, or during a leadership transfer; -EINVAL for a payload that
 * does not decode or changes more than one voter. */
int dl_raft_propose_membership(dl_raft_t *r, const void *payload, uint32_t len, uint64_t *index,
                               dl_raft_update_t *u);
/* The membership in force, and the index of the entry that set it (0: the initial one). */
uint64_t dl_raft_membership(const dl_raft_t *r, dl_raft_membership_t *out);
/* 1 if id is a voter in the membership in force. */
int dl_raft_is_voter(const dl_raft_t *r, uint64_t id);

/* Sends whatever replication is due (new entries, retries); call once per loop iteration. */
void dl_raft_flush(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u);
/* Handles a message from a peer. Messages for another node or of unknown type are ignored. */
void dl_raft_step(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms, dl_raft_update_t *u);
/* Advances time: the leader sends heartbeats. */
void dl_raft_tick(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u);
/* Reports that the log is durable up to index (after the driver's fsync). */
void dl_raft_persisted(dl_raft_t *r, uint64_t index, uint64_t now_ms, dl_raft_update_t *u);
/* Reports that the driver applied entries up to index to its state machine. */
void dl_raft_applied(dl_raft_t *r, uint64_t index);
/* The connection to a peer broke or came back: progress falls back to probing. */
void dl_raft_peer_down(dl_raft_t *r, uint64_t id);
/* Static mode: makes this node leader at its next term (manual failover). With elections: starts
 * an election at once, without PreVote; voters that still hear a live leader ignore it (leases
 * are never broken from outside: use dl_raft_transfer_leader to move a healthy leader).
 * -EALREADY if it already leads. */
int dl_raft_promote(dl_raft_t *r, uint64_t now_ms, dl_raft_update_t *u);

/*
 * Starts a linearizable read (Raft's ReadIndex, thesis 6.4): the leader notes its commit index
 * and confirms with a heartbeat round that a majority still follows it; the answer arrives in a
 * later update's read_states. Reads wait until the leader has committed an entry of its own
 * term. DL_ENOTLEADER unless leader; -ENOBUFS with too many reads waiting.
 */
int dl_raft_read_index(dl_raft_t *r, uint64_t ctx, uint64_t now_ms, dl_raft_update_t *u);

/*
 * Lease reads (thesis section 6.4.1): 1 while this leader may answer reads from its own state
 * without a round. With CheckQuorum no follower campaigns or grants a vote within an election
 * timeout of hearing from its leader, so once a majority acknowledged a heartbeat sent at t, no
 * other leader exists before t + election timeout. The lease ends a tenth of that earlier, which
 * assumes clocks that advance at rates within 10% of each other (not synchronized clocks). Always
 * 0 without elections or with CheckQuorum off.
 */
int dl_raft_lease_valid(const dl_raft_t *r, uint64_t now_ms);

/* Elections: hands leadership to node `to` once its log is up to date (it campaigns at once on
 * TIMEOUT_NOW). New proposals get DL_EBUSY meanwhile; after an election timeout without a new
 * leader the transfer is abandoned. -EPERM unless leader, -EINVAL for an unknown node or self. */
int dl_raft_transfer_leader(dl_raft_t *r, uint64_t to, uint64_t now_ms, dl_raft_update_t *u);
/* "leader", "follower", "candidate" or "pre-candidate". */
const char *dl_raft_role_name(dl_raft_role_t role);

dl_raft_role_t dl_raft_role(const dl_raft_t *r);
uint64_t dl_raft_id(const dl_raft_t *r);
uint64_t dl_raft_term(const dl_raft_t *r);
uint64_t dl_raft_leader(const dl_raft_t *r); /* 0 = unknown */
/* 1 while a restarted former leader waits for a majority before leading again. */
int dl_raft_reclaiming(const dl_raft_t *r);
uint64_t dl_raft_first_index(const dl_raft_t *r);
uint64_t dl_raft_last_index(const dl_raft_t *r);
uint64_t dl_raft_commit_index(const dl_raft_t *r);
uint64_t dl_raft_persisted_index(const dl_raft_t *r);
uint64_t dl_raft_applied_index(const dl_raft_t *r);
size_t dl_raft_commit_quorum(const dl_raft_t *r);
/* Term of the entry at index (0 for index 0 or outside the log). */
uint64_t dl_raft_term_at(const dl_raft_t *r, uint64_t index);
/* Copies the progress of every other node into out (up to cap); returns how many nodes there are.
 */
size_t dl_raft_progress(const dl_raft_t *r, dl_raft_progress_t *out, size_t cap);
/* How many nodes, this one included, hold index durably as far as the leader knows. */
size_t dl_raft_replicas_of(const dl_raft_t *r, uint64_t index);

#endif
