/* "ddialab events": its verbs, and the broker's command line. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ddialab/events.h"
#include "ddialab/flags.h"
#include "ddialab/logging.h"
#include "events/broker.h"
#include "events/cli.h"
#include "events/http.h"
#include "events/offsets.h"
#include "events/topics.h"

static const char *BROKER_USAGE =
    "usage: ddialab events broker [--listen 127.0.0.1:9092] [--http 127.0.0.1:8090]\n"
    "                             [--data-dir ./data/events]\n"
    "                             [--default-partitions N] [--flush batch|DURATION]\n\n"
    "A single-node event log that speaks the Kafka wire protocol: point kcat, librdkafka or\n"
    "kafkajs at --listen. Topics are created on first use (or not, --no-auto-create) with\n"
    "--default-partitions partitions. --flush batch (the default) fsyncs every produced batch\n"
    "before acknowledging it (acks 1 or all); --flush 100ms fsyncs every 100 ms and\n"
    "acknowledges at once, so a crash may lose what the last interval wrote. Retention deletes\n"
    "a partition's oldest segment files by age (--retention-ms) and size (--retention-bytes);\n"
    "topics created with cleanup.policy=compact are compacted in the background instead.\n";

typedef struct main_s {
    dl_topics_t *topics;
    dl_offsets_t *offsets;
    dl_producer_ids_t *producer_ids;
    dl_broker_t *broker;
    dl_events_http_t http;
    uv_signal_t sigint, sigterm;
    int stopping;
} main_t;

static void on_broker_stopped(void *ctx)
{
    main_t *m = ctx;
    m->broker = NULL;
}

static void on_http_stopped(void *ctx)
{
    main_t *m = ctx;
    m->http.server = NULL;
}

static void on_signal(uv_signal_t *h, int signum)
{
    main_t *m = h->data;
    if (m->stopping)
        return;
    m->stopping = 1;
    DL_INFO("%s: stopping", signum == SIGINT ? "interrupted" : "terminated");
    uv_signal_stop(&m->sigint);
    uv_signal_stop(&m->sigterm);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    if (m->http.server != NULL)
        dl_http_server_stop(m->http.server, 0, on_http_stopped, m);
    dl_broker_stop(m->broker, on_broker_stopped, m);
}

/* --flush: "batch", or an interval; the policy and interval. */
static int parse_flush(const char *text, dl_sync_policy_t *policy, int64_t *interval_ms)
{
    if (strcmp(text, "batch") == 0) {
        *policy = DL_SYNC_BATCH;
        *interval_ms = 0;
        return 0;
    }
    if (dl_parse_duration_ms(text, interval_ms) != 0 || *interval_ms < 1 || *interval_ms > 60000)
        return -EINVAL;
    *policy = DL_SYNC_INTERVAL;
    return 0;
}

static int broker_main(int argc, char **argv)
{
    char *listen_addr = "127.0.0.1:9092", *data_dir = "./data/events", *flush = "batch";
    char *http_addr = "127.0.0.1:8090";
    char *log_level = NULL;
    int64_t default_partitions = 1, node_id = 1, segment_bytes = 64 << 20;
    int64_t retention_ms = 7 * 24 * 3600 * 1000LL, retention_bytes = -1, retention_check_ms = 10000;
    int auto_create = 1;
    dl_flag_t flags[] = {
        {"listen", DL_FLAG_STRING, &listen_addr, "Kafka protocol listen address, HOST:PORT"},
        {"http", DL_FLAG_STRING, &http_addr,
         "HTTP API for curl (topics, records, groups), HOST:PORT; \"off\" for none"},
        {"data-dir", DL_FLAG_STRING, &data_dir, "where the partition logs live"},
        {"default-partitions", DL_FLAG_INT, &default_partitions,
         "partitions of a topic created on first use"},
        {"auto-create", DL_FLAG_BOOL, &auto_create,
         "create unknown topics when a client asks for their metadata (--no-auto-create: not)"},
        {"flush", DL_FLAG_STRING, &flush,
         "batch: fsync before acknowledging; or an interval such as 100ms"},
        {"segment-bytes", DL_FLAG_BYTES, &segment_bytes, "roll a partition's segment at this size"},
        {"retention-ms", DL_FLAG_INT, &retention_ms,
         "delete a partition's segments whose records are all older than this (-1: never; "
         "Kafka's default, 7 days)"},
        {"retention-bytes", DL_FLAG_INT, &retention_bytes,
         "delete a partition's oldest segments while it holds more than this (-1: no limit)"},
        {"retention-check", DL_FLAG_DURATION, &retention_check_ms,
         "how often retention and the log cleaner look (Kafka: 5 minutes)"},
        {"node-id", DL_FLAG_INT, &node_id, "the broker id clients see in metadata"},
        {"log-level", DL_FLAG_STRING, &log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    char err[512] = "", host[256] = "127.0.0.1", http_host[256] = "127.0.0.1";
    int port = 9092, http_port = 8090, next;
    dl_sync_policy_t policy;
    int64_t interval_ms;
    int rv = dl_flags_parse(BROKER_USAGE, flags, argc, argv, 1, &next, err, sizeof(err));
    if (rv == 1)
        return 0;
    if (rv == 0 && next < argc)
        snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", argv[next]), rv = -1;
    if (rv == 0 && dl_parse_host_port(listen_addr, host, sizeof(host), &port) != 0)
        snprintf(err, sizeof(err), "--listen must be HOST:PORT, not '%s'", listen_addr), rv = -1;
    int http_on = strcmp(http_addr, "off") != 0;
    if (rv == 0 && http_on &&
        dl_parse_host_port(http_addr, http_host, sizeof(http_host), &http_port) != 0)
        snprintf(err, sizeof(err), "--http must be HOST:PORT or off, not '%s'", http_addr), rv = -1;
    if (rv == 0 && (default_partitions < 1 || default_partitions > DL_TOPIC_PARTITIONS_MAX))
        snprintf(err, sizeof(err), "--default-partitions must be 1 to %d", DL_TOPIC_PARTITIONS_MAX),
            rv = -1;
    if (rv == 0 && parse_flush(flush, &policy, &interval_ms) != 0)
        snprintf(err, sizeof(err), "--flush must be batch or an interval from 1ms to 60s, not '%s'",
                 flush),
            rv = -1;
    if (rv == 0 && (segment_bytes < 4096 || segment_bytes > ((int64_t)1 << 32)))
        snprintf(err, sizeof(err), "--segment-bytes must be 4KiB to 4GiB"), rv = -1;
    if (rv == 0 && (retention_ms < -1 || retention_bytes < -1 || retention_check_ms < 1))
        snprintf(err, sizeof(err),
                 "--retention-ms and --retention-bytes are -1 (no limit) or "
                 "more; --retention-check at least 1ms"),
            rv = -1;
    if (rv == 0 && (node_id < 0 || node_id > INT32_MAX))
        snprintf(err, sizeof(err), "--node-id must be 0 or more"), rv = -1;
    dl_log_level_t level;
    if (rv == 0 && log_level != NULL) {
        if (dl_log_parse_level(log_level, &level) != 0)
            snprintf(err, sizeof(err), "--log-level must be debug, info, warn or error"), rv = -1;
        else
            dl_log_set_level(level);
    }
    if (rv != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        return 2;
    }
    dl_log_set_prefix("events");

    static main_t m;
    dl_topics_options_t topts = {
        .data_dir = data_dir,
        .default_partitions = (int32_t)default_partitions,
        /* The broker decides when to fsync (broker.h); the log prepares a job whenever asked. */
        .partition = {.segment_bytes = (uint64_t)segment_bytes, .sync_policy = DL_SYNC_BATCH},
    };
    if ((rv = dl_topics_open(&topts, &m.topics, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        return 1;
    }
    char offsets_path[4096];
    snprintf(offsets_path, sizeof(offsets_path), "%s/consumer_offsets.db", data_dir);
    if ((rv = dl_offsets_open(offsets_path, &m.offsets, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        dl_topics_close(m.topics);
        return 1;
    }
    snprintf(offsets_path, sizeof(offsets_path), "%s/producer_ids", data_dir);
    if ((rv = dl_producer_ids_open(offsets_path, &m.producer_ids, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        dl_offsets_close(m.offsets);
        dl_topics_close(m.topics);
        return 1;
    }
    uv_loop_t loop;
    if ((rv = uv_loop_init(&loop)) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", uv_strerror(rv));
        dl_producer_ids_close(m.producer_ids);
        dl_offsets_close(m.offsets);
        dl_topics_close(m.topics);
        return 1;
    }
    dl_broker_options_t bopts = {.host = host,
                                 .port = port,
                                 .node_id = (int32_t)node_id,
                                 .auto_create = auto_create,
                                 .sync_policy = policy,
                                 .sync_interval_ms = interval_ms,
                                 .retention_ms = retention_ms,
                                 .retention_bytes = retention_bytes,
                                 .retention_check_ms = retention_check_ms};
    if ((rv = dl_broker_start(&loop, &bopts, m.topics, m.offsets, m.producer_ids, &m.broker, err,
                              sizeof(err))) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        dl_producer_ids_close(m.producer_ids);
        dl_offsets_close(m.offsets);
        dl_topics_close(m.topics);
        return 1;
    }
    char kafka_address[300];
    snprintf(kafka_address, sizeof(kafka_address), "%s:%d", host, dl_broker_port(m.broker));
    m.http = (dl_events_http_t){.topics = m.topics,
                                .groups = dl_broker_groups(m.broker),
                                .offsets = m.offsets,
                                .kafka_address = kafka_address,
                                .metrics = dl_broker_metrics(m.broker),
                                .broker = m.broker,
                                .auto_create = auto_create,
                                .retention_ms = retention_ms,
                                .retention_bytes = retention_bytes,
                                .node_id = (int32_t)node_id};
    if (http_on &&
        dl_events_http_start(&loop, http_host, http_port, &m.http, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddialab events broker: %s\n", err);
        m.stopping = 1;
        if (m.http.server != NULL)
            dl_http_server_stop(m.http.server, 0, on_http_stopped, &m);
        dl_broker_stop(m.broker, on_broker_stopped, &m);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        dl_producer_ids_close(m.producer_ids);
        dl_offsets_close(m.offsets);
        dl_topics_close(m.topics);
        return 1;
    }
    uv_signal_init(&loop, &m.sigint);
    uv_signal_init(&loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    size_t n_topics;
    (void)dl_topics_list(m.topics, &n_topics);
    DL_INFO("Kafka protocol on %s; data in %s (%zu topics); flush %s; try: kcat -b %s -L",
            kafka_address, data_dir, n_topics, flush, kafka_address);
    if (http_on)
        DL_INFO("HTTP API on http://%s:%d; try: curl http://%s:%d/topics", http_host,
                dl_http_server_port(m.http.server), http_host, dl_http_server_port(m.http.server));
    uv_run(&loop, UV_RUN_DEFAULT);
    dl_producer_ids_close(m.producer_ids);
    dl_offsets_close(m.offsets);
    dl_topics_close(m.topics);
    if (uv_loop_close(&loop) != 0)
        DL_WARN("the loop still had handles at exit");
    DL_INFO("stopped");
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ddialab events <verb> [args]   (ddialab events <verb> --help for each)\n\n"
                 "verbs:\n"
                 "  broker      a Kafka-protocol event log on 127.0.0.1:9092 (HTTP on :8090)\n"
                 "  produce     send lines of standard input as records\n"
                 "  consume     print records, alone or in a consumer group\n"
                 "  topics      list topics with their offsets, create or delete one\n"
                 "  groups      list consumer groups; one group's members and lag\n\n"
                 "produce, consume, topics and groups are Kafka clients (librdkafka): they work\n"
                 "against this broker and against a Kafka cluster alike (--bootstrap).\n");
}

int dl_events_main(int argc, char **argv)
{
    static const dl_verb_t verbs[] = {
        {"broker", broker_main},
        {"produce", dl_events_produce_main},
        {"consume", dl_events_consume_main},
        {"topics", dl_events_topics_main},
        {"groups", dl_events_groups_main},
    };
    return dl_flags_run_verb("events", verbs, sizeof(verbs) / sizeof(verbs[0]), usage, argc, argv);
}
