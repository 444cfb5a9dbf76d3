/*
 * An in-memory cluster for the replication core's scenario tests: messages in a queue, a "disk"
 * per node that persists on demand, links that can be cut. Included by each test file (static
 * functions; a test file uses what it needs).
 */
#ifndef DDIALAB_TEST_RAFT_CLUSTER_H
#define DDIALAB_TEST_RAFT_CLUSTER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ddialab/raft.h"

#define MAX_NODES 5
#define MAX_LOG   4096

struct stored {
    uint64_t term;
    uint8_t type;
    char data[96];
    uint32_t len;
};

struct node {
    dl_raft_t *r;
    uint64_t id;
    dl_raft_hardstate_t hs;
    struct stored log[MAX_LOG + 1]; /* log[i] is index i */
    uint64_t last;
    uint64_t applied;
    int up;
    int auto_persist;
    uint64_t discarded;
    uint64_t discarded_applied;
    uint64_t rebuilt;               /* times the state machine was rebuilt from the log */
    dl_raft_read_state_t reads[16]; /* read states answered to this node, in order */
    size_t n_reads;
    /* State machine: the applied entries' payloads, concatenated; a snapshot is a copy. */
    char sm[8192];
    size_t sm_len;
    char snap[8192];
    size_t snap_len;
    uint64_t snap_index, snap_term;
    char rcv[8192]; /* an incoming snapshot */
    size_t rcv_len;
    uint64_t chunks_received;
    uint64_t installs;
    uint64_t files_made;
};

struct queued {
    dl_raft_msg_t m;
    dl_raft_entry_t entries[64];
    struct stored payload[64];
    char chunk[64];
};

struct cluster {
    struct node nodes[MAX_NODES];
    size_t n;
    size_t quorum;
    int elections;
    int cut[MAX_NODES + 1][MAX_NODES + 1];
    struct queued *queue;
    size_t qlen, qcap;
    uint64_t now;
    /* Drops the SNAPSHOT chunk at this offset once (0 = none; offset + 1). */
    uint64_t drop_chunk_at;
};

static inline struct node *node_of(struct cluster *c, uint64_t id)
{
    return &c->nodes[id - 1];
}

static inline void handle(struct cluster *c, struct node *nd, const dl_raft_update_t *u);

static inline void apply_to(struct node *nd, uint64_t upto)
{
    for (uint64_t i = nd->applied + 1; i <= upto; i++) {
        const struct stored *s = &nd->log[i];
        assert_true(nd->sm_len + s->len + 1 <= sizeof(nd->sm));
        memcpy(nd->sm + nd->sm_len, s->data, s->len);
        nd->sm_len += s->len;
        nd->sm[nd->sm_len++] = ';';
    }
    nd->applied = upto;
}

/* Writes a snapshot file of the state machine at its applied index. */
static inline void make_file(struct node *nd)
{
    memcpy(nd->snap, nd->sm, nd->sm_len);
    nd->snap_len = nd->sm_len;
    nd->snap_index = nd->applied;
    nd->snap_term = nd->log[nd->applied].term;
    nd->files_made++;
    assert_int_equal(dl_raft_snapshot_taken(nd->r, nd->applied, nd->snap_len), 0);
}

/* Compacts the log up to the applied index (the state machine counts as durable). */
static inline void compact(struct cluster *c, uint64_t id)
{
    struct node *nd = &c->nodes[id - 1];
    assert_int_equal(dl_raft_compact(nd->r, nd->applied + 1), nd->applied + 1);
}

/* Snapshot file and compaction at once. */
static inline void take_snapshot(struct cluster *c, uint64_t id)
{
    make_file(&c->nodes[id - 1]);
    compact(c, id);
}

/* A complete incoming snapshot: installed as raft.h prescribes. */
static inline void install(struct cluster *c, struct node *nd, const dl_raft_snapshot_chunk_t *k)
{
    assert_int_equal(nd->rcv_len, k->size);
    memcpy(nd->snap, nd->rcv, nd->rcv_len);
    memcpy(nd->sm, nd->rcv, nd->rcv_len);
    nd->snap_len = nd->sm_len = nd->rcv_len;
    nd->snap_index = k->index;
    nd->snap_term = k->term;
    if (!(dl_raft_term_at(nd->r, k->index) == k->term && k->index <= nd->last))
        nd->last = k->index;
    nd->log[k->index].term = k->term;
    nd->applied = k->index;
    nd->installs++;
    dl_raft_update_t u;
    dl_raft_snapshot_installed(nd->r, NULL, c->now, &u);
    handle(c, nd, &u);
}

static inline void persist_all(struct cluster *c, struct node *nd)
{
    if (nd->auto_persist && nd->last > dl_raft_persisted_index(nd->r)) {
        dl_raft_update_t u;
        dl_raft_persisted(nd->r, nd->last, c->now, &u);
        handle(c, nd, &u);
    }
}

/* Carries out an update the way the kv driver does, in the documented order. */
static inline void handle(struct cluster *c, struct node *nd, const dl_raft_update_t *u)
{
    if (u->hardstate_changed)
        nd->hs = u->hardstate;
    if (u->truncate_from) {
        assert_true(u->truncate_from <= nd->last);
        nd->last = u->truncate_from - 1;
        nd->discarded += u->discarded;
        nd->discarded_applied += u->discarded_applied;
        if (u->reset_state_machine) {
            memcpy(nd->sm, nd->snap, nd->snap_len);
            nd->sm_len = nd->snap_len;
            nd->applied = nd->snap_index;
            nd->rebuilt++;
        }
    }
    if (u->reset_all) {
        nd->last = nd->applied = nd->sm_len = nd->snap_len = 0;
        nd->snap_index = nd->snap_term = 0;
        nd->discarded += u->discarded;
        nd->discarded_applied += u->discarded_applied;
        nd->rebuilt++;
    }
    for (size_t i = 0; i < u->n_entries; i++) {
        const dl_raft_entry_t *e = &u->entries[i];
        assert_int_equal(e->index, nd->last + 1);
        struct stored *s = &nd->log[e->index];
        s->term = e->term;
        s->type = e->type;
        s->len = e->len < sizeof(s->data) ? e->len : sizeof(s->data);
        if (e->len)
            memcpy(s->data, e->data, s->len);
        nd->last = e->index;
    }
    for (size_t i = 0; i < u->n_msgs; i++) {
        const dl_raft_msg_t *m = &u->msgs[i];
        if (c->qlen == c->qcap) {
            c->qcap = c->qcap ? c->qcap * 2 : 64;
            c->queue = realloc(c->queue, c->qcap * sizeof(*c->queue));
        }
        struct queued *q = &c->queue[c->qlen++];
        q->m = *m;
        assert_true(m->n_entries <= 64);
        for (uint32_t k = 0; k < m->n_entries; k++) {
            q->entries[k] = m->entries[k];
            /* The driver fills payloads from the sender's log. */
            q->payload[k] = nd->log[m->entries[k].index];
            q->entries[k].data = q->payload[k].data;
            q->entries[k].len = q->payload[k].len;
            assert_int_equal(q->payload[k].term, m->entries[k].term);
        }
        q->m.entries = m->n_entries ? q->entries : NULL;
        if (m->type == DL_RAFT_MSG_SNAPSHOT) {
            /* The driver reads the chunk from the snapshot it keeps. */
            assert_int_equal(m->snap_index, nd->snap_index);
            assert_int_equal(m->snap_size, nd->snap_len);
            assert_true(m->data_len <= sizeof(q->chunk));
            memcpy(q->chunk, nd->snap + m->snap_offset, m->data_len);
            q->m.data = q->chunk;
        }
    }
    for (size_t i = 0; i < u->n_read_states && nd->n_reads < 16; i++)
        nd->reads[nd->n_reads++] = u->read_states[i];
    if (u->apply_to > nd->applied) {
        apply_to(nd, u->apply_to);
        dl_raft_applied(nd->r, nd->applied);
    }
    persist_all(c, nd);
    if (u->snapshot_needed &&
        !(nd->snap_len > 0 && nd->snap_index + 1 >= dl_raft_first_index(nd->r)))
        make_file(nd); /* as the driver does when a follower needs a snapshot */
    if (u->chunk) {
        const dl_raft_snapshot_chunk_t *k = u->chunk;
        if (k->offset == 0)
            nd->rcv_len = 0;
        assert_int_equal(k->offset, nd->rcv_len);
        memcpy(nd->rcv + k->offset, k->data, k->len);
        nd->rcv_len += k->len;
        nd->chunks_received++;
        if (k->last)
            install(c, nd, k);
    }
}

static inline void start_node(struct cluster *c, uint64_t id, uint64_t persisted, uint64_t applied)
{
    struct node *nd = node_of(c, id);
    uint64_t ids[MAX_NODES];
    for (size_t i = 0; i < c->n; i++)
        ids[i] = i + 1;
    dl_raft_config_t cfg = {.id = id,
                            .nodes = ids,
                            .n_nodes = c->n,
                            .commit_quorum = c->quorum,
                            .static_leader = 1,
                            .heartbeat_ms = 100,
                            .max_inflight = 4,
                            .max_msg_bytes = 32,
                            .elections = c->elections,
                            .election_timeout_ms = 1000,
                            .seed = 0};
    assert_int_equal(dl_raft_new(&cfg, &nd->hs, nd->snap_index + 1, &nd->r), 0);
    if (nd->snap_index > 0)
        assert_int_equal(
            dl_raft_restore_snapshot(nd->r, nd->snap_index, nd->snap_term, nd->snap_len, NULL), 0);
    for (uint64_t i = nd->snap_index + 1; i <= nd->last; i++)
        assert_int_equal(dl_raft_restore_entry(nd->r, nd->log[i].term, nd->log[i].type,
                                               nd->log[i].data, nd->log[i].len),
                         0);
    dl_raft_update_t u;
    dl_raft_start(nd->r, persisted, applied, c->now, &u);
    nd->up = 1;
    handle(c, nd, &u);
}

static inline struct cluster *new_cluster_with(size_t n, size_t quorum, int elections)
{
    struct cluster *c = calloc(1, sizeof(*c));
    c->n = n;
    c->quorum = quorum;
    c->elections = elections;
    for (size_t i = 0; i < n; i++) {
        c->nodes[i].id = i + 1;
        c->nodes[i].auto_persist = 1;
    }
    for (size_t i = 0; i < n; i++)
        start_node(c, i + 1, 0, 0);
    return c;
}

static inline struct cluster *new_cluster(size_t n, size_t quorum)
{
    return new_cluster_with(n, quorum, 0);
}

static inline void free_cluster(struct cluster *c)
{
    for (size_t i = 0; i < c->n; i++)
        dl_raft_free(c->nodes[i].r);
    free(c->queue);
    free(c);
}

/* Delivers queued messages (dropping those to down nodes or over cut links) until quiet. */
static inline void deliver(struct cluster *c)
{
    for (int rounds = 0; c->qlen > 0; rounds++) {
        assert_true(rounds < 100000);
        struct queued q = c->queue[0];
        memmove(c->queue, c->queue + 1, (c->qlen - 1) * sizeof(*c->queue));
        c->qlen--;
        q.m.entries = q.m.n_entries ? q.entries : NULL;
        for (uint32_t k = 0; k < q.m.n_entries; k++)
            q.entries[k].data = q.payload[k].data;
        if (q.m.type == DL_RAFT_MSG_SNAPSHOT) {
            q.m.data = q.chunk;
            if (c->drop_chunk_at == q.m.snap_offset + 1) {
                c->drop_chunk_at = 0;
                continue;
            }
        }
        struct node *to = node_of(c, q.m.to);
        if (!to->up || !node_of(c, q.m.from)->up || c->cut[q.m.from][q.m.to])
            continue;
        dl_raft_update_t u;
        dl_raft_step(to->r, &q.m, c->now, &u);
        handle(c, to, &u);
    }
}

/* One "loop iteration" on every node: flush, then deliver. */
static inline void settle(struct cluster *c)
{
    for (int i = 0; i < 20; i++) {
        for (size_t k = 0; k < c->n; k++) {
            struct node *nd = &c->nodes[k];
            if (!nd->up)
                continue;
            dl_raft_update_t u;
            dl_raft_flush(nd->r, c->now, &u);
            handle(c, nd, &u);
        }
        deliver(c);
    }
}

static inline void tick(struct cluster *c, uint64_t ms)
{
    c->now += ms;
    for (size_t k = 0; k < c->n; k++) {
        struct node *nd = &c->nodes[k];
        if (!nd->up)
            continue;
        dl_raft_update_t u;
        dl_raft_tick(nd->r, c->now, &u);
        handle(c, nd, &u);
    }
    settle(c);
}

static inline uint64_t propose(struct cluster *c, uint64_t id, const char *text)
{
    struct node *nd = node_of(c, id);
    dl_raft_entry_t e = {.type = DL_RAFT_ENTRY_NORMAL, .data = text, .len = (uint32_t)strlen(text)};
    dl_raft_update_t u;
    uint64_t index = 0;
    assert_int_equal(dl_raft_propose(nd->r, &e, 1, &index, &u), 0);
    handle(c, nd, &u);
    return index;
}

static inline void set_link(struct cluster *c, uint64_t a, uint64_t b, int cut)
{
    c->cut[a][b] = c->cut[b][a] = cut;
    if (!cut) {
        dl_raft_peer_down(node_of(c, a)->r, b);
        dl_raft_peer_down(node_of(c, b)->r, a);
    }
}

/* Cuts (cut = 1) or heals every link between node id and the others. */
static inline void isolate(struct cluster *c, uint64_t id, int cut)
{
    for (uint64_t other = 1; other <= c->n; other++)
        if (other != id)
            set_link(c, id, other, cut);
}

static inline void assert_same_log(struct node *a, struct node *b)
{
    assert_int_equal(a->last, b->last);
    for (uint64_t i = 1; i <= a->last; i++) {
        assert_int_equal(a->log[i].term, b->log[i].term);
        assert_int_equal(a->log[i].len, b->log[i].len);
        assert_memory_equal(a->log[i].data, b->log[i].data, a->log[i].len);
    }
}

#endif
