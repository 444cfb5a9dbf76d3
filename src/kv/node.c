/*
 * ddialab kv --node N: configuration, recovery, and the driver that connects the replication
 * core to the log, the peers, the state machine and the clock.
 */
#include "kv/node.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/error.h"
#include "ddialab/flags.h"
#include "ddialab/fsutil.h"
#include "ddialab/logging.h"
#include "kv/node_internal.h"

#define CACHE_SLOTS         65536
#define CACHE_MAX_BYTES     (64u << 20)
#define RECORD_HEADER_BYTES 9 /* u64 term, u8 type */
#define APPLY_CHUNK         4096
/* Applied entries that force a state-machine commit before the next tick does (etcd's backend
 * commits every 100 ms or 10000 writes). */
#define FLUSH_ENTRIES 10000
/* The largest value (64 MiB), a key and the record and command headers. */
#define LOG_MAX_RECORD_BYTES ((64u << 20) + DL_KV_MAX_KEY_BYTES + 64)

static void process(dl_kv_node_t *n, const dl_raft_update_t *u);

uint64_t dl__kv_now_ms(dl_kv_node_t *n)
{
    return uv_now(n->loop);
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 */

int dl__kv_parse_hostport(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= hostlen)
        return -EINVAL;
    int64_t p;
    if (dl_parse_int64(colon + 1, &p) != 0 || p < 1 || p > 65535)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    *port = (int)p;
    return 0;
}

/* Parses "1=127.0.0.1:9001,2=127.0.0.1:9002". */
static int parse_peers(dl_kv_node_t *n, const char *text, char *err, size_t errlen)
{
    char *copy = strdup(text);
    if (copy == NULL)
        return -ENOMEM;
    int rv = 0;
    n->n_nodes = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        int64_t id;
        if (n->n_nodes == DL_KV_MAX_NODES) {
            snprintf(err, errlen, "--peers: at most %d nodes", DL_KV_MAX_NODES);
            rv = -EINVAL;
            break;
        }
        dl_peer_addr_t *a = &n->nodes[n->n_nodes];
        if (eq == NULL || (*eq = '\0', dl_parse_int64(item, &id) != 0) || id < 1 ||
            id > DL_KV_MAX_NODES ||
            dl__kv_parse_hostport(eq + 1, a->host, sizeof(a->host), &a->port) != 0) {
            snprintf(err, errlen, "--peers: expected ID=HOST:PORT with ID from 1 to %d, got '%s'",
                     DL_KV_MAX_NODES, item);
            rv = -EINVAL;
            break;
        }
        a->id = (uint64_t)id;
        for (size_t i = 0; i < n->n_nodes; i++)
            if (n->nodes[i].id == a->id) {
                snprintf(err, errlen, "--peers: node %" PRId64 " listed twice", id);
                rv = -EINVAL;
            }
        n->n_nodes++;
    }
    free(copy);
    return rv;
}

/* Turns --replication into a commit quorum (copies, leader included). */
static int parse_replication_for(dl_kv_node_t *n, const char *mode, size_t nodes, char *err,
                                 size_t errlen)
{
    int64_t w = 0;
    if (strcmp(mode, "async") == 0)
        w = 1;
    else if (strcmp(mode, "semi-sync") == 0)
        w = nodes >= 2 ? 2 : 1;
    else if (strcmp(mode, "sync") == 0)
        w = (int64_t)nodes;
    else if (strcmp(mode, "majority") == 0 || strcmp(mode, "raft") == 0)
        w = (int64_t)(nodes / 2 + 1);
    else if (strncmp(mode, "quorum=", 7) == 0 && dl_parse_int64(mode + 7, &w) == 0) {
        if (w < 1 || w > (int64_t)nodes) {
            snprintf(err, errlen, "--replication quorum=W needs 1 <= W <= %zu", nodes);
            return -EINVAL;
        }
    } else {
        snprintf(err, errlen,
                 "--replication must be async, semi-sync, sync, majority or quorum=W, not '%s'",
                 mode);
        return -EINVAL;
    }
    if (n->replication != mode)
        snprintf(n->replication, sizeof(n->replication), "%s", mode);
    n->quorum = (size_t)w;
    return 0;
}

static int parse_replication(dl_kv_node_t *n, const char *mode, char *err, size_t errlen)
{
    return parse_replication_for(n, mode, n->n_boot_voters, err, errlen);
}

void dl__kv_update_ack_copies(dl_kv_node_t *n, size_t voters)
{
    char err[160];
    /* quorum=W above the voters there are now answers when every voter has it. */
    if (parse_replication_for(n, n->replication, voters, err, sizeof(err)) != 0)
        n->quorum = voters;
}

void dl__kv_process(dl_kv_node_t *n, const dl_raft_update_t *u)
{
    process(n, u);
}

static int parse_fsync(dl_kv_node_t *n, const char *text, char *err, size_t errlen)
{
    if (strcmp(text, "batch") == 0 || strcmp(text, "always") == 0) {
        n->sync_policy = DL_SYNC_BATCH;
        return 0;
    }
    if (strcmp(text, "none") == 0 || strcmp(text, "off") == 0) {
        n->sync_policy = DL_SYNC_NONE;
        return 0;
    }
    if (dl_parse_duration_ms(text, &n->sync_interval_ms) == 0 && n->sync_interval_ms > 0) {
        n->sync_policy = DL_SYNC_INTERVAL;
        return 0;
    }
    snprintf(err, errlen, "--fsync must be batch, none or an interval like 100ms, not '%s'", text);
    return -EINVAL;
}

/* Refuses a data directory that belongs to another node or cluster; claims a new one. */
static int check_identity(dl_kv_node_t *n, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/node.json", n->data_dir);
    char *text;
    size_t len;
    int rv = dl_read_file(path, &text, &len);
    if (rv == -ENOENT) {
        json_t *j =
            json_pack("{s:I, s:s}", "node_id", (json_int_t)n->id, "cluster_id", n->cluster_id);
        char *dump = json_dumps(j, JSON_SORT_KEYS);
        json_decref(j);
        if (dump == NULL)
            return -ENOMEM;
        rv = dl_atomic_write_file(path, dump, strlen(dump));
        free(dump);
        if (rv)
            snprintf(err, errlen, "cannot write %s: %s", path, dl_strerror(rv));
        return rv;
    }
    if (rv) {
        snprintf(err, errlen, "cannot read %s: %s", path, dl_strerror(rv));
        return rv;
    }
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    free(text);
    json_int_t id = 0;
    const char *cluster = NULL;
    if (j == NULL || json_unpack(j, "{s:I, s:s}", "node_id", &id, "cluster_id", &cluster) != 0) {
        json_decref(j);
        snprintf(err, errlen, "%s is not a ddialab node identity file", path);
        return DL_ECORRUPT;
    }
    rv = 0;
    if ((uint64_t)id != n->id || strcmp(cluster, n->cluster_id) != 0) {
        snprintf(err, errlen,
                 "data directory %s belongs to node %lld of cluster '%s', not node %llu of "
                 "cluster '%s'; refusing to start",
                 n->data_dir, (long long)id, cluster, (unsigned long long)n->id, n->cluster_id);
        rv = DL_EWRONGNODE;
    }
    json_decref(j);
    return rv;
}

/* ---------------------------------------------------------------------------------------------
 * Hard state and log records
 */

static int save_hardstate(dl_kv_node_t *n, const dl_raft_hardstate_t *hs)
{
    char path[4096];
    char text[128];
    snprintf(path, sizeof(path), "%s/raft-state.json", n->data_dir);
    int len = snprintf(text, sizeof(text), "{\"term\": %" PRIu64 ", \"vote\": %" PRIu64 "}\n",
                       hs->term, hs->vote);
    return dl_atomic_write_file(path, text, (size_t)len);
}

static int load_hardstate(dl_kv_node_t *n, dl_raft_hardstate_t *hs, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/raft-state.json", n->data_dir);
    memset(hs, 0, sizeof(*hs));
    char *text;
    size_t len;
    int rv = dl_read_file(path, &text, &len);
    if (rv == -ENOENT)
        return 0;
    if (rv) {
        snprintf(err, errlen, "cannot read %s: %s", path, dl_strerror(rv));
        return rv;
    }
    json_t *j = json_loadb(text, len, 0, NULL);
    free(text);
    json_int_t term = 0, vote = 0;
    if (j == NULL || json_unpack(j, "{s:I, s:I}", "term", &term, "vote", &vote) != 0 || term < 0 ||
        vote < 0) {
        json_decref(j);
        snprintf(err, errlen, "%s is damaged", path);
        return DL_ECORRUPT;
    }
    json_decref(j);
    hs->term = (uint64_t)term;
    hs->vote = (uint64_t)vote;
    return 0;
}

/* A log record is [u64 term][u8 type][payload]. */
static int decode_record(const uint8_t *rec, size_t len, uint64_t *term, uint8_t *type)
{
    if (len < RECORD_HEADER_BYTES)
        return DL_ECORRUPT;
    *term = dl_get_u64(rec);
    *type = rec[8];
    if (*term == 0 || *type > DL_RAFT_ENTRY_CONFIG)
        return DL_ECORRUPT;
    return 0;
}

/* The term of the log record at index. */
static int read_term(dl_kv_node_t *n, uint64_t index, uint64_t *term)
{
    void *data = NULL;
    size_t len = 0;
    uint8_t type;
    int rv = dl_seglog_read(n->log, index, &data, &len);
    if (rv == 0)
        rv = decode_record(data, len, term, &type);
    free(data);
    return rv;
}

/* ---------------------------------------------------------------------------------------------
 * Entry cache
 */

static void cache_put(dl_kv_node_t *n, const dl_raft_entry_t *e)
{
    dl_kv_cached_entry_t *slot = &n->cache[e->index % n->cache_cap];
    if (slot->data != NULL || slot->index != 0) {
        n->cache_bytes -= slot->len;
        free(slot->data);
        memset(slot, 0, sizeof(*slot));
    } /* Keep the newest entries: followers and apply need those. Evict from the oldest. */
    while (n->cache_bytes + e->len > CACHE_MAX_BYTES && n->cache_low < e->index) {
        dl_kv_cached_entry_t *old = &n->cache[n->cache_low % n->cache_cap];
        if (old->index == n->cache_low) {
            n->cache_bytes -= old->len;
            free(old->data);
            memset(old, 0, sizeof(*old));
        }
        n->cache_low++;
    }
    if (n->cache_bytes + e->len > CACHE_MAX_BYTES)
        return;
    if (n->cache_low == 0 || n->cache_low > e->index || e->index - n->cache_low >= n->cache_cap)
        n->cache_low = e->index >= n->cache_cap ? e->index - n->cache_cap + 1 : 1;
    uint8_t *copy = NULL;
    if (e->len > 0) {
        copy = malloc(e->len);
        if (copy == NULL)
            return;
        memcpy(copy, e->data, e->len);
    }
    slot->index = e->index;
    slot->term = e->term;
    slot->type = e->type;
    slot->len = e->len;
    slot->data = copy;
    n->cache_bytes += e->len;
}

/* Forgets cached entries from index on (after a truncation). */
static void cache_drop_from(dl_kv_node_t *n, uint64_t index)
{
    for (size_t i = 0; i < n->cache_cap; i++) {
        dl_kv_cached_entry_t *slot = &n->cache[i];
        if (slot->index >= index && slot->index != 0) {
            n->cache_bytes -= slot->len;
            free(slot->data);
            memset(slot, 0, sizeof(*slot));
        }
    }
}

/* Finds an entry in the cache or the log. *owned is set when the caller must free it. */
static int get_entry(dl_kv_node_t *n, uint64_t index, dl_raft_entry_t *e, void **owned)
{
    *owned = NULL;
    dl_kv_cached_entry_t *slot = &n->cache[index % n->cache_cap];
    if (slot->index == index) {
        e->index = index;
        e->term = slot->term;
        e->type = slot->type;
        e->len = slot->len;
        e->data = slot->data;
        return 0;
    }
    void *rec;
    size_t len;
    int rv = dl_seglog_read(n->log, index, &rec, &len);
    if (rv)
        return rv;
    rv = decode_record(rec, len, &e->term, &e->type);
    if (rv) {
        free(rec);
        return rv;
    }
    e->index = index;
    e->data = (uint8_t *)rec + RECORD_HEADER_BYTES;
    e->len = (uint32_t)(len - RECORD_HEADER_BYTES);
    *owned = rec;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Waiters
 */

static void waiter_cancelled(void *ctx)
{
    dl_kv_waiter_t *w = ctx;
    w->req = NULL;
}

static dl_kv_waiter_t *pop_waiter(dl_kv_node_t *n)
{
    dl_kv_waiter_t *w = n->wait_head;
    if (w == NULL)
        return NULL;
    n->pending_bytes -= w->bytes;
    n->wait_head = w->next;
    if (n->wait_head == NULL)
        n->wait_tail = NULL;
    if (n->early_cursor == w)
        n->early_cursor = w->next;
    if (n->early_last == w)
        n->early_last = NULL;
    n->n_waiters--;
    return w;
}

/* Answers every waiting write with rv (leadership lost, shutdown). */
static void fail_all_waiters(dl_kv_node_t *n, int rv, const char *why)
{
    dl_kv_waiter_t *w;
    while ((w = pop_waiter(n)) != NULL) {
        dl__kv_reply_failed(n, w, rv, why);
        free(w);
    }
    /* Applied, waiting only for more copies: they did commit. */
    while ((w = n->copy_head) != NULL) {
        n->copy_head = w->next;
        dl__kv_reply_applied(n, w, &w->result);
        free(w);
    }
    n->copy_tail = NULL;
    for (size_t i = 0; i < n->batch_len; i++) {
        n->pending_bytes -= n->batch_waiters[i]->bytes;
        dl__kv_reply_failed(n, n->batch_waiters[i], rv, why);
        free(n->batch_waiters[i]);
    }
    n->batch_len = 0;
    n->batch_cmds.len = 0;
}

static void read_cancelled(void *ctx)
{
    dl_kv_read_t *rd = ctx;
    rd->req = NULL;
}

/* Takes rd out of the list and answers it: served, or refused (index 0). */
static void finish_read(dl_kv_node_t *n, dl_kv_read_t **link, int serve)
{
    dl_kv_read_t *rd = *link;
    *link = rd->next;
    if (rd->req != NULL) {
        dl_http_req_on_cancel(rd->req, NULL, NULL);
        if (serve)
            dl__kv_serve_read(n, rd->req, rd->list);
        else
            dl__kv_refuse_read(n, rd->req);
    }
    free(rd);
}

/* Serves every confirmed read whose index the state machine has reached. */
static void serve_ready_reads(dl_kv_node_t *n)
{
    uint64_t applied = dl_kv_store_applied(n->store);
    dl_kv_read_t **link = &n->reads;
    while (*link != NULL) {
        if ((*link)->index != 0 && (*link)->index <= applied)
            finish_read(n, link, 1);
        else
            link = &(*link)->next;
    }
}

static void refuse_all_reads(dl_kv_node_t *n)
{
    while (n->reads != NULL)
        finish_read(n, &n->reads, 0);
}

int dl__kv_read(dl_kv_node_t *n, dl_http_req_t *req, int list)
{
    dl_kv_read_t *rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return -ENOMEM;
    rd->id = ++n->read_seq;
    rd->req = req;
    rd->list = list;
    dl_raft_update_t u;
    int rv = dl_raft_read_index(n->raft, rd->id, dl__kv_now_ms(n), &u);
    if (rv) {
        free(rd);
        return rv;
    }
    rd->next = n->reads;
    n->reads = rd;
    dl_http_req_on_cancel(req, read_cancelled, rd);
    process(n, &u);
    return 0;
}

int dl__kv_submit(dl_kv_node_t *n, dl_http_req_t *req, const dl_kv_command_t *cmd)
{
    if (n->stopping)
        return DL_ESHUTDOWN;
    if (n->n_waiters + n->batch_len >= DL_KV_MAX_WAITERS ||
        n->pending_bytes + cmd->value_len > DL_KV_MAX_PENDING_BYTES)
        return DL_EBUSY;
    if (n->batch_len == n->batch_cap) {
        size_t cap = n->batch_cap ? n->batch_cap * 2 : 256;
        size_t *off = realloc(n->batch_offsets, cap * sizeof(size_t));
        if (off == NULL)
            return -ENOMEM;
        n->batch_offsets = off;
        dl_kv_waiter_t **ws = realloc(n->batch_waiters, cap * sizeof(*ws));
        if (ws == NULL)
            return -ENOMEM;
        n->batch_waiters = ws;
        n->batch_cap = cap;
    }
    dl_kv_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    size_t start = n->batch_cmds.len;
    if (dl_kv_command_encode(&n->batch_cmds, cmd) != 0) {
        free(w);
        return -ENOMEM;
    }
    w->req = req;
    w->op = cmd->op;
    w->unconditional_put = cmd->op == DL_KV_OP_PUT && cmd->cond == DL_KV_COND_NONE;
    w->bytes = cmd->key_len + cmd->value_len;
    n->pending_bytes += w->bytes;
    w->deadline_ms = dl__kv_now_ms(n) + (uint64_t)n->write_timeout_ms;
    dl_http_req_on_cancel(req, waiter_cancelled, w);
    n->batch_offsets[n->batch_len] = start;
    n->batch_waiters[n->batch_len] = w;
    n->batch_len++;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Applying committed entries
 */

/* Applies entries up to `upto` in chunks, answering each chunk's waiters once it is marked
 * applied. The SQLite transaction stays open across chunks and calls; dl__kv_flush commits it
 * (every tick, before compaction and snapshot copies, and every FLUSH_ENTRIES entries). */
static int apply_upto(dl_kv_node_t *n, uint64_t upto)
{
    uint64_t applied = dl_kv_store_applied(n->store);
    while (applied < upto) {
        uint64_t end = upto - applied > APPLY_CHUNK ? applied + APPLY_CHUNK : upto;
        int rv = dl_kv_store_begin(n->store);
        if (rv)
            return rv;
        /* Results for this chunk's waiters are sent only after the chunk is marked applied. */
        dl_kv_result_t results[64];
        dl_kv_waiter_t *answered[64];
        size_t n_answered = 0;
        uint64_t i;
        for (i = applied + 1; i <= end; i++) {
            dl_raft_entry_t e;
            void *owned;
            rv = get_entry(n, i, &e, &owned);
            if (rv)
                break;
            dl_kv_result_t res;
            rv = e.type == DL_RAFT_ENTRY_CONFIG ? dl_kv_store_apply_config(n->store, e.data, e.len)
                                                : 0;
            if (rv == 0)
                rv = dl_kv_store_apply(n->store, i, e.type == DL_RAFT_ENTRY_NORMAL ? e.data : NULL,
                                       e.len, &res);
            free(owned);
            if (rv)
                break;
            /* A waiter whose entry is behind us can only be one a truncation replaced. */
            while (n->wait_head != NULL && n->wait_head->index < i) {
                dl_kv_waiter_t *stale = pop_waiter(n);
                dl__kv_reply_failed(n, stale, DL_EDISCARDED, "the entry was replaced");
                free(stale);
            }
            if (n->wait_head != NULL && n->wait_head->index == i) {
                results[n_answered] = res;
                answered[n_answered++] = pop_waiter(n);
                if (n_answered == 64) {
                    i++;
                    break;
                }
            }
        }
        if (rv) {
            dl_kv_store_rollback(n->store);
            for (size_t k = 0; k < n_answered; k++) {
                dl__kv_reply_failed(n, answered[k], rv, "applying the entry failed");
                free(answered[k]);
            }
            DL_ERROR("applying entry %" PRIu64 " failed: %s", i, dl_strerror(rv));
            return rv;
        }
        rv = dl_kv_store_mark_applied(n->store, i - 1, dl_raft_term_at(n->raft, i - 1));
        for (size_t k = 0; k < n_answered; k++) {
            dl_kv_waiter_t *w = answered[k];
            if (w->answered_early) {
                free(w);
                continue;
            }
            if (rv) {
                dl__kv_reply_failed(n, w, rv, "committing to the state machine failed");
            } else if (w->req != NULL && n->quorum > n->commit_quorum &&
                       dl_raft_replicas_of(n->raft, w->index) < n->quorum) {
                /* Committed and applied, but the policy wants more copies first. */
                w->result = results[k];
                w->next = NULL;
                if (n->copy_tail)
                    n->copy_tail->next = w;
                else
                    n->copy_head = w;
                n->copy_tail = w;
                continue;
            } else {
                dl__kv_reply_applied(n, w, &results[k]);
            }
            free(w);
        }
        if (rv)
            return rv;
        applied = i - 1;
        dl_raft_applied(n->raft, applied);
        if (applied - dl_kv_store_flushed(n->store) >= FLUSH_ENTRIES && dl__kv_flush(n) != 0)
            return 0; /* stopping already */
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Processing the core's updates
 */

static void fatal(dl_kv_node_t *n, const char *what, int rv)
{
    DL_ERROR("%s: %s; stopping so that no acknowledged data is put at risk", what, dl_strerror(rv));
    n->exit_code = 1;
    uv_stop(n->loop);
}

int dl__kv_flush(dl_kv_node_t *n)
{
    int rv = dl_kv_store_flush(n->store);
    if (rv)
        fatal(n, "cannot commit applied entries to the state machine", rv);
    return rv;
}

static int write_entries(dl_kv_node_t *n, const dl_raft_entry_t *entries, size_t count)
{
    dl_buf_t buf = {0};
    struct iovec *iov = malloc(count * sizeof(*iov));
    size_t *offs = malloc(count * sizeof(size_t));
    int rv = iov && offs ? 0 : -ENOMEM;
    for (size_t i = 0; i < count && rv == 0; i++) {
        offs[i] = buf.len;
        rv = dl_buf_put_u64(&buf, entries[i].term);
        rv = rv ? rv : dl_buf_put_u8(&buf, entries[i].type);
        rv = rv ? rv : dl_buf_append(&buf, entries[i].data, entries[i].len);
    }
    if (rv == 0) {
        for (size_t i = 0; i < count; i++) {
            iov[i].iov_base = buf.data + offs[i];
            iov[i].iov_len = (i + 1 < count ? offs[i + 1] : buf.len) - offs[i];
        }
        uint64_t first;
        rv = dl_seglog_append(n->log, iov, count, &first);
        if (rv == 0 && first != entries[0].index)
            rv = DL_EINTERNAL;
    }
    if (rv == 0)
        for (size_t i = 0; i < count; i++)
            cache_put(n, &entries[i]);
    free(iov);
    free(offs);
    dl_buf_free(&buf);
    return rv;
}

static void send_messages(dl_kv_node_t *n, const dl_raft_msg_t *msgs, size_t count)
{
    for (size_t k = 0; k < count; k++) {
        dl_raft_msg_t m = msgs[k];
        if (n->net == NULL || !dl_peer_net_connected(n->net, m.to))
            continue;
        if (m.type == DL_RAFT_MSG_SNAPSHOT) {
            void *chunk = malloc(m.data_len ? m.data_len : 1);
            int rv = chunk ? dl__kv_snap_read(n, m.snap_index, m.snap_offset, chunk, m.data_len)
                           : -ENOMEM;
            if (rv == 0) {
                m.data = chunk;
                rv = dl_peer_net_send(n->net, &m);
            }
            if (rv != 0 && rv != -ENOTCONN)
                DL_WARN("cannot send snapshot %" PRIu64 " at offset %" PRIu64 " to node %" PRIu64
                        ": %s",
                        m.snap_index, m.snap_offset, m.to, dl_strerror(rv));
            free(chunk);
            continue;
        }
        dl_raft_entry_t stack_entries[64];
        void *stack_owned[64];
        dl_raft_entry_t *ents = stack_entries;
        void **owned = stack_owned;
        if (m.n_entries > 64) {
            ents = malloc(m.n_entries * sizeof(*ents));
            owned = calloc(m.n_entries, sizeof(void *));
            if (ents == NULL || owned == NULL) {
                free(ents);
                free(owned);
                continue;
            }
        }
        uint32_t got = 0;
        for (; got < m.n_entries; got++)
            if (get_entry(n, m.entries[got].index, &ents[got], &owned[got]) != 0)
                break;
        if (got == m.n_entries) {
            m.entries = ents;
            int rv = dl_peer_net_send(n->net, &m);
            if (rv != 0 && rv != -ENOTCONN) {
                dl_metric_inc(n->m_send_failures);
                DL_WARN("cannot send %u entries from index %" PRIu64 " to node %" PRIu64 ": %s",
                        m.n_entries, m.prev_index + 1, m.to, dl_strerror(rv));
            }
        } else {
            DL_WARN("cannot read entry %" PRIu64 " to send to node %" PRIu64, m.entries[got].index,
                    m.to);
        }
        for (uint32_t i = 0; i < got; i++)
            free(owned[i]);
        if (ents != stack_entries) {
            free(ents);
            free(owned);
        }
    }
}

static void on_role_changed(dl_kv_node_t *n)
{
    dl_raft_role_t role = dl_raft_role(n->raft);
    dl_raft_role_t was = n->last_role;
    n->last_role = role;
    if (role == DL_RAFT_LEADER) {
        DL_INFO("became leader at term %" PRIu64 " (%zu of %zu copies commit; replication %s "
                "answers clients at %zu)",
                dl_raft_term(n->raft), n->commit_quorum, n->n_boot_voters, n->replication,
                n->quorum);
        return;
    }
    if (role == DL_RAFT_PRE_CANDIDATE || role == DL_RAFT_CANDIDATE)
        DL_INFO("no leader heard from: %s at term %" PRIu64, dl_raft_role_name(role),
                dl_raft_term(n->raft));
    else if (was == DL_RAFT_LEADER)
        DL_WARN("stepped down: now a follower at term %" PRIu64, dl_raft_term(n->raft));
    if (was == DL_RAFT_LEADER)
        fail_all_waiters(n, DL_ENOTLEADER,
                         "leadership changed before the write committed; it may or may not be "
                         "applied by the new leader");
}

/* ---------------------------------------------------------------------------------------------
 * Acknowledgement policies: answers that depend on the number of copies, not on the commit
 */

static void remember_early_ack(dl_kv_node_t *n, uint64_t index)
{
    if (n->n_early_acked == n->cap_early_acked) {
        size_t cap = n->cap_early_acked ? 2 * n->cap_early_acked : 1024;
        uint64_t *a = realloc(n->early_acked, cap * sizeof(*a));
        if (a == NULL)
            return; /* only the count of lost acknowledged writes suffers */
        n->early_acked = a;
        n->cap_early_acked = cap;
    }
    n->early_acked[n->n_early_acked++] = index;
}

/* Early acknowledgements of entries that committed are safe now: forget them. */
static void forget_committed_acks(dl_kv_node_t *n)
{
    uint64_t commit = dl_raft_commit_index(n->raft);
    size_t k = 0;
    while (k < n->n_early_acked && n->early_acked[k] <= commit)
        k++;
    if (k > 0) {
        memmove(n->early_acked, n->early_acked + k, (n->n_early_acked - k) * sizeof(uint64_t));
        n->n_early_acked -= k;
    }
}

/* Entries from `from` on are discarded: the early-acknowledged ones among them are writes a
 * client was told succeeded and that are now lost. */
static void count_lost_acks(dl_kv_node_t *n, uint64_t from)
{
    size_t keep = n->n_early_acked;
    while (keep > 0 && n->early_acked[keep - 1] >= from)
        keep--;
    uint64_t lost = n->n_early_acked - keep;
    n->n_early_acked = keep;
    if (lost == 0)
        return;
    DL_WARN("%" PRIu64 " of the discarded entries were writes acknowledged to clients before they "
            "committed (--replication %s): those writes are lost",
            lost, n->replication);
    n->discarded_acked_total += lost;
    dl_metric_add(n->m_discarded_acked, (double)lost);
}

/*
 * Leader, after every update. A policy weaker than the commit quorum (async, semi-sync) answers
 * an unconditional PUT as soon as enough copies are on disk: its result (version = index) does
 * not depend on the entries before it. A stronger one (sync, quorum=W) answers an applied write
 * once the extra copies exist.
 */
static void answer_by_copies(dl_kv_node_t *n)
{
    if (n->quorum < n->commit_quorum) {
        dl_kv_waiter_t *w = n->early_cursor;
        if (w == NULL)
            w = n->early_last ? n->early_last->next : n->wait_head;
        for (; w != NULL; w = w->next) {
            n->early_last = w;
            if (w->req == NULL || !w->unconditional_put)
                continue;
            if (dl_raft_replicas_of(n->raft, w->index) < n->quorum)
                break; /* later entries have no more copies than this one */
            dl_kv_result_t res = {.rv = 0, .version = w->index};
            w->answered_early = 1;
            dl__kv_reply_applied(n, w, &res);
            remember_early_ack(n, w->index);
        }
        n->early_cursor = w;
    }
    while (n->copy_head != NULL && dl_raft_replicas_of(n->raft, n->copy_head->index) >= n->quorum) {
        dl_kv_waiter_t *w = n->copy_head;
        n->copy_head = w->next;
        if (n->copy_head == NULL)
            n->copy_tail = NULL;
        dl__kv_reply_applied(n, w, &w->result);
        free(w);
    }
}

/* The membership the state machine recorded (after a snapshot was installed): 1 with *m, or 0
 * when it recorded none. Learns the addresses too. */
static int store_membership(dl_kv_node_t *n, dl_raft_membership_t *m)
{
    void *payload = NULL;
    size_t len = 0;
    int have = dl_kv_store_members(n->store, &payload, &len) == 0 && payload != NULL &&
               dl_raft_membership_decode(payload, len, m, NULL, NULL) == 0;
    if (have)
        dl__kv_members_learn(n, payload, len);
    free(payload);
    return have;
}

/* Carries out one update of the core, in the order its header prescribes. */
static void process(dl_kv_node_t *n, const dl_raft_update_t *u)
{
    int rv;
    if (u->hardstate_changed) {
        rv = save_hardstate(n, &u->hardstate);
        if (rv)
            return fatal(n, "cannot persist term and vote", rv);
    }
    if (u->reset_all) {
        count_lost_acks(n, 1);
        DL_WARN("entries inside this node's snapshot conflict with the leader's log (writes "
                "committed by fewer than a majority): discarding the log, the snapshots and the "
                "state machine (%" PRIu64 " applied entries), to be refilled by the leader",
                u->discarded_applied);
        rv = dl__kv_snap_reset_all(n);
        if (rv)
            return fatal(n, "cannot reset the node's state", rv);
        cache_drop_from(n, 1);
        n->discarded_total += u->discarded;
        n->discarded_applied_total += u->discarded_applied;
        dl_metric_add(n->m_discarded, (double)u->discarded);
        dl_metric_add(n->m_discarded_applied, (double)u->discarded_applied);
    }
    if (u->truncate_from != 0) {
        uint64_t old_last = dl_seglog_last_index(n->log);
        DL_WARN("discarding %" PRIu64 " log entries [%" PRIu64 "..%" PRIu64
                "] that the leader of term %" PRIu64 " does not have (%" PRIu64
                " of them had been applied here: with async replication those writes were "
                "acknowledged and are now lost)",
                u->discarded, u->truncate_from, old_last, dl_raft_term(n->raft),
                u->discarded_applied);
        rv = dl_seglog_truncate_suffix(n->log, u->truncate_from);
        if (rv)
            return fatal(n, "cannot truncate the log", rv);
        count_lost_acks(n, u->truncate_from);
        cache_drop_from(n, u->truncate_from);
        n->discarded_total += u->discarded;
        n->discarded_applied_total += u->discarded_applied;
        dl_metric_add(n->m_discarded, (double)u->discarded);
        dl_metric_add(n->m_discarded_applied, (double)u->discarded_applied);
        if (u->reset_state_machine) {
            rv = dl_kv_store_reset(n->store);
            if (rv)
                return fatal(n, "cannot reset the state machine", rv);
            DL_WARN("rebuilding the state machine from the log");
        }
    }
    if (u->n_entries > 0) {
        rv = write_entries(n, u->entries, u->n_entries);
        if (rv)
            return fatal(n, "cannot append to the log", rv);
        for (size_t i = 0; i < u->n_entries; i++)
            if (u->entries[i].type == DL_RAFT_ENTRY_CONFIG)
                dl__kv_members_learn(n, u->entries[i].data, u->entries[i].len);
    }
    if (u->membership_changed)
        dl__kv_members_changed(n);
    if (u->n_msgs > 0)
        send_messages(n, u->msgs, u->n_msgs);
    if (u->role_changed)
        on_role_changed(n);
    if (u->apply_to > dl_kv_store_applied(n->store)) {
        rv = apply_upto(n, u->apply_to);
        if (rv)
            return fatal(n, "cannot apply committed entries", rv);
        dl__kv_snap_maybe_compact(n);
    }
    for (size_t i = 0; i < u->n_read_states; i++) {
        for (dl_kv_read_t **link = &n->reads; *link != NULL; link = &(*link)->next) {
            if ((*link)->id != u->read_states[i].ctx)
                continue;
            if (u->read_states[i].index == 0)
                finish_read(n, link, 0); /* leadership lost: not confirmed */
            else
                (*link)->index = u->read_states[i].index;
            break;
        }
    }
    if (n->reads != NULL)
        serve_ready_reads(n);
    if (dl_raft_role(n->raft) == DL_RAFT_LEADER)
        answer_by_copies(n);
    if (u->snapshot_needed)
        dl__kv_snap_make_file(n);
    forget_committed_acks(n);
    if (u->chunk != NULL) {
        rv = dl__kv_snap_receive(n, u->chunk);
        if (rv < 0)
            return fatal(n, "cannot store or install the snapshot from the leader", rv);
        if (rv == 1) {
            cache_drop_from(n, 1);
            dl_raft_membership_t m;
            int have = store_membership(n, &m);
            dl_raft_update_t u2;
            /* u2 says the membership changed: process() dials the members. */
            dl_raft_snapshot_installed(n->raft, have ? &m : NULL, dl__kv_now_ms(n), &u2);
            process(n, &u2);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Group commit
 */

static void sync_run(uv_work_t *req)
{
    dl_kv_node_t *n = req->data;
    dl_seglog_sync_run(&n->sync_job);
}

static void sync_done(uv_work_t *req, int status)
{
    dl_kv_node_t *n = req->data;
    (void)status;
    n->sync_busy = 0;
    int rv = dl_seglog_sync_finish(n->log, &n->sync_job);
    if (n->stopping)
        return; /* the peers and clients are gone; the data is on disk, which is what counts */
    if (rv)
        return fatal(n, "fsync of the log failed", rv);
    double seconds = (double)(uv_hrtime() - n->sync_started_ns) / 1e9;
    dl_metric_observe(n->m_fsync_seconds, seconds);
    uint64_t stable = dl_seglog_stable_index(n->log);
    if (stable > n->last_sync_index)
        dl_metric_observe(n->m_fsync_entries, (double)(stable - n->last_sync_index));
    n->last_sync_index = stable;
    dl_raft_update_t u;
    dl_raft_persisted(n->raft, stable, dl__kv_now_ms(n), &u);
    process(n, &u);
}

static void maybe_start_sync(dl_kv_node_t *n, int force)
{
    if (n->sync_busy || n->stopping)
        return;
    uint64_t now = dl__kv_now_ms(n);
    if (n->sync_policy != DL_SYNC_BATCH && !force) {
        /* Stable as soon as written; tell the core, and fsync on the interval only. */
        uint64_t stable = dl_seglog_stable_index(n->log);
        if (stable > dl_raft_persisted_index(n->raft)) {
            dl_raft_update_t u;
            dl_raft_persisted(n->raft, stable, now, &u);
            process(n, &u);
        }
    }
    int rv = dl_seglog_sync_prepare(n->log, now, &n->sync_job);
    if (rv < 0)
        return fatal(n, "the log cannot be synced", rv);
    if (rv > 0)
        return; /* nothing to sync now */
    n->sync_busy = 1;
    n->sync_started_ns = uv_hrtime();
    n->sync_work.data = n;
    int rc = uv_queue_work(n->loop, &n->sync_work, sync_run, sync_done);
    if (rc < 0) {
        n->sync_busy = 0;
        fatal(n, "cannot schedule fsync", rc);
    }
}

/* ---------------------------------------------------------------------------------------------
 * The loop: end-of-iteration flush, ticks, peers, signals
 */

static void propose_batch(dl_kv_node_t *n)
{
    if (n->batch_len == 0)
        return;
    if (dl_raft_role(n->raft) != DL_RAFT_LEADER) {
        fail_all_waiters(n, DL_ENOTLEADER, "this node stopped being the leader");
        return;
    }
    dl_raft_entry_t *entries = malloc(n->batch_len * sizeof(*entries));
    if (entries == NULL) {
        fail_all_waiters(n, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < n->batch_len; i++) {
        size_t start = n->batch_offsets[i];
        size_t end = i + 1 < n->batch_len ? n->batch_offsets[i + 1] : n->batch_cmds.len;
        entries[i].type = DL_RAFT_ENTRY_NORMAL;
        entries[i].data = n->batch_cmds.data + start;
        entries[i].len = (uint32_t)(end - start);
    }
    dl_raft_update_t u;
    uint64_t first;
    int rv = dl_raft_propose(n->raft, entries, n->batch_len, &first, &u);
    size_t accepted = rv == 0 ? u.n_entries : 0;
    for (size_t i = 0; i < n->batch_len; i++) {
        dl_kv_waiter_t *w = n->batch_waiters[i];
        if (i >= accepted) {
            n->pending_bytes -= w->bytes;
            dl__kv_reply_failed(n, w, rv ? rv : -ENOMEM, "the write could not be proposed");
            free(w);
            continue;
        }
        w->index = first + i;
        if (n->wait_tail)
            n->wait_tail->next = w;
        else
            n->wait_head = w;
        n->wait_tail = w;
        n->n_waiters++;
    }
    n->batch_len = 0;
    process(n, &u);
    n->batch_cmds.len = 0;
    free(entries);
}

static void on_check(uv_check_t *h)
{
    dl_kv_node_t *n = h->data;
    if (n->stopping)
        return;
    propose_batch(n);
    dl_raft_update_t u;
    dl_raft_flush(n->raft, dl__kv_now_ms(n), &u);
    process(n, &u);
    maybe_start_sync(n, 0);
    dl_peer_net_flush(n->net);
}

static void expire_waiters(dl_kv_node_t *n, uint64_t now)
{
    while (n->copy_head != NULL && n->copy_head->deadline_ms <= now) {
        dl_kv_waiter_t *w = n->copy_head;
        n->copy_head = w->next;
        if (n->copy_head == NULL)
            n->copy_tail = NULL;
        dl_metric_inc(n->m_writes_timeout);
        json_t *body = dl_http_error_body(
            DL_ENOQUORUM, "the write committed (a majority has it) and was applied, but did not "
                          "reach the copies its replication mode asks for within the write "
                          "timeout");
        json_object_set_new(body, "index", json_integer((json_int_t)w->index));
        json_object_set_new(body, "committed", json_true());
        json_object_set_new(body, "acknowledged_by",
                            json_integer((json_int_t)dl_raft_replicas_of(n->raft, w->index)));
        json_object_set_new(body, "required", json_integer((json_int_t)n->quorum));
        json_object_set_new(body, "replication", json_string(n->replication));
        if (w->req != NULL) {
            dl_http_req_on_cancel(w->req, NULL, NULL);
            dl_http_reply_json(w->req, 503, body, NULL);
        } else {
            json_decref(body);
        }
        free(w);
    }
    while (n->wait_head != NULL && n->wait_head->deadline_ms <= now) {
        dl_kv_waiter_t *w = pop_waiter(n);
        dl_metric_inc(n->m_writes_timeout);
        if (w->req != NULL) {
            size_t got = dl_raft_replicas_of(n->raft, w->index);
            json_t *body = dl_http_error_body(
                DL_ENOQUORUM, "the write did not gather the acknowledgements its replication "
                              "mode needs within the write timeout; it stays in the leader's "
                              "log and may still be applied later");
            json_object_set_new(body, "index", json_integer((json_int_t)w->index));
            json_object_set_new(body, "acknowledged_by", json_integer((json_int_t)got));
            json_object_set_new(body, "required", json_integer((json_int_t)n->quorum));
            json_object_set_new(body, "replication", json_string(n->replication));
            dl_http_req_on_cancel(w->req, NULL, NULL);
            dl_http_reply_json(w->req, 503, body, NULL);
        }
        free(w);
    }
}

static void on_tick(uv_timer_t *t)
{
    dl_kv_node_t *n = t->data;
    uint64_t now = dl__kv_now_ms(n);
    dl_raft_update_t u;
    dl_raft_tick(n->raft, now, &u);
    process(n, &u);
    if (dl__kv_flush(n) != 0)
        return;
    dl__kv_members_tick(n);
    expire_waiters(n, now);
    if (n->n_snaps > 1)
        dl__kv_snap_gc(n); /* files that a finished transfer no longer reads */
    if (n->sync_policy == DL_SYNC_INTERVAL)
        maybe_start_sync(n, 0);
    dl_peer_net_flush(n->net);
}

static void on_peer_message(void *ctx, const dl_raft_msg_t *m)
{
    dl_kv_node_t *n = ctx;
    dl_raft_update_t u;
    dl_raft_step(n->raft, m, dl__kv_now_ms(n), &u);
    process(n, &u);
}

static void on_peer_state(void *ctx, uint64_t id, int up)
{
    dl_kv_node_t *n = ctx;
    dl_raft_peer_down(n->raft, id);
    (void)up;
}

int dl__kv_promote(dl_kv_node_t *n)
{
    dl_raft_update_t u;
    int rv = dl_raft_promote(n->raft, dl__kv_now_ms(n), &u);
    if (rv == 0) {
        DL_WARN("promoted by an operator: taking over as leader at term %" PRIu64,
                dl_raft_term(n->raft));
        process(n, &u);
    }
    return rv;
}

int dl__kv_transfer_leader(dl_kv_node_t *n, uint64_t to)
{
    dl_raft_update_t u;
    int rv = dl_raft_transfer_leader(n->raft, to, dl__kv_now_ms(n), &u);
    if (rv == 0) {
        DL_INFO("handing leadership to node %" PRIu64, to);
        process(n, &u);
    }
    return rv;
}

const char *dl__kv_leader_http(dl_kv_node_t *n)
{
    uint64_t leader = dl_raft_leader(n->raft);
    if (leader == 0)
        return NULL;
    if (leader == n->id)
        return n->http_addr;
    return dl_peer_net_http_addr(n->net, leader);
}

static void on_http_stopped(void *ctx)
{
    (void)ctx;
}

static void stop_node(dl_kv_node_t *n, const char *why)
{
    if (n->stopping)
        return;
    DL_INFO("%s: shutting down", why);
    n->stopping = 1;
    fail_all_waiters(n, DL_ESHUTDOWN, "the node is shutting down");
    refuse_all_reads(n);
    uv_timer_stop(&n->tick);
    uv_check_stop(&n->check);
    uv_signal_stop(&n->sigint);
    uv_signal_stop(&n->sigterm);
    dl_http_server_stop(n->http, 2000, on_http_stopped, n);
    dl_peer_net_stop(n->net);
    n->net = NULL;
    uv_close((uv_handle_t *)&n->tick, NULL);
    uv_close((uv_handle_t *)&n->check, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop_node(s->data, signum == SIGINT ? "interrupted" : "terminated");
}

/* ---------------------------------------------------------------------------------------------
 * Startup
 */

static double gauge_term(void *ctx)
{
    return (double)dl_raft_term(((dl_kv_node_t *)ctx)->raft);
}
static double gauge_leader(void *ctx)
{
    return dl_raft_role(((dl_kv_node_t *)ctx)->raft) == DL_RAFT_LEADER;
}
static double gauge_last(void *ctx)
{
    return (double)dl_raft_last_index(((dl_kv_node_t *)ctx)->raft);
}
static double gauge_commit(void *ctx)
{
    return (double)dl_raft_commit_index(((dl_kv_node_t *)ctx)->raft);
}
static double gauge_applied(void *ctx)
{
    return (double)dl_kv_store_applied(((dl_kv_node_t *)ctx)->store);
}
static double gauge_waiters(void *ctx)
{
    return (double)((dl_kv_node_t *)ctx)->n_waiters;
}
static double counter_rejected(void *ctx)
{
    return (double)dl_peer_net_rejected(((dl_kv_node_t *)ctx)->net);
}

static void register_metrics(dl_kv_node_t *n)
{
    dl_metrics_t *m = n->metrics;
    dl_metrics_add_process(m);
    dl_metrics_gauge_fn(m, "ddialab_kv_term", "Current term.", NULL, gauge_term, n);
    dl_metrics_gauge_fn(m, "ddialab_kv_is_leader", "1 if this node is the leader.", NULL,
                        gauge_leader, n);
    dl_metrics_gauge_fn(m, "ddialab_kv_last_index", "Index of the last log entry.", NULL,
                        gauge_last, n);
    dl_metrics_gauge_fn(m, "ddialab_kv_commit_index", "Highest committed index known here.", NULL,
                        gauge_commit, n);
    dl_metrics_gauge_fn(m, "ddialab_kv_applied_index",
                        "Highest index applied to the state machine.", NULL, gauge_applied, n);
    dl_metrics_gauge_fn(m, "ddialab_kv_pending_writes", "Writes waiting to commit.", NULL,
                        gauge_waiters, n);
    dl_metrics_counter_fn(m, "ddialab_kv_peer_frames_rejected_total",
                          "Peer connections closed for frames that did not decode or belong.", NULL,
                          counter_rejected, n);
    n->m_snapshots_taken =
        dl_metrics_counter(m, "ddialab_kv_snapshots_taken_total",
                           "Snapshot files of the state machine written here for followers.", NULL);
    n->m_compactions = dl_metrics_counter(
        m, "ddialab_kv_compactions_total",
        "Times the state machine was made durable and the log before it compacted.", NULL);
    n->m_snapshots_installed =
        dl_metrics_counter(m, "ddialab_kv_snapshots_installed_total",
                           "Snapshots received from a leader and installed here.", NULL);
    static const double snap_buckets[] = {0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30};
    n->m_snapshot_seconds = dl_metrics_histogram(m, "ddialab_kv_snapshot_duration_seconds",
                                                 "Time to take a snapshot (off the loop thread).",
                                                 NULL, snap_buckets, 8);
    n->m_discarded = dl_metrics_counter(
        m, "ddialab_kv_discarded_entries_total",
        "Log entries this node discarded because a newer leader did not have them.", NULL);
    n->m_discarded_acked = dl_metrics_counter(
        m, "ddialab_kv_discarded_acknowledged_entries_total",
        "Discarded entries whose writes had been acknowledged before they committed "
        "(acknowledgement policies weaker than the commit quorum).",
        NULL);
    n->m_discarded_applied = dl_metrics_counter(
        m, "ddialab_kv_discarded_applied_entries_total",
        "Discarded entries that had already been applied here (acknowledged writes lost).", NULL);
    n->m_fsync_seconds = dl_metrics_histogram(
        m, "ddialab_kv_fsync_duration_seconds", "Log fsync latency.", NULL,
        dl_metrics_latency_seconds_buckets, dl_metrics_latency_seconds_nbuckets);
    static const double batch_buckets[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    n->m_fsync_entries = dl_metrics_histogram(m, "ddialab_kv_fsync_batch_entries",
                                              "Entries made durable by one fsync (group commit).",
                                              NULL, batch_buckets, 11);
    n->m_writes_ok = dl_metrics_counter(m, "ddialab_kv_writes_total", "Client writes by outcome.",
                                        "result=\"ok\"");
    n->m_writes_failed = dl_metrics_counter(m, "ddialab_kv_writes_total",
                                            "Client writes by outcome.", "result=\"rejected\"");
    n->m_writes_timeout = dl_metrics_counter(m, "ddialab_kv_writes_total",
                                             "Client writes by outcome.", "result=\"timeout\"");
    n->m_send_failures =
        dl_metrics_counter(m, "ddialab_kv_peer_send_failures_total",
                           "Messages to peers that could not be encoded or queued.", NULL);
    n->m_redirects = dl_metrics_counter(m, "ddialab_kv_redirects_total",
                                        "Requests redirected to the leader.", NULL);
}

/* Election timeouts must differ between nodes and runs: seed from the kernel. */
static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    FILE *fp = fopen("/dev/urandom", "rb");
    if (fp == NULL || fread(&seed, sizeof(seed), 1, fp) != 1)
        seed = uv_hrtime() ^ (uint64_t)getpid();
    if (fp != NULL)
        fclose(fp);
    return seed;
}

/* Opens the log, replays its metadata into a new core, and opens the state machine. */
static int open_state(dl_kv_node_t *n, char *err, size_t errlen)
{
    char path[4096];
    int rv = dl_mkdir_p(n->data_dir);
    if (rv) {
        snprintf(err, errlen, "cannot create %s: %s", n->data_dir, dl_strerror(rv));
        return rv;
    }
    rv = check_identity(n, err, errlen);
    if (rv)
        return rv;
    dl_raft_hardstate_t hs;
    rv = load_hardstate(n, &hs, err, errlen);
    if (rv)
        return rv;
    snprintf(path, sizeof(path), "%s/log", n->data_dir);
    dl_seglog_options_t lo = {.sync_policy = n->sync_policy,
                              .sync_interval_ms = n->sync_interval_ms,
                              /* Fixed, so that lowering --max-value-bytes later never makes
                                 existing records look corrupt. */
                              .max_record_bytes = LOG_MAX_RECORD_BYTES,
                              /* Compaction drops whole segments: smaller ones free space sooner. */
                              .segment_bytes = 16u << 20};
    dl_seglog_recovery_t rec;
    rv = dl_seglog_open(path, &lo, &n->log, &rec, err, errlen);
    if (rv)
        return rv;
    if (rec.truncated_bytes > 0)
        DL_WARN("log recovery cut a torn tail of %" PRIu64 " bytes from %s at offset %" PRIu64,
                rec.truncated_bytes, rec.truncated_file, rec.truncated_offset);
    dl_raft_config_t rc = {.id = n->id,
                           .nodes = n->boot_voters,
                           .n_nodes = n->n_boot_voters,
                           .learners = n->boot_learners,
                           .n_learners = n->n_boot_learners,
                           /* With elections the core keeps it a majority of the voters in
                            * force (membership changes); without, the mode's quorum. */
                           .commit_quorum = n->elections ? 0 : n->commit_quorum,
                           .static_leader = n->static_leader,
                           .heartbeat_ms = (uint64_t)n->heartbeat_ms,
                           .elections = n->elections,
                           .election_timeout_ms = (uint64_t)n->election_timeout_ms,
                           .seed = random_seed()};
    uint64_t first = dl_seglog_first_index(n->log);
    uint64_t last = dl_seglog_last_index(n->log);
    rv = dl__kv_snap_open(n, err, errlen);
    if (rv)
        return rv;
    snprintf(path, sizeof(path), "%s/state.db", n->data_dir);
    rv = dl_kv_store_open(path, &n->store, err, errlen);
    if (rv)
        return rv;
    /* The state machine is the base: the log before what it holds may have been compacted. */
    uint64_t applied = dl_kv_store_applied(n->store);
    uint64_t aterm = dl_kv_store_applied_term(n->store);
    if (applied > 0 && applied >= first && applied <= last) {
        uint64_t term = 0;
        rv = read_term(n, applied, &term);
        if (rv != 0 || term != aterm) {
            /* The entry it last applied is no longer the one in the log (a truncation whose
             * reset had not reached the disk). The log decides: rebuild from it if it starts
             * at 1, else start over and let the leader refill everything. */
            DL_WARN("the state machine (applied %" PRIu64 " of term %" PRIu64
                    ") does not match the log; %s",
                    applied, aterm,
                    first == 1 ? "rebuilding it from the log" : "starting over from the leader");
            rv = dl_kv_store_reset(n->store);
            if (rv == 0 && first != 1)
                rv = dl_seglog_reset(n->log, 1);
            if (rv)
                return rv;
            applied = 0;
            first = dl_seglog_first_index(n->log);
            last = dl_seglog_last_index(n->log);
        }
    }
    if (applied > 0 && last < applied) {
        /* The log lost entries the state machine holds (--fsync none and an OS crash): what
         * was applied was committed, so the state machine stands and the log goes on after it. */
        DL_WARN("the log ends at %" PRIu64 " but the state machine holds up to %" PRIu64
                "; the log starts over after it",
                last, applied);
        rv = dl_seglog_reset(n->log, applied + 1);
        if (rv)
            return rv;
        first = applied + 1;
        last = applied;
    }
    if (first > applied + 1) {
        snprintf(err, errlen,
                 "the log in %s/log starts at index %" PRIu64 " but the state machine holds only "
                 "up to %" PRIu64 ": entries are missing",
                 n->data_dir, first, applied);
        return DL_ECORRUPT;
    }
    /* The core gets the log as far back as it reaches, so that a truncation can still be
     * counted and undone entry by entry. Its first entry needs the term of the one before: a
     * log compacted at all gives up its first entry for that (the state machine holds it). */
    uint64_t base = 0, base_term = 0;
    if (first > 1) {
        base = first <= applied ? first : applied;
        base_term = aterm;
        if (base != applied) {
            rv = read_term(n, base, &base_term);
            if (rv) {
                snprintf(err, errlen, "log entry %" PRIu64 " is unreadable: %s", base,
                         dl_strerror(rv));
                return rv;
            }
        }
    }
    uint64_t core_first = base + 1;
    rv = dl_raft_new(&rc, &hs, core_first, &n->raft);
    if (rv == 0 && base > 0) {
        /* The membership the state machine recorded; configuration entries after base in the
         * log are replayed on top of it below. */
        dl_raft_membership_t m;
        int have = store_membership(n, &m);
        rv = dl_raft_restore_snapshot(n->raft, base, base_term, 0, have ? &m : NULL);
    }
    if (rv) {
        snprintf(err, errlen, "invalid cluster configuration");
        return rv;
    }
    snprintf(path, sizeof(path), "%s/log", n->data_dir);
    for (uint64_t i = core_first; i <= last; i++) {
        void *data = NULL;
        size_t len = 0;
        uint64_t term;
        uint8_t type;
        rv = dl_seglog_read(n->log, i, &data, &len);
        if (rv == 0)
            rv = decode_record(data, len, &term, &type);
        if (rv == 0)
            rv = dl_raft_restore_entry(n->raft, term, type, (uint8_t *)data + RECORD_HEADER_BYTES,
                                       (uint32_t)(len - RECORD_HEADER_BYTES));
        if (rv == 0 && type == DL_RAFT_ENTRY_CONFIG)
            dl__kv_members_learn(n, (uint8_t *)data + RECORD_HEADER_BYTES,
                                 len - RECORD_HEADER_BYTES);
        free(data);
        if (rv) {
            snprintf(err, errlen, "log entry %" PRIu64 " in %s is unreadable: %s", i, path,
                     dl_strerror(rv));
            return rv;
        }
    }
    n->compacted_at = applied;
    DL_INFO("recovered: state machine at %" PRIu64 " (term %" PRIu64 "), log [%" PRIu64 "..%" PRIu64
            "], term %" PRIu64,
            applied, aterm, first, last, hs.term);
    return 0;
}

static const char usage[] =
    "ddialab kv --node N [flags]\n"
    "       ddialab kv cluster [--nodes 3] [node flags]   (a local cluster)\n"
    "       ddialab kv get|put|del|status [flags]          (a client)\n\n"
    "Runs one node of a replicated key-value store. With no other flags, node N of a three-node\n"
    "cluster serves HTTP on 127.0.0.1:800N, talks to its peers on 127.0.0.1:900N and keeps its\n"
    "data in ./data/kv-N; the nodes elect a leader (Raft). --no-elections: node 1 leads until an\n"
    "operator promotes another.";

int dl_kv_node_main(int argc, char **argv)
{
    int64_t node_id = 0, leader = 1;
    char *http = NULL, *peer = NULL, *peers = NULL, *data_dir = NULL, *config = NULL;
    char *replication = "majority", *fsync_text = "batch", *cluster_id = "ddialab-kv";
    char *log_level = NULL;
    int64_t write_timeout = 2000, max_value = 1 << 20, heartbeat = 100, election_timeout = 1000;
    int64_t snapshot_entries = 10000;
    const char *join = NULL;
    int elections = 1;
    dl_flag_t flags[] = {
        {"node", DL_FLAG_INT, &node_id, "this node's id (1, 2, 3, ...)"},
        {"http", DL_FLAG_STRING, &http, "HTTP listen address (default 127.0.0.1:800N)"},
        {"peer", DL_FLAG_STRING, &peer, "peer listen address (default 127.0.0.1:900N)"},
        {"peers", DL_FLAG_STRING, &peers,
         "every node as ID=HOST:PORT,... (default 1..3 on 127.0.0.1:900N)"},
        {"data-dir", DL_FLAG_STRING, &data_dir, "data directory (default ./data/kv-N)"},
        {"config", DL_FLAG_STRING, &config, "read flags from a file of 'name = value' lines"},
        {"leader", DL_FLAG_INT, &leader,
         "with --no-elections: the node that leads a fresh cluster"},
        {"replication", DL_FLAG_STRING, &replication,
         "when a write is acknowledged: async, semi-sync, sync, majority or quorum=W"},
        {"write-timeout", DL_FLAG_DURATION, &write_timeout,
         "how long a write may wait for its acknowledgements before 503"},
        {"fsync", DL_FLAG_STRING, &fsync_text,
         "log fsync policy: batch (one fsync per group commit), an interval like 100ms, or none"},
        {"max-value-bytes", DL_FLAG_BYTES, &max_value, "largest value accepted"},
        {"heartbeat", DL_FLAG_DURATION, &heartbeat, "leader heartbeat interval"},
        {"elections", DL_FLAG_BOOL, &elections,
         "elect leaders with Raft (PreVote, CheckQuorum); --no-elections: a static --leader and "
         "manual failover"},
        {"election-timeout", DL_FLAG_DURATION, &election_timeout,
         "with --elections: how long without a leader before a node campaigns (randomized up to "
         "1.5 times this)"},
        {"snapshot-entries", DL_FLAG_INT, &snapshot_entries,
         "snapshot the state machine and compact the log after this many applied entries (0 = "
         "never)"},
        {"join", DL_FLAG_STRING, &join,
         "URL of a running member (http://HOST:PORT): join that cluster as a new node, which "
         "catches up as a learner and then votes (needs --elections)"},
        {"cluster-id", DL_FLAG_STRING, &cluster_id, "name shared by the nodes of one cluster"},
        {"log-level", DL_FLAG_STRING, &log_level, "debug, info, warn or error"},
        {NULL, 0, NULL, NULL},
    };
    char err[1024] = "";
    /* A config file gives defaults; flags on the command line override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0 &&
            dl_flags_load_file(flags, argv[i + 1], err, sizeof(err)) != 0) {
            fprintf(stderr, "ddialab kv: %s\n", err);
            return 2;
        }
    int next;
    int rv = dl_flags_parse(usage, flags, argc, argv, 1, &next, err, sizeof(err));
    if (rv == 1)
        return 0;
    if (rv == 0 && next < argc) {
        snprintf(err, sizeof(err), "unexpected argument '%s' (see --help)", argv[next]);
        rv = -EINVAL;
    }
    if (rv == 0 && node_id <= 0) {
        snprintf(err, sizeof(err), "missing --node N (try: ddialab kv --node 1)");
        rv = -EINVAL;
    }
    static dl_kv_node_t node;
    dl_kv_node_t *n = &node;
    memset(n, 0, sizeof(*n));
    n->id = (uint64_t)node_id;
    n->cluster_id = cluster_id;
    n->static_leader = (uint64_t)leader;
    n->write_timeout_ms = write_timeout;
    n->max_value_bytes = max_value;
    n->heartbeat_ms = heartbeat;
    n->elections = elections;
    n->election_timeout_ms = election_timeout;
    n->snapshot_entries = snapshot_entries;
    n->rcv_fd = -1;
    char http_host[64] = "127.0.0.1", peer_host[64] = "127.0.0.1";
    int http_port = 8000 + (int)node_id, peer_port = 9000 + (int)node_id;
    char default_dir[64], default_peers[256];
    if (rv == 0 && log_level != NULL) {
        dl_log_level_t level;
        if (dl_log_parse_level(log_level, &level) != 0) {
            snprintf(err, sizeof(err), "--log-level must be debug, info, warn or error");
            rv = -EINVAL;
        } else {
            dl_log_set_level(level);
        }
    }
    if (rv == 0 && http && dl__kv_parse_hostport(http, http_host, sizeof(http_host), &http_port)) {
        snprintf(err, sizeof(err), "--http must be HOST:PORT, not '%s'", http);
        rv = -EINVAL;
    }
    if (rv == 0 && peer && dl__kv_parse_hostport(peer, peer_host, sizeof(peer_host), &peer_port)) {
        snprintf(err, sizeof(err), "--peer must be HOST:PORT, not '%s'", peer);
        rv = -EINVAL;
    }
    if (rv == 0) {
        snprintf(default_peers, sizeof(default_peers),
                 "1=127.0.0.1:9001,2=127.0.0.1:9002,3=127.0.0.1:9003");
        rv = parse_peers(n, peers ? peers : default_peers, err, sizeof(err));
    }
    int self_listed = 0, leader_listed = 0;
    for (size_t i = 0; rv == 0 && i < n->n_nodes; i++) {
        self_listed |= n->nodes[i].id == n->id;
        leader_listed |= n->nodes[i].id == n->static_leader;
        n->boot_voters[n->n_boot_voters++] = n->nodes[i].id;
    }
    if (rv == 0 && join != NULL) {
        /* The cluster's answer decides the membership; --peers is not needed. */
        if (!elections) {
            snprintf(err, sizeof(err), "--join needs --elections (static clusters are fixed)");
            rv = -EINVAL;
        } else if (strncmp(join, "http://", 7) != 0) {
            snprintf(err, sizeof(err), "--join must be an http:// URL of a member, not '%s'", join);
            rv = -EINVAL;
        }
        self_listed = leader_listed = 1;
    }
    if (rv == 0 && !self_listed) {
        snprintf(err, sizeof(err), "node %" PRId64 " is not in --peers", node_id);
        rv = -EINVAL;
    }
    if (rv == 0 && !leader_listed) {
        snprintf(err, sizeof(err), "--leader %" PRId64 " is not in --peers", leader);
        rv = -EINVAL;
    }
    if (rv == 0)
        rv = parse_replication(n, replication, err, sizeof(err));
    /* Raft is safe only if every commit reaches a majority (a new leader is elected by a
     * majority, and the two must overlap): with elections the replication mode is only when a
     * client hears back. Without, it is the commit quorum itself (the foundation's lab). */
    if (rv == 0)
        n->commit_quorum = elections ? n->n_boot_voters / 2 + 1 : n->quorum;
    if (rv == 0 && elections && election_timeout < 2 * heartbeat) {
        snprintf(err, sizeof(err), "--election-timeout must be at least twice --heartbeat");
        rv = -EINVAL;
    }
    if (rv == 0)
        rv = parse_fsync(n, fsync_text, err, sizeof(err));
    if (rv == 0 && (max_value < 1 || max_value > DL_KV_MAX_VALUE_LIMIT)) {
        snprintf(err, sizeof(err), "--max-value-bytes must be between 1 and 32MiB");
        rv = -EINVAL;
    }
    if (rv == 0 && snapshot_entries < 0) {
        snprintf(err, sizeof(err), "--snapshot-entries must be 0 (never) or more");
        rv = -EINVAL;
    }
    if (rv == 0 && (write_timeout < 1 || heartbeat < 1)) {
        snprintf(err, sizeof(err), "--write-timeout and --heartbeat must be positive");
        rv = -EINVAL;
    }
    if (rv != 0) {
        fprintf(stderr, "ddialab kv: %s\n", err);
        return 2;
    }
    snprintf(default_dir, sizeof(default_dir), "./data/kv-%" PRId64, node_id);
    n->data_dir = data_dir ? data_dir : default_dir;
    snprintf(n->http_addr, sizeof(n->http_addr), "%s:%d", http_host, http_port);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "kv-%" PRId64, node_id);
    dl_log_set_prefix(prefix);
    signal(SIGPIPE, SIG_IGN);

    n->loop = uv_default_loop();
    n->cache_cap = CACHE_SLOTS;
    n->cache = calloc(n->cache_cap, sizeof(*n->cache));
    n->metrics = dl_metrics_new();
    if (n->cache == NULL || n->metrics == NULL) {
        fprintf(stderr, "ddialab kv: out of memory\n");
        return 1;
    }
    register_metrics(n);
    if (join != NULL) {
        char self_peer[96];
        snprintf(self_peer, sizeof(self_peer), "%s:%d", peer_host, peer_port);
        n->n_nodes = 0;
        rv = dl__kv_join(n, join, self_peer, err, sizeof(err));
        if (rv) {
            fprintf(stderr, "ddialab kv: %s\n", err);
            return 1;
        }
        /* Our own address, should the answer lack it. */
        int found = 0;
        for (size_t i = 0; i < n->n_nodes; i++)
            found |= n->nodes[i].id == n->id;
        if (!found && n->n_nodes < DL_KV_MAX_NODES) {
            dl_peer_addr_t *a = &n->nodes[n->n_nodes++];
            a->id = n->id;
            snprintf(a->host, sizeof(a->host), "%s", peer_host);
            a->port = peer_port;
        }
        n->commit_quorum = n->n_boot_voters / 2 + 1;
        parse_replication(n, n->replication, err, sizeof(err));
    }
    rv = open_state(n, err, sizeof(err));
    if (rv) {
        fprintf(stderr, "ddialab kv: %s\n", err);
        return 1;
    }
    rv = dl__kv_http_start(n, http_host, http_port, err, sizeof(err));
    if (rv) {
        fprintf(stderr, "ddialab kv: %s\n", err);
        return 1;
    }
    dl_peer_options_t po = {.self_id = n->id,
                            .cluster_id = n->cluster_id,
                            .http_addr = n->http_addr,
                            .listen_host = peer_host,
                            .listen_port = peer_port,
                            .peers = n->nodes,
                            .n_peers = n->n_nodes};
    dl_peer_callbacks_t pc = {
        .on_message = on_peer_message, .on_peer_state = on_peer_state, .ctx = n};
    rv = dl_peer_net_start(n->loop, &po, &pc, &n->net, err, sizeof(err));
    if (rv) {
        fprintf(stderr, "ddialab kv: %s\n", err);
        return 1;
    }
    dl__kv_members_changed(n); /* the membership in force may come from the log */
    uv_check_init(n->loop, &n->check);
    n->check.data = n;
    uv_check_start(&n->check, on_check);
    uv_timer_init(n->loop, &n->tick);
    n->tick.data = n;
    uint64_t tick_ms = (uint64_t)(heartbeat / 2 > 0 ? heartbeat / 2 : 1);
    uv_timer_start(&n->tick, on_tick, tick_ms, tick_ms);
    uv_signal_init(n->loop, &n->sigint);
    uv_signal_init(n->loop, &n->sigterm);
    n->sigint.data = n->sigterm.data = n;
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);

    DL_INFO("node %" PRIu64 " of cluster '%s': HTTP on %s, peers on %s:%d, data in %s, "
            "replication %s, fsync %s",
            n->id, n->cluster_id, n->http_addr, peer_host, peer_port, n->data_dir, n->replication,
            fsync_text);
    dl_raft_update_t u;
    dl_raft_start(n->raft, dl_seglog_last_index(n->log), dl_kv_store_applied(n->store),
                  dl__kv_now_ms(n), &u);
    process(n, &u);
    if (dl_raft_role(n->raft) != DL_RAFT_LEADER)
        DL_INFO("following; leader is node %" PRIu64 " as far as known", dl_raft_leader(n->raft));

    uv_run(n->loop, UV_RUN_DEFAULT);
    if (n->exit_code != 0 && !n->stopping)
        stop_node(n, "fatal error");
    /* Let the closes finish (and a pending fsync land) before the files close. */
    uv_run(n->loop, UV_RUN_DEFAULT);
    if (n->sync_busy == 0 && n->exit_code == 0)
        dl_seglog_sync(n->log);
    dl__kv_snap_close(n);
    dl_kv_store_close(n->store);
    dl_seglog_close(n->log);
    dl_raft_free(n->raft);
    for (size_t i = 0; i < n->cache_cap; i++)
        free(n->cache[i].data);
    free(n->cache);
    free(n->batch_offsets);
    free(n->batch_waiters);
    dl_buf_free(&n->batch_cmds);
    dl_metrics_free(n->metrics);
    uv_loop_close(n->loop);
    DL_INFO("stopped");
    return n->exit_code;
}
