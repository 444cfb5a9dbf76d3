/*
 * libFuzzer target for the Kafka request decoder: every byte a client sends after the frame size
 * goes through dl_kheader_parse and then the handler of its API, against real topics in a
 * temporary directory. Any input must be answered with a well-formed frame, answered with
 * nothing (acks=0), or refused (the connection would close); never a crash, a hang, a read out
 * of bounds or a leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/fsutil.h"
#include "events/handlers.h"
#include "events/kwire.h"
#include "events/protocol.h"
#include "events/topics.h"

static dl_topics_t *topics;
static dl_offsets_t *offsets;
static dl_groups_t *groups;
static dl_producer_ids_t *producer_ids;
static int answers; /* the coordinator's callbacks */

static void on_join(void *waiter, const dl_group_join_result_t *r)
{
    answers++;
}

static void on_sync(void *waiter, int16_t error, const uint8_t *assignment, size_t len)
{
    answers++;
}
static char dir[] = "/tmp/ddialab-fuzz-kafka-XXXXXX";

static void cleanup(void)
{
    dl_groups_free(groups);
    dl_producer_ids_close(producer_ids);
    dl_offsets_close(offsets);
    dl_topics_close(topics);
    if (dl_remove_tree(dir) != 0)
        fprintf(stderr, "fuzz_kafka_request: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (mkdtemp(dir) == NULL)
        abort();
    char err[256];
    /* Small segments: the inputs that do append roll them, and so exercise that path too. */
    dl_topics_options_t o = {.data_dir = dir,
                             .default_partitions = 2,
                             .partition = {.segment_bytes = 1 << 16, .sync_policy = DL_SYNC_NONE}};
    if (dl_topics_open(&o, &topics, err, sizeof(err)) != 0 ||
        dl_topics_create(topics, "t", 1, 2, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_kafka_request: %s\n", err);
        abort();
    }
    char path[sizeof(dir) + 32];
    snprintf(path, sizeof(path), "%s/consumer_offsets.db", dir);
    dl_groups_callbacks_t callbacks = {.join_done = on_join, .sync_done = on_sync};
    char ids_path[sizeof(dir) + 32];
    snprintf(ids_path, sizeof(ids_path), "%s/producer_ids", dir);
    if (dl_offsets_open(path, &offsets, err, sizeof(err)) != 0 ||
        dl_producer_ids_open(ids_path, &producer_ids, err, sizeof(err)) != 0 ||
        (groups = dl_groups_new(&callbacks)) == NULL) {
        fprintf(stderr, "fuzz_kafka_request: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The handlers rewrite produced batches in place, as in a receive buffer. */
    uint8_t *frame = malloc(size ? size : 1);
    if (frame == NULL)
        return 0;
    memcpy(frame, data, size);
    dl_events_ctx_t ctx = {.topics = topics,
                           .node_id = 1,
                           .advertised_host = "127.0.0.1",
                           .advertised_port = 9092,
                           .auto_create = 0,
                           .groups = groups,
                           .offsets = offsets,
                           .producer_ids = producer_ids,
                           .now_ms = 1000,
                           .waiter = &answers};
    dl_kheader_t h;
    dl_kreader_t body;
    dl_buf_t out = {0};
    dl_kheader_status_t status = dl_kheader_parse(frame, size, &h, &body);
    if (status == DL_KHEADER_UNSUPPORTED_VERSION) {
        if (dl_kapi_versions_respond(&out, &h) != 0)
            abort();
    } else if (status == DL_KHEADER_OK) {
        int32_t wait_ms = 0;
        dl_handled_t handled = dl_events_handle(&ctx, &h, body, &out, 1, &wait_ms);
        if (handled == DL_HANDLED_WAIT_DATA) /* final: a fetch answers now */
            abort();
        if (handled == DL_HANDLED_PARKED)
            dl_groups_forget_waiter(groups, &answers); /* as a closing connection would */
        if (handled != DL_HANDLED_RESPOND && out.len != 0)
            abort(); /* nothing half-written is left behind */
    }
    /* A response frame is its size, then the correlation id. */
    if (out.len != 0) {
        if (out.len < 8 || dl_kbe32(out.data) != out.len - 4 ||
            (int32_t)dl_kbe32(out.data + 4) != h.correlation_id)
            abort();
    }
    free(out.data);
    free(ctx.touched.items);
    free(frame);
    /* A DeleteTopics: close what it deleted (the broker does so between fsync rounds), and
     * bring "t" back for the inputs after this one. */
    dl_topics_reap(topics);
    char err[256];
    if (dl_topics_find(topics, "t", 1) == NULL &&
        dl_topics_create(topics, "t", 1, 2, NULL, NULL, err, sizeof(err)) != 0)
        abort();
    return 0;
}
