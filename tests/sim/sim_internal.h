/*
 * Internals shared by the simulator's files: the world, its events and messages in flight.
 * Not a public interface; see sim.h.
 */
#ifndef DDIALAB_SIM_INTERNAL_H
#define DDIALAB_SIM_INTERNAL_H

#include "sim.h"

enum ev_type {
    EV_DELIVER = 1,
    EV_ITER,
    EV_TICK,
    EV_FSYNC,
    EV_PEER_DOWN,
    EV_CLIENT,
    EV_CRASH,
    EV_RESTART,
    EV_PARTITION,
    EV_PARTITION_HEAL,
    EV_STALL,
    EV_PROMOTE,
    EV_HEAL_ALL,
    EV_DEADLINE,
    EV_MEMBERSHIP,
};

/* A message in flight: the core's message with its entries, payloads and chunk copied. */
struct sim_msg {
    dl_raft_msg_t m;
    dl_raft_entry_t *ents;
    uint8_t (*payload)[SIM_MAX_PAYLOAD];
    uint8_t *chunk; /* SNAPSHOT: m.data_len bytes */
};

/* A snapshot's bytes: per index 1..snap_index, its term and content hash (16 bytes), then the
 * membership in force at snap_index (dl_raft_membership_encode). */
#define SIM_SNAP_ENTRY_BYTES 16

struct event {
    uint64_t time;
    uint64_t seq;
    uint8_t type;
    uint8_t node; /* index into nodes[] */
    uint32_t inc; /* the node's incarnation when scheduled */
    uint64_t arg;
    struct sim_msg *msg;
};

#define SIM_CONVERGE_MS 60000
#define SIM_MAX_BACKLOG 64

struct proposal {
    uint32_t node;
    uint64_t index;
    uint64_t term;
    uint64_t at;
    int committed;
};

struct sim_world {
    sim_options_t opt;
    sim_result_t *res;
    sim_rng_t rng;
    uint64_t now;
    uint64_t seq;
    struct event *heap;
    size_t n_heap, cap_heap;
    struct sim_node nodes[SIM_MAX_NODES];
    size_t n;
    uint64_t ids[SIM_MAX_NODES];
    int cut[SIM_MAX_NODES][SIM_MAX_NODES]; /* cut[a][b]: nothing goes from a to b */
    int partitioned;

    /* Parameters drawn from the seed. */
    dl_raft_config_t base;
    uint64_t tick_ms;
    unsigned drop_pm, dup_pm, long_delay_pm;
    uint64_t delay_max, fsync_max;
    uint64_t crash_gap, partition_gap, stall_gap, promote_gap, client_gap;
    uint64_t snapshot_every; /* entries applied between snapshots; 0 = never */
    uint64_t membership_gap; /* elections with PreVote and CheckQuorum: changes; 0 = none */
    dl_raft_membership_t initial;

    int healing;
    uint64_t heal_at;
    uint64_t bound_ms;   /* elections: a proposal commits this long after healing */
    uint64_t live_index; /* index of the first proposal made since healing that committed */
    int stop;

    struct proposal *props;
    size_t n_props, cap_props;
    void *checker;
};

/* Event queue (sim_world.c). */
void sim_push(struct sim_world *w, struct event e);
void sim_schedule(struct sim_world *w, uint64_t delay, uint8_t type, size_t node, uint64_t arg);
/* A driver loop iteration on n soon (flush, fsync), unless one is pending. */
void sim_schedule_iter(struct sim_world *w, struct sim_node *n);

/* Driver and network (sim_driver.c). */
void sim_ensure_log(struct sim_node *n, uint64_t index);
size_t sim_node_index(struct sim_world *w, uint64_t id);
/* Points a message's entries and payloads at its own storage again (after a copy). */
void sim_msg_fix(struct sim_msg *sm);
/* The membership the state machine of n records at applied index `index`. */
const dl_raft_membership_t *sim_conf_at(struct sim_world *w, struct sim_node *n, uint64_t index);
/* Records a configuration entry the state machine applied (or a snapshot's membership). */
void sim_record_conf(struct sim_node *n, uint64_t index, const dl_raft_membership_t *m);
/* The state machine went back to `applied`: forget configurations recorded after it. */
void sim_forget_confs_after(struct sim_node *n, uint64_t applied);
/* Bytes of n's snapshot at index (entries and membership). */
uint64_t sim_snap_size(struct sim_world *w, struct sim_node *n, uint64_t index);
/* Takes a snapshot and compacts when snapshot_every entries were applied since the last. */
void sim_maybe_snapshot(struct sim_world *w, struct sim_node *n);
/* Carries out one update of n's core, in the order raft.h prescribes, checking as it goes. */
void sim_carry_out(struct sim_world *w, struct sim_node *n, const dl_raft_update_t *u);

/* Helpers (sim_util.c). */
void sim_describe_msg(const dl_raft_msg_t *m, char *buf, size_t len);

#endif
