/*
 * The peer transport of a kv node: Raft messages between nodes over TCP, in the frames of
 * include/ddialab/raft_wire.h.
 *
 * Every node dials every other node and sends its messages over that outbound connection; it
 * receives on the connections others dialed to it. An outbound connection starts with a HELLO
 * (node id, cluster id, HTTP address); an inbound connection whose HELLO names an unknown node or
 * another cluster, or that sends anything that does not decode, is closed. Messages queued during
 * one loop iteration go out in one write per peer (dl_peer_net_flush). While a peer is
 * unreachable its messages are dropped (Raft retransmits) and the dialer retries with backoff.
 */
#ifndef DDIALAB_KV_PEER_H
#define DDIALAB_KV_PEER_H

#include <stdint.h>
#include <uv.h>

#include "ddialab/raft.h"
#include "ddialab/raft_wire.h"

typedef struct dl_peer_net_s dl_peer_net_t;

typedef struct dl_peer_addr_s {
    uint64_t id;
    char host[64];
    int port;
} dl_peer_addr_t;

typedef struct dl_peer_callbacks_s {
    /* A decoded message from a peer; entry data is valid during the call only. */
    void (*on_message)(void *ctx, const dl_raft_msg_t *m);
    /* Our outbound connection to id came up (1) or went down (0). */
    void (*on_peer_state)(void *ctx, uint64_t id, int up);
    void *ctx;
} dl_peer_callbacks_t;

typedef struct dl_peer_options_s {
    uint64_t self_id;
    const char *cluster_id;
    const char *http_addr; /* host:port of this node's HTTP API, told to peers */
    const char *listen_host;
    int listen_port;
    const dl_peer_addr_t *peers; /* every node, this one included (it is skipped) */
    size_t n_peers;
} dl_peer_options_t;

int dl_peer_net_start(uv_loop_t *loop, const dl_peer_options_t *opts, const dl_peer_callbacks_t *cb,
                      dl_peer_net_t **out, char *err, size_t errlen);
#define DL_PEER_MAX 64

/* Starts dialing a new member (or redials one whose address changed). 0 or -ENOSPC. Members
 * that leave are simply no longer sent to. */
int dl_peer_net_add(dl_peer_net_t *net, const dl_peer_addr_t *addr);
/* Queues m (entries with data filled in) for its destination. -ENOTCONN while it is down. */
int dl_peer_net_send(dl_peer_net_t *net, const dl_raft_msg_t *m);
/* Writes everything queued; call once per loop iteration. */
void dl_peer_net_flush(dl_peer_net_t *net);
/* Whether our outbound connection to id is up. */
int dl_peer_net_connected(const dl_peer_net_t *net, uint64_t id);
/* The HTTP address id announced in its HELLO, or NULL if not heard from yet. */
const char *dl_peer_net_http_addr(const dl_peer_net_t *net, uint64_t id);
/* Frames rejected so far (garbage, wrong cluster, ...), for metrics. */
uint64_t dl_peer_net_rejected(const dl_peer_net_t *net);
/* Closes every handle; the loop must run until they are closed, then net is freed. */
void dl_peer_net_stop(dl_peer_net_t *net);

#endif
