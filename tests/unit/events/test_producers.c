/*
 * Idempotent producers (events/producers.h): sequence checks per producer and epoch, the window
 * of five batches within which a retry is recognised, wrap-around of sequences, and producer ids
 * reserved on disk so that none is handed out twice across a reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "events/producers.h"
#include "events/protocol.h"

static dl_kbatch_t batch(int64_t pid, int16_t epoch, int32_t seq, int32_t records)
{
    dl_kbatch_t b = {.producer_id = pid,
                     .producer_epoch = epoch,
                     .base_sequence = seq,
                     .records_count = records,
                     .last_offset_delta = records - 1};
    return b;
}

/* Checks b and, when it may be stored, stores it at *offset (advancing it). The check's code. */
static int16_t offer(dl_producers_t *s, dl_kbatch_t b, int64_t *offset, int64_t *dup)
{
    int16_t e = dl_producers_check(s, &b, dup);
    if (e == DL_KERR_NONE) {
        assert_int_equal(dl_producers_reserve(s), 0);
        dl_producers_record(s, &b, *offset);
        *offset += b.records_count;
    }
    return e;
}

static void test_sequences_follow_on_and_retries_are_recognised(void **state)
{
    dl_producers_t *s = dl_producers_new();
    int64_t offset = 0, dup = -1;
    assert_int_equal(offer(s, batch(7, 0, 0, 3), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(7, 0, 3, 2), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(7, 0, 0, 3), &offset, &dup), DL_KERR_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(dup, 0);
    assert_int_equal(offer(s, batch(7, 0, 3, 2), &offset, &dup), DL_KERR_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(dup, 3);
    assert_int_equal(offer(s, batch(7, 0, 6, 1), &offset, &dup),
                     DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(offer(s, batch(7, 0, 4, 1), &offset, &dup),
                     DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* overlaps, not a retry */
    assert_int_equal(offer(s, batch(8, 0, 1, 1), &offset, &dup),
                     DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* a new producer starts at 0 */
    assert_int_equal(offer(s, batch(-1, -1, -1, 4), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offset, 9);
    dl_producers_free(s);
}

static void test_only_the_last_five_batches_count_as_retries(void **state)
{
    dl_producers_t *s = dl_producers_new();
    int64_t offset = 0, dup = -1;
    for (int i = 0; i < 6; i++)
        assert_int_equal(offer(s, batch(1, 0, i, 1), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(1, 0, 1, 1), &offset, &dup), DL_KERR_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(dup, 1);
    assert_int_equal(offer(s, batch(1, 0, 0, 1), &offset, &dup),
                     DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER); /* fell out of the window */
    dl_producers_free(s);
}

static void test_a_new_epoch_restarts_at_zero_and_fences_the_old_one(void **state)
{
    dl_producers_t *s = dl_producers_new();
    int64_t offset = 0, dup = -1;
    assert_int_equal(offer(s, batch(3, 0, 0, 1), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(3, 1, 5, 1), &offset, &dup),
                     DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(offer(s, batch(3, 1, 0, 1), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(3, 0, 1, 1), &offset, &dup), DL_KERR_INVALID_PRODUCER_EPOCH);
    dl_producers_free(s);
}

static void test_sequences_wrap_from_int32_max_to_zero(void **state)
{
    dl_producers_t *s = dl_producers_new();
    int64_t offset = 0, dup = -1;
    /* A fresh producer must start at 0; get near the top through a long history instead. */
    dl_kbatch_t near_top = batch(9, 0, 0, 1);
    assert_int_equal(offer(s, near_top, &offset, &dup), DL_KERR_NONE);
    dl_kbatch_t big = batch(9, 0, 1, 1);
    big.last_offset_delta = INT32_MAX - 2; /* records 1 .. INT32_MAX - 1 */
    assert_int_equal(dl_producers_check(s, &big, &dup), DL_KERR_NONE);
    dl_producers_record(s, &big, offset);
    assert_int_equal(offer(s, batch(9, 0, INT32_MAX, 1), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(9, 0, 0, 2), &offset, &dup), DL_KERR_NONE);
    assert_int_equal(offer(s, batch(9, 0, 2, 1), &offset, &dup), DL_KERR_NONE);
    dl_producers_free(s);
}

static void test_producer_ids_are_never_handed_out_twice_across_reopens(void **state)
{
    char dir[] = "/tmp/ddialab-producer-ids-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/producer_ids", dir);
    char err[256];
    dl_producer_ids_t *ids;
    assert_int_equal(dl_producer_ids_open(path, &ids, err, sizeof(err)), 0);
    int64_t a, b, c;
    assert_int_equal(dl_producer_ids_next(ids, &a), 0);
    assert_int_equal(dl_producer_ids_next(ids, &b), 0);
    assert_true(b == a + 1);
    dl_producer_ids_close(ids); /* as a crash would: the rest of the block is skipped */
    assert_int_equal(dl_producer_ids_open(path, &ids, err, sizeof(err)), 0);
    assert_int_equal(dl_producer_ids_next(ids, &c), 0);
    assert_true(c > b);
    dl_producer_ids_close(ids);
    FILE *f = fopen(path, "w");
    fputs("not a number\n", f);
    fclose(f);
    assert_int_not_equal(dl_producer_ids_open(path, &ids, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "producer_ids"));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences_follow_on_and_retries_are_recognised),
        cmocka_unit_test(test_only_the_last_five_batches_count_as_retries),
        cmocka_unit_test(test_a_new_epoch_restarts_at_zero_and_fences_the_old_one),
        cmocka_unit_test(test_sequences_wrap_from_int32_max_to_zero),
        cmocka_unit_test(test_producer_ids_are_never_handed_out_twice_across_reopens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
