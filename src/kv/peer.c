/* The peer transport: outbound connections with HELLO and backoff, inbound frame decoding. */
#include "kv/peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "ddialab/logging.h"

#define BACKOFF_MIN_MS    50
#define BACKOFF_MAX_MS    1000
#define STABLE_MS         1000 /* a connection up this long resets the backoff */
#define MAX_PENDING_BYTES (256u << 20)
#define READ_CHUNK        (64 * 1024)

struct outbound;

/* One TCP connection attempt; freed in its close callback. */
struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct outbound *ob;
};

struct outbound {
    dl_peer_net_t *net;
    dl_peer_addr_t addr;
    struct conn *conn; /* NULL while waiting to retry */
    int up;
    uint64_t up_since_ms;
    uv_timer_t retry;
    uint64_t backoff_ms;
    dl_buf_t pending; /* frames queued this iteration */
    dl_buf_t writing; /* frames handed to uv_write */
    uv_write_t write_req;
    int write_busy;
    char http_addr[128];
    int logged_down;
    int logged_flap;
    int quick_closes; /* connections in a row that closed before STABLE_MS */
};

struct inbound {
    dl_peer_net_t *net;
    uv_tcp_t tcp;
    dl_buf_t rbuf;
    uint64_t peer_id; /* 0 until its HELLO arrived */
    struct inbound *next;
    struct inbound *prev;
    int closing;
};

struct dl_peer_net_s {
    uv_loop_t *loop;
    uint64_t self_id;
    char cluster_id[64];
    char http_addr[128];
    dl_peer_callbacks_t cb;
    uv_tcp_t listener;
    struct outbound *out;
    size_t n_out;
    struct inbound *inbound;
    uint64_t rejected;
    int stopping;
    int open_handles;
};

static struct outbound *find_out(const dl_peer_net_t *net, uint64_t id)
{
    for (size_t i = 0; i < net->n_out; i++)
        if (net->out[i].addr.id == id)
            return &net->out[i];
    return NULL;
}

static void maybe_free(dl_peer_net_t *net)
{
    if (net->stopping && net->open_handles == 0) {
        for (size_t i = 0; i < net->n_out; i++) {
            dl_buf_free(&net->out[i].pending);
            dl_buf_free(&net->out[i].writing);
        }
        free(net->out);
        free(net);
    }
}

/* One of net's handles finished closing. */
static void release(dl_peer_net_t *net)
{
    net->open_handles--;
    maybe_free(net);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void dial(struct outbound *ob);

static void on_retry_closed(uv_handle_t *h)
{
    struct outbound *ob = h->data;
    release(ob->net);
}

static void on_retry(uv_timer_t *t)
{
    dial(t->data);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct outbound *ob = c->ob;
    dl_peer_net_t *net = ob->net;
    free(c);
    net->open_handles--;
    if (net->stopping) {
        maybe_free(net);
        return;
    }
    uv_timer_start(&ob->retry, on_retry, ob->backoff_ms, 0);
    ob->backoff_ms = ob->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ob->backoff_ms * 2;
}

/* Tears down the outbound connection; a retry is scheduled once the handle is closed. */
static void drop_outbound(struct outbound *ob, const char *why)
{
    if (ob->conn == NULL)
        return;
    struct conn *c = ob->conn;
    ob->conn = NULL;
    int was_up = ob->up;
    ob->up = 0;
    dl_buf_free(&ob->pending); /* it may have grown large for a slow peer */
    /* A peer that accepts and at once closes (wrong cluster, not a member) must not be redialed
     * every 50 ms, nor fill the log: the backoff only resets once a connection stayed up. */
    int stable = was_up && uv_now(ob->net->loop) - ob->up_since_ms >= STABLE_MS;
    if (stable) {
        ob->backoff_ms = BACKOFF_MIN_MS;
        ob->logged_flap = 0;
        ob->quick_closes = 0;
    } else if (was_up) {
        ob->quick_closes++;
    }
    if (ob->quick_closes >= 3) {
        if (!ob->logged_flap)
            DL_WARN("peer %llu at %s:%d closes our connections at once (%s): is it a member of "
                    "this cluster? retrying with backoff",
                    (unsigned long long)ob->addr.id, ob->addr.host, ob->addr.port, why);
        ob->logged_flap = 1;
    } else if (!ob->logged_down) {
        DL_WARN("peer %llu at %s:%d unreachable: %s", (unsigned long long)ob->addr.id,
                ob->addr.host, ob->addr.port, why);
        ob->logged_down = 1;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (was_up && ob->net->cb.on_peer_state)
        ob->net->cb.on_peer_state(ob->net->cb.ctx, ob->addr.id, 0);
}

static void on_write(uv_write_t *req, int status)
{
    struct outbound *ob = req->data;
    ob->write_busy = 0;
    ob->writing.len = 0;
    if (status < 0) {
        drop_outbound(ob, uv_strerror(status));
        return;
    }
    if (ob->up && ob->pending.len > 0)
        dl_peer_net_flush(ob->net);
}

static void write_pending(struct outbound *ob)
{
    if (!ob->up || ob->write_busy || ob->pending.len == 0)
        return;
    dl_buf_t t = ob->writing;
    ob->writing = ob->pending;
    ob->pending = t;
    ob->pending.len = 0;
    uv_buf_t b = uv_buf_init((char *)ob->writing.data, (unsigned)ob->writing.len);
    ob->write_req.data = ob;
    int rc = uv_write(&ob->write_req, (uv_stream_t *)&ob->conn->tcp, &b, 1, on_write);
    if (rc < 0) {
        ob->writing.len = 0;
        drop_outbound(ob, uv_strerror(rc));
        return;
    }
    ob->write_busy = 1;
}

/* The outbound connection never reads, but a read tells us when the peer closes it. */
static void on_out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[256];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void on_out_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread < 0 && c->ob->conn == c)
        drop_outbound(c->ob, nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct outbound *ob = c->ob;
    if (ob->conn != c)
        return;
    if (status < 0) {
        drop_outbound(ob, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    dl_wire_hello_t hello = {.node_id = ob->net->self_id};
    snprintf(hello.cluster_id, sizeof(hello.cluster_id), "%s", ob->net->cluster_id);
    snprintf(hello.http_addr, sizeof(hello.http_addr), "%s", ob->net->http_addr);
    /* The HELLO goes first, ahead of anything queued while connecting. */
    ob->pending.len = 0;
    if (dl_wire_encode_hello(&ob->pending, &hello) != 0) {
        drop_outbound(ob, "out of memory");
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_out_alloc, on_out_read);
    ob->up = 1;
    ob->up_since_ms = uv_now(ob->net->loop);
    if (ob->logged_down)
        DL_INFO("peer %llu at %s:%d connected", (unsigned long long)ob->addr.id, ob->addr.host,
                ob->addr.port);
    ob->logged_down = 0;
    write_pending(ob);
    if (ob->net->cb.on_peer_state)
        ob->net->cb.on_peer_state(ob->net->cb.ctx, ob->addr.id, 1);
}

static void dial(struct outbound *ob)
{
    dl_peer_net_t *net = ob->net;
    if (net->stopping || ob->conn != NULL)
        return;
    struct sockaddr_storage sa;
    if (uv_ip4_addr(ob->addr.host, ob->addr.port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(ob->addr.host, ob->addr.port, (struct sockaddr_in6 *)&sa) != 0) {
        DL_ERROR("peer %llu: bad address %s:%d", (unsigned long long)ob->addr.id, ob->addr.host,
                 ob->addr.port);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_timer_start(&ob->retry, on_retry, BACKOFF_MAX_MS, 0);
        return;
    }
    c->ob = ob;
    uv_tcp_init(net->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    net->open_handles++;
    ob->conn = c;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (rc < 0)
        drop_outbound(ob, uv_strerror(rc));
}

static void on_inbound_closed(uv_handle_t *h)
{
    struct inbound *in = h->data;
    dl_peer_net_t *net = in->net;
    if (in->prev)
        in->prev->next = in->next;
    else
        net->inbound = in->next;
    if (in->next)
        in->next->prev = in->prev;
    dl_buf_free(&in->rbuf);
    free(in);
    net->open_handles--;
    maybe_free(net);
}

static void close_inbound(struct inbound *in, const char *why)
{
    if (in->closing)
        return;
    in->closing = 1;
    if (why != NULL) {
        in->net->rejected++;
        DL_WARN("closing peer connection (node %llu): %s", (unsigned long long)in->peer_id, why);
    }
    uv_close((uv_handle_t *)&in->tcp, on_inbound_closed);
}

static void on_in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct inbound *in = h->data;
    (void)suggested;
    if (dl_buf_reserve(&in->rbuf, READ_CHUNK) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf =
        uv_buf_init((char *)in->rbuf.data + in->rbuf.len, (unsigned)(in->rbuf.cap - in->rbuf.len));
}

/* Handles one decoded frame; returns a reason to close the connection, or NULL. */
static const char *handle_frame(struct inbound *in, dl_wire_frame_t *f)
{
    dl_peer_net_t *net = in->net;
    if (f->kind == DL_WIRE_HELLO) {
        if (in->peer_id != 0)
            return "second HELLO";
        if (strcmp(f->hello.cluster_id, net->cluster_id) != 0)
            return "HELLO from another cluster";
        struct outbound *ob = find_out(net, f->hello.node_id);
        if (ob == NULL)
            return "HELLO from a node that is not a member";
        in->peer_id = f->hello.node_id;
        snprintf(ob->http_addr, sizeof(ob->http_addr), "%s", f->hello.http_addr);
        if (ob->conn == NULL && !net->stopping) {
            /* It just dialed us, so it is up: dial it back now instead of waiting out the
             * backoff, or our messages to it (votes, entries) are dropped for up to a second. */
            uv_timer_stop(&ob->retry);
            ob->backoff_ms = BACKOFF_MIN_MS;
            dial(ob);
        }
        return NULL;
    }
    if (in->peer_id == 0)
        return "message before HELLO";
    if (f->msg.from != in->peer_id || f->msg.to != net->self_id)
        return "message with wrong sender or receiver";
    if (net->cb.on_message)
        net->cb.on_message(net->cb.ctx, &f->msg);
    return NULL;
}

static void on_in_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct inbound *in = s->data;
    (void)buf;
    if (nread < 0) {
        close_inbound(in, NULL);
        return;
    }
    in->rbuf.len += (size_t)nread;
    size_t off = 0;
    while (!in->closing && !in->net->stopping) {
        size_t frame_len;
        int rc = dl_wire_peek(in->rbuf.data + off, in->rbuf.len - off, &frame_len);
        if (rc == 1)
            break;
        dl_wire_frame_t f;
        if (rc != 0 || dl_wire_decode(in->rbuf.data + off, frame_len, &f) != 0) {
            close_inbound(in, "frame does not decode");
            return;
        }
        const char *why = handle_frame(in, &f);
        dl_wire_frame_clear(&f);
        if (why != NULL) {
            close_inbound(in, why);
            return;
        }
        off += frame_len;
    }
    if (off > 0)
        dl_buf_consume(&in->rbuf, off);
}

static void on_accept(uv_stream_t *server, int status)
{
    dl_peer_net_t *net = server->data;
    if (status < 0)
        return;
    struct inbound *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return;
    in->net = net;
    uv_tcp_init(net->loop, &in->tcp);
    in->tcp.data = in;
    net->open_handles++;
    if (uv_accept(server, (uv_stream_t *)&in->tcp) != 0) {
        in->closing = 1;
        uv_close((uv_handle_t *)&in->tcp, on_inbound_closed);
        return;
    }
    in->next = net->inbound;
    if (net->inbound)
        net->inbound->prev = in;
    net->inbound = in;
    uv_tcp_nodelay(&in->tcp, 1);
    uv_read_start((uv_stream_t *)&in->tcp, on_in_alloc, on_in_read);
}

int dl_peer_net_start(uv_loop_t *loop, const dl_peer_options_t *opts, const dl_peer_callbacks_t *cb,
                      dl_peer_net_t **out, char *err, size_t errlen)
{
    dl_peer_net_t *net = calloc(1, sizeof(*net));
    if (net == NULL)
        return -ENOMEM;
    net->loop = loop;
    net->self_id = opts->self_id;
    net->cb = *cb;
    snprintf(net->cluster_id, sizeof(net->cluster_id), "%s", opts->cluster_id);
    snprintf(net->http_addr, sizeof(net->http_addr), "%s", opts->http_addr);
    /* Fixed capacity: outbound slots hold libuv handles, which must not move. */
    net->out = calloc(DL_PEER_MAX, sizeof(struct outbound));
    if (net->out == NULL) {
        free(net);
        return -ENOMEM;
    }
    struct sockaddr_storage sa;
    if (uv_ip4_addr(opts->listen_host, opts->listen_port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(opts->listen_host, opts->listen_port, (struct sockaddr_in6 *)&sa) != 0) {
        snprintf(err, errlen, "bad peer listen address %s:%d", opts->listen_host,
                 opts->listen_port);
        free(net->out);
        free(net);
        return -EINVAL;
    }
    uv_tcp_init(loop, &net->listener);
    net->listener.data = net;
    net->open_handles++;
    int rc = uv_tcp_bind(&net->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&net->listener, 128, on_accept);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen for peers on %s:%d: %s", opts->listen_host,
                 opts->listen_port, uv_strerror(rc));
        net->stopping = 1;
        uv_close((uv_handle_t *)&net->listener, on_handle_closed);
        return rc;
    }
    for (size_t i = 0; i < opts->n_peers; i++)
        dl_peer_net_add(net, &opts->peers[i]);
    *out = net;
    return 0;
}

int dl_peer_net_add(dl_peer_net_t *net, const dl_peer_addr_t *addr)
{
    if (addr->id == net->self_id || net->stopping)
        return 0;
    struct outbound *ob = find_out(net, addr->id);
    if (ob != NULL) {
        if (strcmp(ob->addr.host, addr->host) != 0 || ob->addr.port != addr->port) {
            ob->addr = *addr; /* a member that moved: the next dial goes to the new address */
            if (ob->conn != NULL)
                drop_outbound(ob, "the member's address changed");
        }
        return 0;
    }
    if (net->n_out == DL_PEER_MAX)
        return -ENOSPC;
    ob = &net->out[net->n_out++];
    ob->net = net;
    ob->addr = *addr;
    ob->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(net->loop, &ob->retry);
    ob->retry.data = ob;
    net->open_handles++;
    dial(ob);
    return 0;
}

int dl_peer_net_send(dl_peer_net_t *net, const dl_raft_msg_t *m)
{
    struct outbound *ob = find_out(net, m->to);
    if (ob == NULL)
        return -EINVAL;
    if (!ob->up)
        return -ENOTCONN;
    if (ob->pending.len > MAX_PENDING_BYTES) {
        drop_outbound(ob, "peer is not keeping up (send queue full)");
        return -ENOBUFS;
    }
    return dl_wire_encode_msg(&ob->pending, m);
}

void dl_peer_net_flush(dl_peer_net_t *net)
{
    for (size_t i = 0; i < net->n_out; i++)
        write_pending(&net->out[i]);
}

int dl_peer_net_connected(const dl_peer_net_t *net, uint64_t id)
{
    const struct outbound *ob = find_out(net, id);
    return ob != NULL && ob->up;
}

const char *dl_peer_net_http_addr(const dl_peer_net_t *net, uint64_t id)
{
    const struct outbound *ob = find_out(net, id);
    return ob != NULL && ob->http_addr[0] ? ob->http_addr : NULL;
}

uint64_t dl_peer_net_rejected(const dl_peer_net_t *net)
{
    return net->rejected;
}

void dl_peer_net_stop(dl_peer_net_t *net)
{
    net->stopping = 1;
    uv_close((uv_handle_t *)&net->listener, on_handle_closed);
    for (size_t i = 0; i < net->n_out; i++) {
        struct outbound *ob = &net->out[i];
        uv_timer_stop(&ob->retry);
        uv_close((uv_handle_t *)&ob->retry, on_retry_closed);
        if (ob->conn != NULL) {
            struct conn *c = ob->conn;
            ob->conn = NULL;
            ob->up = 0;
            uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        }
    }
    for (struct inbound *in = net->inbound; in != NULL; in = in->next)
        if (!in->closing) {
            in->closing = 1;
            uv_close((uv_handle_t *)&in->tcp, on_inbound_closed);
        }
    maybe_free(net);
}
