/*
 * The broker's request handlers: one request in (header and body reader), its response out,
 * against the topics. No sockets and no timers: broker.c owns those, and decides from what a
 * handler returns whether to answer now, after an fsync, later (a fetch that waits for data),
 * or never (acks=0). Every version each API advertises in protocol.c is decoded here, field by
 * field as Apache Kafka's message JSON lays them out; a body that does not decode closes the
 * connection, as a Kafka broker does.
 */
#ifndef DDIALAB_EVENTS_HANDLERS_H
#define DDIALAB_EVENTS_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"
#include "events/groups.h"
#include "events/offsets.h"
#include "events/producers.h"
#include "events/protocol.h"
#include "events/topics.h"

typedef struct dl_events_ctx_s {
    dl_topics_t *topics;
    int32_t node_id;
    const char *advertised_host; /* what Metadata tells clients to connect to */
    int32_t advertised_port;
    int auto_create;  /* Metadata creates unknown topics (as auto.create.topics.enable) */
    int stable_reads; /* --flush batch: fetches see only what is fsynced */
    /* Set by a Produce that appended: the partitions it wrote, so that the broker can make
     * them durable before it answers. Reset by the broker before each request. */
    dl_partition_set_t touched;
    /* Consumer groups: the coordinator, the committed offsets, the clock (ms, monotonic) and
     * the waiter a JoinGroup or SyncGroup parks (the broker's connection). */
    dl_groups_t *groups;
    dl_offsets_t *offsets;
    dl_producer_ids_t *producer_ids; /* InitProducerId */
    int64_t now_ms;
    void *waiter;
    const char *client_host; /* the connection's peer, "/127.0.0.1" as Kafka writes it */
    /* Counted by the handlers, read by /metrics. */
    uint64_t produced_records, produced_bytes, duplicate_batches, fetched_bytes;
} dl_events_ctx_t;

typedef enum {
    DL_HANDLED_RESPOND,     /* the response is in out */
    DL_HANDLED_NO_RESPONSE, /* a Produce with acks=0 */
    DL_HANDLED_WAIT_DATA,   /* a Fetch short of min_bytes with time left: run it again later
                             * with final set (out is unchanged) */
    DL_HANDLED_CLOSE,       /* malformed or unserviceable: close the connection */
    DL_HANDLED_PARKED,      /* a JoinGroup or SyncGroup handed to the coordinator: its answer
                             * comes through the coordinator's callback (perhaps already did),
                             * encoded with dl_events_encode_join or _sync */
} dl_handled_t;

/*
 * Handles request h with body, appending the response frame to out. final: for a Fetch, the
 * wait is over, answer with whatever there is. *wait_ms receives a Fetch's max wait when it
 * returns DL_HANDLED_WAIT_DATA.
 */
dl_handled_t dl_events_handle(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t body,
                              dl_buf_t *out, int final, int32_t *wait_ms);

/* The response frames of a JoinGroup and a SyncGroup (the request's header h), for the
 * coordinator's callbacks. 0 or -ENOMEM. */
int dl_events_encode_join(dl_buf_t *out, const dl_kheader_t *h, const dl_group_join_result_t *r);
int dl_events_encode_sync(dl_buf_t *out, const dl_kheader_t *h, int16_t error,
                          const uint8_t *assignment, size_t len);

/* Ends the response begun at start when rv is 0 (RESPOND), else drops it (CLOSE). */
dl_handled_t dl__events_finish(dl_buf_t *out, size_t start, int rv);

/* handlers_groups.c: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 * OffsetCommit, OffsetFetch, ListGroups. */
dl_handled_t dl__events_handle_group(dl_events_ctx_t *ctx, const dl_kheader_t *h,
                                     dl_kreader_t *body, dl_buf_t *out);

#endif
