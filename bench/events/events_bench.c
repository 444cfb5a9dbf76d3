/*
 * A librdkafka producer and consumer for the events benchmark (bench/events/run.py), the load
 * the issue names: 100-byte values, acks=1, librdkafka's default batching.
 *
 *   events_bench produce BOOTSTRAP TOPIC COUNT [VALUE_BYTES] [ACKS]
 *   events_bench consume BOOTSTRAP TOPIC COUNT
 *
 * Prints one line of JSON: records, seconds, records_per_s, mb_per_s (values only, as the
 * issue's MB/s), and for produce how many deliveries failed. Exits 1 when any record was not
 * delivered (or not consumed within 60 s).
 */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        failed++;
    else
        delivered++;
}

static rd_kafka_conf_t *config(const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "events_bench: %s\n", err);
        exit(2);
    }
    return conf;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "events_bench: %s=%s: %s\n", name, value, err);
        exit(2);
    }
}

static int produce(const char *bootstrap, const char *topic, long count, size_t value_bytes,
                   const char *acks)
{
    rd_kafka_conf_t *conf = config(bootstrap);
    set(conf, "acks", acks);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "events_bench: %s\n", err);
        return 2;
    }
    char *value = malloc(value_bytes);
    for (size_t i = 0; i < value_bytes; i++)
        value[i] = (char)('a' + i % 26);
    double start = now();
    for (long i = 0; i < count; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%ld", i % 1000);
        for (;;) {
            rd_kafka_resp_err_t e =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                                  RD_KAFKA_V_VALUE(value, value_bytes),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "events_bench: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            rd_kafka_poll(rk, 10); /* the local queue is full: let deliveries drain it */
        }
        if (i % 1000 == 0)
            rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    double seconds = now() - start;
    rd_kafka_destroy(rk);
    free(value);
    printf("{\"records\": %ld, \"seconds\": %.3f, \"records_per_s\": %.0f, \"mb_per_s\": %.1f, "
           "\"failed\": %ld}\n",
           delivered, seconds, (double)delivered / seconds,
           (double)delivered * (double)value_bytes / seconds / 1e6, failed);
    return delivered == count && failed == 0 ? 0 : 1;
}

static int consume(const char *bootstrap, const char *topic, long count)
{
    rd_kafka_conf_t *conf = config(bootstrap);
    set(conf, "group.id", "events-bench");
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "false");
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "events_bench: %s\n", err);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    long got = 0;
    uint64_t bytes = 0;
    double start = 0, deadline = now() + 60;
    while (got < count && now() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (got++ == 0)
                start = now(); /* from the first record: the group join is not throughput */
            bytes += m->len;
        }
        rd_kafka_message_destroy(m);
    }
    double seconds = now() - start;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    printf("{\"records\": %ld, \"seconds\": %.3f, \"records_per_s\": %.0f, \"mb_per_s\": %.1f}\n",
           got, seconds, (double)got / seconds, (double)bytes / seconds / 1e6);
    return got >= count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], argv[3], atol(argv[4]), argc > 5 ? (size_t)atol(argv[5]) : 100,
                       argc > 6 ? argv[6] : "1");
    if (argc == 5 && strcmp(argv[1], "consume") == 0)
        return consume(argv[2], argv[3], atol(argv[4]));
    fprintf(stderr, "usage: events_bench produce BOOTSTRAP TOPIC COUNT [VALUE_BYTES] [ACKS]\n"
                    "       events_bench consume BOOTSTRAP TOPIC COUNT\n");
    return 2;
}
