/* The Kafka-protocol listener: connections, frames, group commit, waiting fetches (broker.h). */
#include "events/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddialab/logging.h"
#include "ddialab/metrics.h"
#include "ddialab/error.h"
#include "events/batch.h"
#include "events/compact.h"
#include "events/protocol.h"

#define READ_CHUNK       (64u << 10)
#define MAX_FETCH_WAIT   30000 /* ms; clients ask for 500 (librdkafka) or 5000 (kafkajs) */
#define DEFAULT_MAX_CONN 1024
#define COMPACT_STEP     (1u << 20) /* bytes a compaction reads and writes per loop turn */

typedef struct conn_s {
    uv_tcp_t tcp; /* first: handle callbacks cast back */
    uv_timer_t timer;
    dl_broker_t *b;
    struct conn_s *next, *prev;
    char peer[64];
    dl_buf_t in; /* received, not yet served from in_start on */
    size_t in_start;
    int busy; /* a request is being served: the next one waits */
    int closing;
    int handles; /* open handles (tcp, timer) */
    /* A fetch waiting for data: its frame (owned), served again on new data or at the timer. */
    uint8_t *fetch;
    size_t fetch_len;
    /* A JoinGroup or SyncGroup handed to the coordinator: its header, for the answer. */
    dl_kheader_t parked_header;
    int parked;
    int resume; /* answered later: serve its next requests at the next loop turn */
    /* A response waiting for an fsync round. */
    dl_buf_t held;
    int holding, held_respond;
    uint64_t sync_round;
} conn_t;

struct dl_broker_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t interval;
    dl_broker_options_t opts;
    char host[256];
    dl_events_ctx_t ctx;
    conn_t *conns;
    size_t n_conns;
    int handles; /* listener, interval timer, connections' handles */
    /* Group commit: partitions written since the last round began, and the round in flight. */
    dl_partition_set_t dirty;
    int syncing;
    uv_work_t work;
    dl_seglog_sync_t *jobs;
    dl_partition_t **job_parts;
    size_t n_jobs;
    uint64_t started_round, done_round;
    int waking, wake_again; /* wake_fetches is running; asked to run again */
    int round_failed;       /* a partition of the round in flight could not even be prepared */
    struct local_s *locals; /* dl_broker_produce calls waiting for an fsync round */
    dl_groups_t *groups;
    uv_timer_t groups_timer; /* the coordinator's next deadline */
    uv_idle_t resume_idle;   /* connections whose parked request was answered */
    uv_timer_t retention;    /* every retention_check_ms: retention and compaction */
    /* The log cleaner: one compaction at a time, a step per loop turn (compact.h). */
    dl_compaction_t *compaction;
    dl_topic_t *compaction_topic;
    int32_t compaction_partition;
    int compaction_ready; /* waits for the fsync round in flight to end */
    uv_idle_t compact_idle;
    dl_metrics_t *metrics;
    dl_metric_t *requests[DL_KAPI_INIT_PRODUCER_ID + 1]; /* by API key; NULL: not served */
    dl_metric_t *fsync_rounds, *fsync_seconds, *fsync_failures, *retention_bytes;
    dl_metric_t *compaction_passes, *compaction_bytes, *compaction_failures;
    uint64_t round_started_ns;
    int stopping;
    void (*done)(void *ctx);
    void *done_ctx;
};

/* A dl_broker_produce call waiting for the fsync round that covers it. */
typedef struct local_s {
    struct local_s *next;
    uint64_t sync_round;
    void (*done)(void *ctx, int rv, const int64_t *base_offsets);
    void *ctx;
    size_t n;
    int rv;
    int64_t base_offsets[];
} local_t;

static void serve_frames(conn_t *c);
static void maybe_finish_stop(dl_broker_t *b);
static void finish_compaction(dl_broker_t *b);
static void settle_deletions(dl_broker_t *b);
static void schedule_groups(dl_broker_t *b);
static void wake_fetches(dl_broker_t *b);

/* ---- Connections ----------------------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    dl_broker_t *b = c->b;
    free(c->in.data);
    free(c->held.data);
    free(c->fetch);
    free(c);
    b->handles--;
    maybe_finish_stop(b);
}

static void close_conn(conn_t *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (why != NULL)
        DL_INFO("closing connection from %s: %s", c->peer, why);
    dl_broker_t *b = c->b;
    if (c->prev)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    b->n_conns--;
    if (c->parked)
        dl_groups_forget_waiter(b->groups, c);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

typedef struct write_s {
    uv_write_t req;
    dl_buf_t buf;
} write_t;

static void on_written(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    conn_t *c = req->handle->data;
    free(w->buf.data);
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        close_conn(c, uv_strerror(status));
}

/* Sends a whole response frame (taking out's memory). */
static void send_response(conn_t *c, dl_buf_t *out)
{
    write_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(out->data);
        close_conn(c, "out of memory");
        return;
    }
    w->buf = *out;
    *out = (dl_buf_t){0};
    uv_buf_t buf = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    int rv = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rv != 0) {
        free(w->buf.data);
        free(w);
        close_conn(c, uv_strerror(rv));
    }
}

/* The request in hand is answered (or needs no answer): the next one may be read. */
static void request_done(conn_t *c, int resume)
{
    c->busy = 0;
    if (resume && !c->closing)
        serve_frames(c);
}

/* ---- Group commit ---------------------------------------------------------------------- */

static void run_jobs(uv_work_t *work)
{
    dl_broker_t *b = work->data;
    for (size_t i = 0; i < b->n_jobs; i++)
        dl_seglog_sync_run(&b->jobs[i]);
}

static void maybe_start_sync(dl_broker_t *b);

/* A round's fsyncs are done: the responses that waited for it go (or their connections close
 * when an fsync failed), and the next round starts if there is more to sync. */
static void after_jobs(uv_work_t *work, int status)
{
    dl_broker_t *b = work->data;
    int failed = status != 0 || b->round_failed;
    b->round_failed = 0;
    for (size_t i = 0; i < b->n_jobs; i++)
        if (dl_seglog_sync_finish(dl_partition_log(b->job_parts[i]), &b->jobs[i]) != 0) {
            dl_partition_set_failed(b->job_parts[i]);
            DL_WARN("fsync failed: %s", dl_seglog_errmsg(dl_partition_log(b->job_parts[i])));
            failed = 1;
        }
    b->n_jobs = 0;
    b->syncing = 0;
    b->done_round = b->started_round;
    /* No sync job is prepared now: the moment to swap a compacted log in, or to close the
       partitions of deleted topics. */
    if (b->compaction_ready)
        finish_compaction(b);
    settle_deletions(b);
    dl_metric_inc(b->fsync_rounds);
    dl_metric_observe(b->fsync_seconds, (double)(uv_hrtime() - b->round_started_ns) / 1e9);
    if (failed)
        dl_metric_inc(b->fsync_failures);
    for (conn_t *c = b->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (!c->holding || c->sync_round > b->done_round)
            continue;
        c->holding = 0;
        if (failed) {
            close_conn(c, "an fsync failed: the produce is not acknowledged");
            continue;
        }
        if (c->held_respond)
            send_response(c, &c->held);
        request_done(c, 1);
    }
    for (local_t **l = &b->locals; *l != NULL;) {
        local_t *x = *l;
        if (x->sync_round > b->done_round) {
            l = &x->next;
            continue;
        }
        *l = x->next;
        x->done(x->ctx, failed ? DL_EINTERNAL : x->rv, x->base_offsets);
        free(x);
    }
    if (b->opts.sync_policy == DL_SYNC_BATCH && !failed)
        wake_fetches(b); /* what this round made durable is now visible to consumers */
    maybe_start_sync(b);
    maybe_finish_stop(b);
}

/* Starts an fsync round for every partition written since the last one began, unless one is in
 * flight (its end starts the next). */
static void maybe_start_sync(dl_broker_t *b)
{
    if (b->syncing || b->dirty.n == 0)
        return;
    dl_seglog_sync_t *jobs = realloc(b->jobs, b->dirty.n * sizeof(*jobs));
    dl_partition_t **parts = jobs ? realloc(b->job_parts, b->dirty.n * sizeof(*parts)) : NULL;
    if (jobs != NULL)
        b->jobs = jobs;
    if (parts == NULL) {
        DL_WARN("out of memory for an fsync round; retrying at the next write");
        return;
    }
    b->job_parts = parts;
    b->n_jobs = 0;
    for (size_t i = 0; i < b->dirty.n; i++) {
        int rv = dl_seglog_sync_prepare(dl_partition_log(b->dirty.items[i]), uv_now(b->loop),
                                        &b->jobs[b->n_jobs]);
        if (rv == 0) {
            b->job_parts[b->n_jobs++] = b->dirty.items[i];
        } else if (rv < 0) {
            /* The log is in its failed state: what waits on this round is not durable. */
            dl_partition_set_failed(b->dirty.items[i]);
            b->round_failed = 1;
            DL_WARN("cannot fsync a partition: %s",
                    dl_seglog_errmsg(dl_partition_log(b->dirty.items[i])));
        }
    }
    b->dirty.n = 0;
    b->started_round++;
    b->syncing = 1;
    b->round_started_ns = uv_hrtime();
    b->work.data = b;
    if (uv_queue_work(b->loop, &b->work, run_jobs, after_jobs) != 0) {
        run_jobs(&b->work); /* cannot happen with a live loop; stay correct anyway */
        after_jobs(&b->work, 0);
    }
}

static void on_interval(uv_timer_t *t)
{
    maybe_start_sync(t->data);
}

/* ---- Consumer groups ------------------------------------------------------------------- */

static void on_resume(uv_idle_t *idle)
{
    dl_broker_t *b = idle->data;
    uv_idle_stop(idle);
    for (conn_t *c = b->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->resume && !c->closing) {
            c->resume = 0;
            serve_frames(c);
        }
    }
}

/* The coordinator answered c's parked request: send it; c serves its next requests at the next
 * turn of the loop (never from inside the coordinator, which is still at work). */
static void answered(conn_t *c, dl_buf_t *out, int rv)
{
    if (!c->parked || c->closing) {
        free(out->data);
        return;
    }
    c->parked = 0;
    if (rv != 0) {
        free(out->data);
        close_conn(c, "out of memory");
        return;
    }
    send_response(c, out);
    if (c->busy) {
        c->busy = 0;
        c->resume = 1;
        uv_idle_start(&c->b->resume_idle, on_resume);
    }
}

static void on_join_done(void *waiter, const dl_group_join_result_t *r)
{
    conn_t *c = waiter;
    dl_buf_t out = {0};
    answered(c, &out, dl_events_encode_join(&out, &c->parked_header, r));
}

static void on_sync_done(void *waiter, int16_t error, const uint8_t *assignment, size_t len)
{
    conn_t *c = waiter;
    dl_buf_t out = {0};
    answered(c, &out, dl_events_encode_sync(&out, &c->parked_header, error, assignment, len));
}

static void on_groups_timer(uv_timer_t *t)
{
    dl_broker_t *b = t->data;
    dl_groups_tick(b->groups, (int64_t)uv_now(b->loop));
    schedule_groups(b);
}

/* Sets the coordinator's timer to its next deadline (sessions, rebalance timeouts). */
static void schedule_groups(dl_broker_t *b)
{
    if (b->stopping)
        return;
    int64_t next = dl_groups_next_deadline(b->groups), now = (int64_t)uv_now(b->loop);
    if (next < 0)
        uv_timer_stop(&b->groups_timer);
    else
        uv_timer_start(&b->groups_timer, on_groups_timer, (uint64_t)(next > now ? next - now : 0),
                       0);
}

/* ---- Requests -------------------------------------------------------------------------- */

static void wake_fetches(dl_broker_t *b);
static void on_fetch_timeout(uv_timer_t *t);

/*
 * Serves one request frame (len bytes after the size). final: a waiting fetch's time is up.
 * Returns with c->busy set when the answer waits (an fsync, or data for a fetch).
 */
static void serve(conn_t *c, uint8_t *frame, size_t len, int final)
{
    dl_broker_t *b = c->b;
    dl_kheader_t h;
    dl_kreader_t body;
    dl_buf_t out = {0};
    switch (dl_kheader_parse(frame, len, &h, &body)) {
    case DL_KHEADER_CLOSE:
        close_conn(c, "unknown API, unsupported version or unreadable request header");
        return;
    case DL_KHEADER_UNSUPPORTED_VERSION:
        if (dl_kapi_versions_respond(&out, &h) != 0)
            close_conn(c, "out of memory");
        else
            send_response(c, &out);
        return;
    case DL_KHEADER_OK:
        break;
    }
    if (h.api_key >= 0 && h.api_key <= DL_KAPI_INIT_PRODUCER_ID && b->requests[h.api_key])
        dl_metric_inc(b->requests[h.api_key]);
    b->ctx.touched.n = 0;
    b->ctx.now_ms = (int64_t)uv_now(b->loop);
    b->ctx.waiter = c;
    b->ctx.client_host = c->peer;
    c->parked_header = h;
    c->parked = 1; /* until the coordinator answers, perhaps from inside the handler */
    int32_t wait_ms = 0;
    dl_handled_t handled = dl_events_handle(&b->ctx, &h, body, &out, final, &wait_ms);
    if (handled != DL_HANDLED_PARKED)
        c->parked = 0;
    if (h.api_key >= DL_KAPI_OFFSET_COMMIT && h.api_key <= DL_KAPI_SYNC_GROUP)
        schedule_groups(b);
    if (h.api_key == DL_KAPI_DELETE_TOPICS)
        settle_deletions(b);
    if (handled == DL_HANDLED_PARKED) {
        if (c->parked) /* not answered yet */
            c->busy = 1;
        c->resume = 0; /* answered already: the loop in serve_frames goes on */
        return;
    }
    /* Whatever a produce stored (even one that then failed to decode or hit an error) is made
     * durable and visible like any other write. */
    for (size_t i = 0; i < b->ctx.touched.n; i++)
        if (dl_partition_set_add(&b->dirty, b->ctx.touched.items[i]) != 0) {
            free(out.data);
            close_conn(c, "out of memory");
            return;
        }
    if (handled == DL_HANDLED_CLOSE) {
        free(out.data);
        close_conn(c, "malformed request body");
        if (b->ctx.touched.n > 0 && b->opts.sync_policy == DL_SYNC_BATCH)
            maybe_start_sync(b);
        return;
    }
    if (handled == DL_HANDLED_WAIT_DATA) {
        free(out.data);
        if (c->fetch == NULL) {
            if ((c->fetch = malloc(len)) == NULL) {
                close_conn(c, "out of memory");
                return;
            }
            memcpy(c->fetch, frame, len);
            c->fetch_len = len;
            uv_timer_start(&c->timer, on_fetch_timeout,
                           (uint64_t)(wait_ms < MAX_FETCH_WAIT ? wait_ms : MAX_FETCH_WAIT), 0);
        }
        c->busy = 1;
        return;
    }
    size_t touched = b->ctx.touched.n;
    if (touched > 0 && b->opts.sync_policy == DL_SYNC_BATCH && handled == DL_HANDLED_RESPOND) {
        c->held = out;
        c->held_respond = 1;
        c->holding = 1;
        c->busy = 1;
        c->sync_round = b->started_round + 1;
    } else if (handled == DL_HANDLED_RESPOND) {
        send_response(c, &out);
    } else {
        free(out.data);
    }
    if (touched > 0) {
        if (b->opts.sync_policy == DL_SYNC_BATCH)
            maybe_start_sync(b); /* its end wakes the fetches */
        else
            wake_fetches(b);
    }
}

/* The waiting fetch of c runs again: answered if there is enough data now or final. */
static void retry_fetch(conn_t *c, int final)
{
    uint8_t *frame = c->fetch;
    size_t len = c->fetch_len;
    c->busy = 0;
    serve(c, frame, len, final);
    if (c->closing || !c->busy) {
        uv_timer_stop(&c->timer);
        free(frame);
        if (c->fetch == frame)
            c->fetch = NULL;
        request_done(c, 1);
    }
}

static void on_fetch_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->fetch != NULL && !c->closing)
        retry_fetch(c, 1);
}

/* New records arrived: every waiting fetch looks again. An answered fetch lets its connection
 * serve its next requests, which may produce and call this again: that call only asks the
 * running one to go round once more. */
static void wake_fetches(dl_broker_t *b)
{
    if (b->waking) {
        b->wake_again = 1;
        return;
    }
    b->waking = 1;
    do {
        b->wake_again = 0;
        for (conn_t *c = b->conns, *next; c != NULL; c = next) {
            next = c->next;
            if (c->fetch != NULL && !c->closing && !c->holding)
                retry_fetch(c, 0);
        }
    } while (b->wake_again);
    b->waking = 0;
}

/* Serves the complete frames received, in order, until one has to wait. */
static void serve_frames(conn_t *c)
{
    while (!c->busy && !c->closing) {
        size_t avail = c->in.len - c->in_start;
        if (avail < 4)
            break;
        uint32_t size = dl_kbe32(c->in.data + c->in_start);
        if (size > DL_KAFKA_MAX_FRAME) {
            close_conn(c, "request larger than the frame limit");
            return;
        }
        if (avail < 4 + (size_t)size)
            break;
        uint8_t *frame = c->in.data + c->in_start + 4;
        c->in_start += 4 + (size_t)size;
        serve(c, frame, size, 0);
    }
    if (c->in_start == c->in.len) {
        c->in.len = c->in_start = 0;
    } else if (c->in_start > 0 && !c->busy) {
        memmove(c->in.data, c->in.data + c->in_start, c->in.len - c->in_start);
        c->in.len -= c->in_start;
        c->in_start = 0;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    if (dl_buf_reserve(&c->in, READ_CHUNK) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        close_conn(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 && buf->base == NULL) {
        close_conn(c, "out of memory");
        return;
    }
    c->in.len += (size_t)nread;
    if (c->busy && c->in.len - c->in_start > DL_KAFKA_MAX_FRAME + 4) {
        close_conn(c, "too many requests sent ahead of their answers");
        return;
    }
    serve_frames(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    dl_broker_t *b = server->data;
    if (status < 0 || b->stopping)
        return;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->b = b;
    uv_tcp_init(b->loop, &c->tcp);
    uv_timer_init(b->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    b->handles++;
    c->next = b->conns;
    if (b->conns)
        b->conns->prev = c;
    b->conns = c;
    b->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_conn(c, "accept failed");
        return;
    }
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&addr, &len) == 0) {
        char ip[48] = "";
        if (addr.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&addr, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)&addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "/%s", ip);
    }
    if (b->n_conns > b->opts.max_connections) {
        close_conn(c, "too many connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        close_conn(c, "cannot read");
}

/* ---- Retention and compaction ---------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* record timestamps are wall-clock milliseconds */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int compacting(const dl_broker_t *b, const dl_topic_t *topic, int32_t k)
{
    return b->compaction != NULL && b->compaction_topic == topic && b->compaction_partition == k;
}

static void retain(dl_broker_t *b, int64_t now_ms)
{
    size_t n;
    dl_topic_t *const *topics = dl_topics_list(b->ctx.topics, &n);
    for (size_t i = 0; i < n; i++) {
        const dl_topic_config_t *cfg = &topics[i]->config;
        int64_t ms = cfg->retention_ms != DL_TOPIC_UNSET ? cfg->retention_ms : b->opts.retention_ms;
        int64_t bytes =
            cfg->retention_bytes != DL_TOPIC_UNSET ? cfg->retention_bytes : b->opts.retention_bytes;
        if (!cfg->delete_old || (ms < 0 && bytes < 0))
            continue; /* cleanup.policy=compact: the cleaner's alone */
        for (int32_t k = 0; k < topics[i]->n_partitions; k++) {
            dl_partition_t *p = topics[i]->partitions[k];
            if (compacting(b, topics[i], k))
                continue; /* a pass reads it by position: next time */
            uint64_t dropped = 0;
            int rv = dl_partition_retain(p, now_ms, ms, bytes, &dropped);
            dl_metric_add(b->retention_bytes, (double)dropped);
            if (dropped > 0)
                DL_INFO("retention: %s-%d dropped %llu bytes; its log now starts at offset %lld",
                        topics[i]->name, (int)k, (unsigned long long)dropped,
                        (long long)dl_partition_log_start_offset(p));
            if (rv != 0)
                DL_WARN("retention: %s-%d: %s", topics[i]->name, (int)k,
                        dl_seglog_errmsg(dl_partition_log(p)));
        }
    }
}

/* Whether partition k of topic is due for compaction: asked for, or at least min.cleanable.
 * dirty.ratio of it and a segment's worth (segment.bytes) written since its last pass. */
static int due(const dl_topics_t *topics, const dl_topic_t *topic, int32_t k)
{
    const dl_partition_cleaning_t *cl = &topic->cleaning[k];
    uint64_t size = dl_partition_size_bytes(topic->partitions[k]);
    uint64_t dirty = size > cl->clean_bytes ? size - cl->clean_bytes : 0;
    uint64_t segment = dl_topic_partition_options(topics, topic).segment_bytes;
    return cl->requested ||
           (dirty > 0 && dirty >= segment &&
            (double)dirty >= topic->config.min_cleanable_dirty_ratio * (double)size);
}

static void on_compact_idle(uv_idle_t *idle);

/* Partition k of topic is left alone until more is written to it: after a pass, or when one
 * failed or had nothing to do. */
static void rest(dl_topic_t *topic, int32_t k)
{
    topic->cleaning[k].requested = 0;
    topic->cleaning[k].clean_bytes = dl_partition_size_bytes(topic->partitions[k]);
}

/* Starts a pass on the first partition due, unless one is running. */
static void maybe_compact(dl_broker_t *b)
{
    if (b->compaction != NULL || b->stopping)
        return;
    size_t n;
    dl_topic_t *const *topics = dl_topics_list(b->ctx.topics, &n);
    for (size_t i = 0; i < n; i++) {
        dl_topic_t *topic = topics[i];
        if (!topic->config.compact)
            continue;
        for (int32_t k = 0; k < topic->n_partitions; k++) {
            dl_partition_t *p = topic->partitions[k];
            if (dl_partition_failed(p) || !due(b->ctx.topics, topic, k))
                continue;
            dl_compaction_options_t o = {
                .now_ms = wall_ms(),
                .delete_retention_ms = topic->config.delete_retention_ms,
                .partition = dl_topic_partition_options(b->ctx.topics, topic),
            };
            char err[512];
            dl_compaction_t *c;
            int rv = dl_compaction_start(p, &o, &c, err, sizeof(err));
            if (rv != 0 || c == NULL) { /* failed, or nothing to compact */
                if (rv != 0) {
                    DL_WARN("compaction of %s-%d cannot start: %s", topic->name, (int)k, err);
                    dl_metric_inc(b->compaction_failures);
                }
                rest(topic, k);
                continue;
            }
            b->compaction = c;
            b->compaction_topic = topic;
            b->compaction_partition = k;
            uv_idle_start(&b->compact_idle, on_compact_idle);
            return;
        }
    }
}

/* Forgets the running pass: given up (its new log deleted), or already ended by
 * dl_compaction_finish (b->compaction NULL then). */
static void drop_compaction(dl_broker_t *b)
{
    dl_compaction_abort(b->compaction);
    b->compaction = NULL;
    b->compaction_topic = NULL;
    b->compaction_ready = 0;
    uv_idle_stop(&b->compact_idle);
}

/* A pass that failed: counted, its partition left alone until more is written, the next
 * partition due gets its turn. */
static void fail_compaction(dl_broker_t *b, const char *what, const char *err)
{
    dl_topic_t *topic = b->compaction_topic;
    int32_t k = b->compaction_partition;
    DL_WARN("compaction of %s-%d %s: %s", topic->name, (int)k, what, err);
    dl_metric_inc(b->compaction_failures);
    rest(topic, k);
    drop_compaction(b);
    maybe_compact(b);
}

static void finish_compaction(dl_broker_t *b)
{
    dl_topic_t *topic = b->compaction_topic;
    int32_t k = b->compaction_partition;
    dl_compaction_stats_t st;
    char err[512];
    int rv = dl_compaction_finish(b->compaction, &st, err, sizeof(err));
    b->compaction = NULL; /* freed by finish */
    if (rv != 0) {
        fail_compaction(b, "failed", err);
        return;
    }
    dl_partition_cleaning_t *cl = &topic->cleaning[k];
    rest(topic, k);
    cl->passes++;
    /* A rewritten batch may compress a little worse than its producer did. */
    uint64_t removed = st.bytes_before > st.bytes_after ? st.bytes_before - st.bytes_after : 0;
    cl->bytes_removed += removed;
    cl->records_removed += st.records_removed;
    cl->last_pass_ms = wall_ms();
    dl_metric_inc(b->compaction_passes);
    dl_metric_add(b->compaction_bytes, (double)removed);
    DL_INFO("compaction: %s-%d %llu -> %llu bytes, %llu of %llu records removed (%llu "
            "tombstones)",
            topic->name, (int)k, (unsigned long long)st.bytes_before,
            (unsigned long long)st.bytes_after, (unsigned long long)st.records_removed,
            (unsigned long long)st.records_read, (unsigned long long)st.tombstones_removed);
    drop_compaction(b);
    maybe_compact(b);
}

static void on_compact_idle(uv_idle_t *idle)
{
    dl_broker_t *b = idle->data;
    char err[512];
    int rv = dl_compaction_step(b->compaction, COMPACT_STEP, err, sizeof(err));
    if (rv < 0) {
        fail_compaction(b, "given up", err);
    } else if (rv == 1 && b->syncing) {
        b->compaction_ready = 1; /* the round's end finishes it */
        uv_idle_stop(idle);
    } else if (rv == 1) {
        finish_compaction(b);
    }
}

void dl_broker_compact(dl_broker_t *b, dl_topic_t *topic)
{
    for (int32_t k = 0; k < topic->n_partitions; k++)
        topic->cleaning[k].requested = 1;
    maybe_compact(b);
}

/* Deleted topics: their partitions leave the fsync set now, and are closed and removed once
 * no fsync round holds them. */
static void settle_deletions(dl_broker_t *b)
{
    size_t n;
    dl_topic_t *const *dead = dl_topics_graveyard(b->ctx.topics, &n);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (b->compaction != NULL && b->compaction_topic == dead[i])
            drop_compaction(b);
        for (int32_t k = 0; k < dead[i]->n_partitions; k++)
            for (size_t j = 0; j < b->dirty.n; j++)
                if (b->dirty.items[j] == dead[i]->partitions[k])
                    b->dirty.items[j--] = b->dirty.items[--b->dirty.n];
    }
    if (!b->syncing)
        dl_topics_reap(b->ctx.topics);
    maybe_compact(b);
}

static void on_retention(uv_timer_t *t)
{
    dl_broker_t *b = t->data;
    retain(b, wall_ms());
    maybe_compact(b);
}

/* ---- Metrics --------------------------------------------------------------------------- */

static double count_connections(void *ctx)
{
    return (double)((dl_broker_t *)ctx)->n_conns;
}

static double count_produced_records(void *ctx)
{
    return (double)((dl_broker_t *)ctx)->ctx.produced_records;
}

static double count_produced_bytes(void *ctx)
{
    return (double)((dl_broker_t *)ctx)->ctx.produced_bytes;
}

static double count_duplicates(void *ctx)
{
    return (double)((dl_broker_t *)ctx)->ctx.duplicate_batches;
}

static double count_fetched_bytes(void *ctx)
{
    return (double)((dl_broker_t *)ctx)->ctx.fetched_bytes;
}

/* What the topics hold now, summed over partitions: which is asked for by what. */
static double sum_partitions(dl_broker_t *b, int bytes)
{
    size_t n;
    dl_topic_t *const *topics = dl_topics_list(b->ctx.topics, &n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        for (int32_t k = 0; k < topics[i]->n_partitions; k++)
            sum += bytes ? (double)dl_partition_size_bytes(topics[i]->partitions[k])
                         : (double)(dl_partition_high_watermark(topics[i]->partitions[k]) -
                                    dl_partition_log_start_offset(topics[i]->partitions[k]));
    return sum;
}

static double count_log_bytes(void *ctx)
{
    return sum_partitions(ctx, 1);
}

static double count_log_records(void *ctx)
{
    return sum_partitions(ctx, 0);
}

static double count_partitions(void *ctx)
{
    size_t n;
    dl_topic_t *const *topics = dl_topics_list(((dl_broker_t *)ctx)->ctx.topics, &n);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += topics[i]->n_partitions;
    return sum;
}

/* The registry: a request counter per served API (labels bounded by the API table), traffic,
 * what the log holds, group commit and retention. NULL when out of memory. */
static dl_metrics_t *new_metrics(dl_broker_t *b)
{
    dl_metrics_t *m = dl_metrics_new();
    if (m == NULL)
        return NULL;
    size_t n;
    const dl_kapi_t *apis = dl_kapis(&n);
    for (size_t i = 0; i < n; i++) {
        char labels[64] = "";
        dl_metrics_label_append(labels, sizeof(labels), "api", apis[i].name);
        b->requests[apis[i].key] = dl_metrics_counter(
            m, "ddialab_events_requests_total", "Kafka protocol requests served, by API", labels);
    }
    dl_metrics_gauge_fn(m, "ddialab_events_connections", "Open Kafka protocol connections", "",
                        count_connections, b);
    dl_metrics_counter_fn(m, "ddialab_events_produced_records_total",
                          "Records stored from produce requests", "", count_produced_records, b);
    dl_metrics_counter_fn(m, "ddialab_events_produced_bytes_total",
                          "Bytes of record batches stored from produce requests", "",
                          count_produced_bytes, b);
    dl_metrics_counter_fn(m, "ddialab_events_duplicate_batches_total",
                          "Idempotent producers' retried batches answered without storing them", "",
                          count_duplicates, b);
    dl_metrics_counter_fn(m, "ddialab_events_fetched_bytes_total",
                          "Bytes of record batches answered to fetches", "", count_fetched_bytes,
                          b);
    dl_metrics_gauge_fn(m, "ddialab_events_partitions", "Partitions of all topics", "",
                        count_partitions, b);
    dl_metrics_gauge_fn(m, "ddialab_events_log_bytes", "Bytes of record batches stored", "",
                        count_log_bytes, b);
    dl_metrics_gauge_fn(m, "ddialab_events_log_records",
                        "Offsets between the log start and the high watermark, over partitions", "",
                        count_log_records, b);
    b->fsync_rounds = dl_metrics_counter(m, "ddialab_events_fsync_rounds_total",
                                         "Group-commit fsync rounds finished", "");
    b->fsync_failures = dl_metrics_counter(m, "ddialab_events_fsync_failures_total",
                                           "Group-commit fsync rounds that failed", "");
    b->fsync_seconds = dl_metrics_histogram(
        m, "ddialab_events_fsync_seconds", "Duration of a group-commit fsync round", "",
        dl_metrics_latency_seconds_buckets, dl_metrics_latency_seconds_nbuckets);
    b->retention_bytes = dl_metrics_counter(m, "ddialab_events_retention_deleted_bytes_total",
                                            "Bytes deleted by retention", "");
    b->compaction_passes = dl_metrics_counter(m, "ddialab_events_compactions_total",
                                              "Log compaction passes finished", "");
    b->compaction_bytes = dl_metrics_counter(m, "ddialab_events_compaction_removed_bytes_total",
                                             "Bytes log compaction removed", "");
    b->compaction_failures = dl_metrics_counter(m, "ddialab_events_compaction_failures_total",
                                                "Log compaction passes given up", "");
    dl_metrics_add_process(m);
    return m;
}

dl_metrics_t *dl_broker_metrics(dl_broker_t *b)
{
    return b->metrics;
}

/* ---- Start and stop -------------------------------------------------------------------- */

static void on_broker_handle_closed(uv_handle_t *h)
{
    dl_broker_t *b = h->data;
    b->handles--;
    maybe_finish_stop(b);
}

static void maybe_finish_stop(dl_broker_t *b)
{
    if (!b->stopping || b->handles > 0 || b->syncing)
        return;
    /* The last writes, fsynced here: nothing else runs on the loop any more. */
    int synced = 1;
    for (size_t i = 0; i < b->dirty.n; i++)
        if (dl_seglog_sync(dl_partition_log(b->dirty.items[i])) != 0) {
            DL_WARN("fsync at stop failed: %s",
                    dl_seglog_errmsg(dl_partition_log(b->dirty.items[i])));
            synced = 0;
        }
    /* Local produces still waiting (the round in flight has finished: b->syncing is 0) are now
     * as durable as that fsync made them. */
    while (b->locals != NULL) {
        local_t *x = b->locals;
        b->locals = x->next;
        x->done(x->ctx, synced ? x->rv : DL_ESHUTDOWN, x->base_offsets);
        free(x);
    }
    void (*done)(void *) = b->done;
    void *ctx = b->done_ctx;
    free(b->dirty.items);
    free(b->jobs);
    free(b->job_parts);
    free(b->ctx.touched.items);
    dl_groups_free(b->groups);
    dl_metrics_free(b->metrics);
    free(b);
    if (done)
        done(ctx);
}

int dl_broker_start(uv_loop_t *loop, const dl_broker_options_t *opts, dl_topics_t *topics,
                    dl_offsets_t *offsets, dl_producer_ids_t *producer_ids, dl_broker_t **out,
                    char *errmsg, size_t errlen)
{
    *out = NULL;
    dl_broker_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    b->loop = loop;
    b->opts = *opts;
    if (b->opts.max_connections == 0)
        b->opts.max_connections = DEFAULT_MAX_CONN;
    snprintf(b->host, sizeof(b->host), "%s", opts->host ? opts->host : "127.0.0.1");
    b->ctx.topics = topics;
    b->ctx.node_id = opts->node_id;
    b->ctx.advertised_host = b->host;
    b->ctx.auto_create = opts->auto_create;
    b->ctx.stable_reads = opts->sync_policy == DL_SYNC_BATCH;
    b->ctx.offsets = offsets;
    b->ctx.producer_ids = producer_ids;
    dl_groups_callbacks_t callbacks = {.join_done = on_join_done, .sync_done = on_sync_done};
    if ((b->groups = b->ctx.groups = dl_groups_new(&callbacks)) == NULL ||
        (b->metrics = new_metrics(b)) == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        dl_groups_free(b->groups);
        free(b);
        return -ENOMEM;
    }

    struct sockaddr_storage addr;
    int rv = uv_ip4_addr(b->host, opts->port, (struct sockaddr_in *)&addr);
    if (rv != 0)
        rv = uv_ip6_addr(b->host, opts->port, (struct sockaddr_in6 *)&addr);
    if (rv != 0) {
        snprintf(errmsg, errlen, "--listen: '%s' is not an IPv4 or IPv6 address", b->host);
        dl_groups_free(b->groups);
        dl_metrics_free(b->metrics);
        free(b);
        return -EINVAL;
    }
    uv_tcp_init(loop, &b->listener);
    b->listener.data = b;
    b->handles = 1;
    if ((rv = uv_tcp_bind(&b->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&b->listener, 511, on_connection)) != 0) {
        snprintf(errmsg, errlen, "cannot listen on %s:%d: %s", b->host, opts->port,
                 uv_strerror(rv));
        b->stopping = 1;
        uv_close((uv_handle_t *)&b->listener, on_broker_handle_closed);
        return rv;
    }
    b->ctx.advertised_port = dl_broker_port(b);
    uv_timer_init(loop, &b->interval);
    uv_timer_init(loop, &b->groups_timer);
    uv_idle_init(loop, &b->resume_idle);
    uv_timer_init(loop, &b->retention);
    uv_idle_init(loop, &b->compact_idle);
    b->interval.data = b->groups_timer.data = b->resume_idle.data = b->retention.data = b;
    b->compact_idle.data = b;
    b->handles += 5;
    if (opts->retention_check_ms > 0)
        uv_timer_start(&b->retention, on_retention, (uint64_t)opts->retention_check_ms,
                       (uint64_t)opts->retention_check_ms);
    if (opts->sync_policy == DL_SYNC_INTERVAL && opts->sync_interval_ms > 0)
        uv_timer_start(&b->interval, on_interval, (uint64_t)opts->sync_interval_ms,
                       (uint64_t)opts->sync_interval_ms);
    *out = b;
    return 0;
}

int dl_broker_port(const dl_broker_t *b)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);
    if (uv_tcp_getsockname(&b->listener, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    return addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

void dl_broker_produce(dl_broker_t *b, dl_partition_t *const *partitions,
                       const uint8_t *const *batches, const size_t *lens, size_t n,
                       void (*done)(void *ctx, int rv, const int64_t *base_offsets), void *ctx)
{
    local_t *x = calloc(1, sizeof(*x) + (n + 1) * sizeof(int64_t));
    if (x == NULL) {
        done(ctx, -ENOMEM, NULL);
        return;
    }
    x->done = done;
    x->ctx = ctx;
    x->n = n;
    for (size_t i = 0; i < n; i++)
        x->base_offsets[i] = -1;
    size_t stored = 0;
    for (size_t i = 0; i < n && x->rv == 0; i++) {
        uint8_t *copy = malloc(lens[i]);
        if (copy == NULL) {
            x->rv = -ENOMEM;
            break;
        }
        memcpy(copy, batches[i], lens[i]);
        x->rv = dl_partition_append(partitions[i], copy, lens[i], &x->base_offsets[i]);
        free(copy);
        if (x->rv == 0 && dl_partition_set_add(&b->dirty, partitions[i]) != 0)
            x->rv = -ENOMEM;
        if (x->rv == 0) {
            stored++;
            dl_kbatch_t parsed;
            if (dl_kbatch_parse(batches[i], lens[i], 0, &parsed) == DL_KBATCH_OK)
                b->ctx.produced_records += (uint64_t)parsed.records_count;
            b->ctx.produced_bytes += lens[i];
        }
    }
    if (stored > 0 && b->opts.sync_policy != DL_SYNC_BATCH)
        wake_fetches(b);
    if (stored == 0 || b->opts.sync_policy != DL_SYNC_BATCH || b->stopping) {
        if (stored > 0 && b->opts.sync_policy == DL_SYNC_BATCH) /* stopping: synced at stop */
            maybe_start_sync(b);
        done(ctx, x->rv, x->base_offsets);
        free(x);
        return;
    }
    x->sync_round = b->started_round + 1;
    x->next = b->locals;
    b->locals = x;
    maybe_start_sync(b);
}

dl_groups_t *dl_broker_groups(dl_broker_t *b)
{
    return b->groups;
}

void dl_broker_stop(dl_broker_t *b, void (*done)(void *ctx), void *ctx)
{
    b->stopping = 1;
    b->done = done;
    b->done_ctx = ctx;
    while (b->conns != NULL)
        close_conn(b->conns, NULL);
    uv_close((uv_handle_t *)&b->listener, on_broker_handle_closed);
    uv_close((uv_handle_t *)&b->interval, on_broker_handle_closed);
    uv_close((uv_handle_t *)&b->groups_timer, on_broker_handle_closed);
    uv_close((uv_handle_t *)&b->resume_idle, on_broker_handle_closed);
    uv_close((uv_handle_t *)&b->retention, on_broker_handle_closed);
    drop_compaction(b); /* a pass cut short is simply done again */
    uv_close((uv_handle_t *)&b->compact_idle, on_broker_handle_closed);
}
