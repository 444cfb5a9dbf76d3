/* The HTTP API of a kv node: /kv, /status, /healthz, /metrics, /admin/promote. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "ddialab/flags.h"
#include "ddialab/json_util.h"
#include "ddialab/logging.h"
#include "kv/node_internal.h"

#define LIST_DEFAULT_LIMIT 100
#define LIST_MAX_LIMIT     10000

/*
 * Sends a request that only the leader may serve to the leader: 307 with a Location that keeps
 * the path and query (so curl -L repeats it there), or 503 when no leader is known.
 */
void dl__kv_redirect_to_leader(dl_kv_node_t *n, dl_http_req_t *req)
{
    uint64_t leader = dl_raft_leader(n->raft);
    const char *addr = dl__kv_leader_http(n);
    if (addr == NULL || leader == n->id) {
        json_t *body =
            dl_http_error_body(DL_ENOLEADER, leader ? "the leader's address is not known yet; retry"
                                                    : "no leader is known; retry later");
        json_object_set_new(body, "leader",
                            leader ? json_integer((json_int_t)leader) : json_null());
        dl_http_reply_json(req, 503, body, NULL);
        return;
    }
    const char *query = dl_http_req_raw_query(req);
    size_t cap = strlen(addr) + strlen(dl_http_req_path(req)) + (query ? strlen(query) : 0) + 16;
    char *location = dl_http_req_alloc(req, cap);
    char *leader_url = dl_http_req_alloc(req, strlen(addr) + 8);
    if (location == NULL || leader_url == NULL) {
        dl_http_reply_error(req, -ENOMEM, "out of memory");
        return;
    }
    snprintf(location, cap, "http://%s%s%s%s", addr, dl_http_req_path(req), query ? "?" : "",
             query ? query : "");
    snprintf(leader_url, strlen(addr) + 8, "http://%s", addr);
    char message[256];
    snprintf(message, sizeof(message),
             "node %" PRIu64 " is a follower; the leader is node %" PRIu64, n->id, leader);
    json_t *body = dl_http_error_body(DL_ENOTLEADER, message);
    json_object_set_new(body, "leader", json_integer((json_int_t)leader));
    json_object_set_new(body, "leader_url", json_string(leader_url));
    const char *headers[] = {"Location", location, NULL};
    dl_metric_inc(n->m_redirects);
    dl_http_reply_json(req, 307, body, headers);
}

static int is_leader(dl_kv_node_t *n)
{
    return dl_raft_role(n->raft) == DL_RAFT_LEADER;
}

/* Reads the key from the path; answers 400/413 itself and returns non-zero when it is bad. */
static int request_key(dl_http_req_t *req, const char **key, size_t *len)
{
    dl_http_req_wildcard(req, key, len);
    if (*len == 0) {
        dl_http_reply_error(req, DL_EBADREQUEST, "the key is empty");
        return -1;
    }
    if (*len > DL_KV_MAX_KEY_BYTES) {
        dl_http_reply_error(req, DL_ETOOLARGE, "the key is %zu bytes; keys are limited to %d bytes",
                            *len, DL_KV_MAX_KEY_BYTES);
        return -1;
    }
    return 0;
}

/* Parses a version as sent in If-Match: 42 or "42" (an ETag). */
static int parse_version(const char *text, uint64_t *version)
{
    size_t len = strlen(text);
    char buf[32];
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        if (len - 2 >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, text + 1, len - 2);
        buf[len - 2] = '\0';
        text = buf;
    }
    int64_t v;
    if (dl_parse_int64(text, &v) != 0 || v <= 0)
        return -EINVAL;
    *version = (uint64_t)v;
    return 0;
}

/* Fills the command's condition from If-Match / If-None-Match; answers 400 itself on error. */
static int request_condition(dl_http_req_t *req, dl_kv_command_t *cmd)
{
    const char *value;
    size_t len;
    int has_match = dl_http_req_header(req, "if-match", &value, &len) == 0;
    if (has_match) {
        if (strcmp(value, "*") == 0) {
            cmd->cond = DL_KV_COND_PRESENT;
        } else if (parse_version(value, &cmd->expected_version) == 0) {
            cmd->cond = DL_KV_COND_VERSION;
        } else {
            dl_http_reply_error(req, DL_EBADREQUEST,
                                "If-Match must be a version number (as in the ETag) or *, not "
                                "'%.64s'",
                                value);
            return -1;
        }
    }
    if (dl_http_req_header(req, "if-none-match", &value, &len) == 0) {
        if (has_match) {
            dl_http_reply_error(req, DL_EBADREQUEST, "use If-Match or If-None-Match, not both");
            return -1;
        }
        if (strcmp(value, "*") != 0) {
            dl_http_reply_error(req, DL_EBADREQUEST,
                                "If-None-Match supports only * (create if absent)");
            return -1;
        }
        cmd->cond = DL_KV_COND_ABSENT;
    }
    return 0;
}

static void submit(dl_kv_node_t *n, dl_http_req_t *req, const dl_kv_command_t *cmd)
{
    int rv = dl__kv_submit(n, req, cmd);
    if (rv)
        dl_http_reply_error(req, rv, "the write was not accepted: %s", dl_strerror(rv));
}

static void handle_put(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    if (!is_leader(n))
        return dl__kv_redirect_to_leader(n, req);
    dl_kv_command_t cmd = {.op = DL_KV_OP_PUT};
    if (request_key(req, (const char **)&cmd.key, &cmd.key_len) != 0)
        return;
    dl_http_req_body(req, &cmd.value, &cmd.value_len);
    if ((int64_t)cmd.value_len > n->max_value_bytes)
        return dl_http_reply_error(req, DL_ETOOLARGE,
                                   "the value is %zu bytes; this node accepts at most %" PRId64
                                   " (--max-value-bytes)",
                                   cmd.value_len, n->max_value_bytes);
    if (request_condition(req, &cmd) != 0)
        return;
    submit(n, req, &cmd);
}

static void handle_delete(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    if (!is_leader(n))
        return dl__kv_redirect_to_leader(n, req);
    dl_kv_command_t cmd = {.op = DL_KV_OP_DELETE};
    if (request_key(req, (const char **)&cmd.key, &cmd.key_len) != 0)
        return;
    if (request_condition(req, &cmd) != 0)
        return;
    submit(n, req, &cmd);
}

/*
 * Routes a read by its consistency: `stale` is answered here from local state on any node;
 * `leader` by the leader from its own state (fast, but a deposed leader that does not know it yet
 * may answer); `linearizable`, the default, by the leader after a ReadIndex round confirms that a
 * majority still follows it. Followers redirect what they may not answer.
 */
static void route_read(dl_kv_node_t *n, dl_http_req_t *req, int list)
{
    const char *consistency = "linearizable";
    size_t len;
    if (dl_http_req_query(req, "consistency", &consistency, &len) == 0 &&
        strcmp(consistency, "stale") != 0 && strcmp(consistency, "linearizable") != 0 &&
        strcmp(consistency, "leader") != 0 && strcmp(consistency, "lease") != 0)
        return dl_http_reply_error(
            req, DL_EBADREQUEST,
            "consistency must be linearizable (the default), lease, leader or stale");
    if (strcmp(consistency, "stale") == 0)
        return dl__kv_serve_read(n, req, list);
    if (!is_leader(n))
        return dl__kv_redirect_to_leader(n, req);
    if (strcmp(consistency, "leader") == 0)
        return dl__kv_serve_read(n, req, list);
    /* A lease read needs no round while a majority's recent acknowledgements guarantee that no
     * other leader exists (see dl_raft_lease_valid); otherwise it falls back to ReadIndex. */
    if (strcmp(consistency, "lease") == 0 && dl_raft_lease_valid(n->raft, dl__kv_now_ms(n)))
        return dl__kv_serve_read(n, req, list);
    int rv = dl__kv_read(n, req, list);
    if (rv)
        dl_http_reply_error(req, rv, "the read could not start: %s", dl_strerror(rv));
}

void dl__kv_refuse_read(dl_kv_node_t *n, dl_http_req_t *req)
{
    if (dl_raft_leader(n->raft) != 0 && dl_raft_leader(n->raft) != n->id)
        return dl__kv_redirect_to_leader(n, req);
    dl_http_reply_error(req, DL_ENOLEADER,
                        "leadership changed before the read was confirmed; retry");
}

static void serve_get(dl_kv_node_t *n, dl_http_req_t *req)
{
    const char *key;
    size_t key_len;
    dl_http_req_wildcard(req, &key, &key_len);
    void *value;
    size_t value_len;
    uint64_t version;
    int rv = dl_kv_store_get(n->store, key, key_len, &value, &value_len, &version);
    if (rv == DL_ENOTFOUND)
        return dl_http_reply_error(req, DL_ENOTFOUND, "no such key");
    if (rv)
        return dl_http_reply_error(req, rv, "read failed: %s", dl_strerror(rv));
    char etag[32];
    char index_text[32];
    snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
    snprintf(index_text, sizeof(index_text), "%" PRIu64, dl_kv_store_applied(n->store));
    const char *headers[] = {"ETag", etag, "X-Applied-Index", index_text, NULL};
    dl_http_reply(req, 200, "application/octet-stream", value, value_len, headers);
    free(value);
}

static void serve_list(dl_kv_node_t *n, dl_http_req_t *req)
{
    const char *prefix = "";
    size_t prefix_len = 0;
    const char *limit_text;
    size_t limit_len;
    int64_t limit = LIST_DEFAULT_LIMIT;
    if (dl_http_req_query(req, "prefix", &prefix, &prefix_len) != 0) {
        prefix = "";
        prefix_len = 0;
    }
    if (dl_http_req_query(req, "limit", &limit_text, &limit_len) == 0)
        dl_parse_int64(limit_text, &limit); /* validated before the read was routed */
    json_t *items;
    int more;
    int rv = dl_kv_store_list(n->store, prefix, prefix_len, (size_t)limit, &items, &more);
    if (rv)
        return dl_http_reply_error(req, rv, "listing failed: %s", dl_strerror(rv));
    json_t *body = json_object();
    json_object_set_new(body, "items", items);
    json_object_set_new(body, "more", json_boolean(more));
    dl_http_reply_json(req, 200, body, NULL);
}

void dl__kv_serve_read(dl_kv_node_t *n, dl_http_req_t *req, int list)
{
    if (list)
        serve_list(n, req);
    else
        serve_get(n, req);
}

static void handle_get(void *ctx, dl_http_req_t *req)
{
    const char *key;
    size_t key_len;
    if (request_key(req, &key, &key_len) != 0)
        return;
    route_read(ctx, req, 0);
}

static void handle_list(void *ctx, dl_http_req_t *req)
{
    const char *prefix;
    size_t prefix_len;
    const char *limit_text;
    size_t limit_len;
    int64_t limit;
    if (dl_http_req_query(req, "prefix", &prefix, &prefix_len) == 0 &&
        prefix_len > DL_KV_MAX_KEY_BYTES)
        return dl_http_reply_error(req, DL_ETOOLARGE, "the prefix is longer than a key may be");
    if (dl_http_req_query(req, "limit", &limit_text, &limit_len) == 0 &&
        (dl_parse_int64(limit_text, &limit) != 0 || limit < 1 || limit > LIST_MAX_LIMIT))
        return dl_http_reply_error(req, DL_EBADREQUEST, "limit must be a number from 1 to %d",
                                   LIST_MAX_LIMIT);
    route_read(ctx, req, 1);
}

static json_t *status_json(dl_kv_node_t *n)
{
    dl_raft_t *r = n->raft;
    uint64_t leader = dl_raft_leader(r);
    const char *leader_http = dl__kv_leader_http(n);
    const char *fsync = n->sync_policy == DL_SYNC_BATCH  ? "batch"
                        : n->sync_policy == DL_SYNC_NONE ? "none"
                                                         : "interval";
    json_t *s = json_object();
    json_object_set_new(s, "node", json_integer((json_int_t)n->id));
    json_object_set_new(s, "cluster_id", json_string(n->cluster_id));
    json_object_set_new(s, "role", json_string(dl_raft_role_name(dl_raft_role(r))));
    json_object_set_new(s, "elections", json_boolean(n->elections));
    json_object_set_new(s, "term", json_integer((json_int_t)dl_raft_term(r)));
    json_object_set_new(s, "leader", leader ? json_integer((json_int_t)leader) : json_null());
    json_object_set_new(s, "reclaiming", json_boolean(dl_raft_reclaiming(r)));
    json_object_set_new(s, "leader_http", leader_http ? json_string(leader_http) : json_null());
    json_object_set_new(s, "http", json_string(n->http_addr));
    json_object_set_new(s, "last_index", json_integer((json_int_t)dl_raft_last_index(r)));
    json_object_set_new(s, "commit_index", json_integer((json_int_t)dl_raft_commit_index(r)));
    json_object_set_new(s, "applied_index",
                        json_integer((json_int_t)dl_kv_store_applied(n->store)));
    json_object_set_new(s, "flushed_index",
                        json_integer((json_int_t)dl_kv_store_flushed(n->store)));
    json_object_set_new(s, "persisted_index", json_integer((json_int_t)dl_raft_persisted_index(r)));
    json_object_set_new(s, "replication", json_string(n->replication));
    json_object_set_new(s, "commit_quorum", json_integer((json_int_t)n->commit_quorum));
    json_object_set_new(s, "ack_copies", json_integer((json_int_t)n->quorum));
    json_object_set_new(s, "fsync", json_string(fsync));
    json_object_set_new(s, "pending_writes", json_integer((json_int_t)n->n_waiters));
    json_object_set_new(s, "keys", json_integer(dl_kv_store_count(n->store)));
    json_object_set_new(s, "first_index", json_integer((json_int_t)dl_raft_first_index(r)));
    const dl_kv_snapfile_t *snap = dl__kv_snap_latest(n);
    json_object_set_new(s, "snapshot",
                        snap
                            ? json_pack("{s:I, s:I, s:I}", "index", (json_int_t)snap->index, "term",
                                        (json_int_t)snap->term, "bytes", (json_int_t)snap->size)
                            : json_null());
    json_object_set_new(s, "discarded_entries", json_integer((json_int_t)n->discarded_total));
    json_object_set_new(s, "discarded_applied_entries",
                        json_integer((json_int_t)n->discarded_applied_total));
    json_object_set_new(s, "discarded_acknowledged_entries",
                        json_integer((json_int_t)n->discarded_acked_total));
    json_t *members = dl__kv_members_json(n);
    json_object_set(s, "members", json_object_get(members, "members"));
    json_decref(members);
    json_t *followers = json_array();
    if (dl_raft_role(r) == DL_RAFT_LEADER) {
        dl_raft_progress_t p[DL_KV_MAX_NODES];
        size_t count = dl_raft_progress(r, p, DL_KV_MAX_NODES);
        uint64_t now = dl__kv_now_ms(n);
        uint64_t last = dl_raft_last_index(r);
        for (size_t i = 0; i < count && i < DL_KV_MAX_NODES; i++) {
            json_t *f = json_object();
            json_object_set_new(f, "node", json_integer((json_int_t)p[i].id));
            json_object_set_new(f, "match_index", json_integer((json_int_t)p[i].match_index));
            json_object_set_new(f, "lag", json_integer((json_int_t)(last - p[i].match_index)));
            json_object_set_new(
                f, "connected",
                json_boolean(dl_peer_net_connected(n->net, p[i].id) && p[i].last_ack_ms != 0));
            json_object_set_new(f, "probing", json_boolean(p[i].probing));
            json_object_set_new(f, "learner", json_boolean(p[i].learner));
            json_object_set_new(f, "receiving_snapshot",
                                p[i].snap_index
                                    ? json_pack("{s:I, s:I}", "index", (json_int_t)p[i].snap_index,
                                                "bytes", (json_int_t)p[i].snap_acked)
                                    : json_null());
            json_object_set_new(f, "last_ack_ms_ago",
                                p[i].last_ack_ms
                                    ? json_integer((json_int_t)(now - p[i].last_ack_ms))
                                    : json_null());
            json_array_append_new(followers, f);
        }
    }
    json_object_set_new(s, "followers", followers);
    return s;
}

static void handle_status(void *ctx, dl_http_req_t *req)
{
    dl_http_reply_json(req, 200, status_json(ctx), NULL);
}

static void handle_healthz(void *ctx, dl_http_req_t *req)
{
    (void)ctx;
    dl_http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

/* Per-follower series are refreshed at scrape time: the set of peers is fixed by --peers. */
static void update_follower_metrics(dl_kv_node_t *n)
{
    dl_raft_progress_t p[DL_KV_MAX_NODES];
    size_t count = dl_raft_progress(n->raft, p, DL_KV_MAX_NODES);
    int leader = dl_raft_role(n->raft) == DL_RAFT_LEADER;
    uint64_t last = dl_raft_last_index(n->raft);
    for (size_t i = 0; i < count && i < DL_KV_MAX_NODES; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "peer=\"%" PRIu64 "\"", p[i].id);
        dl_metric_set(dl_metrics_gauge(n->metrics, "ddialab_kv_follower_match_index",
                                       "The leader's view of each follower's match index.", labels),
                      leader ? (double)p[i].match_index : 0);
        dl_metric_set(dl_metrics_gauge(n->metrics, "ddialab_kv_follower_lag_entries",
                                       "Entries each follower is behind the leader's log.", labels),
                      leader ? (double)(last - p[i].match_index) : 0);
        dl_metric_set(dl_metrics_gauge(n->metrics, "ddialab_kv_peer_connected",
                                       "1 while the connection to the peer is up.", labels),
                      dl_peer_net_connected(n->net, p[i].id));
    }
}

static void handle_metrics(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    update_follower_metrics(n);
    char *text;
    size_t len;
    int rv = dl_metrics_render(n->metrics, &text, &len);
    if (rv)
        return dl_http_reply_error(req, rv, "cannot render metrics");
    dl_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
    free(text);
}

static void handle_promote(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    uint64_t old_leader = dl_raft_leader(n->raft);
    int rv = dl__kv_promote(n);
    if (rv == -EALREADY)
        return dl_http_reply_error(req, DL_ECONFIG, "node %" PRIu64 " is already the leader",
                                   n->id);
    if (rv == DL_ELEADERALIVE)
        return dl_http_reply_error(
            req, rv,
            "node %" PRIu64 " still hears from leader %" PRIu64
            ": move a live leader with POST /admin/transfer-leader?to=%" PRIu64
            " on it, or promote once it is gone",
            n->id, old_leader, n->id);
    if (rv)
        return dl_http_reply_error(req, rv, "promotion failed: %s", dl_strerror(rv));
    json_t *body = json_object();
    json_object_set_new(
        body, "node", json_integer((json_int_t)n->id)); /* With elections a promotion is a campaign:
                                                           it may still be under way, or lost. */
    json_object_set_new(body, "role", json_string(dl_raft_role_name(dl_raft_role(n->raft))));
    json_object_set_new(body, "term", json_integer((json_int_t)dl_raft_term(n->raft)));
    json_object_set_new(body, "previous_leader",
                        old_leader ? json_integer((json_int_t)old_leader) : json_null());
    json_object_set_new(body, "last_index", json_integer((json_int_t)dl_raft_last_index(n->raft)));
    dl_http_reply_json(req, 200, body, NULL);
}

static void handle_transfer(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    const char *text;
    size_t len;
    int64_t to;
    if (dl_http_req_query(req, "to", &text, &len) != 0 || dl_parse_int64(text, &to) != 0 || to < 1)
        return dl_http_reply_error(req, DL_EBADREQUEST, "give the new leader as ?to=N");
    if (!n->elections)
        return dl_http_reply_error(req, DL_EUNSUPPORTED,
                                   "leadership transfer needs --elections; in static mode use "
                                   "POST /admin/promote on the new leader");
    if (!is_leader(n))
        return dl__kv_redirect_to_leader(n, req);
    int rv = dl__kv_transfer_leader(n, (uint64_t)to);
    if (rv == -EINVAL)
        return dl_http_reply_error(req, DL_EBADREQUEST, "node %" PRId64 " is not another member",
                                   to);
    if (rv)
        return dl_http_reply_error(req, rv, "transfer failed: %s", dl_strerror(rv));
    json_t *body = json_object();
    json_object_set_new(body, "transferring_to", json_integer((json_int_t)to));
    json_object_set_new(body, "term", json_integer((json_int_t)dl_raft_term(n->raft)));
    dl_http_reply_json(req, 202, body, NULL);
}

void dl__kv_reply_applied(dl_kv_node_t *n, dl_kv_waiter_t *w, const dl_kv_result_t *res)
{
    if (res->rv == 0)
        dl_metric_inc(n->m_writes_ok);
    else
        dl_metric_inc(n->m_writes_failed);
    dl_http_req_t *req = w->req;
    if (req == NULL)
        return;
    w->req = NULL;
    dl_http_req_on_cancel(req, NULL, NULL);
    const char *key;
    size_t key_len;
    dl_http_req_wildcard(req, &key, &key_len);
    if (res->rv == DL_EPRECONDITION) {
        char message[160];
        if (res->current_version)
            snprintf(message, sizeof(message),
                     "the condition did not hold: the key exists with version %" PRIu64,
                     res->current_version);
        else
            snprintf(message, sizeof(message),
                     "the condition did not hold: the key does not exist");
        json_t *body = dl_http_error_body(DL_EPRECONDITION, message);
        json_object_set_new(body, "current_version",
                            res->current_version ? json_integer((json_int_t)res->current_version)
                                                 : json_null());
        json_object_set_new(body, "index", json_integer((json_int_t)w->index));
        return dl_http_reply_json(req, 412, body, NULL);
    }
    if (res->rv == DL_ENOTFOUND) {
        json_t *body = dl_http_error_body(DL_ENOTFOUND, "no such key");
        json_object_set_new(body, "index", json_integer((json_int_t)w->index));
        return dl_http_reply_json(req, 404, body, NULL);
    }
    json_t *body = json_object();
    dl_json_set_bytes(body, "key", key, key_len);
    if (w->op == DL_KV_OP_PUT)
        json_object_set_new(body, "version", json_integer((json_int_t)res->version));
    json_object_set_new(body, "index", json_integer((json_int_t)w->index));
    /* Answered by an acknowledgement policy before the commit (async, semi-sync). */
    json_object_set_new(body, "committed", json_boolean(!w->answered_early));
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", res->version);
    const char *headers[] = {"ETag", etag, NULL};
    dl_http_reply_json(req, 200, body, w->op == DL_KV_OP_PUT ? headers : NULL);
}

void dl__kv_reply_failed(dl_kv_node_t *n, dl_kv_waiter_t *w, int rv, const char *why)
{
    (void)n;
    dl_http_req_t *req = w->req;
    if (req == NULL)
        return;
    w->req = NULL;
    dl_http_req_on_cancel(req, NULL, NULL);
    json_t *body = dl_http_error_body(rv, why);
    if (w->index)
        json_object_set_new(body, "index", json_integer((json_int_t)w->index));
    uint64_t leader = dl_raft_leader(n->raft);
    if (rv == DL_ENOTLEADER) {
        json_object_set_new(body, "leader",
                            leader ? json_integer((json_int_t)leader) : json_null());
        /* Not a redirect: the write may already be in the new leader's log. */
        return dl_http_reply_json(req, 503, body, NULL);
    }
    dl_http_reply_json(req, dl_err_http_status(rv), body, NULL);
}

static void on_request_done(void *ctx, const char *method, const char *route, int status,
                            double seconds)
{
    dl_kv_node_t *n = ctx;
    dl_metric_t *series = NULL;
    for (size_t i = 0; i < n->n_http_series && series == NULL; i++)
        if (n->http_series[i].method == method && n->http_series[i].status == status)
            series = n->http_series[i].series;
    if (series == NULL) {
        char labels[96];
        snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%d\"", method, status);
        series = dl_metrics_counter(n->metrics, "ddialab_http_requests_total",
                                    "HTTP requests served, by method and status.", labels);
        if (n->n_http_series < sizeof(n->http_series) / sizeof(n->http_series[0])) {
            n->http_series[n->n_http_series].method = method;
            n->http_series[n->n_http_series].status = status;
            n->http_series[n->n_http_series].series = series;
            n->n_http_series++;
        }
    }
    dl_metric_inc(series);
    dl_metric_observe(n->m_http_seconds, seconds);
    (void)route;
}

int dl__kv_http_start(dl_kv_node_t *n, const char *host, int port, char *err, size_t errlen)
{
    n->m_http_seconds = dl_metrics_histogram(
        n->metrics, "ddialab_http_request_duration_seconds", "Time to answer an HTTP request.",
        NULL, dl_metrics_latency_seconds_buckets, dl_metrics_latency_seconds_nbuckets);
    dl_http_server_options_t opts = {
        .host = host,
        .port = port,
        .max_body_bytes = (size_t)n->max_value_bytes,
        .on_complete = on_request_done,
        .on_complete_ctx = n,
    };
    int rv = dl_http_server_start(n->loop, &opts, &n->http, err, errlen);
    if (rv)
        return rv;
    static const struct {
        const char *method;
        const char *pattern;
        dl_http_handler_fn fn;
    } routes[] = {
        {"GET", "/kv/*", handle_get},
        {"PUT", "/kv/*", handle_put},
        {"DELETE", "/kv/*", handle_delete},
        {"GET", "/kv", handle_list},
        {"GET", "/status", handle_status},
        {"GET", "/healthz", handle_healthz},
        {"GET", "/metrics", handle_metrics},
        {"POST", "/admin/promote", handle_promote},
        {"POST", "/admin/transfer-leader", handle_transfer},
        {"GET", "/admin/members", dl__kv_handle_members_get},
        {"POST", "/admin/members", dl__kv_handle_members_post},
        {"DELETE", "/admin/members/*", dl__kv_handle_members_delete},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        rv = dl_http_server_route(n->http, routes[i].method, routes[i].pattern, routes[i].fn, n);
        if (rv) {
            snprintf(err, errlen, "cannot register route %s %s", routes[i].method,
                     routes[i].pattern);
            return rv;
        }
    }
    return 0;
}
