/*
 * What the txn engine's unit tests share: an engine with 1=10 and 2=20 committed, and small
 * assertions. Included by one test file each (static functions).
 */
#ifndef DDIALAB_TEST_TXN_ENGINE_FIXTURE_H
#define DDIALAB_TEST_TXN_ENGINE_FIXTURE_H

#include "txn/engine.h"

static int setup(void **state)
{
    dl_txn_engine_t *e = dl_txn_engine_new();
    assert_non_null(e);
    assert_int_equal(dl_txn_engine_load(e, "1", "10"), 0);
    assert_int_equal(dl_txn_engine_load(e, "2", "20"), 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    dl_txn_engine_free(*state);
    return 0;
}

static uint64_t begin(dl_txn_engine_t *e, dl_txn_level_t level)
{
    uint64_t id = 0;
    assert_int_equal(dl_txn_begin(e, level, &id), 0);
    return id;
}

static void ok(dl_txn_outcome_t o)
{
    assert_int_equal(o.status, DL_TXN_OK);
}

#endif
