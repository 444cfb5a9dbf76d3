/*
 * What a statement must wait for, and deadlock detection. Every level's writes wait for a row's
 * uncommitted writer (no dirty writes). Two-phase locking adds shared locks on the rows a
 * transaction read and shared predicate locks on the predicates it read, both held to its end;
 * a write waits for them if the row it changes matches (before or after the change). Serial
 * execution makes a serial transaction wait for the one that runs. A statement that would wait
 * for a transaction that (through others) waits for it is a deadlock: it is rolled back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "txn/engine_internal.h"
#include "txn/value.h"

static int active(dl_txn_engine_t *e, uint64_t id)
{
    const txn_t *t = dl__txn_of(e, id);
    return t != NULL && t->state == ACTIVE;
}

static int uncommitted_writer(const row_t *r, uint64_t id, uint64_t *writer)
{
    if (r->newest == NULL || r->newest->commit_ts != 0 || r->newest->writer == id)
        return 0;
    *writer = r->newest->writer;
    return 1;
}

int dl__txn_read_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r)
{
    uint64_t writer;
    return uncommitted_writer(r, id, &writer) ? dl__txn_ids_add(&t->run->waits, writer) : 0;
}

static int matches(const dl_txn_pred_t *pred, const char *key, const version_t *v)
{
    return v != NULL && !v->deleted && dl_txn_pred_matches(pred, key, v->value);
}

int dl__txn_write_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const row_t *r,
                            const char *new_value)
{
    if (dl__txn_read_conflicts(e, t, id, r) != 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < r->shared.n; i++) {
        uint64_t holder = r->shared.ids[i];
        if (holder != id && active(e, holder) && dl__txn_ids_add(&t->run->waits, holder) != 0)
            return -ENOMEM;
    }
    const plocks_t *locks = &e->predicate_locks;
    if (locks->n == 0)
        return 0;
    const version_t *old = dl__txn_committed(r);
    for (size_t i = 0; i < locks->n; i++) {
        const plock_t *l = &locks->locks[i];
        if (l->txn == id || !active(e, l->txn))
            continue;
        if (matches(&l->pred, r->key, old) ||
            (new_value != NULL && dl_txn_pred_matches(&l->pred, r->key, new_value)))
            if (dl__txn_ids_add(&t->run->waits, l->txn) != 0)
                return -ENOMEM;
    }
    return 0;
}

int dl__txn_scan_conflicts(dl_txn_engine_t *e, txn_t *t, uint64_t id, const dl_txn_pred_t *pred)
{
    for (size_t i = 0; i < e->n_buckets; i++)
        for (const row_t *r = e->buckets[i]; r != NULL; r = r->next) {
            uint64_t writer;
            if (!uncommitted_writer(r, id, &writer))
                continue;
            /* The row matches before or after the uncommitted change: the predicate overlaps
             * the writer's exclusive lock. */
            if (matches(pred, r->key, r->newest) || matches(pred, r->key, dl__txn_committed(r)))
                if (dl__txn_ids_add(&t->run->waits, writer) != 0)
                    return -ENOMEM;
        }
    return 0;
}

/*
 * Whether following waits from the transactions that t waits for leads back to t (id): a
 * depth-first search over the blocked transactions, with an explicit stack.
 */
static int closes_cycle(dl_txn_engine_t *e, txn_t *t, uint64_t id)
{
    uint64_t search = ++e->searches;
    ids_t *stack = &e->stack;
    stack->n = 0;
    for (uint32_t i = 0; i < t->run->waits.n; i++)
        if (dl__txn_ids_add(stack, t->run->waits.ids[i]) != 0)
            return 0; /* out of memory: no cycle found; the statement waits */
    while (stack->n > 0) {
        uint64_t next = stack->ids[--stack->n];
        if (next == id)
            return 1;
        txn_t *n = dl__txn_of(e, next);
        if (n == NULL || n->state != ACTIVE || !n->run->stmt_blocked || n->run->visit == search)
            continue;
        n->run->visit = search;
        for (uint32_t i = 0; i < n->run->waits.n; i++) {
            /* Not dl__txn_ids_add: the stack may hold an id twice. */
            if (stack->n == stack->cap) {
                uint32_t cap = stack->cap ? stack->cap * 2 : 16;
                uint64_t *ids = realloc(stack->ids, cap * sizeof(*ids));
                if (ids == NULL)
                    return 0;
                stack->ids = ids;
                stack->cap = cap;
            }
            stack->ids[stack->n++] = n->run->waits.ids[i];
        }
    }
    return 0;
}

dl_txn_outcome_t dl__txn_wait_or_go(dl_txn_engine_t *e, txn_t *t, uint64_t id)
{
    dl_txn_outcome_t o = {.status = DL_TXN_OK, .error = DL_TXN_ERR_NONE, .waiting_for = 0};
    if (t->run->waits.n == 0)
        return o;
    if (closes_cycle(e, t, id)) {
        /* The transaction whose request closes the cycle is the victim, as in PostgreSQL when
         * statements are typed by hand (its deadlock check runs a timeout after it blocks). */
        dl__txn_roll_back(e, t, id, DL_TXN_ERR_DEADLOCK);
        o.status = DL_TXN_ABORTED;
        o.error = DL_TXN_ERR_DEADLOCK;
        return o;
    }
    t->run->stmt_blocked = 1;
    o.status = DL_TXN_BLOCKED;
    o.waiting_for = t->run->waits.ids[0];
    return o;
}

int dl__txn_lock_shared(txn_t *t, uint64_t id, row_t *r)
{
    if (dl__txn_ids_has(&r->shared, id))
        return 0;
    if (dl__txn_rows_push(&t->run->locked, &t->run->n_locked, &t->run->cap_locked, r) != 0)
        return -ENOMEM;
    if (dl__txn_ids_add(&r->shared, id) != 0) {
        t->run->n_locked--;
        return -ENOMEM;
    }
    return 0;
}

void dl__txn_release_locks(dl_txn_engine_t *e, txn_t *t, uint64_t id)
{
    for (size_t i = 0; i < t->run->n_locked; i++) {
        ids_t *shared = &t->run->locked[i]->shared;
        for (uint32_t j = 0; j < shared->n; j++)
            if (shared->ids[j] == id) {
                shared->ids[j] = shared->ids[--shared->n];
                break;
            }
    }
    t->run->n_locked = 0;
    plocks_t *locks = &e->predicate_locks;
    for (size_t i = 0; i < locks->n;)
        if (locks->locks[i].txn == id) {
            free((char *)locks->locks[i].pred.operand);
            locks->locks[i] = locks->locks[--locks->n];
        } else {
            i++;
        }
    if (e->serial_owner == id)
        e->serial_owner = 0;
}
