/*
 * The Kafka-protocol listener of `ddialab events broker`: TCP connections on the process's libuv
 * loop, request frames, responses in request order per connection (a connection's next request
 * is read only once the one before it is answered, as a Kafka broker does), durability before
 * acknowledgement, and fetches that wait for data.
 *
 * Durability. With the flush policy "every batch" (DL_SYNC_BATCH), a produce with acks 1 or -1
 * is answered only once every partition it wrote is fsynced; fsyncs run on libuv's thread pool,
 * one round at a time for all partitions written since the last round (group commit), so many
 * producers share each fsync. With an interval policy, the answer goes at once and a timer
 * fsyncs what was written every interval. If an fsync fails, the waiting connections are closed
 * without an answer (the client retries; nothing unsynced was acknowledged) and the partition's
 * log refuses further writes until the broker restarts (seglog.h, failed state).
 */
#ifndef DDIALAB_EVENTS_BROKER_H
#define DDIALAB_EVENTS_BROKER_H

#include <stdint.h>
#include <uv.h>

#include "events/handlers.h"
#include "events/topics.h"

typedef struct dl_broker_s dl_broker_t;

typedef struct dl_broker_options_s {
    const char *host; /* listen address; the advertised one too */
    int port;         /* 0: any free port (dl_broker_port says which) */
    int32_t node_id;
    int auto_create;
    dl_sync_policy_t sync_policy;
    int64_t sync_interval_ms;
    size_t max_connections; /* 0: 1024 */
    /* Retention, checked every retention_check_ms (partition.h, dl_partition_retain): -1 for
     * no limit; a topic's retention.ms and retention.bytes override these. The same timer
     * starts log compaction of cleanup.policy=compact topics (compact.h). */
    int64_t retention_ms, retention_bytes, retention_check_ms;
} dl_broker_options_t;

/* Starts listening on loop, serving topics, committed offsets and producer ids (all stay the
 * caller's), with
 * a consumer-group coordinator of its own. errmsg on failure. */
int dl_broker_start(uv_loop_t *loop, const dl_broker_options_t *opts, dl_topics_t *topics,
                    dl_offsets_t *offsets, dl_producer_ids_t *producer_ids, dl_broker_t **out,
                    char *errmsg, size_t errlen);
int dl_broker_port(const dl_broker_t *b);
/* The broker's group coordinator (for the HTTP API's views). */
dl_groups_t *dl_broker_groups(dl_broker_t *b);
/*
 * Stores n record batches (each already built and checked; batches[i] of lens[i] bytes) into
 * partitions[i] for a client that is not a Kafka connection (the HTTP API), then calls
 * done(ctx, rv, base_offsets) once they are as durable as a produce with acks=all would be:
 * after the next fsync round under --flush batch, at once otherwise. rv is 0, or the error of
 * the first batch that could not be stored (those before it are stored; base_offsets of the
 * rest are -1), DL_EINTERNAL when the fsync failed, DL_ESHUTDOWN when the broker stopped first.
 * The batches are copied first (their base offsets are rewritten in the copies).
 * base_offsets is valid during the call.
 */
void dl_broker_produce(dl_broker_t *b, dl_partition_t *const *partitions,
                       const uint8_t *const *batches, const size_t *lens, size_t n,
                       void (*done)(void *ctx, int rv, const int64_t *base_offsets), void *ctx);

/* Asks for every partition of topic (cleanup.policy=compact) to be compacted now: passes run
 * one at a time in the background; GET /topics/{t} shows each partition's passes. */
void dl_broker_compact(dl_broker_t *b, dl_topic_t *topic);

/* The broker's metrics registry (ddialab_events_*, for GET /metrics). */
struct dl_metrics_s *dl_broker_metrics(dl_broker_t *b);
/* Stops accepting, closes every connection, waits for the fsync in flight, fsyncs every
 * partition written since, then calls done(ctx) and frees b (never from inside this call). */
void dl_broker_stop(dl_broker_t *b, void (*done)(void *ctx), void *ctx);

#endif
