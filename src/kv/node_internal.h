/*
 * The pieces of one kv node shared by the driver (node.c) and its HTTP API (node_http.c).
 *
 * One libuv loop runs everything. A write arrives over HTTP and becomes a waiter; at the end of
 * the loop iteration every waiting command is proposed to the replication core at once, written
 * to the log, sent to the followers, and fsynced on the thread pool (group commit). When the core
 * says the entry is committed and durable here, it is applied to SQLite and the waiter answered.
 */
#ifndef DDIALAB_KV_NODE_INTERNAL_H
#define DDIALAB_KV_NODE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "ddialab/buf.h"
#include "ddialab/http_server.h"
#include "ddialab/metrics.h"
#include "ddialab/raft.h"
#include "ddialab/seglog.h"
#include "kv/peer.h"
#include "kv/store.h"

#define DL_KV_MAX_NODES     16
#define DL_KV_MAX_KEY_BYTES 4096
#define DL_KV_MAX_WAITERS   100000
/* Bytes of writes accepted but not yet answered; beyond it writes get 503 busy. */
#define DL_KV_MAX_PENDING_BYTES (256u << 20)
/* The largest --max-value-bytes: an entry must fit one peer frame (DL_WIRE_MAX_BODY). */
#define DL_KV_MAX_VALUE_LIMIT (32 << 20)

/* A client write waiting for its entry to commit and apply. */
typedef struct dl_kv_waiter_s {
    dl_http_req_t *req; /* NULL once answered or the client went away */
    uint64_t index;     /* 0 until proposed */
    uint64_t deadline_ms;
    uint8_t op;
    uint8_t unconditional_put; /* its result is known before it applies (version = index) */
    uint8_t answered_early;    /* acknowledged before it committed */
    size_t bytes;              /* key and value, counted in pending_bytes */
    dl_kv_result_t result;     /* once applied, while it waits for more copies */
    struct dl_kv_waiter_s *next;
} dl_kv_waiter_t;

/* A linearizable read waiting for its ReadIndex round, then for the state machine. */
typedef struct dl_kv_read_s {
    uint64_t id;
    dl_http_req_t *req; /* NULL once the client went away */
    uint64_t index;     /* 0 until the round confirmed it */
    int list;           /* GET /kv (a listing) rather than GET /kv/{key} */
    struct dl_kv_read_s *next;
} dl_kv_read_t;

/* A recently written entry kept in memory so followers and apply need no disk read. */
typedef struct dl_kv_cached_entry_s {
    uint64_t index;
    uint64_t term;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
} dl_kv_cached_entry_t;

/* A snapshot file kept open for reading chunks (snapshot.c). */
typedef struct dl_kv_snapfile_s {
    uint64_t index;
    uint64_t term;
    uint64_t size;
    int fd;
} dl_kv_snapfile_t;
#define DL_KV_MAX_SNAPFILES 8

/* A snapshot being taken on the thread pool. */
typedef struct dl_kv_snapjob_s {
    char db_path[4200];
    char tmp[4200];
    uint64_t index, term, size;
    int rv;
    char err[512];
} dl_kv_snapjob_t;

typedef struct dl_kv_node_s {
    uv_loop_t *loop;

    /* Configuration. */
    uint64_t id;
    const char *cluster_id;
    const char *data_dir;
    char http_addr[128]; /* host:port */
    /* The address book: every node this one knows of (from --peers, --join, and configuration
     * entries), with its HTTP address when known. The Raft core has the membership. */
    dl_peer_addr_t nodes[DL_KV_MAX_NODES];
    char node_http[DL_KV_MAX_NODES][128];
    size_t n_nodes;
    uint8_t promote[DL_KV_MAX_NODES + 1]; /* learners to promote once they caught up */
    /* The membership to start from when neither the log nor a snapshot says: --peers, or what
     * the cluster answered to --join. */
    uint64_t boot_voters[DL_KV_MAX_NODES], boot_learners[DL_KV_MAX_NODES];
    size_t n_boot_voters, n_boot_learners;
    uint64_t static_leader;
    char replication[32]; /* as given: async, semi-sync, sync, majority, quorum=W */
    /* Copies (leader included) on disk before a write is acknowledged to its client. */
    size_t quorum;
    /* Copies that commit an entry: with elections always a majority (Raft); without, the same
     * as quorum (the foundation's modes are commit quorums there). An acknowledgement policy
     * below it answers unconditional PUTs before they commit; one above it answers after
     * commit, once the extra copies exist. */
    size_t commit_quorum;
    int64_t write_timeout_ms;
    int64_t max_value_bytes;
    int64_t heartbeat_ms;
    int elections;            /* Raft elections; otherwise a static leader and promotions */
    dl_raft_role_t last_role; /* for telling role changes apart in the log */
    int64_t election_timeout_ms;
    dl_sync_policy_t sync_policy;
    int64_t sync_interval_ms;

    /* Components. */
    dl_raft_t *raft;
    dl_seglog_t *log;
    dl_kv_store_t *store;
    dl_peer_net_t *net;
    dl_http_server_t *http;
    dl_metrics_t *metrics;

    /* Writes received this iteration, proposed together at its end. */
    dl_buf_t batch_cmds;
    size_t *batch_offsets;
    dl_kv_waiter_t **batch_waiters;
    size_t batch_len;
    size_t batch_cap;

    /* Proposed writes in index order, waiting to apply. */ dl_kv_read_t
        *reads; /* waiting linearizable reads */
    uint64_t read_seq;
    dl_kv_waiter_t *wait_head;
    dl_kv_waiter_t *wait_tail;
    dl_kv_waiter_t *early_cursor; /* first waiter not yet considered for an early answer... */
    dl_kv_waiter_t *early_last;   /* ...or, when NULL, the last one considered (NULL: none) */
    /* Applied writes waiting for more copies than a commit needs (sync, quorum=W). */
    dl_kv_waiter_t *copy_head;
    dl_kv_waiter_t *copy_tail;
    /* Indices acknowledged before they committed and not committed yet: lost if truncated. */
    uint64_t *early_acked;
    size_t n_early_acked, cap_early_acked;
    size_t n_waiters;
    size_t pending_bytes;

    /* Group commit. */
    int sync_busy;
    uv_work_t sync_work;
    dl_seglog_sync_t sync_job;
    uint64_t sync_started_ns;

    /* Snapshots (snapshot.c): files, newest last. */
    int64_t snapshot_entries;
    dl_kv_snapfile_t snaps[DL_KV_MAX_SNAPFILES];
    size_t n_snaps;
    int snap_busy;
    int ckpt_busy; /* making the state machine durable before a compaction */
    uv_work_t ckpt_work;
    uint64_t ckpt_index;
    int ckpt_rv;
    uint64_t compacted_at; /* applied index of the last compaction */
    uv_work_t snap_work;
    dl_kv_snapjob_t snap_job;
    uint64_t snap_started_ns;
    int rcv_fd; /* the incoming snapshot; -1 = none */

    /* Recent entries. */
    dl_kv_cached_entry_t *cache;
    size_t cache_cap;
    size_t cache_bytes;
    uint64_t cache_low; /* no entry below this index is cached */

    uv_check_t check;
    uv_timer_t tick;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    int stopping;
    int exit_code;

    /* Metrics. */
    dl_metric_t *m_snapshots_taken;
    dl_metric_t *m_compactions;
    dl_metric_t *m_snapshots_installed;
    dl_metric_t *m_snapshot_seconds;
    dl_metric_t *m_discarded;
    dl_metric_t *m_discarded_applied;
    dl_metric_t *m_discarded_acked;
    dl_metric_t *m_fsync_seconds;
    dl_metric_t *m_fsync_entries;
    dl_metric_t *m_writes_ok;
    dl_metric_t *m_writes_failed;
    dl_metric_t *m_writes_timeout;
    dl_metric_t *m_redirects;
    dl_metric_t *m_send_failures;
    dl_metric_t *m_http_requests;
    dl_metric_t *m_http_seconds;
    /* ddialab_http_requests_total series by method and status, so that a request does not
     * format labels and search the registry (methods are the server's static strings). */
    struct {
        const char *method;
        int status;
        dl_metric_t *series;
    } http_series[32];
    size_t n_http_series;
    uint64_t discarded_total;
    uint64_t discarded_applied_total;
    uint64_t discarded_acked_total; /* acknowledged (early) and then discarded */
    uint64_t last_sync_index;
} dl_kv_node_t;

/* node.c */
uint64_t dl__kv_now_ms(dl_kv_node_t *n);
/* Queues a write for the end of this iteration; the waiter answers req later. */
int dl__kv_submit(dl_kv_node_t *n, dl_http_req_t *req, const dl_kv_command_t *cmd);
/* Makes this node leader at a higher term (static mode), or starts an election (elections). */
int dl__kv_promote(dl_kv_node_t *n);
/* Starts a linearizable read of req (ReadIndex); it is answered by dl__kv_serve_read. */
int dl__kv_read(dl_kv_node_t *n, dl_http_req_t *req, int list);
/* Elections: hands leadership to node `to`. */
int dl__kv_transfer_leader(dl_kv_node_t *n, uint64_t to);
/* The leader's HTTP address as host:port, or NULL when unknown. */
const char *dl__kv_leader_http(dl_kv_node_t *n);

/* node.c */
/* Parses host:port. Returns 0 or -EINVAL. */
int dl__kv_parse_hostport(const char *text, char *host, size_t hostlen, int *port);
/* Carries out an update of the core (for modules that call into the core). */
void dl__kv_process(dl_kv_node_t *n, const dl_raft_update_t *u);
/* Commits the state machine's open transaction; a failure stops the node (it returns nonzero). */
int dl__kv_flush(dl_kv_node_t *n);
/* Copies before a client is answered, from --replication and the number of voters. */
void dl__kv_update_ack_copies(dl_kv_node_t *n, size_t voters);

/* members.c */
/* Learns addresses and promotion wishes from a configuration entry's payload. */
void dl__kv_members_learn(dl_kv_node_t *n, const void *payload, size_t len);
/* The membership in force changed: dial new members, recompute quorums. */
void dl__kv_members_changed(dl_kv_node_t *n);
/* Leader, every tick: promotes learners that asked to vote once they caught up. */
void dl__kv_members_tick(dl_kv_node_t *n);
json_t *dl__kv_members_json(dl_kv_node_t *n);
void dl__kv_handle_members_get(void *ctx, dl_http_req_t *req);
void dl__kv_handle_members_post(void *ctx, dl_http_req_t *req);
void dl__kv_handle_members_delete(void *ctx, dl_http_req_t *req);
/* --join: asks the cluster at url to add this node (or reads join.json from an earlier join);
 * sets the address book and boot membership. */
int dl__kv_join(dl_kv_node_t *n, const char *url, const char *peer_addr, char *err, size_t errlen);

/* snapshot.c */
/* Creates <data-dir>/snapshots and deletes what a previous run left there. */
int dl__kv_snap_open(dl_kv_node_t *n, char *err, size_t errlen);
const dl_kv_snapfile_t *dl__kv_snap_latest(const dl_kv_node_t *n);
/* Once --snapshot-entries were applied since the last compaction: makes the state machine
 * durable on the thread pool, then compacts the log. */
void dl__kv_snap_maybe_compact(dl_kv_node_t *n);
/* update.snapshot_needed: writes a snapshot file on the thread pool (unless one still reaches
 * the log) and reports it to the core. */
void dl__kv_snap_make_file(dl_kv_node_t *n);
/* Reads a chunk of snapshot `index` for sending. -ENOENT if that file is gone. */
int dl__kv_snap_read(dl_kv_node_t *n, uint64_t index, uint64_t offset, void *buf, uint32_t len);
/* Stores a received chunk; after the last one installs the snapshot (state machine, log) and
 * returns 1: the caller then tells the core (dl_raft_snapshot_installed). */
int dl__kv_snap_receive(dl_kv_node_t *n, const dl_raft_snapshot_chunk_t *c);
/* Forgets log, snapshots and state machine (update.reset_all). */
int dl__kv_snap_reset_all(dl_kv_node_t *n);
/* Deletes snapshot files no transfer reads any more. */
void dl__kv_snap_gc(dl_kv_node_t *n);
void dl__kv_snap_close(dl_kv_node_t *n);

/* node_http.c */
void dl__kv_redirect_to_leader(dl_kv_node_t *n, dl_http_req_t *req);
int dl__kv_http_start(dl_kv_node_t *n, const char *host, int port, char *err, size_t errlen);
/* Answers a read from the local state machine (GET /kv/{key}, or a listing). */
void dl__kv_serve_read(dl_kv_node_t *n, dl_http_req_t *req, int list);
/* Answers a read the node could not confirm (leadership lost): a redirect or a 503. */
void dl__kv_refuse_read(dl_kv_node_t *n, dl_http_req_t *req);
/* Answers a waiter's request once its entry applied (or failed). */
void dl__kv_reply_applied(dl_kv_node_t *n, dl_kv_waiter_t *w, const dl_kv_result_t *res);
void dl__kv_reply_failed(dl_kv_node_t *n, dl_kv_waiter_t *w, int rv, const char *why);

#endif
