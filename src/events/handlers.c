/* The broker's request handlers (handlers.h). */
#include "events/handlers.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "events/batch.h"
#include "events/decompress.h"

#define CLUSTER_ID "ddialab-events"

/* The smallest encodings of array elements, so that counts are checked against the frame. */
#define MIN_TOPIC_BYTES     6 /* a name (2) and a partition count (4) */
#define MIN_PARTITION_BYTES 4
/* A fetch answers at most this many bytes whatever it asks for (Kafka's fetch.max.bytes is
 * 50 MiB); a batch larger than what is left goes out only as a response's first records. */
#define MAX_FETCH_RESPONSE (64 << 20)
/* Topics named in one Metadata request at most (each costs a response entry). */
#define MAX_METADATA_TOPICS 10000

dl_handled_t dl__events_finish(dl_buf_t *out, size_t start, int rv)
{
    if (rv != 0) {
        out->len = start;
        return DL_HANDLED_CLOSE;
    }
    dl_kresponse_end(out, start);
    return DL_HANDLED_RESPOND;
}

/* ---- Metadata ------------------------------------------------------------------------------ */

static int write_partitions(dl_buf_t *b, const dl_events_ctx_t *ctx, const dl_topic_t *topic)
{
    int rv = dl_kw_i32(b, topic->n_partitions);
    for (int32_t p = 0; p < topic->n_partitions; p++)
        rv |= dl_kw_i16(b, DL_KERR_NONE) | dl_kw_i32(b, p) | dl_kw_i32(b, ctx->node_id) |
              dl_kw_i32(b, 1) | dl_kw_i32(b, ctx->node_id) /* replicas */ | dl_kw_i32(b, 1) |
              dl_kw_i32(b, ctx->node_id) /* in-sync replicas */;
    return rv;
}

/* One topic's entry: the topic, or an error with no partitions. */
static int write_topic(dl_buf_t *b, const dl_events_ctx_t *ctx, int version, dl_kslice_t name,
                       const dl_topic_t *topic, int16_t error)
{
    int rv = dl_kw_i16(b, error) | dl_kw_slice(b, name);
    if (version >= 1)
        rv |= dl_kw_i8(b, 0); /* is_internal */
    return rv | (topic != NULL ? write_partitions(b, ctx, topic) : dl_kw_i32(b, 0));
}

/* The topic a client asked about, created when allowed; *error says why not. */
static dl_topic_t *metadata_topic(dl_events_ctx_t *ctx, dl_kslice_t name, int allow_create,
                                  int16_t *error)
{
    *error = DL_KERR_NONE;
    if (name.len < 0 || !dl_topic_name_valid((const char *)name.p, (size_t)name.len)) {
        *error = DL_KERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    dl_topic_t *topic = dl_topics_find(ctx->topics, (const char *)name.p, (size_t)name.len);
    if (topic == NULL && allow_create && ctx->auto_create) {
        char err[256];
        if (dl_topics_create(ctx->topics, (const char *)name.p, (size_t)name.len, 0, NULL, &topic,
                             err, sizeof(err)) != 0)
            topic = NULL;
        if (topic == NULL)
            *error = DL_KERR_KAFKA_STORAGE_ERROR;
    } else if (topic == NULL) {
        *error = DL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    return topic;
}

static dl_handled_t metadata(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                             dl_buf_t *out)
{
    int v = h->api_version, is_null = 0;
    int32_t n = dl_kr_array(r, 2, &is_null);
    if (n > MAX_METADATA_TOPICS)
        return DL_HANDLED_CLOSE;
    dl_kslice_t *names = calloc((size_t)n + 1, sizeof(*names));
    if (names == NULL)
        return DL_HANDLED_CLOSE;
    for (int32_t i = 0; i < n; i++)
        names[i] = dl_kr_string(r);
    int allow_create = v >= 4 ? dl_kr_i8(r) != 0 : 1;
    if (dl_kr_failed(r)) {
        free(names);
        return DL_HANDLED_CLOSE;
    }
    int all = is_null || (v == 0 && n == 0); /* v0 asks for every topic with an empty list */

    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 3)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, 1) | dl_kw_i32(out, ctx->node_id) |
          dl_kw_string(out, ctx->advertised_host) | dl_kw_i32(out, ctx->advertised_port);
    if (v >= 1)
        rv |= dl_kw_string(out, NULL); /* rack */
    if (v >= 2)
        rv |= dl_kw_string(out, CLUSTER_ID);
    if (v >= 1)
        rv |= dl_kw_i32(out, ctx->node_id); /* controller */
    if (all) {
        size_t count;
        dl_topic_t *const *topics = dl_topics_list(ctx->topics, &count);
        rv |= dl_kw_i32(out, (int32_t)count);
        for (size_t i = 0; i < count; i++) {
            dl_kslice_t name = {(const uint8_t *)topics[i]->name, (int32_t)strlen(topics[i]->name)};
            rv |= write_topic(out, ctx, v, name, topics[i], DL_KERR_NONE);
        }
    } else {
        rv |= dl_kw_i32(out, n);
        for (int32_t i = 0; i < n; i++) {
            int16_t error;
            dl_topic_t *topic = metadata_topic(ctx, names[i], allow_create, &error);
            rv |= write_topic(out, ctx, v, names[i], topic, error);
        }
    }
    free(names);
    if (rv != 0)
        return DL_HANDLED_CLOSE;
    dl_kresponse_end(out, start);
    return DL_HANDLED_RESPOND;
}

/*
 * The start of a topic's entry in Produce, ListOffsets and Fetch: reads its name and partition
 * count (each partition at least min_partition_bytes) and echoes both into the response. The
 * topic, or NULL when there is none of that name; *n_parts receives the count (*rv or-ed with a
 * write failure).
 */
static dl_topic_t *topic_entry(dl_events_ctx_t *ctx, dl_kreader_t *r, size_t min_partition_bytes,
                               dl_buf_t *out, int32_t *n_parts, int *rv)
{
    dl_kslice_t name = dl_kr_string(r);
    *n_parts = dl_kr_array(r, min_partition_bytes, NULL);
    *rv |= dl_kw_slice(out, name) | dl_kw_i32(out, *n_parts);
    if (name.len <= 0 || dl_kr_failed(r))
        return NULL;
    return dl_topics_find(ctx->topics, (const char *)name.p, (size_t)name.len);
}

/* ---- Produce ------------------------------------------------------------------------------- */

/* Kafka's error for a batch that dl_kbatch_parse refused. */
static int16_t batch_error(dl_kbatch_status_t status)
{
    switch (status) {
    case DL_KBATCH_BAD_MAGIC:
        return DL_KERR_UNSUPPORTED_VERSION;
    case DL_KBATCH_BAD_COUNT:
        return DL_KERR_INVALID_RECORD;
    default:
        return DL_KERR_CORRUPT_MESSAGE;
    }
}

/* Whether every record of batch b has a key, as a compacted topic requires (Kafka answers
 * CORRUPT_MESSAGE up to Produce v7 otherwise); a batch that does not decompress is refused. */
static int16_t check_keys(const dl_kbatch_t *b)
{
    dl_buf_t plain = {0};
    int16_t error = DL_KERR_NONE;
    if (dl_kdecompress(b->attributes & DL_KBATCH_COMPRESSION_MASK, b->records, b->records_len,
                       DL_KDECOMPRESS_MAX, &plain) != 0)
        error = DL_KERR_CORRUPT_MESSAGE;
    dl_kreader_t r = dl_kr_init(plain.data, plain.len);
    dl_krecord_t rec;
    int more;
    while (error == DL_KERR_NONE && (more = dl_krecord_next(&r, &rec)) != 0)
        if (more < 0 || rec.key.len < 0)
            error = DL_KERR_CORRUPT_MESSAGE;
    dl_buf_free(&plain);
    return error;
}

/*
 * Appends the batches in records (checked whole first, so that a partition takes all of them or
 * none) to p; the Kafka error, with *base_offset the first batch's offset. A compacted topic's
 * records must have keys.
 */
static int16_t produce_partition(dl_events_ctx_t *ctx, dl_partition_t *p, int compacted,
                                 dl_kslice_t records, int64_t *base_offset)
{
    *base_offset = -1;
    if (records.len <= 0)
        return DL_KERR_CORRUPT_MESSAGE;
    if (dl_partition_failed(p))
        return DL_KERR_KAFKA_STORAGE_ERROR; /* not even a retry is answered from memory */
    size_t at = 0, len = (size_t)records.len;
    while (at < len) {
        dl_kbatch_t b;
        dl_kbatch_status_t status = dl_kbatch_parse(records.p + at, len - at, 1, &b);
        if (status != DL_KBATCH_OK)
            return batch_error(status);
        if (b.attributes & (DL_KBATCH_TRANSACTIONAL | DL_KBATCH_CONTROL))
            return DL_KERR_INVALID_RECORD; /* no transactions here (InitProducerId v3+ is
                                            * flexible, and not served) */
        int16_t keys = compacted ? check_keys(&b) : DL_KERR_NONE;
        if (keys != DL_KERR_NONE)
            return keys;
        at += b.total_len;
    }
    /* The batches are the producer's bytes inside the request frame: stored from there, with
     * only the base offset rewritten in place. */
    uint8_t *bytes = (uint8_t *)records.p;
    for (at = 0; at < len;) {
        dl_kbatch_t b;
        (void)dl_kbatch_parse(bytes + at, len - at, 0, &b);
        int64_t offset, duplicate = -1;
        int16_t sequence = dl_partition_check_producer(p, &b, &duplicate);
        if (sequence == DL_KERR_DUPLICATE_SEQUENCE_NUMBER) {
            /* A retry of a batch already stored: success, with the offset it got then. */
            if (*base_offset < 0)
                *base_offset = duplicate;
            ctx->duplicate_batches++;
            at += b.total_len;
            continue;
        }
        if (sequence != DL_KERR_NONE)
            return sequence; /* the batches before it (if any) stay stored */
        int rv = dl_partition_append(p, bytes + at, b.total_len, &offset);
        if (rv != 0)
            return rv == DL_ETOOLARGE ? DL_KERR_MESSAGE_TOO_LARGE : DL_KERR_KAFKA_STORAGE_ERROR;
        /* Stored: it must be fsynced and seen by fetches whatever happens to the rest. */
        if (dl_partition_set_add(&ctx->touched, p) != 0)
            return DL_KERR_KAFKA_STORAGE_ERROR;
        if (*base_offset < 0)
            *base_offset = offset;
        ctx->produced_records += (uint64_t)b.records_count;
        ctx->produced_bytes += b.total_len;
        at += b.total_len;
    }
    return DL_KERR_NONE;
}

static dl_handled_t produce(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                            dl_buf_t *out)
{
    int v = h->api_version;
    if (v >= 3)
        (void)dl_kr_string(r); /* transactional_id */
    int16_t acks = dl_kr_i16(r);
    (void)dl_kr_i32(r); /* timeout_ms: a single node answers as soon as it is durable */
    int32_t n_topics = dl_kr_array(r, MIN_TOPIC_BYTES, NULL);
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    int valid_acks = acks == 0 || acks == 1 || acks == -1;
    size_t start = dl_kresponse_begin(out, h);
    int rv = dl_kw_i32(out, n_topics);
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r); i++) {
        int32_t n_parts;
        dl_topic_t *topic = topic_entry(ctx, r, MIN_PARTITION_BYTES + 4, out, &n_parts, &rv);
        for (int32_t j = 0; j < n_parts && !dl_kr_failed(r); j++) {
            int32_t index = dl_kr_i32(r);
            dl_kslice_t records = dl_kr_bytes(r);
            if (dl_kr_failed(r))
                break;
            dl_partition_t *p = topic ? dl_topic_partition(topic, index) : NULL;
            int64_t base_offset = -1;
            int16_t error = !valid_acks ? DL_KERR_INVALID_REQUIRED_ACKS
                            : p == NULL ? DL_KERR_UNKNOWN_TOPIC_OR_PARTITION
                                        : produce_partition(ctx, p, topic->config.compact, records,
                                                            &base_offset);
            rv |= dl_kw_i32(out, index) | dl_kw_i16(out, error) | dl_kw_i64(out, base_offset);
            if (v >= 2)
                rv |= dl_kw_i64(out, -1); /* log_append_time_ms: CreateTime */
            if (v >= 5)
                rv |= dl_kw_i64(out, p ? dl_partition_log_start_offset(p) : -1);
        }
    }
    if (v >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    if (dl_kr_failed(r) || rv != 0) {
        out->len = start;
        return DL_HANDLED_CLOSE;
    }
    if (acks == 0) {
        out->len = start;
        return DL_HANDLED_NO_RESPONSE;
    }
    dl_kresponse_end(out, start);
    return DL_HANDLED_RESPOND;
}

/* ---- CreateTopics -------------------------------------------------------------------------- */

/* Whether a topic may be created as asked; its Kafka error, *message a sentence, *n_out the
 * partition count. */
static int16_t check_create(dl_events_ctx_t *ctx, dl_kslice_t name, int32_t n_partitions,
                            int16_t replication, int32_t n_assignments, int32_t n_configs,
                            int32_t *n_out, const char **message)
{
    *n_out = n_partitions == -1 ? 0 : n_partitions; /* 0: the broker's default */
    if (n_assignments > 0)
        *n_out = n_assignments;
    if (name.len <= 0 || !dl_topic_name_valid((const char *)name.p, (size_t)name.len)) {
        *message = "topic names are 1 to 249 characters of [a-zA-Z0-9._-]";
        return DL_KERR_INVALID_TOPIC_EXCEPTION;
    }
    if (dl_topics_find(ctx->topics, (const char *)name.p, (size_t)name.len) != NULL) {
        *message = "the topic exists";
        return DL_KERR_TOPIC_ALREADY_EXISTS;
    }
    if ((n_assignments == 0 && (n_partitions == 0 || n_partitions < -1)) ||
        *n_out > DL_TOPIC_PARTITIONS_MAX) {
        *message = "a topic has 1 to 1024 partitions";
        return DL_KERR_INVALID_PARTITIONS;
    }
    if (replication != -1 && replication != 1) {
        *message = "this broker is a single node: the replication factor is 1";
        return DL_KERR_INVALID_REPLICATION_FACTOR;
    }
    (void)n_configs; /* checked as they are read */
    return DL_KERR_NONE;
}

/* A topic a CreateTopics asks for. */
typedef struct {
    dl_kslice_t name;
    int32_t n_partitions, n_assignments, n_configs;
    int16_t replication;
    int assignment_elsewhere;
    json_t *configs; /* name -> value, as dl_topics_create takes them */
    int bad_config;
    char config_error[200];
} wanted_t;

static void free_wanted(wanted_t *want, int32_t n)
{
    for (int32_t i = 0; want != NULL && i < n; i++)
        json_decref(want[i].configs);
    free(want);
}

static dl_handled_t create_topics(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                  dl_buf_t *out)
{
    int v = h->api_version;
    int32_t n_topics = dl_kr_array(r, 16, NULL);
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    /* The options follow the topics: read them all first, then act. */
    wanted_t *want = calloc((size_t)n_topics + 1, sizeof(*want));
    if (want == NULL)
        return DL_HANDLED_CLOSE;
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r); i++) {
        want[i].name = dl_kr_string(r);
        want[i].n_partitions = dl_kr_i32(r);
        want[i].replication = dl_kr_i16(r);
        want[i].n_assignments = dl_kr_array(r, 8, NULL);
        for (int32_t j = 0; j < want[i].n_assignments && !dl_kr_failed(r); j++) {
            int32_t index = dl_kr_i32(r), n_brokers = dl_kr_array(r, 4, NULL);
            for (int32_t k = 0; k < n_brokers && !dl_kr_failed(r); k++)
                want[i].assignment_elsewhere |= dl_kr_i32(r) != ctx->node_id;
            want[i].assignment_elsewhere |= index != j || n_brokers != 1;
        }
        want[i].n_configs = dl_kr_array(r, 4, NULL);
        dl_topic_config_t check;
        dl_topic_config_init(&check);
        for (int32_t j = 0; j < want[i].n_configs && !dl_kr_failed(r); j++) {
            dl_kslice_t name = dl_kr_string(r), value = dl_kr_string(r);
            if (dl_kr_failed(r) || want[i].bad_config)
                continue;
            if (name.len < 0 || value.len < 0) {
                want[i].bad_config = 1;
                snprintf(want[i].config_error, sizeof(want[i].config_error),
                         "a topic config's name and value must not be null");
                continue;
            }
            if (dl_topic_config_set(&check, (const char *)name.p, (size_t)name.len,
                                    (const char *)value.p, (size_t)value.len, want[i].config_error,
                                    sizeof(want[i].config_error)) != 0) {
                want[i].bad_config = 1;
                continue;
            }
            if (want[i].configs == NULL)
                want[i].configs = json_object();
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)name.len, (const char *)name.p);
            json_t *jv = json_stringn((const char *)value.p, (size_t)value.len);
            if (want[i].configs == NULL || jv == NULL ||
                json_object_set_new(want[i].configs, key, jv) != 0) {
                want[i].bad_config = 1;
                snprintf(want[i].config_error, sizeof(want[i].config_error), "out of memory");
            }
        }
    }
    (void)dl_kr_i32(r); /* timeout_ms */
    int validate_only = v >= 1 ? dl_kr_i8(r) != 0 : 0;
    if (dl_kr_failed(r)) {
        free_wanted(want, n_topics);
        return DL_HANDLED_CLOSE;
    }
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 2)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, n_topics);
    for (int32_t i = 0; i < n_topics; i++) {
        const char *message = NULL;
        int32_t n;
        int16_t error = check_create(ctx, want[i].name, want[i].n_partitions, want[i].replication,
                                     want[i].n_assignments, want[i].n_configs, &n, &message);
        if (error == DL_KERR_NONE && want[i].assignment_elsewhere) {
            error = DL_KERR_INVALID_REPLICA_ASSIGNMENT;
            message = "every partition is on this broker, one replica each";
        }
        if (error == DL_KERR_NONE && want[i].bad_config) {
            error = DL_KERR_INVALID_CONFIG;
            message = want[i].config_error;
        }
        char err[256] = "", *config = NULL;
        if (error == DL_KERR_NONE && want[i].configs != NULL &&
            (config = json_dumps(want[i].configs, JSON_SORT_KEYS | JSON_COMPACT)) == NULL) {
            error = DL_KERR_KAFKA_STORAGE_ERROR;
            message = "out of memory";
        }
        if (error == DL_KERR_NONE && !validate_only &&
            dl_topics_create(ctx->topics, (const char *)want[i].name.p, (size_t)want[i].name.len, n,
                             config, NULL, err, sizeof(err)) != 0) {
            error = DL_KERR_KAFKA_STORAGE_ERROR;
            message = err;
        }
        free(config);
        rv |= dl_kw_slice(out, want[i].name) | dl_kw_i16(out, error);
        if (v >= 1)
            rv |= dl_kw_string(out, message);
    }
    free_wanted(want, n_topics);
    return dl__events_finish(out, start, rv);
}

/* ---- DeleteTopics -------------------------------------------------------------------------- */

static dl_handled_t delete_topics(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                  dl_buf_t *out)
{
    int v = h->api_version;
    int32_t n_topics = dl_kr_array(r, 2, NULL);
    dl_kreader_t names = *r; /* the names are read again below, as they are answered */
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r); i++)
        (void)dl_kr_string(r);
    (void)dl_kr_i32(r); /* timeout_ms: deletion is done before the answer */
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, n_topics);
    for (int32_t i = 0; i < n_topics; i++) {
        dl_kslice_t name = dl_kr_string(&names);
        int16_t error = DL_KERR_NONE;
        char err[256];
        int deleted = name.len > 0 && dl_topic_name_valid((const char *)name.p, (size_t)name.len)
                          ? dl_topics_delete(ctx->topics, (const char *)name.p, (size_t)name.len,
                                             err, sizeof(err))
                          : -ENOENT;
        if (deleted == -ENOENT)
            error = DL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        else if (deleted != 0)
            error = DL_KERR_UNKNOWN_SERVER_ERROR;
        if (deleted == 0 && ctx->offsets != NULL) {
            snprintf(err, sizeof(err), "%.*s", (int)name.len, (const char *)name.p);
            (void)dl_offsets_delete_topic(ctx->offsets, err); /* stale rows are only clutter */
        }
        rv |= dl_kw_slice(out, name) | dl_kw_i16(out, error);
    }
    return dl__events_finish(out, start, rv);
}

/* ---- InitProducerId ------------------------------------------------------------------------ */

static dl_handled_t init_producer_id(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                     dl_buf_t *out)
{
    dl_kslice_t transactional_id = dl_kr_string(r);
    (void)dl_kr_i32(r); /* transaction_timeout_ms */
    if (dl_kr_failed(r) || ctx->producer_ids == NULL)
        return DL_HANDLED_CLOSE;
    int64_t id = -1;
    int16_t error = DL_KERR_NONE;
    if (transactional_id.len >= 0)
        error = DL_KERR_INVALID_REQUEST; /* idempotence yes, transactions no */
    else if (dl_producer_ids_next(ctx->producer_ids, &id) != 0)
        error = DL_KERR_KAFKA_STORAGE_ERROR;
    size_t start = dl_kresponse_begin(out, h);
    int rv = dl_kw_i32(out, 0) | dl_kw_i16(out, error) | dl_kw_i64(out, error ? -1 : id) |
             dl_kw_i16(out, error ? -1 : 0);
    return dl__events_finish(out, start, rv);
}

/* ---- ListOffsets --------------------------------------------------------------------------- */

static dl_handled_t list_offsets(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                 dl_buf_t *out)
{
    int v = h->api_version;
    (void)dl_kr_i32(r); /* replica_id */
    if (v >= 2)
        (void)dl_kr_i8(r); /* isolation_level: every record is committed here */
    int32_t n_topics = dl_kr_array(r, MIN_TOPIC_BYTES, NULL);
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 2)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, n_topics);
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r); i++) {
        int32_t n_parts;
        dl_topic_t *topic = topic_entry(ctx, r, MIN_PARTITION_BYTES + 8, out, &n_parts, &rv);
        for (int32_t j = 0; j < n_parts && !dl_kr_failed(r); j++) {
            int32_t index = dl_kr_i32(r);
            int64_t timestamp = dl_kr_i64(r);
            if (v == 0)
                (void)dl_kr_i32(r); /* max_num_offsets: we answer with one */
            dl_partition_t *p = topic ? dl_topic_partition(topic, index) : NULL;
            int64_t offset = -1, found_timestamp = -1;
            if (p != NULL && timestamp == -1)
                offset = ctx->stable_reads ? dl_partition_stable_offset(p)
                                           : dl_partition_high_watermark(p);
            else if (p != NULL && timestamp == -2)
                offset = dl_partition_log_start_offset(p);
            else if (p != NULL)
                offset = dl_partition_offset_for_time(p, timestamp, &found_timestamp);
            int16_t error = p ? DL_KERR_NONE : DL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            rv |= dl_kw_i32(out, index) | dl_kw_i16(out, error);
            if (v == 0) {
                int has = p != NULL && offset >= 0;
                rv |= dl_kw_i32(out, has);
                if (has)
                    rv |= dl_kw_i64(out, offset);
            } else {
                rv |= dl_kw_i64(out, found_timestamp) | dl_kw_i64(out, offset);
            }
        }
    }
    return dl__events_finish(out, start, rv | dl_kr_failed(r));
}

/* ---- Fetch --------------------------------------------------------------------------------- */

/* One partition's part of a fetch response; *budget is what is left of the request's max bytes,
 * *bytes counts the record bytes answered. 0 or -ENOMEM. */
static int fetch_partition(const dl_events_ctx_t *ctx, dl_buf_t *out, int v,
                           const dl_topic_t *topic, int32_t index, int64_t offset,
                           int32_t partition_max, int64_t *budget, size_t *bytes, int *errors)
{
    dl_partition_t *p = topic ? dl_topic_partition(topic, index) : NULL;
    /* What consumers may see: under --flush batch only what is fsynced, so that nothing they
     * read (and commit past) can be lost in a crash and its offsets handed out again. */
    int64_t hw = !p                  ? -1
                 : ctx->stable_reads ? dl_partition_stable_offset(p)
                                     : dl_partition_high_watermark(p);
    if (p == NULL)
        (*errors)++;
    int64_t log_start = p ? dl_partition_log_start_offset(p) : -1;
    size_t error_at = out->len + 4;
    int rv = dl_kw_i32(out, index) |
             dl_kw_i16(out, p ? DL_KERR_NONE : DL_KERR_UNKNOWN_TOPIC_OR_PARTITION) |
             dl_kw_i64(out, hw);
    if (v >= 4)
        rv |= dl_kw_i64(out, hw); /* last_stable_offset: no transactions */
    if (v >= 5)
        rv |= dl_kw_i64(out, log_start);
    if (v >= 4)
        rv |= dl_kw_i32(out, -1); /* aborted_transactions: null */
    if (v >= 11)
        rv |= dl_kw_i32(out, -1); /* preferred_read_replica */
    size_t records_at = out->len;
    rv |= dl_kw_i32(out, 0);
    if (rv != 0)
        return -ENOMEM;
    if (p == NULL || partition_max <= 0 || *budget <= 0)
        return 0;
    size_t max = (size_t)(partition_max < *budget ? partition_max : *budget);
    int read = dl_partition_read_upto(p, offset, max, hw, out);
    if (read != 0)
        (*errors)++;
    if (read == 0 && *bytes > 0 && (int64_t)(out->len - records_at - 4) > *budget) {
        /* Only the response's first records may exceed the limit (KIP-74): a later partition
         * whose next batch does not fit answers none. */
        out->len = records_at + 4;
        *budget = 0;
        return 0;
    }
    if (read != 0) {
        int16_t error = read == -ERANGE ? DL_KERR_OFFSET_OUT_OF_RANGE : DL_KERR_KAFKA_STORAGE_ERROR;
        out->len = records_at + 4; /* no records */
        out->data[error_at] = (uint8_t)((uint16_t)error >> 8);
        out->data[error_at + 1] = (uint8_t)error;
        return 0;
    }
    size_t got = out->len - records_at - 4;
    dl_kw_patch_i32(out, records_at, (int32_t)got);
    *budget -= (int64_t)got;
    *bytes += got;
    return 0;
}

static dl_handled_t fetch(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                          dl_buf_t *out, int final, int32_t *wait_ms)
{
    int v = h->api_version;
    (void)dl_kr_i32(r); /* replica_id */
    int32_t max_wait = dl_kr_i32(r), min_bytes = dl_kr_i32(r);
    int64_t budget = v >= 3 ? dl_kr_i32(r) : INT32_MAX;
    if (v >= 4)
        (void)dl_kr_i8(r); /* isolation_level */
    if (v >= 7) {
        (void)dl_kr_i32(r); /* session_id: every fetch is a full one ("no fetch session") */
        (void)dl_kr_i32(r); /* session_epoch */
    }
    int32_t n_topics = dl_kr_array(r, MIN_TOPIC_BYTES, NULL);
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    if (budget > MAX_FETCH_RESPONSE)
        budget = MAX_FETCH_RESPONSE;
    size_t start = dl_kresponse_begin(out, h), bytes = 0;
    int errors = 0;
    int rv = 0;
    if (v >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    if (v >= 7)
        rv |= dl_kw_i16(out, DL_KERR_NONE) | dl_kw_i32(out, 0); /* error, session_id */
    rv |= dl_kw_i32(out, n_topics);
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r) && rv == 0; i++) {
        int32_t n_parts;
        dl_topic_t *topic = topic_entry(ctx, r, MIN_PARTITION_BYTES + 12, out, &n_parts, &rv);
        for (int32_t j = 0; j < n_parts && !dl_kr_failed(r) && rv == 0; j++) {
            int32_t index = dl_kr_i32(r);
            if (v >= 9)
                (void)dl_kr_i32(r); /* current_leader_epoch */
            int64_t offset = dl_kr_i64(r);
            if (v >= 5)
                (void)dl_kr_i64(r); /* log_start_offset (followers) */
            int32_t partition_max = dl_kr_i32(r);
            if (!dl_kr_failed(r))
                rv |= fetch_partition(ctx, out, v, topic, index, offset, partition_max, &budget,
                                      &bytes, &errors);
        }
    }
    /* Forgotten topics (v7+) and the rack (v11+) follow; without sessions they change nothing,
     * but they must be there. */
    if (v >= 7) {
        int32_t n_forgotten = dl_kr_array(r, MIN_TOPIC_BYTES, NULL);
        for (int32_t i = 0; i < n_forgotten && !dl_kr_failed(r); i++) {
            (void)dl_kr_string(r);
            int32_t n = dl_kr_array(r, 4, NULL);
            (void)dl_kr_raw(r, (size_t)n * 4);
        }
    }
    if (v >= 11)
        (void)dl_kr_string(r);
    if (dl_kr_failed(r) || rv != 0) {
        out->len = start;
        return DL_HANDLED_CLOSE;
    }
    /* Errors are answered at once, as Kafka does (the client must act on them). */
    if (!final && errors == 0 && max_wait > 0 && (int64_t)bytes < (int64_t)min_bytes) {
        out->len = start;
        *wait_ms = max_wait;
        return DL_HANDLED_WAIT_DATA;
    }
    ctx->fetched_bytes += bytes;
    dl_kresponse_end(out, start);
    return DL_HANDLED_RESPOND;
}

dl_handled_t dl_events_handle(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t body,
                              dl_buf_t *out, int final, int32_t *wait_ms)
{
    switch (h->api_key) {
    case DL_KAPI_API_VERSIONS:
        return dl_kapi_versions_respond(out, h) == 0 ? DL_HANDLED_RESPOND : DL_HANDLED_CLOSE;
    case DL_KAPI_METADATA:
        return metadata(ctx, h, &body, out);
    case DL_KAPI_PRODUCE:
        return produce(ctx, h, &body, out);
    case DL_KAPI_LIST_OFFSETS:
        return list_offsets(ctx, h, &body, out);
    case DL_KAPI_FETCH:
        return fetch(ctx, h, &body, out, final, wait_ms);
    case DL_KAPI_INIT_PRODUCER_ID:
        return init_producer_id(ctx, h, &body, out);
    case DL_KAPI_CREATE_TOPICS:
        return create_topics(ctx, h, &body, out);
    case DL_KAPI_DELETE_TOPICS:
        return delete_topics(ctx, h, &body, out);
    default:
        return dl__events_handle_group(ctx, h, &body, out);
    }
}
