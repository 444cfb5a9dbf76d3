/* Served APIs, request headers, response frames and ApiVersions (protocol.h). */
#include "events/protocol.h"

/*
 * What we serve, in key order. max_version is the highest version whose body we implement, never
 * at or above first_flexible (Kafka 3.4's message JSON "flexibleVersions"). An API joins this
 * table when its handler does; clients ask only for what ApiVersions lists.
 */
/* clang-format off */
static const dl_kapi_t APIS[] = {
    {DL_KAPI_PRODUCE, 0, 7, 9, "Produce"},
    {DL_KAPI_FETCH, 0, 11, 12, "Fetch"},
    {DL_KAPI_LIST_OFFSETS, 0, 2, 6, "ListOffsets"},
    {DL_KAPI_METADATA, 0, 4, 9, "Metadata"},
    {DL_KAPI_OFFSET_COMMIT, 0, 5, 8, "OffsetCommit"},
    {DL_KAPI_OFFSET_FETCH, 0, 4, 6, "OffsetFetch"},
    {DL_KAPI_FIND_COORDINATOR, 0, 2, 3, "FindCoordinator"},
    {DL_KAPI_JOIN_GROUP, 0, 5, 6, "JoinGroup"},
    {DL_KAPI_HEARTBEAT, 0, 3, 4, "Heartbeat"},
    {DL_KAPI_LEAVE_GROUP, 0, 1, 4, "LeaveGroup"},
    {DL_KAPI_SYNC_GROUP, 0, 3, 4, "SyncGroup"},
    {DL_KAPI_DESCRIBE_GROUPS, 0, 4, 5, "DescribeGroups"},
    {DL_KAPI_LIST_GROUPS, 0, 2, 3, "ListGroups"},
    {DL_KAPI_API_VERSIONS, 0, 2, 3, "ApiVersions"},
    {DL_KAPI_CREATE_TOPICS, 0, 3, 5, "CreateTopics"},
    {DL_KAPI_DELETE_TOPICS, 0, 3, 4, "DeleteTopics"},
    {DL_KAPI_INIT_PRODUCER_ID, 0, 1, 2, "InitProducerId"},
};
/* clang-format on */

const dl_kapi_t *dl_kapis(size_t *n)
{
    *n = sizeof(APIS) / sizeof(*APIS);
    return APIS;
}

const dl_kapi_t *dl_kapi_find(int16_t key)
{
    for (size_t i = 0; i < sizeof(APIS) / sizeof(*APIS); i++)
        if (APIS[i].key == key)
            return &APIS[i];
    return NULL;
}

dl_kheader_status_t dl_kheader_parse(const uint8_t *frame, size_t len, dl_kheader_t *h,
                                     dl_kreader_t *body)
{
    dl_kreader_t r = dl_kr_init(frame, len);
    h->api_key = dl_kr_i16(&r);
    h->api_version = dl_kr_i16(&r);
    h->correlation_id = dl_kr_i32(&r);
    h->client_id = dl_kr_string(&r); /* an int16 length even in header v2, so that any broker
                                      * can read an ApiVersions header */
    h->flexible = 0;
    if (dl_kr_failed(&r))
        return DL_KHEADER_CLOSE;
    const dl_kapi_t *api = dl_kapi_find(h->api_key);
    if (api == NULL || h->api_version < 0)
        return DL_KHEADER_CLOSE;
    h->flexible = h->api_version >= api->first_flexible;
    if (h->flexible)
        dl_kr_skip_tags(&r);
    *body = r;
    if (h->api_version > api->max_version)
        return h->api_key == DL_KAPI_API_VERSIONS ? DL_KHEADER_UNSUPPORTED_VERSION
                                                  : DL_KHEADER_CLOSE;
    return dl_kr_failed(&r) ? DL_KHEADER_CLOSE : DL_KHEADER_OK;
}

size_t dl_kresponse_begin(dl_buf_t *b, const dl_kheader_t *h)
{
    size_t start = b->len;
    if (dl_kw_i32(b, 0) != 0 || dl_kw_i32(b, h->correlation_id) != 0)
        b->len = start; /* the caller's next append fails the same way and drops the reply */
    return start;
}

void dl_kresponse_end(dl_buf_t *b, size_t start)
{
    dl_kw_patch_i32(b, start, (int32_t)(b->len - start - 4));
}

int dl_kapi_versions_respond(dl_buf_t *b, const dl_kheader_t *h)
{
    const dl_kapi_t *self = dl_kapi_find(DL_KAPI_API_VERSIONS);
    int too_new = h->api_version > self->max_version;
    int version = too_new ? 0 : h->api_version;
    size_t start = dl_kresponse_begin(b, h);
    int rv = dl_kw_i16(b, too_new ? DL_KERR_UNSUPPORTED_VERSION : DL_KERR_NONE);
    size_t n;
    const dl_kapi_t *apis = dl_kapis(&n);
    rv |= dl_kw_i32(b, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        rv |= dl_kw_i16(b, apis[i].key) | dl_kw_i16(b, apis[i].min_version) |
              dl_kw_i16(b, apis[i].max_version);
    if (version >= 1)
        rv |= dl_kw_i32(b, 0); /* throttle_time_ms */
    if (rv != 0) {
        b->len = start;
        return -ENOMEM;
    }
    dl_kresponse_end(b, start);
    return 0;
}
