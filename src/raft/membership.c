/*
 * Membership changes (thesis chapter 4): single-voter changes through configuration entries
 * that take effect when appended, learners, and the leader's progress for new members.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "ddialab/raft.h"
#include "raft/raft_internal.h"

#define CONF_VERSION 1

size_t dl_raft_membership_encode(const dl_raft_membership_t *m, const void *ctx, size_t ctx_len,
                                 void *out, size_t cap)
{
    size_t need = 2 + m->n * 9 + ctx_len;
    if (out == NULL || cap < need || m->n > DL_RAFT_MAX_MEMBERS)
        return need;
    uint8_t *p = out;
    *p++ = CONF_VERSION;
    *p++ = (uint8_t)m->n;
    for (size_t i = 0; i < m->n; i++) {
        for (int k = 0; k < 8; k++)
            *p++ = (uint8_t)(m->ids[i] >> (8 * k));
        *p++ = m->learner[i] ? 1 : 0;
    }
    if (ctx_len)
        memcpy(p, ctx, ctx_len);
    return need;
}

int dl_raft_membership_decode(const void *data, size_t len, dl_raft_membership_t *m,
                              const void **ctx, size_t *ctx_len)
{
    const uint8_t *p = data;
    if (len < 2 || p[0] != CONF_VERSION || p[1] > DL_RAFT_MAX_MEMBERS || len < 2 + p[1] * 9u)
        return DL_EPROTO;
    memset(m, 0, sizeof(*m));
    m->n = p[1];
    size_t voters = 0;
    for (size_t i = 0; i < m->n; i++) {
        const uint8_t *e = p + 2 + i * 9;
        uint64_t id = 0;
        for (int k = 0; k < 8; k++)
            id |= (uint64_t)e[k] << (8 * k);
        if (id == 0 || e[8] > 1)
            return DL_EPROTO;
        for (size_t j = 0; j < i; j++)
            if (m->ids[j] == id)
                return DL_EPROTO;
        m->ids[i] = id;
        m->learner[i] = e[8];
        voters += !e[8];
    }
    if (voters == 0)
        return DL_EPROTO;
    if (ctx) {
        *ctx = p + 2 + m->n * 9;
        *ctx_len = len - 2 - m->n * 9;
    }
    return 0;
}

size_t dl__raft_quorum(const dl_raft_t *r)
{
    return dl__raft_majority(r->n_voters);
}

int dl_raft_is_voter(const dl_raft_t *r, uint64_t id)
{
    const dl_raft_membership_t *m = &r->cfgs[r->n_cfgs - 1].m;
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id)
            return !m->learner[i];
    return 0;
}

uint64_t dl_raft_membership(const dl_raft_t *r, dl_raft_membership_t *out)
{
    if (out)
        *out = r->cfgs[r->n_cfgs - 1].m;
    return r->cfgs[r->n_cfgs - 1].index;
}

void dl__raft_apply_membership(dl_raft_t *r, const dl_raft_membership_t *m)
{
    struct progress old[DL_RAFT_MAX_MEMBERS];
    size_t n_old = r->n_peers;
    memcpy(old, r->peers, n_old * sizeof(*old));
    r->n_peers = 0;
    r->n_voters = 0;
    r->self_voter = 0;
    uint64_t last = dl_raft_last_index(r);
    for (size_t i = 0; i < m->n; i++) {
        if (!m->learner[i])
            r->n_voters++;
        if (m->ids[i] == r->config.id) {
            r->self_voter = !m->learner[i];
            continue;
        }
        struct progress *p = &r->peers[r->n_peers++];
        size_t k = 0;
        while (k < n_old && old[k].id != m->ids[i])
            k++;
        if (k < n_old) {
            *p = old[k]; /* a member that stays keeps its progress */
        } else {
            memset(p, 0, sizeof(*p));
            p->id = m->ids[i];
            p->next = last + 1;
            dl__raft_reset_to_probe(p, last);
        }
        p->learner = m->learner[i];
    }
    if (!r->quorum_fixed)
        r->config.commit_quorum = dl__raft_majority(r->n_voters ? r->n_voters : 1);
}

static int push_cfg(dl_raft_t *r, uint64_t index, const dl_raft_membership_t *m)
{
    if (dl__raft_grow((void **)&r->cfgs, &r->cap_cfgs, r->n_cfgs + 1, sizeof(*r->cfgs)))
        return -ENOMEM;
    r->cfgs[r->n_cfgs].index = index;
    r->cfgs[r->n_cfgs].m = *m;
    r->n_cfgs++;
    return 0;
}

void dl__raft_config_appended(dl_raft_t *r, uint64_t index, const void *data, uint32_t len,
                              dl_raft_update_t *u)
{
    dl_raft_membership_t m;
    if (dl_raft_membership_decode(data, len, &m, NULL, NULL) != 0)
        return; /* cannot happen: proposals are checked; a bad one changes nothing */
    if (push_cfg(r, index, &m) != 0) {
        r->oom = 1;
        return;
    }
    dl__raft_apply_membership(r, &m);
    if (u)
        u->membership_changed = 1;
}

void dl__raft_config_truncated(dl_raft_t *r, uint64_t from, dl_raft_update_t *u)
{
    size_t n = r->n_cfgs;
    while (r->n_cfgs > 1 && r->cfgs[r->n_cfgs - 1].index >= from)
        r->n_cfgs--;
    if (r->n_cfgs != n) {
        dl__raft_apply_membership(r, &r->cfgs[r->n_cfgs - 1].m);
        u->membership_changed = 1;
    }
}

void dl__raft_config_committed(dl_raft_t *r, dl_raft_update_t *u)
{
    size_t drop = 0;
    while (drop + 1 < r->n_cfgs && r->cfgs[drop + 1].index <= r->commit)
        drop++;
    if (drop > 0) {
        memmove(r->cfgs, r->cfgs + drop, (r->n_cfgs - drop) * sizeof(*r->cfgs));
        r->n_cfgs -= drop;
    }
    /* Removed (or made a learner): lead until that change commits, then step down. */
    if (r->role == DL_RAFT_LEADER && !r->self_voter && r->n_cfgs == 1 &&
        r->cfgs[0].index <= r->commit && u != NULL)
        dl__raft_become_follower(r, r->hs.term, 0, u);
}

void dl__raft_config_reset(dl_raft_t *r, uint64_t index, const dl_raft_membership_t *m,
                           dl_raft_update_t *u)
{
    /* Configuration entries after index stay in force: they are still in the log. */
    size_t keep = 0;
    while (keep < r->n_cfgs && r->cfgs[keep].index <= index)
        keep++;
    struct cfg_entry base = {.index = index, .m = m ? *m : r->cfgs[keep ? keep - 1 : 0].m};
    memmove(r->cfgs + 1, r->cfgs + keep, (r->n_cfgs - keep) * sizeof(*r->cfgs));
    r->n_cfgs = r->n_cfgs - keep + 1;
    r->cfgs[0] = base;
    dl__raft_apply_membership(r, &r->cfgs[r->n_cfgs - 1].m);
    if (u)
        u->membership_changed = 1;
}

/* How many voters differ between a and b (added, removed, or changed to or from learner). */
static size_t voter_changes(const dl_raft_membership_t *a, const dl_raft_membership_t *b)
{
    size_t changes = 0;
    for (int pass = 0; pass < 2; pass++) {
        const dl_raft_membership_t *x = pass ? b : a, *y = pass ? a : b;
        for (size_t i = 0; i < x->n; i++) {
            if (x->learner[i])
                continue;
            size_t k = 0;
            while (k < y->n && y->ids[k] != x->ids[i])
                k++;
            if (k == y->n || y->learner[k])
                changes++;
        }
    }
    return changes;
}

int dl_raft_propose_membership(dl_raft_t *r, const void *payload, uint32_t len, uint64_t *index,
                               dl_raft_update_t *u)
{
    dl__raft_begin(r, u);
    int rv = 0;
    dl_raft_membership_t m;
    if (r->role != DL_RAFT_LEADER)
        rv = DL_ENOTLEADER;
    else if (!r->config.elections || r->quorum_fixed)
        rv = -EPERM;
    else if (r->transfer_target != 0 || dl_raft_term_at(r, r->commit) != r->hs.term ||
             r->cfgs[r->n_cfgs - 1].index > r->commit)
        /* The last condition is the thesis' rule; the one before it closes the hole found in
         * single-server changes (a leader must commit in its term before it changes anything). */
        rv = DL_EBUSY;
    else if (dl_raft_membership_decode(payload, len, &m, NULL, NULL) != 0 ||
             voter_changes(&r->cfgs[r->n_cfgs - 1].m, &m) > 1)
        rv = -EINVAL;
    dl__raft_finish(r, u);
    if (rv)
        return rv;
    return dl__raft_propose_config(r, payload, len, index, u);
}
