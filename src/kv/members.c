/*
 * Membership of a kv node: the address book, configuration entries' context, the admin API
 * (GET/POST /admin/members, DELETE /admin/members/{id}), automatic promotion of learners that
 * caught up, and `--join`.
 *
 * A configuration entry's context (after the ids the Raft core reads) is JSON:
 *   {"addrs": {"4": {"peer": "127.0.0.1:9004", "http": "127.0.0.1:8004"}, ...},
 *    "promote": [4]}
 * with the address of every member, so that any node learns the whole cluster from the newest
 * entry, and the learners that asked to vote once they have caught up.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddialab/error.h"
#include "ddialab/flags.h"
#include "ddialab/fsutil.h"
#include "ddialab/json_util.h"
#include "ddialab/logging.h"
#include "kv/node_internal.h"

/* Caught up enough to vote: within this many entries of the leader's commit index. */
#define PROMOTE_LAG 100

static int book_slot(dl_kv_node_t *n, uint64_t id)
{
    for (size_t i = 0; i < n->n_nodes; i++)
        if (n->nodes[i].id == id)
            return (int)i;
    return -1;
}

/* Records a member's addresses; peer may be NULL (keeps what is known). */
static int book_put(dl_kv_node_t *n, uint64_t id, const char *peer, const char *http)
{
    int k = book_slot(n, id);
    if (k < 0) {
        if (n->n_nodes == DL_KV_MAX_NODES)
            return -ENOSPC;
        k = (int)n->n_nodes++;
        memset(&n->nodes[k], 0, sizeof(n->nodes[k]));
        n->nodes[k].id = id;
        n->node_http[k][0] = '\0';
    }
    if (peer != NULL && dl__kv_parse_hostport(peer, n->nodes[k].host, sizeof(n->nodes[k].host),
                                              &n->nodes[k].port) != 0)
        return -EINVAL;
    if (http != NULL)
        snprintf(n->node_http[k], sizeof(n->node_http[k]), "%s", http);
    return 0;
}

void dl__kv_members_learn(dl_kv_node_t *n, const void *payload, size_t len)
{
    dl_raft_membership_t m;
    const void *ctx;
    size_t ctx_len;
    if (dl_raft_membership_decode(payload, len, &m, &ctx, &ctx_len) != 0)
        return;
    json_t *j = json_loadb(ctx, ctx_len, 0, NULL);
    json_t *addrs = json_object_get(j, "addrs");
    const char *key;
    json_t *v;
    json_object_foreach(addrs, key, v)
    {
        int64_t id;
        const char *peer = json_string_value(json_object_get(v, "peer"));
        const char *http = json_string_value(json_object_get(v, "http"));
        if (dl_parse_int64(key, &id) == 0 && id >= 1 && id <= DL_KV_MAX_NODES && peer != NULL)
            book_put(n, (uint64_t)id, peer, http);
    }
    memset(n->promote, 0, sizeof(n->promote));
    size_t i;
    json_array_foreach(json_object_get(j, "promote"), i, v)
    {
        json_int_t id = json_integer_value(v);
        if (id >= 1 && id <= DL_KV_MAX_NODES)
            n->promote[id] = 1;
    }
    json_decref(j);
}

void dl__kv_members_changed(dl_kv_node_t *n)
{
    dl_raft_membership_t m;
    dl_raft_membership(n->raft, &m);
    size_t voters = 0;
    for (size_t i = 0; i < m.n; i++) {
        voters += !m.learner[i];
        int k = book_slot(n, m.ids[i]);
        if (k >= 0 && n->net != NULL && m.ids[i] != n->id)
            dl_peer_net_add(n->net, &n->nodes[k]);
    }
    n->commit_quorum = dl_raft_commit_quorum(n->raft);
    dl__kv_update_ack_copies(n, voters);
}

/* The context of a new configuration entry: every member's addresses, and who is to vote. */
static char *make_ctx(dl_kv_node_t *n, const dl_raft_membership_t *m, size_t *len)
{
    json_t *addrs = json_object();
    json_t *promote = json_array();
    for (size_t i = 0; i < m->n; i++) {
        int k = book_slot(n, m->ids[i]);
        if (k < 0)
            continue;
        char key[24], peer[96];
        snprintf(key, sizeof(key), "%" PRIu64, m->ids[i]);
        snprintf(peer, sizeof(peer), "%s:%d", n->nodes[k].host, n->nodes[k].port);
        json_t *a = json_pack("{s:s}", "peer", peer);
        const char *http = n->node_http[k][0] ? n->node_http[k] : NULL;
        if (http == NULL && m->ids[i] == n->id)
            http = n->http_addr;
        if (http == NULL)
            http = dl_peer_net_http_addr(n->net, m->ids[i]);
        if (http != NULL)
            json_object_set_new(a, "http", json_string(http));
        json_object_set_new(addrs, key, a);
        if (m->learner[i] && m->ids[i] <= DL_KV_MAX_NODES && n->promote[m->ids[i]])
            json_array_append_new(promote, json_integer((json_int_t)m->ids[i]));
    }
    json_t *j = json_pack("{s:o, s:o}", "addrs", addrs, "promote", promote);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    *len = text ? strlen(text) : 0;
    return text;
}

/* Proposes membership m (the leader's address book supplies the context). */
static int propose(dl_kv_node_t *n, const dl_raft_membership_t *m, uint64_t *index)
{
    size_t ctx_len;
    char *ctx = make_ctx(n, m, &ctx_len);
    if (ctx == NULL)
        return -ENOMEM;
    size_t len = dl_raft_membership_encode(m, ctx, ctx_len, NULL, 0);
    uint8_t *payload = malloc(len);
    int rv = payload ? 0 : -ENOMEM;
    if (rv == 0) {
        dl_raft_membership_encode(m, ctx, ctx_len, payload, len);
        dl_raft_update_t u;
        rv = dl_raft_propose_membership(n->raft, payload, (uint32_t)len, index, &u);
        dl__kv_process(n, &u);
    }
    free(payload);
    free(ctx);
    return rv;
}

void dl__kv_members_tick(dl_kv_node_t *n)
{
    if (dl_raft_role(n->raft) != DL_RAFT_LEADER)
        return;
    dl_raft_membership_t m;
    uint64_t at = dl_raft_membership(n->raft, &m);
    if (at > dl_raft_commit_index(n->raft))
        return; /* one change at a time */
    dl_raft_progress_t p[DL_KV_MAX_NODES];
    size_t count = dl_raft_progress(n->raft, p, DL_KV_MAX_NODES);
    uint64_t commit = dl_raft_commit_index(n->raft);
    for (size_t i = 0; i < m.n; i++) {
        if (!m.learner[i] || m.ids[i] > DL_KV_MAX_NODES || !n->promote[m.ids[i]])
            continue;
        for (size_t k = 0; k < count && k < DL_KV_MAX_NODES; k++) {
            if (p[k].id != m.ids[i] || p[k].match_index + PROMOTE_LAG < commit ||
                p[k].snap_index != 0)
                continue;
            m.learner[i] = 0;
            n->promote[m.ids[i]] = 0;
            uint64_t index = 0;
            int rv = propose(n, &m, &index);
            if (rv == 0)
                DL_INFO("learner %" PRIu64 " caught up (match %" PRIu64 " of commit %" PRIu64
                        "): promoting it to voter at index %" PRIu64,
                        m.ids[i], p[k].match_index, commit, index);
            else
                n->promote[m.ids[i]] = 1; /* try again later */
            return;
        }
    }
}

json_t *dl__kv_members_json(dl_kv_node_t *n)
{
    dl_raft_membership_t m;
    uint64_t at = dl_raft_membership(n->raft, &m);
    dl_raft_progress_t p[DL_KV_MAX_NODES];
    size_t count =
        dl_raft_role(n->raft) == DL_RAFT_LEADER ? dl_raft_progress(n->raft, p, DL_KV_MAX_NODES) : 0;
    json_t *list = json_array();
    for (size_t i = 0; i < m.n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "id", json_integer((json_int_t)m.ids[i]));
        json_object_set_new(e, "role", json_string(m.learner[i] ? "learner" : "voter"));
        int k = book_slot(n, m.ids[i]);
        if (k >= 0) {
            char peer[96];
            snprintf(peer, sizeof(peer), "%s:%d", n->nodes[k].host, n->nodes[k].port);
            json_object_set_new(e, "peer", json_string(peer));
            const char *http = n->node_http[k][0]  ? n->node_http[k]
                               : m.ids[i] == n->id ? n->http_addr
                                                   : dl_peer_net_http_addr(n->net, m.ids[i]);
            if (http)
                json_object_set_new(e, "http", json_string(http));
        }
        for (size_t q = 0; q < count && q < DL_KV_MAX_NODES; q++)
            if (p[q].id == m.ids[i])
                json_object_set_new(e, "match_index", json_integer((json_int_t)p[q].match_index));
        if (m.learner[i] && m.ids[i] <= DL_KV_MAX_NODES && n->promote[m.ids[i]])
            json_object_set_new(e, "promote_when_caught_up", json_true());
        json_array_append_new(list, e);
    }
    json_t *body = json_object();
    json_object_set_new(body, "members", list);
    json_object_set_new(body, "config_index", json_integer((json_int_t)at));
    json_object_set_new(body, "committed", json_boolean(at <= dl_raft_commit_index(n->raft)));
    return body;
}

void dl__kv_handle_members_get(void *ctx, dl_http_req_t *req)
{
    dl_http_reply_json(req, 200, dl__kv_members_json(ctx), NULL);
}

static int change_allowed(dl_kv_node_t *n, dl_http_req_t *req)
{
    if (!n->elections) {
        dl_http_reply_error(req, DL_EUNSUPPORTED,
                            "membership changes need --elections (static mode has a fixed "
                            "membership, given by --peers)");
        return 0;
    }
    if (dl_raft_role(n->raft) != DL_RAFT_LEADER) {
        dl__kv_redirect_to_leader(n, req);
        return 0;
    }
    return 1;
}

static void reply_proposed(dl_kv_node_t *n, dl_http_req_t *req, int rv, uint64_t index)
{
    if (rv == DL_EBUSY)
        return dl_http_reply_error(req, rv,
                                   "a membership change is still uncommitted, or the leader has "
                                   "not committed in its term yet: retry shortly");
    if (rv == -EINVAL)
        return dl_http_reply_error(req, DL_EBADREQUEST,
                                   "that would change more than one voter at once");
    if (rv)
        return dl_http_reply_error(req, rv, "cannot propose the change: %s", dl_strerror(rv));
    json_t *body = dl__kv_members_json(n);
    json_object_set_new(body, "index", json_integer((json_int_t)index));
    dl_http_reply_json(req, 202, body, NULL);
}

/* POST /admin/members {"id": 4, "peer": "127.0.0.1:9004", "http": "127.0.0.1:8004",
 * "role": "voter" | "learner"}: adds a node as a learner; a would-be voter is promoted once it
 * has caught up. Re-posting a member updates its addresses. */
void dl__kv_handle_members_post(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    if (!change_allowed(n, req))
        return;
    const void *data;
    size_t len;
    dl_http_req_body(req, &data, &len);
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    const char *peer = json_string_value(json_object_get(j, "peer"));
    const char *http = json_string_value(json_object_get(j, "http"));
    const char *role = json_string_value(json_object_get(j, "role"));
    char host[64];
    int port;
    if (j == NULL || id < 1 || id > DL_KV_MAX_NODES || peer == NULL ||
        dl__kv_parse_hostport(peer, host, sizeof(host), &port) != 0 ||
        (http != NULL && dl__kv_parse_hostport(http, host, sizeof(host), &port) != 0) ||
        (role != NULL && strcmp(role, "voter") != 0 && strcmp(role, "learner") != 0)) {
        json_decref(j);
        return dl_http_reply_error(req, DL_EBADREQUEST,
                                   "expected {\"id\": 1..%d, \"peer\": \"HOST:PORT\", \"http\": "
                                   "\"HOST:PORT\", \"role\": \"voter\" or \"learner\"}",
                                   DL_KV_MAX_NODES);
    }
    int voter = role == NULL || strcmp(role, "voter") == 0;
    int rv = book_put(n, (uint64_t)id, peer, http);
    json_decref(j);
    if (rv)
        return dl_http_reply_error(req, DL_EBADREQUEST, "cannot record the addresses: %s",
                                   dl_strerror(rv));
    dl_raft_membership_t m;
    dl_raft_membership(n->raft, &m);
    size_t k = 0;
    while (k < m.n && m.ids[k] != (uint64_t)id)
        k++;
    if (k < m.n && !m.learner[k]) {
        /* Already a voter: only its addresses may change. */
        return reply_proposed(n, req, 0, dl_raft_membership(n->raft, NULL));
    }
    if (k == m.n) {
        m.ids[m.n] = (uint64_t)id;
        m.learner[m.n++] = 1;
    }
    n->promote[id] = (uint8_t)voter;
    dl__kv_members_changed(n); /* dial it now: it catches up while the entry commits */
    uint64_t index = 0;
    rv = propose(n, &m, &index);
    if (rv == 0)
        DL_INFO("membership: node %" PRId64 " joins as a learner%s (index %" PRIu64 ")",
                (int64_t)id, voter ? ", to vote once caught up" : "", index);
    reply_proposed(n, req, rv, index);
}

/* DELETE /admin/members/{id}: removes a member (the leader too: it steps down once the change
 * commits). */
void dl__kv_handle_members_delete(void *ctx, dl_http_req_t *req)
{
    dl_kv_node_t *n = ctx;
    const char *text;
    size_t len;
    dl_http_req_wildcard(req, &text, &len);
    char buf[24];
    int64_t id;
    if (len == 0 || len >= sizeof(buf) ||
        (memcpy(buf, text, len), buf[len] = '\0', dl_parse_int64(buf, &id) != 0 || id < 1))
        return dl_http_reply_error(req, DL_EBADREQUEST, "give the member as /admin/members/N");
    if (!change_allowed(n, req))
        return;
    dl_raft_membership_t m;
    dl_raft_membership(n->raft, &m);
    size_t k = 0;
    while (k < m.n && m.ids[k] != (uint64_t)id)
        k++;
    if (k == m.n)
        return dl_http_reply_error(req, DL_ENOTFOUND, "node %" PRId64 " is not a member", id);
    size_t voters = 0;
    for (size_t i = 0; i < m.n; i++)
        voters += !m.learner[i];
    if (voters == 1 && !m.learner[k])
        return dl_http_reply_error(req, DL_EBADREQUEST, "node %" PRId64 " is the last voter", id);
    m.ids[k] = m.ids[m.n - 1];
    m.learner[k] = m.learner[m.n - 1];
    m.n--;
    uint64_t index = 0;
    int rv = propose(n, &m, &index);
    if (rv == 0)
        DL_INFO("membership: removing node %" PRId64 " (index %" PRIu64 ")", id, index);
    reply_proposed(n, req, rv, index);
}

/* ---- --join --------------------------------------------------------------------------------- */

struct body {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct body *b = ctx;
    size_t add = size * nmemb;
    if (b->len + add > (1u << 20))
        return 0;
    char *d = realloc(b->data, b->len + add + 1);
    if (d == NULL)
        return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

/* Takes the membership from a members reply as this node's starting point. */
static int adopt_members(dl_kv_node_t *n, json_t *j, char *err, size_t errlen)
{
    json_t *list = json_object_get(j, "members");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        snprintf(err, errlen, "the reply lists no members");
        return DL_EPROTO;
    }
    n->n_nodes = 0;
    n->n_boot_voters = n->n_boot_learners = 0;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        const char *peer = json_string_value(json_object_get(e, "peer"));
        const char *http = json_string_value(json_object_get(e, "http"));
        const char *role = json_string_value(json_object_get(e, "role"));
        if (id < 1 || id > DL_KV_MAX_NODES || peer == NULL || role == NULL ||
            book_put(n, (uint64_t)id, peer, http) != 0) {
            snprintf(err, errlen, "the reply has a bad member entry");
            return DL_EPROTO;
        }
        if (strcmp(role, "voter") == 0)
            n->boot_voters[n->n_boot_voters++] = (uint64_t)id;
        else
            n->boot_learners[n->n_boot_learners++] = (uint64_t)id;
    }
    return 0;
}

int dl__kv_join(dl_kv_node_t *n, const char *url, const char *peer_addr, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/join.json", n->data_dir);
    char *saved = NULL;
    size_t saved_len = 0;
    if (dl_read_file(path, &saved, &saved_len) == 0) {
        /* Joined before: start from what the cluster said then (the log knows the rest). */
        json_t *j = json_loadb(saved, saved_len, 0, NULL);
        free(saved);
        int rv = j ? adopt_members(n, j, err, errlen) : DL_ECORRUPT;
        json_decref(j);
        if (rv && !err[0])
            snprintf(err, errlen, "%s is damaged", path);
        return rv;
    }
    json_t *req = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)n->id, "peer", peer_addr,
                            "http", n->http_addr, "role", "voter");
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char target[1024];
    size_t ulen = strlen(url);
    snprintf(target, sizeof(target), "%.*s/admin/members",
             (int)(ulen > 0 && url[ulen - 1] == '/' ? ulen - 1 : ulen), url);
    struct body b = {0};
    long status = 0;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURLcode cc = CURLE_FAILED_INIT;
    /* Retry while the cluster is busy (an uncommitted change, an election). */
    for (int attempt = 0; c && attempt < 50; attempt++) {
        free(b.data);
        b = (struct body){0};
        curl_easy_setopt(c, CURLOPT_URL, target);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc == CURLE_OK && status != 503)
            break;
        DL_INFO("joining through %s: %s; retrying", target,
                cc != CURLE_OK ? curl_easy_strerror(cc) : "the cluster is busy");
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(text);
    if (cc != CURLE_OK || status != 202) {
        snprintf(err, errlen, "cannot join through %s: %s", target,
                 cc != CURLE_OK ? curl_easy_strerror(cc) : (b.data ? b.data : "no answer"));
        free(b.data);
        return cc != CURLE_OK ? -ECONNREFUSED : DL_ECONFIG;
    }
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    int rv = j ? adopt_members(n, j, err, errlen) : DL_EPROTO;
    json_decref(j);
    if (rv == 0 && (rv = dl_mkdir_p(n->data_dir)) == 0)
        rv = dl_atomic_write_file(path, b.data, b.len);
    if (rv && !err[0])
        snprintf(err, errlen, "cannot keep the join reply in %s: %s", path, dl_strerror(rv));
    free(b.data);
    if (rv == 0)
        DL_INFO("joined through %s as a learner; it votes once it has caught up", target);
    return rv;
}
