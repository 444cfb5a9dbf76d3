/*
 * Snapshots and log compaction: what the core remembers of the driver's snapshots, sending a
 * snapshot in chunks to a follower that needs compacted entries, and receiving one.
 *
 * A transfer is a stream of SNAPSHOT chunks of at most max_msg_bytes, no more than
 * SNAP_WINDOW_CHUNKS unacknowledged, each acknowledged by a SNAPSHOT_RESP carrying the bytes
 * received so far. A follower takes chunks only in order: a chunk at another offset is refused
 * with the offset it expects, and the leader goes back there. The last chunk is acknowledged
 * only once the driver has installed the snapshot, by an ordinary APPEND_RESP whose match is
 * the snapshot's index; from there on the follower is streamed entries again.
 */
#include <errno.h>
#include <string.h>

#include "ddialab/raft.h"
#include "raft/raft_internal.h"

#define SNAP_WINDOW_CHUNKS 4

int dl_raft_snapshot_taken(dl_raft_t *r, uint64_t index, uint64_t size)
{
    if (index == 0 || size == 0 || index > r->applied)
        return -EINVAL;
    uint64_t term = dl_raft_term_at(r, index);
    if (term == 0)
        return -EINVAL;
    if (index <= r->snap_index && r->snap_size > 0)
        return 0; /* an older one finished late: keep the newer */
    r->snap_index = index;
    r->snap_term = term;
    r->snap_size = size;
    return 0;
}

uint64_t dl_raft_compact(dl_raft_t *r, uint64_t before)
{
    if (before > r->applied + 1)
        before = r->applied + 1;
    if (before <= r->first_index)
        return r->first_index;
    uint64_t drop = before - r->first_index;
    if (drop > r->n_meta)
        drop = r->n_meta;
    r->prev_term = dl_raft_term_at(r, r->first_index + drop - 1);
    memmove(r->meta, r->meta + drop, (r->n_meta - drop) * sizeof(*r->meta));
    r->n_meta -= drop;
    r->first_index += drop;
    return r->first_index;
}

int dl_raft_restore_snapshot(dl_raft_t *r, uint64_t index, uint64_t term, uint64_t size,
                             const dl_raft_membership_t *membership)
{
    if (r->started || r->n_meta != 0 || index == 0 || term == 0 || r->first_index != index + 1)
        return -EINVAL;
    /* size 0: the state machine itself holds the state up to index, and there is no snapshot
     * file yet (one is made when a follower needs it). */
    if (membership != NULL)
        dl__raft_config_reset(r, index, membership, NULL);
    r->prev_term = term;
    r->snap_index = index;
    r->snap_term = term;
    r->snap_size = size;
    return 0;
}

uint64_t dl_raft_snapshot_index(const dl_raft_t *r)
{
    return r->snap_index;
}

/* ---- Leader -------------------------------------------------------------------------------- */

/* A snapshot file a follower can continue from: it reaches the log's first index. */
static int file_usable(const dl_raft_t *r)
{
    return r->snap_size > 0 && r->snap_index + 1 >= r->first_index;
}

void dl__raft_start_snapshot(dl_raft_t *r, struct progress *p)
{
    p->snapshot = 1;
    p->probing = 0;
    p->probe_sent = 0;
    p->inflight_count = 0;
    p->inflight_head = 0;
    /* Without a usable file the transfer waits (snap_index 0) and the update asks the driver
     * for one (snapshot_needed). */
    int usable = file_usable(r);
    p->snap_index = usable ? r->snap_index : 0;
    p->snap_term = usable ? r->snap_term : 0;
    p->snap_size = usable ? r->snap_size : 0;
    p->snap_sent = 0;
    p->snap_acked = 0;
    p->snap_acked_at_heartbeat = 0;
    p->snap_resent_from = 0;
}

void dl__raft_send_snapshot_chunks(dl_raft_t *r, struct progress *p, uint64_t now_ms)
{
    if (p->snap_index == 0) {
        if (!file_usable(r))
            return; /* waiting for the driver's snapshot file */
        dl__raft_start_snapshot(r, p);
    }
    uint64_t chunk = r->config.max_msg_bytes;
    uint64_t window = chunk * SNAP_WINDOW_CHUNKS;
    while (p->snap_sent < p->snap_size && p->snap_sent - p->snap_acked < window) {
        dl_raft_msg_t *m = dl__raft_new_msg(r, DL_RAFT_MSG_SNAPSHOT, p->id);
        if (m == NULL)
            return;
        uint64_t left = p->snap_size - p->snap_sent;
        m->snap_index = p->snap_index;
        m->snap_term = p->snap_term;
        m->snap_size = p->snap_size;
        m->snap_offset = p->snap_sent;
        m->data_len = (uint32_t)(left < chunk ? left : chunk);
        m->commit = r->commit;
        p->snap_sent += m->data_len;
        p->last_sent_ms = now_ms;
    }
}

void dl__raft_snapshot_heartbeat(dl_raft_t *r, struct progress *p, uint64_t now_ms)
{
    int stalled = p->snap_sent > 0 && p->snap_acked == p->snap_acked_at_heartbeat;
    p->stalled_heartbeats = stalled ? p->stalled_heartbeats + 1 : 0;
    p->snap_acked_at_heartbeat = p->snap_acked;
    if (p->stalled_heartbeats >= 2) {
        p->stalled_heartbeats = 0;
        /* Nothing arrived: start over, with the latest snapshot. Else resend from what
         * arrived; if that is the last chunk and only the installation's answer was lost, a
         * follower that installed it answers the chunk with its match at once. */
        if (p->snap_acked == 0)
            dl__raft_start_snapshot(r, p);
        else
            p->snap_sent = p->snap_acked;
        p->snap_resent_from = 0;
        dl__raft_send_snapshot_chunks(r, p, now_ms);
    }
    /* Keep the follower from campaigning while the snapshot travels. */
    dl__raft_send_append(r, p, now_ms, 0);
}

/*
 * Acknowledgements carry the bytes the follower holds. A refusal names the offset it expects
 * after a gap: the leader goes back there once, not once for every chunk of the window that
 * arrives after the gap.
 */
void dl__raft_handle_snapshot_resp(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms)
{
    if (r->role != DL_RAFT_LEADER)
        return;
    struct progress *p = dl__raft_find_peer(r, m->from);
    if (p == NULL || !p->snapshot || m->snap_index != p->snap_index ||
        m->snap_offset > p->snap_size)
        return;
    p->last_ack_ms = now_ms;
    p->last_index = m->last_index;
    uint64_t o = m->snap_offset;
    if (!m->reject) {
        if (o <= p->snap_acked)
            return; /* old news */
        p->snap_acked = o;
        if (p->snap_sent < o)
            p->snap_sent = o;
        p->snap_resent_from = 0;
    } else if (p->snap_resent_from != o + 1 || o >= p->snap_sent) {
        /* A gap at o: a lost chunk, or it restarted and lost what it had. Believed even when
         * below what it acknowledged before: if the refusal is stale, the chunks sent again
         * are answered with where it really stands, and we move on from there. */
        p->snap_acked = o;
        p->snap_sent = o;
        p->snap_resent_from = o + 1;
    } else {
        return; /* already going back to o */
    }
    dl__raft_send_snapshot_chunks(r, p, now_ms);
}

/* ---- Follower ------------------------------------------------------------------------------ */

static void snapshot_resp(dl_raft_t *r, const dl_raft_msg_t *m, int reject, uint64_t offset)
{
    dl_raft_msg_t *resp = dl__raft_new_msg(r, DL_RAFT_MSG_SNAPSHOT_RESP, m->from);
    if (resp == NULL)
        return;
    resp->reject = (uint8_t)reject;
    resp->snap_index = m->snap_index;
    resp->snap_offset = offset;
}

void dl__raft_handle_snapshot(dl_raft_t *r, const dl_raft_msg_t *m, uint64_t now_ms,
                              dl_raft_update_t *u)
{
    if (dl__raft_accept_leader(r, m, now_ms, u) != 0)
        return;
    if (m->snap_index == 0 || m->snap_term == 0 || m->snap_term > m->term || m->snap_size == 0 ||
        m->snap_offset > m->snap_size || m->data_len > m->snap_size - m->snap_offset ||
        (m->data_len > 0 && m->data == NULL))
        return; /* malformed */
    if (r->install_pending)
        return; /* the driver is installing the previous one (it answers when done) */
    if (m->snap_index <= r->commit) {
        /* We hold that much already: say how far our log is known to match and is durable,
         * and the leader streams from there. That is the snapshot's index if we hold its entry,
         * else our commit index where a majority commits (committed entries are the same
         * everywhere). */
        uint64_t t = dl_raft_term_at(r, m->snap_index);
        int majority = r->config.commit_quorum >= dl__raft_quorum(r);
        if (t == m->snap_term || (t == 0 && majority)) {
            uint64_t match = t == m->snap_term ? m->snap_index : r->commit;
            dl__raft_append_resp(r, m->from, 0, match < r->persisted ? match : r->persisted, 0);
            r->rcv_active = 0;
            return;
        }
        /* Entries we applied are not the leader's (a quorum smaller than a majority committed
         * them): start again from the leader's snapshot. */
        dl__raft_reset_all(r, m->snap_index, u);
    }
    int same = r->rcv_active && r->rcv_index == m->snap_index && r->rcv_term == m->snap_term &&
               r->rcv_size == m->snap_size;
    if (m->snap_offset == 0 && !same) {
        r->rcv_active = 1;
        r->rcv_index = m->snap_index;
        r->rcv_term = m->snap_term;
        r->rcv_size = m->snap_size;
        r->rcv_offset = 0;
    } else if (same && m->snap_offset < r->rcv_offset) {
        snapshot_resp(r, m, 0, r->rcv_offset); /* a duplicate: we have it */
        return;
    } else if (!same || m->snap_offset != r->rcv_offset) {
        /* A gap (a chunk was lost), or not the snapshot we were receiving (we restarted, or
         * the leader changed): say where to resume. */
        snapshot_resp(r, m, 1, same ? r->rcv_offset : 0);
        return;
    }
    dl_raft_snapshot_chunk_t *c = &r->out_chunk;
    c->index = m->snap_index;
    c->term = m->snap_term;
    c->size = m->snap_size;
    c->offset = m->snap_offset;
    c->data = m->data;
    c->len = m->data_len;
    r->rcv_offset += m->data_len;
    if (r->rcv_offset == r->rcv_size) {
        c->last = 1;
        r->rcv_active = 0;
        r->install_pending = 1;
    } else {
        snapshot_resp(r, m, 0, r->rcv_offset);
    }
}

void dl_raft_snapshot_installed(dl_raft_t *r, const dl_raft_membership_t *membership,
                                uint64_t now_ms, dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    r->now_ms = now_ms;
    if (!r->install_pending) {
        dl__raft_finish(r, u);
        return;
    }
    r->install_pending = 0;
    uint64_t index = r->rcv_index, term = r->rcv_term;
    uint64_t last = dl_raft_last_index(r);
    if (index >= r->first_index && index <= last && dl_raft_term_at(r, index) == term) {
        /* Our log goes on past the snapshot and agrees with it there: keep what follows. */
        uint64_t drop = index + 1 - r->first_index;
        memmove(r->meta, r->meta + drop, (r->n_meta - drop) * sizeof(*r->meta));
        r->n_meta -= drop;
        if (r->persisted < index)
            r->persisted = index;
    } else {
        u->discarded += last > index ? last - index : 0; /* never committed: not the leader's */
        r->n_meta = 0;
        r->persisted = index;
        dl__raft_config_truncated(r, index + 1, u);
    }
    r->first_index = index + 1;
    r->prev_term = term;
    r->snap_index = index;
    r->snap_term = term;
    r->snap_size = r->rcv_size;
    if (r->commit < index)
        r->commit = index;
    r->applied = index;
    r->matched_upto = index;
    r->matched_term = r->hs.term;
    r->ack_pending = 0;
    dl__raft_config_reset(r, index, membership, u);
    if (r->leader != 0)
        dl__raft_append_resp(r, r->leader, 0, index, 0);
    dl__raft_finish(r, u);
}

void dl__raft_reset_all(dl_raft_t *r, uint64_t conflict, dl_raft_update_t *u)
{
    uint64_t last = dl_raft_last_index(r);
    u->reset_all = 1;
    u->reset_state_machine = 1;
    u->discarded += last >= conflict ? last - conflict + 1 : 0;
    /* Entries compacted away have no type any more: count them all as client writes. */
    if (r->applied >= conflict)
        u->discarded_applied += r->applied - conflict + 1;
    r->n_meta = 0;
    r->first_index = 1;
    r->prev_term = 0;
    r->snap_index = r->snap_term = r->snap_size = 0;
    r->commit = r->applied = r->persisted = 0;
    r->matched_upto = 0;
    r->ack_pending = 0;
    r->rcv_active = 0;
    r->n_cfgs = 1;
    dl__raft_config_reset(r, 0, &r->initial, u);
}
