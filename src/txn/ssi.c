/*
 * Serializable snapshot isolation (Cahill, Röhm and Fekete, 2008; Ports and Grittner, 2012):
 * snapshot isolation plus tracking of rw-antidependencies between concurrent ssi transactions.
 * R -rw-> W when R read a version of a row and W wrote a newer one that R's snapshot did not
 * see: R read the row (or a predicate the row matches) before W wrote it (found at W's write
 * through R's read marks, which outlive R's commit), or after (found at R's read from the
 * versions it skipped). A read on the fast path is marked late, at R's commit or its next
 * slow-path statement (settle): versions written since the read are found then, and a row R
 * wrote needs no mark at all (docs/txn.md, "Read marks at commit"). Every non-serializable
 * execution under snapshot isolation has a "dangerous structure" T_in -rw-> T_pivot -rw-> T_out in
 * which T_out commits first; the checks below are PostgreSQL's (predicate.c): when a new edge or a
 * commit completes one, the pivot is doomed to fail at its next statement or commit if it is still
 * running, else the transaction at hand fails. Like PostgreSQL we may abort where no cycle follows
 * (a false positive), never the other way round. Unlike PostgreSQL, whose read locks cover tuples,
 * pages or whole tables, ours cover exactly the rows read and the predicates evaluated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "txn/engine_internal.h"
#include "txn/value.h"

static dl_txn_outcome_t ok(void)
{
    dl_txn_outcome_t o = {.status = DL_TXN_OK, .error = DL_TXN_ERR_NONE, .waiting_for = 0};
    return o;
}

static dl_txn_outcome_t fail(dl_txn_engine_t *e, txn_t *t, uint64_t id, dl_txn_error_t error)
{
    dl__txn_roll_back(e, t, id, error);
    dl_txn_outcome_t o = {.status = DL_TXN_ABORTED, .error = error, .waiting_for = 0};
    return o;
}

/* The ssi transaction id, or NULL when it is not one or was rolled back (its edges are void). */
static txn_t *ssi_txn(dl_txn_engine_t *e, uint64_t id)
{
    txn_t *t = dl__txn_of(e, id);
    return t != NULL && t->level == DL_TXN_SSI && t->state != ABORTED ? t : NULL;
}

static int committed(const txn_t *t)
{
    return t->state == COMMITTED;
}

/*
 * Would the edge reader -rw-> writer complete a dangerous structure in which the transaction
 * that commits first already has? PostgreSQL's OnConflict_CheckForSerializationFailure, with
 * "prepared" read as "committed" (our commit is one step) and no READ ONLY transactions.
 */
static int edge_completes_danger(dl_txn_engine_t *e, const txn_t *reader, const txn_t *writer)
{
    /* reader -rw-> writer -rw-> t2, t2 committed first (before writer, and before reader if it
     * committed). */
    for (uint32_t i = 0; i < writer->out.n; i++) {
        if (dl__txn_of(e, writer->out.ids[i]) == NULL)
            return 1; /* forgotten (recycled): it committed before every running snapshot, so
                       * before both; as PostgreSQL's summarized transactions, it counts */
        const txn_t *t2 = ssi_txn(e, writer->out.ids[i]);
        if (t2 == NULL || !committed(t2))
            continue;
        if ((!committed(reader) || t2->commit_ts <= reader->commit_ts) &&
            (!committed(writer) || t2->commit_ts <= writer->commit_ts))
            return 1;
    }
    /* t0 -rw-> reader -rw-> writer, the writer committed first. */
    if (committed(writer))
        for (uint32_t i = 0; i < reader->in.n; i++) {
            const txn_t *t0 = ssi_txn(e, reader->in.ids[i]);
            if (t0 != NULL && !t0->doomed && (!committed(t0) || t0->commit_ts >= writer->commit_ts))
                return 1;
        }
    return 0;
}

/*
 * Flags reader -rw-> writer, found while transaction current (one of the two) ran a statement.
 * 1 when current must fail; 0 when the edge was added (and perhaps the writer doomed).
 */
static int flag(dl_txn_engine_t *e, uint64_t reader_id, uint64_t writer_id, uint64_t current)
{
    txn_t *reader = ssi_txn(e, reader_id), *writer = ssi_txn(e, writer_id);
    if (reader == NULL || writer == NULL || reader_id == writer_id ||
        dl__txn_ids_has(&reader->out, writer_id))
        return 0;
    if (edge_completes_danger(e, reader, writer)) {
        if (current == writer_id || committed(writer))
            return 1;
        writer->doomed = 1; /* it fails at its next statement or its commit */
    }
    if (dl__txn_ids_add(&reader->out, writer_id) != 0 ||
        dl__txn_ids_add(&writer->in, reader_id) != 0)
        return 1; /* out of memory: failing is the safe answer */
    return 0;
}

/* Whether reader's read can conflict with a write by writer: the reader ran concurrently with
 * the writer (still runs, or committed after the writer's snapshot). */
static int concurrent(const txn_t *reader, const txn_t *writer)
{
    return reader->state == ACTIVE || (committed(reader) && reader->commit_ts >= writer->snapshot);
}

/* A read mark of transaction id is no longer needed once it was rolled back, or committed
 * before every running transaction's snapshot. */
static int mark_needed(dl_txn_engine_t *e, uint64_t id)
{
    if (id < LOAD(e->prune_below))
        return 0; /* committed (or aborted) before every running snapshot: without a look */
    const txn_t *t = dl__txn_of(e, id);
    if (t == NULL)
        return 0;
    txn_state_t state = LOAD(t->state);
    return state == ACTIVE || (state == COMMITTED && LOAD(t->commit_ts) >= LOAD(e->horizon));
}

int dl__txn_ssi_mark(dl_txn_engine_t *e, row_t *r, uint64_t id)
{
    ids_t *marks = &r->sireads;
    if (marks->ids == NULL) {
        marks->ids = r->marks_here;
        marks->cap = sizeof(r->marks_here) / sizeof(*r->marks_here);
    }
    if (dl__txn_ids_has(marks, id))
        return 0;
    if (marks->n == marks->cap) {
        for (uint32_t i = 0; i < marks->n;) {
            if (!mark_needed(e, marks->ids[i]))
                marks->ids[i] = marks->ids[--marks->n];
            else
                i++;
        }
    }
    if (marks->n < marks->cap) {
        marks->ids[marks->n++] = id; /* not dl__txn_ids_add: we know it is not there */
        return 0;
    }
    if (marks->ids == r->marks_here) {
        uint64_t *ids = malloc(2 * marks->cap * sizeof(*ids));
        if (ids == NULL)
            return -ENOMEM;
        memcpy(ids, r->marks_here, sizeof(r->marks_here));
        marks->ids = ids;
        marks->cap *= 2;
    }
    return dl__txn_ids_add(marks, id);
}

/* Flags t -rw-> the writers of versions of r newer than what t sees, that pred (NULL: any)
 * cares about. 1 when t must fail. */
static int flag_unseen_writers(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r,
                               const dl_txn_pred_t *pred)
{
    const version_t *seen = NULL;
    for (const version_t *v = r->newest; v != NULL; v = v->older)
        if (v->writer == id || (v->commit_ts != 0 && v->commit_ts < t->snapshot)) {
            seen = v;
            break;
        }
    int seen_matches = pred == NULL || (seen != NULL && !seen->deleted &&
                                        dl_txn_pred_matches(pred, r->key, seen->value));
    for (const version_t *v = r->newest; v != seen; v = v->older) {
        int relevant = seen_matches || (!v->deleted && dl_txn_pred_matches(pred, r->key, v->value));
        if (relevant && flag(e, id, v->writer, id))
            return 1;
    }
    return 0;
}

/* Whether t sees r's newest version (its own, or one committed before t's snapshot): then no
 * writer of r has a version t skipped, so t's read of r flags nothing. */
static int sees_newest(const row_t *r, const txn_t *t, uint64_t id)
{
    const version_t *v = r->newest;
    if (v == NULL || v->writer == id)
        return 1;
    uint64_t ts = LOAD(v->commit_ts);
    return ts != 0 && ts < t->snapshot;
}

/* Whether t wrote r (r's stripe held): nobody writes over an uncommitted version, so t's is the
 * newest. Then t's read of r needs no mark and flags nothing: a writer of r concurrent with t
 * cannot commit beside it (first updater wins, whichever writes first), so the edge could never
 * join a cycle of committed transactions. PostgreSQL drops a SIREAD lock its write covers too. */
static int wrote(const row_t *r, uint64_t id)
{
    return r->newest != NULL && r->newest->writer == id;
}

/* The same, from t's own list of written rows (its first few), without r's stripe. */
static int listed_as_written(const txn_t *t, const row_t *r)
{
    const rowlist_t *w = &t->run->written;
    for (size_t i = 0; i < w->n && i < 8; i++)
        if (w->rows[i] == r)
            return 1;
    return 0;
}

int dl__txn_ssi_settle_fast(dl_txn_engine_t *e, uint64_t id)
{
    txn_t *t = dl__txn_of(e, id);
    if (t == NULL || t->level != DL_TXN_SSI || t->run == NULL)
        return 1; /* nothing to settle; the commit says what is wrong */
    rowlist_t *reads = &t->run->ssi_reads;
    for (; reads->n > 0; reads->n--) {
        row_t *r = reads->rows[reads->n - 1];
        if (listed_as_written(t, r))
            continue;
        stripe_t *s = dl__txn_stripe_of(e, r->hash);
        pthread_mutex_lock(&s->mu);
        int settled = wrote(r, id) || (sees_newest(r, t, id) && dl__txn_ssi_mark(e, r, id) == 0);
        pthread_mutex_unlock(&s->mu);
        if (!settled)
            return 0;
    }
    return 1;
}

int dl__txn_ssi_settle(dl_txn_engine_t *e, txn_t *t, uint64_t id)
{
    rowlist_t *reads = &t->run->ssi_reads;
    for (; reads->n > 0; reads->n--) {
        row_t *r = reads->rows[reads->n - 1];
        if (wrote(r, id))
            continue;
        if (flag_unseen_writers(e, t, id, r, NULL) || dl__txn_ssi_mark(e, r, id) != 0)
            return 1;
    }
    return 0;
}

dl_txn_outcome_t dl__txn_ssi_read(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r)
{
    if (dl__txn_ssi_mark(e, r, id) != 0 || flag_unseen_writers(e, t, id, r, NULL))
        return fail(e, t, id, DL_TXN_ERR_SSI);
    return ok();
}

dl_txn_outcome_t dl__txn_ssi_scan(dl_txn_engine_t *e, txn_t *t, uint64_t id,
                                  const dl_txn_pred_t *pred)
{
    plocks_t *reads = &e->predicate_reads;
    for (size_t i = 0; i < reads->n;)
        if (!mark_needed(e, reads->locks[i].txn)) {
            free((char *)reads->locks[i].pred.operand);
            reads->locks[i] = reads->locks[--reads->n];
        } else {
            i++;
        }
    if (dl__txn_plocks_add(reads, id, pred) != 0)
        return fail(e, t, id, DL_TXN_ERR_SSI);
    for (size_t i = 0; i < e->n_buckets; i++)
        for (const row_t *r = e->buckets[i]; r != NULL; r = r->next)
            if (flag_unseen_writers(e, t, id, r, pred))
                return fail(e, t, id, DL_TXN_ERR_SSI);
    return ok();
}

int dl__txn_ssi_no_readers(dl_txn_engine_t *e, const txn_t *t, uint64_t id, const row_t *r)
{
    uint64_t ended_before = t->low_water;
    for (uint32_t i = 0; i < r->sireads.n; i++) {
        uint64_t mark = r->sireads.ids[i];
        if (mark == id)
            continue;
        if (mark < ended_before) {
            continue; /* ended before t's snapshot: not concurrent, and no record to read */
        }
        if (mark < LOAD(e->prune_below))
            continue;
        const txn_t *reader = dl__txn_of(e, mark);
        if (reader == NULL || reader->level != DL_TXN_SSI)
            continue;
        txn_state_t state = LOAD(reader->state);
        if (state == ACTIVE || (state == COMMITTED && LOAD(reader->commit_ts) >= t->snapshot))
            return 0;
    }
    return 1;
}

dl_txn_outcome_t dl__txn_ssi_write(dl_txn_engine_t *e, txn_t *t, uint64_t id, row_t *r,
                                   const char *new_value)
{
    for (uint32_t i = 0; i < r->sireads.n; i++) {
        const txn_t *reader = ssi_txn(e, r->sireads.ids[i]);
        if (reader != NULL && !reader->doomed && concurrent(reader, t) &&
            flag(e, r->sireads.ids[i], id, id))
            return fail(e, t, id, DL_TXN_ERR_SSI);
    }
    const version_t *old = dl__txn_committed(r);
    const plocks_t *reads = &e->predicate_reads;
    for (size_t i = 0; i < reads->n; i++) {
        const plock_t *l = &reads->locks[i];
        const txn_t *reader = ssi_txn(e, l->txn);
        if (reader == NULL || l->txn == id || reader->doomed || !concurrent(reader, t))
            continue;
        int before =
            old != NULL && !old->deleted && dl_txn_pred_matches(&l->pred, r->key, old->value);
        int after = new_value != NULL && dl_txn_pred_matches(&l->pred, r->key, new_value);
        if ((before || after) && flag(e, l->txn, id, id))
            return fail(e, t, id, DL_TXN_ERR_SSI);
    }
    return ok();
}

dl_txn_outcome_t dl__txn_ssi_commit(dl_txn_engine_t *e, txn_t *t, uint64_t id)
{
    if (t->doomed || dl__txn_ssi_settle(e, t, id))
        return fail(e, t, id, DL_TXN_ERR_SSI);
    /* t commits first: near -rw-> t where near still runs and someone running (or t itself)
     * -rw-> near makes near a pivot. Doom it rather than fail t, which makes progress. */
    for (uint32_t i = 0; i < t->in.n; i++) {
        txn_t *near = ssi_txn(e, t->in.ids[i]);
        if (near == NULL || committed(near) || near->doomed)
            continue;
        for (uint32_t j = 0; j < near->in.n; j++) {
            const txn_t *far = ssi_txn(e, near->in.ids[j]);
            if (near->in.ids[j] == id || (far != NULL && far->state == ACTIVE && !far->doomed)) {
                near->doomed = 1;
                break;
            }
        }
    }
    return ok();
}
