/*
 * The consumer-group coordinator: Kafka's group membership protocol as a pure state machine.
 * Time comes in as now_ms, answers go out through callbacks, and nothing here touches a socket,
 * so unit tests drive it step by step; handlers.c decodes the requests and encodes the answers,
 * broker.c parks the connections that wait and ticks the clock.
 *
 * A group moves between Kafka's states:
 *
 *   Empty --join--> PreparingRebalance --every member (re)joined, or the rebalance timeout-->
 *   CompletingRebalance --the leader's SyncGroup--> Stable --join, leave, session expiry-->
 *   PreparingRebalance ...
 *
 * JoinGroup answers wait until the rebalance completes: then the generation goes up, a protocol
 * every member supports is chosen by vote (each member votes for its first choice among them),
 * the leader (the previous one if it rejoined, else the first to join) gets every member's
 * metadata, and everyone gets the generation and the leader's id. SyncGroup answers wait for the
 * leader's SyncGroup, whose assignments the coordinator relays without reading them (range,
 * roundrobin, sticky: the clients' business). Members that stop heartbeating for their session
 * timeout are removed, which starts a rebalance; members that do not rejoin a rebalance within
 * its timeout are removed when it completes.
 *
 * Deviations from Kafka, on purpose: no initial rebalance delay for a new group (Kafka waits
 * group.initial.rebalance.delay.ms, 3 s, for more members; here the first member gets a
 * generation at once and the second triggers a rebalance), and no static membership
 * (group.instance.id is accepted and ignored).
 */
#ifndef DDIALAB_EVENTS_GROUPS_H
#define DDIALAB_EVENTS_GROUPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct dl_groups_s dl_groups_t;

typedef enum {
    DL_GROUP_EMPTY = 0,
    DL_GROUP_PREPARING_REBALANCE,
    DL_GROUP_COMPLETING_REBALANCE,
    DL_GROUP_STABLE,
} dl_group_state_t;

/* A member's protocol: a name ("range", "roundrobin", "RoundRobinAssigner") and opaque
 * metadata (the topics it subscribes to, in the client's own encoding). */
typedef struct dl_group_protocol_s {
    const char *name;
    const uint8_t *metadata;
    size_t metadata_len;
} dl_group_protocol_t;

typedef struct dl_group_join_s {
    const char *group_id;
    const char *member_id; /* "" for a new member */
    const char *client_id;
    const char *client_host;     /* the member's address, for DescribeGroups */
    int require_known_member_id; /* JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED */
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    const char *protocol_type; /* "consumer" */
    const dl_group_protocol_t *protocols;
    size_t n_protocols;
} dl_group_join_t;

/* One member in the leader's join answer. */
typedef struct dl_group_member_info_s {
    const char *member_id;
    const uint8_t *metadata;
    size_t metadata_len;
} dl_group_member_info_t;

/* A join's answer; the pointers are valid during the callback only. */
typedef struct dl_group_join_result_s {
    int16_t error; /* a dl_kerror_t */
    int32_t generation;
    const char *protocol; /* NULL on error */
    const char *leader;
    const char *member_id;                 /* the member's id (set with MEMBER_ID_REQUIRED too) */
    const dl_group_member_info_t *members; /* the leader only; else n_members is 0 */
    size_t n_members;
} dl_group_join_result_t;

typedef struct dl_groups_callbacks_s {
    void (*join_done)(void *waiter, const dl_group_join_result_t *result);
    /* assignment (len bytes) valid during the call; NULL with an error */
    void (*sync_done)(void *waiter, int16_t error, const uint8_t *assignment, size_t len);
} dl_groups_callbacks_t;

dl_groups_t *dl_groups_new(const dl_groups_callbacks_t *callbacks);
/* Frees everything; waiters still parked get no answer (their connections are closing). */
void dl_groups_free(dl_groups_t *g);

/*
 * A JoinGroup: answered through join_done(waiter, ...), at once (errors, MEMBER_ID_REQUIRED, a
 * rebalance this join completes) or later. The request's strings and bytes are copied.
 */
void dl_groups_join(dl_groups_t *g, int64_t now_ms, const dl_group_join_t *join, void *waiter);

/*
 * A SyncGroup: answered through sync_done(waiter, ...) at once or once the leader's assignments
 * arrive. assignments are the leader's (n pairs of member id and bytes; ignored from others).
 */
void dl_groups_sync(dl_groups_t *g, int64_t now_ms, const char *group_id, int32_t generation,
                    const char *member_id, const dl_group_member_info_t *assignments, size_t n,
                    void *waiter);

/* A Heartbeat: its Kafka error (NONE, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID). */
int16_t dl_groups_heartbeat(dl_groups_t *g, int64_t now_ms, const char *group_id,
                            int32_t generation, const char *member_id);

/* A LeaveGroup: NONE or UNKNOWN_MEMBER_ID. */
int16_t dl_groups_leave(dl_groups_t *g, int64_t now_ms, const char *group_id,
                        const char *member_id);

/*
 * Whether an OffsetCommit may go ahead: NONE for a member of the current generation, or for a
 * commit without membership (generation -1, member "") to a group with no members (a consumer
 * that assigns partitions itself); else ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or
 * REBALANCE_IN_PROGRESS. A commit counts as a heartbeat.
 */
int16_t dl_groups_check_commit(dl_groups_t *g, int64_t now_ms, const char *group_id,
                               int32_t generation, const char *member_id);

/* Expires sessions and completes rebalances whose timeout passed. */
void dl_groups_tick(dl_groups_t *g, int64_t now_ms);
/* When dl_groups_tick has something to do next, or -1 when nothing is pending. */
int64_t dl_groups_next_deadline(const dl_groups_t *g);

/* A parked waiter's connection closed: it is answered by nobody (the member stays until its
 * session expires, as in Kafka). */
void dl_groups_forget_waiter(dl_groups_t *g, void *waiter);

/* For ListGroups, DescribeGroups and the HTTP API. */
typedef struct dl_group_view_s {
    const char *group_id;
    dl_group_state_t state;
    const char *protocol_type; /* "" when unknown */
    const char *protocol;      /* "" before the first generation */
    int32_t generation;
    const char *leader;
    size_t n_members;
} dl_group_view_t;
/* Calls fn for every group, in id order. */
void dl_groups_each(const dl_groups_t *g, void (*fn)(void *ctx, const dl_group_view_t *view),
                    void *ctx);
const char *dl_group_state_name(dl_group_state_t state);

/* One member, for DescribeGroups: its metadata for the group's protocol and its assignment. */
typedef struct dl_group_member_view_s {
    const char *member_id, *client_id, *client_host;
    const uint8_t *metadata;
    size_t metadata_len;
    const uint8_t *assignment;
    size_t assignment_len;
} dl_group_member_view_t;

/* Calls group_fn with group_id's view, then member_fn for each member; -ENOENT (and no call)
 * when there is no such group. */
int dl_groups_describe(const dl_groups_t *g, const char *group_id,
                       void (*group_fn)(void *ctx, const dl_group_view_t *view),
                       void (*member_fn)(void *ctx, const dl_group_member_view_t *member),
                       void *ctx);

#endif
