/*
 * The broker's HTTP API for people with curl (docs/events.md, "HTTP API"), on the shared HTTP
 * server:
 *
 *   GET /status                                     the broker at a glance
 *   GET /topics                                     every topic: partitions, records, bytes
 *   GET /topics/{t}                                 its partitions: earliest, latest, bytes
 *   GET /topics/{t}/partitions/{p}/records?offset=&limit=   records as JSON
 *   GET /groups                                     every consumer group
 *   GET /groups/{g}                                 members, assignments, offsets and lag
 *   GET /metrics                                    Prometheus text
 *   POST /topics/{t}/records                        {"records": [...]}: stored, offsets out
 *   POST /topics/{t}/compact                        compact a cleanup.policy=compact topic now
 *
 * Keys, values and header values are JSON strings when they are UTF-8 text, else base64 under
 * "<name>_base64". Compressed batches are decompressed here (decompress.c); the Kafka side never
 * does.
 */
#include "events/http.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddialab/base64.h"
#include "ddialab/json_util.h"
#include "ddialab/error.h"
#include "ddialab/metrics.h"
#include "events/batch.h"
#include "events/decompress.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT     1000
#define READ_BYTES    (4u << 20) /* batches read per request */

/* Whether len bytes at p are UTF-8 text without NUL (valid sequences, no overlongs). */
static int is_text(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = p[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0 || n == 0 || i + n > len || (n == 2 && c < 0xc2) || (n == 4 && c > 0xf4))
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}

/* obj[name] = the slice as text, or obj[name] = null and obj[name_base64] = its base64. */
static int set_bytes(json_t *obj, const char *name, dl_kslice_t s)
{
    if (s.len < 0)
        return json_object_set_new(obj, name, json_null());
    if (is_text(s.p, (size_t)s.len))
        return json_object_set_new(obj, name, json_stringn((const char *)s.p, (size_t)s.len));
    char *b64 = dl_base64_encode(s.p, (size_t)s.len);
    char key[64];
    snprintf(key, sizeof(key), "%s_base64", name);
    int rv = b64 == NULL || json_object_set_new(obj, name, json_null()) ||
             json_object_set_new(obj, key, json_string(b64));
    free(b64);
    return rv;
}

static void not_found(dl_http_req_t *req, const char *what, const char *name)
{
    dl_http_reply_error(req, DL_ENOTFOUND, "no %s named '%s'", what, name);
}

/* ---- /status and /topics ----------------------------------------------------------------- */

static json_t *topic_summary(const dl_topic_t *t)
{
    int64_t records = 0;
    uint64_t bytes = 0;
    for (int32_t p = 0; p < t->n_partitions; p++) {
        records += dl_partition_high_watermark(t->partitions[p]) -
                   dl_partition_log_start_offset(t->partitions[p]);
        bytes += dl_partition_size_bytes(t->partitions[p]);
    }
    return json_pack("{s:s, s:i, s:I, s:I}", "name", t->name, "partitions", (int)t->n_partitions,
                     "records", (json_int_t)records, "bytes", (json_int_t)bytes);
}

static void count_group(void *ctx, const dl_group_view_t *view)
{
    (*(size_t *)ctx)++;
}

static void get_status(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    size_t n_topics, n_groups = 0;
    (void)dl_topics_list(h->topics, &n_topics);
    dl_groups_each(h->groups, count_group, &n_groups);
    dl_http_reply_json(req, 200,
                       json_pack("{s:s, s:s, s:i, s:I, s:I}", "role", "kafka broker", "kafka",
                                 h->kafka_address, "node_id", (int)h->node_id, "topics",
                                 (json_int_t)n_topics, "groups", (json_int_t)n_groups),
                       NULL);
}

static void get_topics(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    size_t n;
    dl_topic_t *const *topics = dl_topics_list(h->topics, &n);
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++)
        if (json_array_append_new(list, topic_summary(topics[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    dl_http_reply_json(req, 200, list ? json_pack("{s:o}", "topics", list) : NULL, NULL);
}

/* The topic's configs as in effect (the broker's flags where the topic sets none). */
static json_t *topic_config(const dl_events_http_t *h, const dl_topic_t *t)
{
    const dl_topic_config_t *c = &t->config;
    dl_partition_options_t o = dl_topic_partition_options(h->topics, t);
    int64_t ms = c->retention_ms != DL_TOPIC_UNSET ? c->retention_ms : h->retention_ms;
    int64_t bytes = c->retention_bytes != DL_TOPIC_UNSET ? c->retention_bytes : h->retention_bytes;
    return json_pack("{s:s, s:I, s:I, s:I, s:f, s:I}", "cleanup.policy",
                     c->compact ? (c->delete_old ? "compact,delete" : "compact") : "delete",
                     "retention.ms", (json_int_t)ms, "retention.bytes", (json_int_t)bytes,
                     "delete.retention.ms", (json_int_t)c->delete_retention_ms,
                     "min.cleanable.dirty.ratio", c->min_cleanable_dirty_ratio, "segment.bytes",
                     (json_int_t)o.segment_bytes);
}

static void get_topic(dl_events_http_t *h, dl_http_req_t *req, const dl_topic_t *t)
{
    json_t *parts = json_array();
    for (int32_t p = 0; parts != NULL && p < t->n_partitions; p++) {
        dl_partition_t *part = t->partitions[p];
        json_t *o = json_pack("{s:i, s:I, s:I, s:I}", "partition", (int)p, "earliest_offset",
                              (json_int_t)dl_partition_log_start_offset(part), "latest_offset",
                              (json_int_t)dl_partition_high_watermark(part), "bytes",
                              (json_int_t)dl_partition_size_bytes(part));
        const dl_partition_cleaning_t *cl = &t->cleaning[p];
        if (o != NULL && t->config.compact &&
            json_object_set_new(
                o, "compaction",
                json_pack("{s:I, s:I, s:I, s:I, s:b}", "passes", (json_int_t)cl->passes,
                          "bytes_removed", (json_int_t)cl->bytes_removed, "records_removed",
                          (json_int_t)cl->records_removed, "last_pass_ms",
                          (json_int_t)cl->last_pass_ms, "requested", cl->requested)) != 0) {
            json_decref(o);
            o = NULL;
        }
        if (json_array_append_new(parts, o) != 0) {
            json_decref(parts);
            parts = NULL;
        }
    }
    json_t *body = topic_summary(t);
    if (body != NULL && (parts == NULL || json_object_set_new(body, "partitions", parts) != 0 ||
                         json_object_set_new(body, "config", topic_config(h, t)) != 0)) {
        json_decref(body);
        body = NULL;
    }
    dl_http_reply_json(req, 200, body, NULL);
}

/* ---- Records ------------------------------------------------------------------------------ */

/* Parses a query parameter as an integer in [min, max]; *v keeps its default when absent. -1
 * (answered 400) when malformed. */
static int query_int(dl_http_req_t *req, const char *name, int64_t min, int64_t max, int64_t *v)
{
    const char *text;
    size_t len;
    if (dl_http_req_query(req, name, &text, &len) != 0)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(text, &end, 10);
    if (len == 0 || *end != '\0' || errno != 0 || x < min || x > max) {
        dl_http_reply_error(req, DL_EBADREQUEST,
                            "%s must be an integer from %" PRId64 " to %" PRId64, name, min, max);
        return -1;
    }
    *v = x;
    return 0;
}

/* Appends the records of batch b at or after from to list, while it holds fewer than limit;
 * *next is the offset after the last one added. 0, or an error for a damaged batch. */
static int add_records(const dl_kbatch_t *b, int64_t from, int64_t limit, json_t *list,
                       int64_t *next)
{
    dl_buf_t plain = {0};
    int codec = b->attributes & DL_KBATCH_COMPRESSION_MASK;
    int rv = dl_kdecompress(codec, b->records, b->records_len, DL_KDECOMPRESS_MAX, &plain);
    if (rv != 0)
        return rv;
    dl_kreader_t r = dl_kr_init(plain.data, plain.len);
    dl_krecord_t rec;
    int st;
    while ((int64_t)json_array_size(list) < limit && (st = dl_krecord_next(&r, &rec)) == 1) {
        int64_t offset = b->base_offset + rec.offset_delta;
        if (offset < from)
            continue;
        int64_t ts = (b->attributes & DL_KBATCH_TIMESTAMP_LOG_APPEND)
                         ? b->max_timestamp
                         : b->base_timestamp + rec.timestamp_delta;
        json_t *o =
            json_pack("{s:I, s:I}", "offset", (json_int_t)offset, "timestamp", (json_int_t)ts);
        json_t *headers = json_array();
        int bad = o == NULL || headers == NULL || set_bytes(o, "key", rec.key) ||
                  set_bytes(o, "value", rec.value);
        dl_kslice_t hk, hv;
        for (int32_t i = 0; !bad && i < rec.n_headers; i++) {
            json_t *hdr = json_object();
            bad = hdr == NULL || dl_krecord_header(&rec, &hk, &hv) != 0 ||
                  set_bytes(hdr, "key", hk) || set_bytes(hdr, "value", hv) ||
                  json_array_append(headers, hdr) != 0;
            json_decref(hdr);
        }
        if (bad || json_object_set(o, "headers", headers) != 0 || json_array_append(list, o) != 0) {
            json_decref(o);
            json_decref(headers);
            dl_buf_free(&plain);
            return -ENOMEM;
        }
        json_decref(o);
        json_decref(headers);
        *next = offset + 1;
    }
    dl_buf_free(&plain);
    return (int64_t)json_array_size(list) < limit && st < 0 ? DL_ECORRUPT : 0;
}

static void get_records(dl_events_http_t *h, dl_http_req_t *req, const dl_topic_t *t,
                        int32_t partition)
{
    dl_partition_t *p = dl_topic_partition(t, partition);
    if (p == NULL) {
        dl_http_reply_error(req, DL_ENOTFOUND, "topic '%s' has partitions 0 to %d", t->name,
                            (int)t->n_partitions - 1);
        return;
    }
    int64_t offset = dl_partition_log_start_offset(p), limit = DEFAULT_LIMIT;
    if (query_int(req, "offset", 0, INT64_MAX, &offset) != 0 ||
        query_int(req, "limit", 1, MAX_LIMIT, &limit) != 0)
        return;
    int64_t start = dl_partition_log_start_offset(p), hw = dl_partition_high_watermark(p);
    if (offset < start || offset > hw) {
        dl_http_reply_error(req, DL_ENOTFOUND,
                            "offset %" PRId64 " is outside the partition's %" PRId64 " .. %" PRId64
                            " (earliest .. latest)",
                            offset, start, hw);
        return;
    }
    json_t *list = json_array();
    int64_t next = offset;
    dl_buf_t batches = {0};
    int rv = list ? dl_partition_read(p, offset, READ_BYTES, &batches) : -ENOMEM;
    for (size_t at = 0; rv == 0 && at < batches.len && (int64_t)json_array_size(list) < limit;) {
        dl_kbatch_t b;
        if (dl_kbatch_parse(batches.data + at, batches.len - at, DL_KBATCH_COMPACTED, &b) !=
            DL_KBATCH_OK) {
            rv = DL_ECORRUPT;
            break;
        }
        rv = add_records(&b, offset, limit, list, &next);
        if ((int64_t)json_array_size(list) < limit)
            next = b.base_offset + b.last_offset_delta + 1; /* past records compaction removed */
        at += b.total_len;
    }
    dl_buf_free(&batches);
    if (rv != 0) {
        json_decref(list);
        dl_http_reply_error(req, rv, "cannot read %s-%d at offset %" PRId64, t->name,
                            (int)partition, offset);
        return;
    }
    dl_http_reply_json(req, 200,
                       json_pack("{s:s, s:i, s:I, s:I, s:I, s:o}", "topic", t->name, "partition",
                                 (int)partition, "offset", (json_int_t)offset, "next_offset",
                                 (json_int_t)next, "latest_offset", (json_int_t)hw, "records",
                                 list),
                       NULL);
}

/* GET /topics/{t} and /topics/{t}/partitions/{p}/records. */
static void get_topic_path(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    const char *path;
    size_t len;
    dl_http_req_wildcard(req, &path, &len);
    const char *slash = memchr(path, '/', len);
    size_t name_len = slash ? (size_t)(slash - path) : len;
    char name[DL_TOPIC_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%.*s", (int)(name_len < sizeof(name) ? name_len : 0), path);
    const dl_topic_t *t =
        name_len < sizeof(name) ? dl_topics_find(h->topics, path, name_len) : NULL;
    if (t == NULL) {
        not_found(req, "topic", name_len < sizeof(name) ? name : "(too long)");
        return;
    }
    if (slash == NULL) {
        get_topic(h, req, t);
        return;
    }
    int partition = -1, used = 0;
    if (sscanf(slash, "/partitions/%d/records%n", &partition, &used) != 1 ||
        (size_t)used != len - name_len || partition < 0) {
        dl_http_reply_error(req, DL_ENOTFOUND,
                            "expected /topics/%s or /topics/%s/partitions/{p}/records", name, name);
        return;
    }
    get_records(h, req, t, partition);
}

/* ---- /groups ------------------------------------------------------------------------------- */

static json_t *group_json(const dl_group_view_t *v)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:I}", "group", v->group_id, "state",
                     dl_group_state_name(v->state), "protocol_type", v->protocol_type, "protocol",
                     v->protocol, "generation", (int)v->generation, "leader", v->leader, "members",
                     (json_int_t)v->n_members);
}

static void list_group(void *ctx, const dl_group_view_t *v)
{
    json_t *list = ctx;
    json_array_append_new(list, group_json(v));
}

static void get_groups(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    json_t *list = json_array();
    if (list != NULL)
        dl_groups_each(h->groups, list_group, list);
    dl_http_reply_json(req, 200, list ? json_pack("{s:o}", "groups", list) : NULL, NULL);
}

/*
 * A consumer's assignment (Kafka's ConsumerProtocolAssignment: a version, then topics with
 * their partitions, then user data) as {"topic": [partitions]}, or NULL when it does not decode
 * as one (another protocol type's opaque bytes).
 */
static json_t *consumer_assignment(const uint8_t *p, size_t len)
{
    dl_kreader_t r = dl_kr_init(p, len);
    (void)dl_kr_i16(&r);
    int32_t n = dl_kr_array(&r, 6, NULL);
    json_t *o = json_object();
    for (int32_t i = 0; o != NULL && i < n && !dl_kr_failed(&r); i++) {
        dl_kslice_t topic = dl_kr_string(&r);
        int32_t k = dl_kr_array(&r, 4, NULL);
        json_t *parts = json_array();
        for (int32_t j = 0; parts != NULL && j < k && !dl_kr_failed(&r); j++)
            json_array_append_new(parts, json_integer(dl_kr_i32(&r)));
        char name[DL_TOPIC_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", topic.len > 0 ? (int)topic.len : 0,
                 topic.len > 0 ? (const char *)topic.p : "");
        if (parts == NULL || json_object_set_new(o, name, parts) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    if (dl_kr_failed(&r)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

typedef struct group_detail_s {
    dl_events_http_t *h;
    json_t *body, *members, *offsets;
    int consumer;
} group_detail_t;

static void detail_group(void *ctx, const dl_group_view_t *v)
{
    group_detail_t *d = ctx;
    d->body = group_json(v);
    d->consumer = strcmp(v->protocol_type, "consumer") == 0;
}

static void detail_member(void *ctx, const dl_group_member_view_t *m)
{
    group_detail_t *d = ctx;
    json_t *o = json_pack("{s:s, s:s, s:s}", "member_id", m->member_id, "client_id", m->client_id,
                          "client_host", m->client_host);
    json_t *assignment = d->consumer && m->assignment_len > 0
                             ? consumer_assignment(m->assignment, m->assignment_len)
                             : NULL;
    if (o != NULL)
        json_object_set_new(o, "assignment", assignment ? assignment : json_null());
    json_array_append_new(d->members, o);
}

static void detail_offset(void *ctx, const char *topic, int32_t partition, int64_t offset,
                          const char *metadata)
{
    group_detail_t *d = ctx;
    const dl_topic_t *t = dl_topics_find(d->h->topics, topic, strlen(topic));
    dl_partition_t *p = t ? dl_topic_partition(t, partition) : NULL;
    json_t *o = json_pack("{s:s, s:i, s:I}", "topic", topic, "partition", (int)partition,
                          "committed", (json_int_t)offset);
    if (o == NULL)
        return;
    if (p != NULL) {
        int64_t latest = dl_partition_high_watermark(p);
        json_object_set_new(o, "latest", json_integer(latest));
        json_object_set_new(o, "lag", json_integer(latest > offset ? latest - offset : 0));
    } else {
        json_object_set_new(o, "latest", json_null()); /* the topic is gone */
        json_object_set_new(o, "lag", json_null());
    }
    json_array_append_new(d->offsets, o);
}

static void get_group(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    const char *id;
    size_t len;
    dl_http_req_wildcard(req, &id, &len);
    group_detail_t d = {.h = h, .members = json_array(), .offsets = json_array()};
    int known = dl_groups_describe(h->groups, id, detail_group, detail_member, &d) == 0;
    /* A group with committed offsets but no coordinator state (after a restart, before its
     * members rejoin) is shown Empty, with its offsets. */
    if (dl_offsets_each(h->offsets, id, detail_offset, &d) != 0 ||
        (!known && json_array_size(d.offsets) == 0)) {
        json_decref(d.members);
        json_decref(d.offsets);
        if (known)
            dl_http_reply_error(req, DL_EINTERNAL, "cannot read the offsets of '%s'", id);
        else
            not_found(req, "group", id);
        json_decref(d.body);
        return;
    }
    if (!known)
        d.body = json_pack("{s:s, s:s}", "group", id, "state", "Empty");
    if (d.body == NULL || json_object_set_new(d.body, "members", d.members) != 0 ||
        json_object_set_new(d.body, "offsets", d.offsets) != 0) {
        json_decref(d.body);
        d.body = NULL;
    }
    dl_http_reply_json(req, 200, d.body, NULL);
}

static void get_metrics(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    char *text;
    size_t len;
    int rv = dl_metrics_render(h->metrics, &text, &len);
    if (rv != 0) {
        dl_http_reply_error(req, rv, "cannot render the metrics");
        return;
    }
    dl_http_reply(req, 200, DL_METRICS_CONTENT_TYPE, text, len, NULL);
    free(text);
}

/* ---- POST /topics/{t}/records ----------------------------------------------------------- */

#define MAX_POST_RECORDS 10000

/* Kafka's default partitioner for keyed records (murmur2, as the Java client computes it), so
 * that a key lands where a Java producer would put it. */
static uint32_t murmur2(const uint8_t *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                     (uint32_t)data[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len - i) {
    case 3:
        h ^= (uint32_t)data[i + 2] << 16; /* fall through */
    case 2:
        h ^= (uint32_t)data[i + 1] << 8; /* fall through */
    case 1:
        h ^= data[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* One POST in flight: what it stored where, to answer with offsets in the records' order. */
typedef struct post_s {
    dl_http_req_t *req;
    char topic[DL_TOPIC_NAME_MAX + 1];
    size_t n;
    int32_t *partition; /* of each record */
    int32_t *position;  /* its index in its partition's batch */
    int32_t *slot_of;   /* partition -> its batch's slot in the produce call */
} post_t;

static void free_post(post_t *p)
{
    free(p->partition);
    free(p->position);
    free(p->slot_of);
    free(p);
}

static void posted(void *ctx, int rv, const int64_t *base_offsets)
{
    post_t *p = ctx;
    if (rv != 0) {
        dl_http_reply_error(p->req, rv == DL_ETOOLARGE ? DL_ETOOLARGE : rv,
                            "the records of '%s' were not all stored: %s", p->topic,
                            dl_strerror(rv));
        free_post(p);
        return;
    }
    json_t *offsets = json_array();
    for (size_t i = 0; offsets != NULL && i < p->n; i++) {
        int64_t offset = base_offsets[p->slot_of[p->partition[i]]] + p->position[i];
        if (json_array_append_new(offsets,
                                  json_pack("{s:i, s:I}", "partition", (int)p->partition[i],
                                            "offset", (json_int_t)offset)) != 0) {
            json_decref(offsets);
            offsets = NULL;
        }
    }
    dl_http_reply_json(
        p->req, 200,
        offsets ? json_pack("{s:s, s:o}", "topic", p->topic, "offsets", offsets) : NULL, NULL);
    free_post(p);
}

/* A JSON field as bytes: "name" (text or null) or "name_base64". 0 with *out set (len -1 for
 * null or absent), or -1 with *why set. *owned receives a buffer to free. */
static int field_bytes(json_t *rec, const char *name, dl_kslice_t *out, unsigned char **owned,
                       const char **why)
{
    char b64name[32];
    snprintf(b64name, sizeof(b64name), "%s_base64", name);
    json_t *text = json_object_get(rec, name), *b64 = json_object_get(rec, b64name);
    *out = (dl_kslice_t){NULL, -1};
    *owned = NULL;
    if (text != NULL && !json_is_null(text) && b64 != NULL) {
        *why = "give a field as text or as base64, not both";
        return -1;
    }
    if (b64 != NULL) {
        size_t len;
        if (!json_is_string(b64) ||
            dl_base64_decode(json_string_value(b64), json_string_length(b64), owned, &len) != 0) {
            *why = "a *_base64 field must be a base64 string";
            return -1;
        }
        *out = (dl_kslice_t){*owned, (int32_t)len};
        return 0;
    }
    if (text == NULL || json_is_null(text))
        return 0;
    if (!json_is_string(text)) {
        *why = "keys and values are strings, null, or base64 in *_base64";
        return -1;
    }
    *out =
        (dl_kslice_t){(const uint8_t *)json_string_value(text), (int32_t)json_string_length(text)};
    return 0;
}

/* Builds each partition's batch from the records (one per partition, in the records' order)
 * and hands them to the broker; answers errors itself. */
static void post_records(dl_events_http_t *h, dl_http_req_t *req, dl_topic_t *t, json_t *records)
{
    size_t n = json_array_size(records);
    int32_t parts = t->n_partitions;
    post_t *p = calloc(1, sizeof(*p));
    dl_krecord_in_t *in = calloc(n, sizeof(*in));
    dl_kslice_t *hk = NULL, *hv = NULL;
    unsigned char **owned = calloc(2 * n + 1, sizeof(*owned));
    size_t n_headers = 0, n_owned = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *hdrs = json_object_get(json_array_get(records, i), "headers");
        n_headers += json_is_object(hdrs) ? json_object_size(hdrs) : 0;
    }
    hk = calloc(n_headers + 1, sizeof(*hk));
    hv = calloc(n_headers + 1, sizeof(*hv));
    dl_buf_t *bufs = calloc((size_t)parts, sizeof(*bufs));
    const char *why = NULL;
    char msg[160] = "";
    if (p == NULL || in == NULL || owned == NULL || hk == NULL || hv == NULL || bufs == NULL ||
        (p->partition = calloc(n, sizeof(int32_t))) == NULL ||
        (p->position = calloc(n, sizeof(int32_t))) == NULL ||
        (p->slot_of = calloc((size_t)parts, sizeof(int32_t))) == NULL) {
        why = "out of memory";
        goto out;
    }
    p->req = req;
    p->n = n;
    snprintf(p->topic, sizeof(p->topic), "%s", t->name);
    size_t used_headers = 0;
    for (size_t i = 0; i < n && why == NULL; i++) {
        json_t *rec = json_array_get(records, i), *part = json_object_get(rec, "partition");
        json_t *hdrs = json_object_get(rec, "headers");
        if (!json_is_object(rec))
            why = "each record is a JSON object";
        else if (field_bytes(rec, "key", &in[i].key, &owned[n_owned++], &why) == 0 &&
                 field_bytes(rec, "value", &in[i].value, &owned[n_owned++], &why) == 0) {
            if (part != NULL && (!json_is_integer(part) || json_integer_value(part) < 0 ||
                                 json_integer_value(part) >= parts))
                why = "partition must be an integer from 0 to the topic's partitions - 1";
            else if (hdrs != NULL && !json_is_object(hdrs))
                why = "headers is an object of names and string values";
        }
        if (why != NULL) {
            snprintf(msg, sizeof(msg), "record %zu: %s", i, why);
            break;
        }
        in[i].header_keys = hk + used_headers;
        in[i].header_values = hv + used_headers;
        const char *hname;
        json_t *hval;
        json_object_foreach(hdrs, hname, hval)
        {
            if (!json_is_string(hval)) {
                snprintf(msg, sizeof(msg), "record %zu: header values are strings", i);
                why = msg;
                break;
            }
            hk[used_headers] = (dl_kslice_t){(const uint8_t *)hname, (int32_t)strlen(hname)};
            hv[used_headers++] = (dl_kslice_t){(const uint8_t *)json_string_value(hval),
                                               (int32_t)json_string_length(hval)};
            in[i].n_headers++;
        }
        p->partition[i] =
            part != NULL ? (int32_t)json_integer_value(part)
            : in[i].key.len >= 0
                ? (int32_t)((murmur2(in[i].key.p, (size_t)in[i].key.len) & 0x7fffffff) %
                            (uint32_t)parts)
                : (int32_t)(h->next_partition++ % (uint32_t)parts);
    }
    if (why != NULL) {
        if (msg[0] == '\0')
            snprintf(msg, sizeof(msg), "%s", why);
        goto out;
    }
    /* One batch per partition, records in their order. */
    dl_partition_t **targets = calloc((size_t)parts, sizeof(*targets));
    const uint8_t **batches = calloc((size_t)parts, sizeof(*batches));
    size_t *lens = calloc((size_t)parts, sizeof(*lens));
    dl_krecord_in_t *group = calloc(n, sizeof(*group));
    size_t slots = 0;
    int rv = targets && batches && lens && group ? 0 : -ENOMEM;
    for (int32_t k = 0; rv == 0 && k < parts; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (p->partition[i] == k) {
                p->position[i] = (int32_t)m;
                group[m++] = in[i];
            }
        if (m == 0)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rv = dl_kbatch_build(&bufs[k], group, m, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        targets[slots] = t->partitions[k];
        batches[slots] = bufs[k].data;
        lens[slots] = bufs[k].len;
        p->slot_of[k] = (int32_t)slots++;
    }
    if (rv == 0) {
        dl_broker_produce(h->broker, targets, batches, lens, slots, posted, p);
        p = NULL; /* posted() answers and frees it */
    } else {
        snprintf(msg, sizeof(msg), "out of memory");
    }
    free(targets);
    free(batches);
    free(lens);
    free(group);
out:
    if (p != NULL) {
        dl_http_reply_error(req, strcmp(msg, "out of memory") == 0 ? -ENOMEM : DL_EBADREQUEST, "%s",
                            msg[0] ? msg : "out of memory");
        free_post(p);
    }
    for (int32_t k = 0; bufs != NULL && k < parts; k++)
        dl_buf_free(&bufs[k]);
    for (size_t i = 0; owned != NULL && i < n_owned; i++)
        free(owned[i]);
    free(bufs);
    free(owned);
    free(hk);
    free(hv);
    free(in);
}

/* POST /topics/{t}/compact: every partition of a compacted topic is compacted soon. */
static void compact_topic(dl_events_http_t *h, dl_http_req_t *req, const char *name)
{
    dl_topic_t *t = dl_topics_find(h->topics, name, strlen(name));
    if (t == NULL) {
        not_found(req, "topic", name);
        return;
    }
    if (!t->config.compact) {
        dl_http_reply_error(req, DL_EUNSUPPORTED,
                            "topic '%s' has cleanup.policy=delete: only topics created with "
                            "cleanup.policy=compact are compacted",
                            name);
        return;
    }
    dl_broker_compact(h->broker, t);
    dl_http_reply_json(req, 202,
                       json_pack("{s:s, s:i, s:s}", "topic", name, "partitions",
                                 (int)t->n_partitions, "message",
                                 "compaction scheduled: GET /topics/{t} shows each partition's "
                                 "passes"),
                       NULL);
}

static void post_topic_path(void *ctx, dl_http_req_t *req)
{
    dl_events_http_t *h = ctx;
    const char *path;
    size_t len;
    dl_http_req_wildcard(req, &path, &len);
    const char *slash = memchr(path, '/', len);
    int compact = slash != NULL && strcmp(slash, "/compact") == 0;
    if (slash == NULL || (strcmp(slash, "/records") != 0 && !compact)) {
        dl_http_reply_error(req, DL_ENOTFOUND,
                            "expected POST /topics/{t}/records or POST /topics/{t}/compact");
        return;
    }
    size_t name_len = (size_t)(slash - path);
    char name[DL_TOPIC_NAME_MAX + 1];
    if (!dl_topic_name_valid(path, name_len)) {
        dl_http_reply_error(req, DL_EBADREQUEST,
                            "topic names are 1 to 249 characters of [a-zA-Z0-9._-]");
        return;
    }
    snprintf(name, sizeof(name), "%.*s", (int)name_len, path);
    if (compact) {
        compact_topic(h, req, name);
        return;
    }
    const void *data;
    size_t body_len;
    dl_http_req_body(req, &data, &body_len);
    json_error_t jerr;
    json_t *body = json_loadb(data, body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *records = json_object_get(body, "records");
    if (!json_is_array(records) || json_array_size(records) == 0 ||
        json_array_size(records) > MAX_POST_RECORDS) {
        dl_http_reply_error(req, DL_EBADREQUEST,
                            "expected {\"records\": [{\"key\": ..., \"value\": ...}, ...]} "
                            "with 1 to %d records%s%s",
                            MAX_POST_RECORDS, body ? "" : ": ", body ? "" : jerr.text);
        json_decref(body);
        return;
    }
    dl_topic_t *t = dl_topics_find(h->topics, name, name_len);
    char err[256];
    if (t == NULL && h->auto_create &&
        dl_topics_create(h->topics, name, name_len, 0, NULL, &t, err, sizeof(err)) != 0)
        t = NULL;
    if (t == NULL) {
        not_found(req, "topic", name);
        json_decref(body);
        return;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        if (t->config.compact && !json_is_string(json_object_get(rec, "key")) &&
            !json_is_string(json_object_get(rec, "key_base64"))) {
            dl_http_reply_error(req, DL_EBADREQUEST,
                                "records[%zu] has no key: topic '%s' is compacted "
                                "(cleanup.policy=compact), and compaction keeps one record per key",
                                i, name);
            json_decref(body);
            return;
        }
    }
    post_records(h, req, t, records);
    json_decref(body);
}

int dl_events_http_start(uv_loop_t *loop, const char *host, int port, dl_events_http_t *h,
                         char *errmsg, size_t errlen)
{
    dl_http_server_options_t opts = {.host = host, .port = port, .max_body_bytes = 8u << 20};
    int rv = dl_http_server_start(loop, &opts, &h->server, errmsg, errlen);
    if (rv != 0)
        return rv;
    static const struct {
        const char *pattern;
        dl_http_handler_fn fn;
    } routes[] = {
        {"/status", get_status}, {"/topics", get_topics},  {"/topics/*", get_topic_path},
        {"/groups", get_groups}, {"/groups/*", get_group}, {"/metrics", get_metrics},
    };
    for (size_t i = 0; rv == 0 && i < sizeof(routes) / sizeof(routes[0]); i++)
        rv = dl_http_server_route(h->server, "GET", routes[i].pattern, routes[i].fn, h);
    if (rv == 0)
        rv = dl_http_server_route(h->server, "POST", "/topics/*", post_topic_path, h);
    if (rv != 0)
        snprintf(errmsg, errlen, "cannot add the HTTP routes: %s", strerror(-rv));
    return rv;
}
