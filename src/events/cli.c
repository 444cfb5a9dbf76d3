/*
 * `ddialab events produce|consume|topics|groups`: a small Kafka command line on librdkafka, so
 * that it works against the embedded broker and against a real Kafka cluster alike
 * (--bootstrap). docs/events.md, "Command line".
 */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/flags.h"
#include "events/cli.h"

#define TIMEOUT_MS 10000

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = 1;
}

/* A configuration with bootstrap.servers set, or NULL (the message printed). */
static rd_kafka_conf_t *config(const char *verb, const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ddialab events %s: %s\n", verb, err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static int set(const char *verb, rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "ddialab events %s: %s\n", verb, err);
        return -1;
    }
    return 0;
}

/* Parses the verb's flags; 1 for --help (printed), 0, or 2 after printing the error. */
static int parse(const char *verb, const char *usage, dl_flag_t *flags, int argc, char **argv,
                 int want_positional, char **positional)
{
    char err[512];
    int next;
    int rv = dl_flags_parse(usage, flags, argc, argv, 1, &next, err, sizeof(err));
    if (rv == 1)
        return 1;
    /* The positional argument may come before, between or after the flags. */
    if (rv == 0 && want_positional && next < argc) {
        *positional = argv[next++];
        if (next < argc)
            rv = dl_flags_parse(usage, flags, argc, argv, next, &next, err, sizeof(err));
        if (rv == 1)
            return 1;
    }
    if (rv == 0 && next < argc) {
        snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", argv[next]);
        rv = -1;
    }
    if (rv == 0 && want_positional == 2 && *positional == NULL) {
        snprintf(err, sizeof(err), "which topic? (see --help)");
        rv = -1;
    }
    if (rv != 0) {
        fprintf(stderr, "ddialab events %s: %s\n", verb, err);
        return 2;
    }
    return 0;
}

/* ---- produce ------------------------------------------------------------------------------ */

static long delivered, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) {
        if (failed++ == 0)
            fprintf(stderr, "ddialab events produce: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

int dl_events_produce_main(int argc, char **argv)
{
    static const char *usage =
        "usage: ddialab events produce TOPIC [--bootstrap 127.0.0.1:9092] [--key-delimiter C]\n"
        "                              [--partition N] [--acks all|1|0] [--compression C]\n"
        "                              [--idempotent]\n\n"
        "Sends each line of standard input as a record (key and value split at the first\n"
        "--key-delimiter when given), waits until every record is acknowledged, and prints how\n"
        "many were. Works against the embedded broker and a Kafka cluster alike.\n";
    char *bootstrap = "127.0.0.1:9092", *delimiter = NULL, *acks = "all", *compression = "none";
    char *topic = NULL;
    int64_t partition = -1;
    int idempotent = 0;
    dl_flag_t flags[] = {
        {"bootstrap", DL_FLAG_STRING, &bootstrap, "broker(s) to start from, HOST:PORT[,...]"},
        {"key-delimiter", DL_FLAG_STRING, &delimiter, "split each line into key and value"},
        {"partition", DL_FLAG_INT, &partition, "the partition (-1: by key, as Kafka's default)"},
        {"acks", DL_FLAG_STRING, &acks, "all, 1 or 0"},
        {"compression", DL_FLAG_STRING, &compression, "none, gzip, snappy, lz4 or zstd"},
        {"idempotent", DL_FLAG_BOOL, &idempotent, "an idempotent producer (retries stored once)"},
        {NULL, 0, NULL, NULL},
    };
    int rv = parse("produce", usage, flags, argc, argv, 2, &topic);
    if (rv != 0)
        return rv == 1 ? 0 : rv;
    if (delimiter != NULL && strlen(delimiter) != 1) {
        fprintf(stderr, "ddialab events produce: --key-delimiter is one character\n");
        return 2;
    }
    rd_kafka_conf_t *conf = config("produce", bootstrap);
    if (conf == NULL || set("produce", conf, "acks", acks) != 0 ||
        set("produce", conf, "compression.type", compression) != 0 ||
        set("produce", conf, "enable.idempotence", idempotent ? "true" : "false") != 0)
        return 2;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "ddialab events produce: %s\n", err);
        return 1;
    }
    signal(SIGINT, on_interrupt);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long sent = 0;
    while (!interrupted && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        char *key = NULL, *value = line;
        size_t key_len = 0;
        char *cut = delimiter ? memchr(line, delimiter[0], (size_t)len) : NULL;
        if (cut != NULL) {
            key = line;
            key_len = (size_t)(cut - line);
            value = cut + 1;
        }
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)partition),
                    RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, strlen(value)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "ddialab events produce: %s\n", rd_kafka_err2str(e));
            break;
        }
        sent++;
        rd_kafka_poll(rk, 0);
    }
    free(line);
    rd_kafka_flush(rk, 30000);
    long pending = sent - delivered - failed;
    rd_kafka_destroy(rk);
    fprintf(stderr, "produced %ld record%s to %s", delivered, delivered == 1 ? "" : "s", topic);
    if (failed || pending)
        fprintf(stderr, " (%ld failed, %ld unanswered)", failed, pending);
    fprintf(stderr, "\n");
    return failed || pending ? 1 : 0;
}

/* ---- consume ------------------------------------------------------------------------------ */

int dl_events_consume_main(int argc, char **argv)
{
    static const char *usage =
        "usage: ddialab events consume TOPIC [--bootstrap 127.0.0.1:9092] [--group G]\n"
        "                              [--from beginning|end] [--count N] [--exit-at-end]\n\n"
        "Prints records as 'partition offset key value' lines (key '-' when null). With\n"
        "--group, joins that consumer group (the partitions are shared with its other\n"
        "members, and offsets are committed); without, reads every partition on its own.\n";
    char *bootstrap = "127.0.0.1:9092", *group = NULL, *from = "beginning", *topic = NULL;
    int64_t count = 0;
    int exit_at_end = 0;
    dl_flag_t flags[] = {
        {"bootstrap", DL_FLAG_STRING, &bootstrap, "broker(s) to start from, HOST:PORT[,...]"},
        {"group", DL_FLAG_STRING, &group, "consumer group to join"},
        {"from", DL_FLAG_STRING, &from,
         "where to start without a committed offset: beginning or end"},
        {"count", DL_FLAG_INT, &count, "stop after this many records (0: no limit)"},
        {"exit-at-end", DL_FLAG_BOOL, &exit_at_end,
         "stop once every assigned partition is read to its end"},
        {NULL, 0, NULL, NULL},
    };
    int rv = parse("consume", usage, flags, argc, argv, 2, &topic);
    if (rv != 0)
        return rv == 1 ? 0 : rv;
    if (strcmp(from, "beginning") != 0 && strcmp(from, "end") != 0) {
        fprintf(stderr, "ddialab events consume: --from is beginning or end\n");
        return 2;
    }
    char anonymous[64];
    snprintf(anonymous, sizeof(anonymous), "ddialab-cli-%ld", (long)getpid());
    rd_kafka_conf_t *conf = config("consume", bootstrap);
    if (conf == NULL || set("consume", conf, "group.id", group ? group : anonymous) != 0 ||
        set("consume", conf, "auto.offset.reset",
            strcmp(from, "end") == 0 ? "latest" : "earliest") != 0 ||
        set("consume", conf, "enable.auto.commit", group ? "true" : "false") != 0 ||
        set("consume", conf, "enable.partition.eof", "true") != 0)
        return 2;
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "ddialab events consume: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ddialab events consume: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    long got = 0;
    int status = 0;
    /* Which partitions are read to their end (an EOF since their last record). */
    static unsigned char at_end[1024];
    memset(at_end, 0, sizeof(at_end));
    while (!interrupted && (count == 0 || got < count)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        int known = m->partition >= 0 && m->partition < (int32_t)sizeof(at_end);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (known)
                at_end[m->partition] = 1;
            rd_kafka_topic_partition_list_t *assigned = NULL;
            int all = exit_at_end && rd_kafka_assignment(rk, &assigned) == 0 && assigned->cnt > 0;
            for (int k = 0; all && k < assigned->cnt; k++)
                all = assigned->elems[k].partition < (int32_t)sizeof(at_end) &&
                      at_end[assigned->elems[k].partition];
            if (assigned)
                rd_kafka_topic_partition_list_destroy(assigned);
            if (all) {
                rd_kafka_message_destroy(m);
                break;
            }
        } else if (m->err) {
            fprintf(stderr, "ddialab events consume: %s\n", rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                status = 1;
                rd_kafka_message_destroy(m);
                break;
            }
        } else {
            printf("%d %" PRId64 " ", (int)m->partition, m->offset);
            if (m->key)
                fwrite(m->key, 1, m->key_len, stdout);
            else
                fputc('-', stdout);
            fputc(' ', stdout);
            fwrite(m->payload, 1, m->len, stdout);
            fputc('\n', stdout);
            got++;
            if (known)
                at_end[m->partition] = 0; /* new data: not at its end any more */
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    rd_kafka_consumer_close(rk); /* commits (with --group) and leaves the group */
    rd_kafka_destroy(rk);
    return status;
}

/* ---- topics ------------------------------------------------------------------------------- */

/* Sets the configs in text ("name=value,name=value"; a piece without '=' continues the value
 * before it, as in cleanup.policy=compact,delete) on t. 0, or 2 with a message. */
static int set_configs(rd_kafka_NewTopic_t *t, const char *text)
{
    char *copy = strdup(text), *save = NULL;
    char *names[64], *values[64];
    int n = 0, rv = copy ? 0 : 2;
    for (char *piece = copy ? strtok_r(copy, ",", &save) : NULL; rv == 0 && piece != NULL;
         piece = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(piece, '=');
        if (eq == NULL && n > 0) {
            piece[-1] = ','; /* glue it back onto the value before */
            continue;
        }
        if (eq == NULL || eq == piece || n == 64) {
            fprintf(stderr, "ddialab events topics: --config: expected name=value[,name=value]\n");
            rv = 2;
            break;
        }
        *eq = '\0';
        names[n] = piece;
        values[n++] = eq + 1;
    }
    for (int i = 0; rv == 0 && i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(t, names[i], values[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "ddialab events topics: --config %s: %s\n", names[i],
                    rd_kafka_err2str(e));
            rv = 2;
        }
    }
    free(copy);
    return rv;
}

/* Waits for the answer to an admin request on q and prints what happened to topic: 0 or 1. */
static int admin_result(rd_kafka_queue_t *q, const char *topic, int deleting)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS);
    size_t n = 0;
    const rd_kafka_topic_result_t **results = NULL;
    if (ev != NULL && deleting && rd_kafka_event_DeleteTopics_result(ev))
        results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    else if (ev != NULL && !deleting && rd_kafka_event_CreateTopics_result(ev))
        results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    int status = 0;
    if (ev == NULL || rd_kafka_event_error(ev)) {
        fprintf(stderr, "ddialab events topics: %s\n",
                ev ? rd_kafka_event_error_string(ev) : "no answer in time");
        status = 1;
    } else if (n == 1 && rd_kafka_topic_result_error(results[0])) {
        fprintf(stderr, "ddialab events topics: %s: %s\n", topic,
                rd_kafka_topic_result_error_string(results[0]));
        status = 1;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    return status;
}

int dl_events_topics_main(int argc, char **argv)
{
    static const char *usage =
        "usage: ddialab events topics [--bootstrap 127.0.0.1:9092]\n"
        "                             [--create T [--partitions N] [--config name=value,...]]\n"
        "                             [--delete T]\n\n"
        "Lists the topics with their partitions and offsets, creates one, or deletes one.\n"
        "Topic configs: cleanup.policy (delete, compact), retention.ms, retention.bytes,\n"
        "delete.retention.ms, min.cleanable.dirty.ratio, segment.bytes.\n";
    char *bootstrap = "127.0.0.1:9092", *create = NULL, *configs = NULL, *delete_topic = NULL;
    int64_t partitions = 1, replication = 1;
    dl_flag_t flags[] = {
        {"bootstrap", DL_FLAG_STRING, &bootstrap, "broker(s) to start from, HOST:PORT[,...]"},
        {"create", DL_FLAG_STRING, &create, "create this topic"},
        {"partitions", DL_FLAG_INT, &partitions, "partitions of the topic --create makes"},
        {"replication-factor", DL_FLAG_INT, &replication,
         "copies of each partition (this broker is one node: 1)"},
        {"config", DL_FLAG_STRING, &configs, "topic configs for --create: name=value[,name=value]"},
        {"delete", DL_FLAG_STRING, &delete_topic, "delete this topic and its data"},
        {NULL, 0, NULL, NULL},
    };
    int rv = parse("topics", usage, flags, argc, argv, 0, NULL);
    if (rv != 0)
        return rv == 1 ? 0 : rv;
    if (create != NULL && delete_topic != NULL) {
        fprintf(stderr, "ddialab events topics: --create and --delete: one at a time\n");
        return 2;
    }
    rd_kafka_conf_t *conf = config("topics", bootstrap);
    if (conf == NULL)
        return 2;
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "ddialab events topics: %s\n", err);
        return 1;
    }
    int status = 0;
    if (delete_topic != NULL) {
        rd_kafka_DeleteTopic_t *t = rd_kafka_DeleteTopic_new(delete_topic);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_DeleteTopics(rk, &t, 1, NULL, q);
        status = admin_result(q, delete_topic, 1);
        if (status == 0)
            printf("deleted %s\n", delete_topic);
        rd_kafka_DeleteTopic_destroy(t);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return status;
    }
    if (create != NULL) {
        rd_kafka_NewTopic_t *t =
            rd_kafka_NewTopic_new(create, (int)partitions, (int)replication, err, sizeof(err));
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        if (t == NULL) {
            fprintf(stderr, "ddialab events topics: %s\n", err);
            status = 2;
        } else if (configs != NULL && (status = set_configs(t, configs)) != 0) {
            rd_kafka_NewTopic_destroy(t);
        } else {
            rd_kafka_CreateTopics(rk, &t, 1, NULL, q);
            status = admin_result(q, create, 0);
            if (status == 0)
                printf("created %s with %d partition%s\n", create, (int)partitions,
                       partitions == 1 ? "" : "s");
            rd_kafka_NewTopic_destroy(t);
        }
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return status;
    }
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ddialab events topics: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("%-30s %9s %12s %12s\n", "topic", "partition", "earliest", "latest");
    for (int i = 0; i < md->topic_cnt; i++)
        for (int k = 0; k < md->topics[i].partition_cnt; k++) {
            int64_t low = -1, high = -1;
            rd_kafka_query_watermark_offsets(
                rk, md->topics[i].topic, md->topics[i].partitions[k].id, &low, &high, TIMEOUT_MS);
            printf("%-30s %9d %12" PRId64 " %12" PRId64 "\n", md->topics[i].topic,
                   md->topics[i].partitions[k].id, low, high);
        }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- groups ------------------------------------------------------------------------------- */

int dl_events_groups_main(int argc, char **argv)
{
    static const char *usage =
        "usage: ddialab events groups [GROUP] [--bootstrap 127.0.0.1:9092] [--topic T]\n\n"
        "Lists the consumer groups; with GROUP, its members and, for --topic, the committed\n"
        "offset, the latest offset and the lag of each partition.\n";
    char *bootstrap = "127.0.0.1:9092", *group = NULL, *topic = NULL;
    dl_flag_t flags[] = {
        {"bootstrap", DL_FLAG_STRING, &bootstrap, "broker(s) to start from, HOST:PORT[,...]"},
        {"topic", DL_FLAG_STRING, &topic, "show the group's offsets and lag on this topic"},
        {NULL, 0, NULL, NULL},
    };
    int rv = parse("groups", usage, flags, argc, argv, 1, &group);
    if (rv != 0)
        return rv == 1 ? 0 : rv;
    rd_kafka_conf_t *conf = config("groups", bootstrap);
    if (conf == NULL || (group && set("groups", conf, "group.id", group) != 0))
        return 2;
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "ddialab events groups: %s\n", err);
        return 1;
    }
    const struct rd_kafka_group_list *list;
    rd_kafka_resp_err_t e = rd_kafka_list_groups(rk, group, &list, TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "ddialab events groups: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < list->group_cnt; i++) {
        const struct rd_kafka_group_info *g = &list->groups[i];
        printf("%s  state %s  protocol %s  members %d\n", g->group, g->state,
               g->protocol[0] ? g->protocol : "-", g->member_cnt);
        for (int k = 0; group && k < g->member_cnt; k++)
            printf("  member %s  client %s  host %s\n", g->members[k].member_id,
                   g->members[k].client_id, g->members[k].client_host);
    }
    rd_kafka_group_list_destroy(list);
    int status = 0;
    if (group != NULL && topic != NULL) {
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        e = rd_kafka_metadata(rk, 0, t, &md, TIMEOUT_MS);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err) {
            rd_kafka_topic_partition_list_t *parts =
                rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
            for (int k = 0; k < md->topics[0].partition_cnt; k++)
                rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[k].id);
            rd_kafka_committed(rk, parts, TIMEOUT_MS);
            printf("%-30s %9s %12s %12s %8s\n", "topic", "partition", "committed", "latest", "lag");
            for (int k = 0; k < parts->cnt; k++) {
                int64_t low = -1, high = -1;
                rd_kafka_query_watermark_offsets(rk, topic, parts->elems[k].partition, &low, &high,
                                                 TIMEOUT_MS);
                int64_t committed = parts->elems[k].offset;
                int64_t lag = committed >= 0 ? high - committed : high - low;
                printf("%-30s %9d %12" PRId64 " %12" PRId64 " %8" PRId64 "\n", topic,
                       parts->elems[k].partition, committed, high, lag);
            }
            rd_kafka_topic_partition_list_destroy(parts);
        } else {
            fprintf(stderr, "ddialab events groups: topic %s: %s\n", topic,
                    rd_kafka_err2str(e ? e : md->topics[0].err));
            status = 1;
        }
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
    }
    rd_kafka_destroy(rk);
    return status;
}
