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

#include "ddialab/base64.h"
#include "ddialab/error.h"
#include "ddialab/metrics.h"
#include "events/batch.h"
#include "events/decompress.h"

#define DEFAULT_LIMIT    100
#define MAX_LIMIT        1000
#define READ_BYTES       (4u << 20)  /* batches read per request */
#define MAX_DECOMPRESSED (64u << 20) /* per batch */

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

static void get_topic(dl_events_http_t *h, dl_http_req_t *req, const dl_topic_t *t)
{
    json_t *parts = json_array();
    for (int32_t p = 0; parts != NULL && p < t->n_partitions; p++) {
        dl_partition_t *part = t->partitions[p];
        json_t *o = json_pack("{s:i, s:I, s:I, s:I}", "partition", (int)p, "earliest_offset",
                              (json_int_t)dl_partition_log_start_offset(part), "latest_offset",
                              (json_int_t)dl_partition_high_watermark(part), "bytes",
                              (json_int_t)dl_partition_size_bytes(part));
        if (json_array_append_new(parts, o) != 0) {
            json_decref(parts);
            parts = NULL;
        }
    }
    json_t *body = topic_summary(t);
    if (body != NULL && (parts == NULL || json_object_set_new(body, "partitions", parts) != 0)) {
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
    int rv = dl_kdecompress(codec, b->records, b->records_len, MAX_DECOMPRESSED, &plain);
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
        if (dl_kbatch_parse(batches.data + at, batches.len - at, 0, &b) != DL_KBATCH_OK) {
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

int dl_events_http_start(uv_loop_t *loop, const char *host, int port, dl_events_http_t *h,
                         char *errmsg, size_t errlen)
{
    dl_http_server_options_t opts = {.host = host, .port = port};
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
    if (rv != 0)
        snprintf(errmsg, errlen, "cannot add the HTTP routes: %s", strerror(-rv));
    return rv;
}
