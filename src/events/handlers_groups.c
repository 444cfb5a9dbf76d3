/*
 * The consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 * OffsetCommit, OffsetFetch and ListGroups, decoded for every version protocol.c advertises and
 * handed to the coordinator (groups.c) and the offsets store (offsets.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events/handlers.h"

/* C strings copied out of a request, freed together when the handler is done. */
typedef struct strings_s {
    char **items;
    size_t n, cap;
    int failed;
} strings_t;

/* s as a C string ("" for null), or "" with failed set when out of memory. */
static const char *cstr(strings_t *a, dl_kslice_t s)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        char **items = realloc(a->items, cap * sizeof(*items));
        if (items == NULL) {
            a->failed = 1;
            return "";
        }
        a->items = items;
        a->cap = cap;
    }
    char *c = strndup(s.len > 0 ? (const char *)s.p : "", s.len > 0 ? (size_t)s.len : 0);
    if (c == NULL) {
        a->failed = 1;
        return "";
    }
    a->items[a->n++] = c;
    return c;
}

static void free_strings(strings_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->items[i]);
    free(a->items);
}

/* ---- FindCoordinator: this broker coordinates every group ------------------------------ */

static dl_handled_t find_coordinator(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                     dl_buf_t *out)
{
    int v = h->api_version;
    (void)dl_kr_string(r); /* the group */
    int8_t key_type = v >= 1 ? dl_kr_i8(r) : 0;
    if (dl_kr_failed(r))
        return DL_HANDLED_CLOSE;
    int transactions = key_type != 0;
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i16(out, transactions ? DL_KERR_COORDINATOR_NOT_AVAILABLE : DL_KERR_NONE);
    if (v >= 1)
        rv |= dl_kw_string(out, transactions ? "transactions are not supported" : NULL);
    rv |= dl_kw_i32(out, transactions ? -1 : ctx->node_id) |
          dl_kw_string(out, transactions ? "" : ctx->advertised_host) |
          dl_kw_i32(out, transactions ? -1 : ctx->advertised_port);
    return dl__events_finish(out, start, rv);
}

/* ---- JoinGroup and SyncGroup: answered by the coordinator ------------------------------ */

static dl_handled_t join_group(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r)
{
    int v = h->api_version;
    strings_t s = {0};
    dl_group_join_t j = {.client_id = h->client_id.len > 0 ? cstr(&s, h->client_id) : "",
                         .client_host = ctx->client_host};
    j.group_id = cstr(&s, dl_kr_string(r));
    j.session_timeout_ms = dl_kr_i32(r);
    j.rebalance_timeout_ms = v >= 1 ? dl_kr_i32(r) : -1;
    j.member_id = cstr(&s, dl_kr_string(r));
    if (v >= 5)
        (void)dl_kr_string(r); /* group_instance_id: no static membership */
    j.protocol_type = cstr(&s, dl_kr_string(r));
    j.require_known_member_id = v >= 4;
    int32_t n = dl_kr_array(r, 6, NULL);
    dl_group_protocol_t *protocols = calloc((size_t)n + 1, sizeof(*protocols));
    for (int32_t i = 0; protocols != NULL && i < n && !dl_kr_failed(r); i++) {
        protocols[i].name = cstr(&s, dl_kr_string(r));
        dl_kslice_t meta = dl_kr_bytes(r);
        protocols[i].metadata = meta.p;
        protocols[i].metadata_len = meta.len > 0 ? (size_t)meta.len : 0;
    }
    dl_handled_t handled = DL_HANDLED_CLOSE;
    if (protocols != NULL && !s.failed && !dl_kr_failed(r)) {
        j.protocols = protocols;
        j.n_protocols = (size_t)n;
        dl_groups_join(ctx->groups, ctx->now_ms, &j, ctx->waiter);
        handled = DL_HANDLED_PARKED;
    }
    free(protocols);
    free_strings(&s);
    return handled;
}

int dl_events_encode_join(dl_buf_t *out, const dl_kheader_t *h, const dl_group_join_result_t *jr)
{
    int v = h->api_version;
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 2)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i16(out, jr->error) | dl_kw_i32(out, jr->generation) |
          dl_kw_string(out, jr->protocol ? jr->protocol : "") |
          dl_kw_string(out, jr->leader ? jr->leader : "") |
          dl_kw_string(out, jr->member_id ? jr->member_id : "") |
          dl_kw_i32(out, (int32_t)jr->n_members);
    for (size_t i = 0; i < jr->n_members; i++) {
        rv |= dl_kw_string(out, jr->members[i].member_id);
        if (v >= 5)
            rv |= dl_kw_string(out, NULL); /* group_instance_id */
        rv |= dl_kw_bytes(out, jr->members[i].metadata ? jr->members[i].metadata : (void *)"",
                          (int32_t)jr->members[i].metadata_len);
    }
    return dl__events_finish(out, start, rv) == DL_HANDLED_RESPOND ? 0 : -ENOMEM;
}

static dl_handled_t sync_group(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r)
{
    strings_t s = {0};
    const char *group = cstr(&s, dl_kr_string(r));
    int32_t generation = dl_kr_i32(r);
    const char *member = cstr(&s, dl_kr_string(r));
    if (h->api_version >= 3)
        (void)dl_kr_string(r); /* group_instance_id */
    int32_t n = dl_kr_array(r, 6, NULL);
    dl_group_member_info_t *assignments = calloc((size_t)n + 1, sizeof(*assignments));
    for (int32_t i = 0; assignments != NULL && i < n && !dl_kr_failed(r); i++) {
        assignments[i].member_id = cstr(&s, dl_kr_string(r));
        dl_kslice_t a = dl_kr_bytes(r);
        assignments[i].metadata = a.p;
        assignments[i].metadata_len = a.len > 0 ? (size_t)a.len : 0;
    }
    dl_handled_t handled = DL_HANDLED_CLOSE;
    if (assignments != NULL && !s.failed && !dl_kr_failed(r)) {
        dl_groups_sync(ctx->groups, ctx->now_ms, group, generation, member, assignments, (size_t)n,
                       ctx->waiter);
        handled = DL_HANDLED_PARKED;
    }
    free(assignments);
    free_strings(&s);
    return handled;
}

int dl_events_encode_sync(dl_buf_t *out, const dl_kheader_t *h, int16_t error,
                          const uint8_t *assignment, size_t len)
{
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (h->api_version >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i16(out, error) |
          dl_kw_bytes(out, assignment ? assignment : (void *)"", (int32_t)(assignment ? len : 0));
    return dl__events_finish(out, start, rv) == DL_HANDLED_RESPOND ? 0 : -ENOMEM;
}

/* ---- Heartbeat and LeaveGroup ---------------------------------------------------------- */

static dl_handled_t heartbeat_or_leave(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                       dl_buf_t *out)
{
    int heartbeat = h->api_key == DL_KAPI_HEARTBEAT;
    strings_t s = {0};
    const char *group = cstr(&s, dl_kr_string(r));
    int32_t generation = heartbeat ? dl_kr_i32(r) : 0;
    const char *member = cstr(&s, dl_kr_string(r));
    if (heartbeat && h->api_version >= 3)
        (void)dl_kr_string(r); /* group_instance_id */
    if (dl_kr_failed(r) || s.failed) {
        free_strings(&s);
        return DL_HANDLED_CLOSE;
    }
    int16_t error = heartbeat
                        ? dl_groups_heartbeat(ctx->groups, ctx->now_ms, group, generation, member)
                        : dl_groups_leave(ctx->groups, ctx->now_ms, group, member);
    free_strings(&s);
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (h->api_version >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i16(out, error);
    return dl__events_finish(out, start, rv);
}

/* ---- OffsetCommit ---------------------------------------------------------------------- */

static dl_handled_t offset_commit(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                  dl_buf_t *out)
{
    int v = h->api_version;
    strings_t s = {0};
    const char *group = cstr(&s, dl_kr_string(r));
    int32_t generation = v >= 1 ? dl_kr_i32(r) : -1;
    const char *member = v >= 1 ? cstr(&s, dl_kr_string(r)) : "";
    if (v >= 2 && v <= 4)
        (void)dl_kr_i64(r); /* retention_time_ms: offsets are kept until the group is deleted */
    int32_t n_topics = dl_kr_array(r, 6, NULL);
    if (dl_kr_failed(r) || s.failed) {
        free_strings(&s);
        return DL_HANDLED_CLOSE;
    }
    int16_t group_error =
        dl_groups_check_commit(ctx->groups, ctx->now_ms, group, generation, member);
    int in_txn = group_error == DL_KERR_NONE && dl_offsets_begin(ctx->offsets) == 0;
    if (group_error == DL_KERR_NONE && !in_txn)
        group_error = DL_KERR_KAFKA_STORAGE_ERROR;
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 3)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, n_topics);
    /* Where each partition's error code sits, to rewrite them all if the commit fails. */
    size_t *codes = NULL, n_codes = 0;
    for (int32_t i = 0; i < n_topics && !dl_kr_failed(r) && rv == 0; i++) {
        dl_kslice_t name = dl_kr_string(r);
        int32_t n_parts = dl_kr_array(r, 14, NULL);
        const char *topic_name = cstr(&s, name);
        dl_topic_t *topic =
            name.len > 0 ? dl_topics_find(ctx->topics, (const char *)name.p, (size_t)name.len)
                         : NULL;
        rv |= dl_kw_slice(out, name) | dl_kw_i32(out, n_parts);
        size_t *more = realloc(codes, (n_codes + (size_t)n_parts + 1) * sizeof(*codes));
        if (more == NULL) {
            rv = -ENOMEM;
            break;
        }
        codes = more;
        for (int32_t j = 0; j < n_parts && !dl_kr_failed(r) && rv == 0; j++) {
            int32_t index = dl_kr_i32(r);
            int64_t offset = dl_kr_i64(r);
            if (v == 1)
                (void)dl_kr_i64(r); /* commit_timestamp */
            dl_kslice_t meta = dl_kr_string(r);
            int16_t error = group_error;
            if (error == DL_KERR_NONE && (topic == NULL || !dl_topic_partition(topic, index)))
                error = DL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (error == DL_KERR_NONE && !dl_kr_failed(r) &&
                dl_offsets_put(ctx->offsets, group, topic_name, index, offset,
                               meta.len >= 0 ? cstr(&s, meta) : NULL) != 0)
                error = DL_KERR_KAFKA_STORAGE_ERROR;
            rv |= dl_kw_i32(out, index);
            codes[n_codes++] = out->len;
            rv |= dl_kw_i16(out, error);
        }
    }
    int ok = rv == 0 && !dl_kr_failed(r) && !s.failed;
    if (in_txn && dl_offsets_end(ctx->offsets, ok) != 0 && ok)
        for (size_t i = 0; i < n_codes; i++) { /* nothing was committed after all */
            out->data[codes[i]] = 0;
            out->data[codes[i] + 1] = DL_KERR_KAFKA_STORAGE_ERROR;
        }
    free(codes);
    free_strings(&s);
    if (!ok) {
        out->len = start;
        return DL_HANDLED_CLOSE;
    }
    return dl__events_finish(out, start, 0);
}

/* ---- OffsetFetch ----------------------------------------------------------------------- */

typedef struct fetched_s {
    dl_buf_t *out;
    const char *topic; /* the topic whose entry is open */
    size_t count_at;   /* where that topic's partition count goes */
    int32_t n_in_topic, n_topics;
    int rv;
} fetched_t;

static void put_committed(dl_buf_t *out, int32_t partition, int64_t offset, const char *metadata,
                          int *rv)
{
    *rv |= dl_kw_i32(out, partition) | dl_kw_i64(out, offset) |
           dl_kw_string(out, metadata ? metadata : "") | dl_kw_i16(out, DL_KERR_NONE);
}

/* One row of every committed offset of a group, grouped by topic (rows come in topic order). */
static void each_committed(void *ctx, const char *topic, int32_t partition, int64_t offset,
                           const char *metadata)
{
    fetched_t *f = ctx;
    if (f->topic == NULL || strcmp(f->topic, topic) != 0) {
        if (f->topic != NULL)
            dl_kw_patch_i32(f->out, f->count_at, f->n_in_topic);
        free((char *)f->topic);
        f->topic = strdup(topic);
        f->rv |= f->topic == NULL || dl_kw_string(f->out, topic);
        f->count_at = f->out->len;
        f->rv |= dl_kw_i32(f->out, 0);
        f->n_in_topic = 0;
        f->n_topics++;
    }
    put_committed(f->out, partition, offset, metadata, &f->rv);
    f->n_in_topic++;
}

static dl_handled_t offset_fetch(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                 dl_buf_t *out)
{
    int v = h->api_version, all = 0;
    strings_t s = {0};
    const char *group = cstr(&s, dl_kr_string(r));
    int32_t n_topics = dl_kr_array(r, 6, &all);
    if (dl_kr_failed(r) || s.failed || (all && v < 2)) {
        free_strings(&s);
        return DL_HANDLED_CLOSE;
    }
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 3)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    if (all) {
        size_t topics_at = out->len;
        rv |= dl_kw_i32(out, 0);
        fetched_t f = {.out = out};
        rv |= dl_offsets_each(ctx->offsets, group, each_committed, &f) | f.rv;
        if (f.topic != NULL)
            dl_kw_patch_i32(out, f.count_at, f.n_in_topic);
        free((char *)f.topic);
        if (rv == 0)
            dl_kw_patch_i32(out, topics_at, f.n_topics);
    } else {
        rv |= dl_kw_i32(out, n_topics);
        for (int32_t i = 0; i < n_topics && !dl_kr_failed(r) && rv == 0; i++) {
            dl_kslice_t name = dl_kr_string(r);
            const char *topic = cstr(&s, name);
            int32_t n_parts = dl_kr_array(r, 4, NULL);
            rv |= dl_kw_slice(out, name) | dl_kw_i32(out, n_parts);
            for (int32_t j = 0; j < n_parts && !dl_kr_failed(r) && rv == 0; j++) {
                int32_t index = dl_kr_i32(r);
                char *metadata = NULL;
                int64_t offset = dl_offsets_get(ctx->offsets, group, topic, index, &metadata);
                put_committed(out, index, offset, metadata, &rv);
                free(metadata);
            }
        }
    }
    if (v >= 2)
        rv |= dl_kw_i16(out, DL_KERR_NONE);
    int failed = dl_kr_failed(r) || s.failed;
    free_strings(&s);
    return dl__events_finish(out, start, rv | failed);
}

/* ---- ListGroups ------------------------------------------------------------------------ */

typedef struct listed_s {
    dl_buf_t *out;
    int32_t n;
    int rv;
} listed_t;

static void each_group(void *ctx, const dl_group_view_t *view)
{
    listed_t *l = ctx;
    l->rv |= dl_kw_string(l->out, view->group_id) | dl_kw_string(l->out, view->protocol_type);
    l->n++;
}

static dl_handled_t list_groups(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_buf_t *out)
{
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (h->api_version >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i16(out, DL_KERR_NONE);
    size_t count_at = out->len;
    rv |= dl_kw_i32(out, 0);
    listed_t l = {.out = out};
    if (rv == 0)
        dl_groups_each(ctx->groups, each_group, &l);
    if (rv == 0 && l.rv == 0)
        dl_kw_patch_i32(out, count_at, l.n);
    return dl__events_finish(out, start, rv | l.rv);
}

/* ---- DescribeGroups -------------------------------------------------------------------- */

typedef struct described_s {
    dl_buf_t *out;
    int v;
    size_t count_at; /* where the member count goes */
    int32_t n;
    int rv;
} described_t;

static void describe_group(void *ctx, const dl_group_view_t *view)
{
    described_t *d = ctx;
    d->rv |= dl_kw_i16(d->out, DL_KERR_NONE) | dl_kw_string(d->out, view->group_id) |
             dl_kw_string(d->out, dl_group_state_name(view->state)) |
             dl_kw_string(d->out, view->protocol_type) | dl_kw_string(d->out, view->protocol);
    d->count_at = d->out->len;
    d->rv |= dl_kw_i32(d->out, 0);
}

static void describe_member(void *ctx, const dl_group_member_view_t *m)
{
    described_t *d = ctx;
    d->rv |= dl_kw_string(d->out, m->member_id);
    if (d->v >= 4)
        d->rv |= dl_kw_string(d->out, NULL); /* group_instance_id */
    d->rv |= dl_kw_string(d->out, m->client_id) | dl_kw_string(d->out, m->client_host) |
             dl_kw_bytes(d->out, m->metadata ? m->metadata : (const void *)"",
                         (int32_t)m->metadata_len) |
             dl_kw_bytes(d->out, m->assignment ? m->assignment : (const void *)"",
                         (int32_t)m->assignment_len);
    d->n++;
}

static dl_handled_t describe_groups(dl_events_ctx_t *ctx, const dl_kheader_t *h, dl_kreader_t *r,
                                    dl_buf_t *out)
{
    int v = h->api_version;
    strings_t s = {0};
    int32_t n = dl_kr_array(r, 2, NULL);
    const char **ids = calloc((size_t)n + 1, sizeof(*ids));
    for (int32_t i = 0; ids != NULL && i < n; i++)
        ids[i] = cstr(&s, dl_kr_string(r));
    if (v >= 3)
        (void)dl_kr_i8(r); /* include_authorized_operations */
    if (ids == NULL || dl_kr_failed(r) || s.failed) {
        free(ids);
        free_strings(&s);
        return DL_HANDLED_CLOSE;
    }
    size_t start = dl_kresponse_begin(out, h);
    int rv = 0;
    if (v >= 1)
        rv |= dl_kw_i32(out, 0); /* throttle_time_ms */
    rv |= dl_kw_i32(out, n);
    for (int32_t i = 0; i < n && rv == 0; i++) {
        described_t d = {.out = out, .v = v};
        if (dl_groups_describe(ctx->groups, ids[i], describe_group, describe_member, &d) != 0) {
            /* An unknown group is described as Kafka describes it: Dead, no members. */
            rv |= dl_kw_i16(out, DL_KERR_NONE) | dl_kw_string(out, ids[i]) |
                  dl_kw_string(out, "Dead") | dl_kw_string(out, "") | dl_kw_string(out, "") |
                  dl_kw_i32(out, 0);
        } else {
            rv |= d.rv;
            if (rv == 0)
                dl_kw_patch_i32(out, d.count_at, d.n);
        }
        if (v >= 3)
            rv |= dl_kw_i32(out, INT32_MIN); /* authorized_operations: not computed */
    }
    free(ids);
    free_strings(&s);
    return dl__events_finish(out, start, rv);
}

dl_handled_t dl__events_handle_group(dl_events_ctx_t *ctx, const dl_kheader_t *h,
                                     dl_kreader_t *body, dl_buf_t *out)
{
    if (ctx->groups == NULL || ctx->offsets == NULL)
        return DL_HANDLED_CLOSE;
    switch (h->api_key) {
    case DL_KAPI_FIND_COORDINATOR:
        return find_coordinator(ctx, h, body, out);
    case DL_KAPI_JOIN_GROUP:
        return join_group(ctx, h, body);
    case DL_KAPI_SYNC_GROUP:
        return sync_group(ctx, h, body);
    case DL_KAPI_HEARTBEAT:
    case DL_KAPI_LEAVE_GROUP:
        return heartbeat_or_leave(ctx, h, body, out);
    case DL_KAPI_OFFSET_COMMIT:
        return offset_commit(ctx, h, body, out);
    case DL_KAPI_OFFSET_FETCH:
        return offset_fetch(ctx, h, body, out);
    case DL_KAPI_LIST_GROUPS:
        return list_groups(ctx, h, out);
    case DL_KAPI_DESCRIBE_GROUPS:
        return describe_groups(ctx, h, body, out);
    default:
        return DL_HANDLED_CLOSE;
    }
}
