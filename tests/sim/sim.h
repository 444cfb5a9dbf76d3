/*
 * Deterministic simulation of a Raft cluster: N real cores in one process, a simulated clock,
 * network, disks and clients, and every random choice drawn from one seeded generator. The same
 * seed and the same binary replay the same run, event for event. Invariants are checked after
 * every event; the first violation ends the run with a message.
 *
 * sim_world.c: the event loop, crashes and restarts, faults, clients, liveness, sim_run.
 * sim_driver.c: each node's driver: disk, network, and carrying out the core's updates.
 * sim_util.c:  random numbers, hashing, tracing.
 * sim_check.c: the invariants (Election Safety, Leader Append-Only, Log Matching, Leader
 *              Completeness, State Machine Safety, liveness after healing).
 * sim.c:       the command line, seed loops, progress, the determinism check.
 */
#ifndef DDIALAB_SIM_H
#define DDIALAB_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ddialab/raft.h"

#define SIM_MAX_NODES      7
#define SIM_MAX_PAYLOAD    72 /* a configuration entry of 7 members takes 65 bytes */
#define SIM_CLIENT_PAYLOAD 32

typedef enum { SIM_STATIC = 0, SIM_ELECTIONS = 1 } sim_mode_t;

/* Options of one run; everything not here derives from the seed. */
typedef struct sim_options_s {
    uint64_t seed;
    sim_mode_t mode;
    int nodes;
    uint64_t fault_ms; /* length of the fault phase */
    int verbose;       /* print every event to trace */
    FILE *trace;
    /* Self-test of the checker: a deliberately broken disk, so that the invariants must fail. */
    int inject; /* 0 none; SIM_INJECT_* */
} sim_options_t;

#define SIM_INJECT_LOSE_SYNCED 1 /* a crash also loses up to 3 synced entries (a lying fsync) */
#define SIM_INJECT_FORGET_VOTE 2 /* a crash loses the vote of the current term */

/* What a run did, for the summary and the determinism check. */
typedef struct sim_result_s {
    int failed;
    char message[1024];
    uint64_t fail_time_ms;
    uint64_t hash; /* of every event and every update, in order */
    uint64_t events;
    uint64_t end_ms;
    uint64_t proposals;
    uint64_t committed;    /* proposals the proposing leader applied */
    uint64_t lost_applied; /* applied client entries later discarded (static mode only) */
    uint64_t max_term;
    uint64_t leaders;            /* distinct (term, leader) pairs */
    uint64_t liveness_ms;        /* elections: healing to the commit of a proposal made since */
    uint64_t converge_ms;        /* elections: healing to every node applying that proposal */
    uint64_t bound_ms;           /* elections: the liveness bound of this run */
    uint64_t membership_changes; /* configuration entries proposed */
} sim_result_t;

/* xoshiro256** seeded through splitmix64. */
typedef struct sim_rng_s {
    uint64_t s[4];
} sim_rng_t;

void sim_rng_seed(sim_rng_t *g, uint64_t seed);
uint64_t sim_rng_next(sim_rng_t *g);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng_t *g, uint64_t n);
/* Uniform in [lo, hi]. */
uint64_t sim_rng_range(sim_rng_t *g, uint64_t lo, uint64_t hi);
/* 1 with probability permille / 1000. */
int sim_rng_chance(sim_rng_t *g, unsigned permille);

/* Runs one seed; returns 0 or -1 (res->failed) on a violated invariant. */
int sim_run(const sim_options_t *opt, sim_result_t *res);

/* ---- Shared between sim_world.c and sim_check.c ------------------------------------------- */

/* One log entry as the simulated disk holds it. */
struct sim_entry {
    uint64_t term;
    uint8_t type;
    uint32_t len;
    uint8_t data[SIM_MAX_PAYLOAD];
    uint64_t chash; /* hash of term, type and payload */
    uint64_t phash; /* hash of the whole log up to and including this entry */
};

struct sim_applied {
    uint64_t term;
    uint64_t chash;
};

struct sim_node {
    uint64_t id;
    int up;
    uint32_t incarnation; /* events of an earlier life are ignored */
    dl_raft_t *r;

    /* Disk: the hard state (written synchronously), the log, of which 1..durable survives a
     * crash; entries durable+1..last were written but not synced. */
    dl_raft_hardstate_t hs;
    struct sim_entry *log; /* log[i] is index i; log[0] is a sentinel */
    size_t log_cap;
    uint64_t last;
    uint64_t durable;
    int fsync_busy;
    uint64_t fsync_target;
    uint64_t fsync_trunc; /* lowest truncation since the fsync began; UINT64_MAX: none */

    /* State machine: applied entries 1..sm_applied, of which 1..sm_durable survive a crash. */
    struct sim_applied *sm;
    size_t sm_cap;
    uint64_t sm_applied;
    uint64_t sm_durable;
    /* Everything this node ever applied at each index (survives crashes; cleared only by a
     * state-machine reset from the truncation point on). */
    struct sim_applied *hist;
    size_t hist_cap;

    /* Snapshot (durable as soon as taken): the state machine after applying 1..snap_index.
     * The core keeps the log from log_first on (log_first - 1 <= snap_index); entries below
     * stay in log[] only for the checker's hashes. rcv: an incoming snapshot (memory only). */
    uint64_t snap_index;
    uint64_t snap_term;
    dl_raft_membership_t snap_conf; /* the membership at snap_index */
    struct sim_applied *snap;
    size_t snap_cap;
    uint64_t log_first;
    uint64_t compacted_at; /* applied index at the last compaction */
    uint8_t *rcv;
    size_t rcv_len, rcv_cap;
    /* Configuration entries the state machine applied (index order), as the kv store records
     * them: the membership at any applied index, which snapshots carry. */
    struct sim_conf {
        uint64_t index;
        dl_raft_membership_t m;
    } * confs;
    size_t n_confs, cap_confs;

    /* Driver. */
    int iter_pending;
    uint64_t stalled_until;

    /* Last observed role and term, to notice elections. */
    dl_raft_role_t role;
    uint64_t term;
};

struct sim_world;

/* Invariant checks (sim_check.c). Each returns 0, or fails the run through sim_fail. */
int sim_check_init(struct sim_world *w);
void sim_check_free(struct sim_world *w);
/* An entry was written at n->log[index] (chash and phash filled in). */
int sim_check_write(struct sim_world *w, struct sim_node *n, uint64_t index);
/* n applied index (from its log) to its state machine. */
int sim_check_apply(struct sim_world *w, struct sim_node *n, uint64_t index);
/* n is about to drop its log from `from` on (before the truncation). */
int sim_check_truncate(struct sim_world *w, struct sim_node *n, uint64_t from);
/* The prefix hash of the entry (index, term) as first written anywhere; 0 if never written. */
uint64_t sim_check_phash(struct sim_world *w, uint64_t index, uint64_t term);
/* The content hash of n's entry at index (from its state machine below log_first); 0 if none. */
uint64_t sim_entry_chash(const struct sim_node *n, uint64_t index);
/* n's state machine was reset because the log was truncated from `from`. */
int sim_check_reset(struct sim_world *w, struct sim_node *n, uint64_t from,
                    uint64_t discarded_applied);
/* After every call into n's core: roles and terms (Election Safety, Leader Completeness). */
int sim_check_roles(struct sim_world *w, struct sim_node *n);

void sim_fail(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_trace(struct sim_world *w, struct sim_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t len);
/* Grows an array of applied entries (zero-filled) so that index is a valid slot. */
void sim_applied_reserve(struct sim_applied **a, size_t *cap, uint64_t index);
uint64_t sim_hash_u64(uint64_t h, uint64_t v);

/* Accessors sim_check.c needs from the world. */
const sim_options_t *sim_world_options(const struct sim_world *w);
sim_result_t *sim_world_result(struct sim_world *w);
struct sim_node *sim_world_node(struct sim_world *w, size_t i);
size_t sim_world_n_nodes(const struct sim_world *w);
uint64_t sim_world_now(const struct sim_world *w);
void *sim_world_checker(struct sim_world *w);
void sim_world_set_checker(struct sim_world *w, void *c);

#endif
