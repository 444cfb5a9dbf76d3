/*
 * A topic partition (events/partition.h): offsets assigned to appended batches, reads of whole
 * batches, the offset index rebuilt on reopen (after a torn tail too), refusal of a corrupt log,
 * lookups by time and the batch size limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>

#include "../storage/storage_test_util.h"
#include "ddialab/crc32c.h"
#include "ddialab/error.h"
#include "events/batch.h"
#include "events/kwire.h"
#include "events/partition.h"

/*
 * A valid record batch v2 of n records, each with a null key and a value of value_len bytes;
 * record i has timestamp base_ts + i, so maxTimestamp is base_ts + n - 1. The base offset is a
 * made-up 777, for the partition to rewrite. The caller frees with dl_buf_free.
 */
static dl_buf_t make_batch(int n, int64_t base_ts, size_t value_len)
{
    dl_buf_t b = {0};
    int rv = dl_kw_i64(&b, 777) | dl_kw_i32(&b, 0) /* batchLength, patched below */ |
             dl_kw_i32(&b, 0) | dl_kw_i8(&b, 2) | dl_kw_i32(&b, 0) /* crc, patched below */ |
             dl_kw_i16(&b, 0) | dl_kw_i32(&b, n - 1) | dl_kw_i64(&b, base_ts) |
             dl_kw_i64(&b, base_ts + n - 1) | dl_kw_i64(&b, -1) | dl_kw_i16(&b, -1) |
             dl_kw_i32(&b, -1) | dl_kw_i32(&b, n);
    assert_int_equal(b.len, DL_KBATCH_HEADER_BYTES);
    for (int i = 0; i < n; i++) {
        dl_buf_t rec = {0};
        rv |= dl_kw_i8(&rec, 0) | dl_kw_varlong(&rec, i) | dl_kw_varint(&rec, i) |
              dl_kw_varint(&rec, -1) | dl_kw_varint(&rec, (int32_t)value_len);
        for (size_t j = 0; j < value_len; j++)
            rv |= dl_kw_i8(&rec, (int8_t)('a' + (i + j) % 26));
        rv |= dl_kw_varint(&rec, 0);
        rv |= dl_kw_varint(&b, (int32_t)rec.len) | dl_buf_append(&b, rec.data, rec.len);
        dl_buf_free(&rec);
    }
    assert_int_equal(rv, 0);
    dl_kw_patch_i32(&b, DL_KBATCH_LENGTH_OFFSET, (int32_t)(b.len - DL_KBATCH_OVERHEAD));
    dl_kput_be32(b.data + 17, dl_crc32c(0, b.data + 21, b.len - 21));
    dl_kbatch_t parsed;
    assert_int_equal(dl_kbatch_parse(b.data, b.len, 1, &parsed), DL_KBATCH_OK);
    return b;
}

static dl_partition_t *open_ok(const char *dir, const dl_partition_options_t *opts)
{
    dl_partition_t *p = NULL;
    char err[512];
    int rv = dl_partition_open(dir, opts, &p, err, sizeof(err));
    if (rv != 0)
        print_error("open %s: %s (%s)\n", dir, dl_err_name(rv), err);
    assert_int_equal(rv, 0);
    assert_non_null(p);
    return p;
}

/* Appends b and returns the base offset the partition gave it. */
static int64_t append_ok(dl_partition_t *p, dl_buf_t *b)
{
    int64_t base = -1;
    assert_int_equal(dl_partition_append(p, b->data, b->len, &base), 0);
    return base;
}

/* Parses the batches in len bytes at data into bs (at most max); returns how many. */
static size_t parse_all(const uint8_t *data, size_t len, dl_kbatch_t *bs, size_t max)
{
    size_t n = 0;
    while (len > 0) {
        assert_true(n < max);
        assert_int_equal(dl_kbatch_parse(data, len, 1, &bs[n]), DL_KBATCH_OK);
        data += bs[n].total_len;
        len -= bs[n].total_len;
        n++;
    }
    return n;
}

static void test_partition_assigns_consecutive_offsets_across_batches(void **state)
{
    dl_partition_t *p = open_ok(*state, NULL);
    assert_int_equal(dl_partition_log_start_offset(p), 0);
    assert_int_equal(dl_partition_high_watermark(p), 0);
    assert_int_equal(dl_partition_size_bytes(p), 0);

    const int counts[] = {3, 1, 5};
    const int64_t want[] = {0, 3, 4};
    uint64_t total = 0;
    for (int i = 0; i < 3; i++) {
        dl_buf_t b = make_batch(counts[i], 1000, 10);
        assert_int_equal(append_ok(p, &b), want[i]);
        assert_int_equal((int64_t)dl_kbe64(b.data), want[i]); /* rewritten in place */
        total += b.len;
        dl_buf_free(&b);
    }
    assert_int_equal(dl_partition_high_watermark(p), 9);
    assert_int_equal(dl_partition_log_start_offset(p), 0);
    assert_int_equal(dl_partition_size_bytes(p), total);

    dl_buf_t out = {0};
    assert_int_equal(dl_partition_read(p, 0, SIZE_MAX, &out), 0);
    assert_int_equal(out.len, total);
    dl_kbatch_t bs[4];
    assert_int_equal(parse_all(out.data, out.len, bs, 4), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bs[i].base_offset, want[i]);
        assert_int_equal(bs[i].records_count, counts[i]);
    }
    dl_buf_free(&out);
    dl_partition_close(p);
}

static void test_partition_reopen_rebuilds_the_offset_index(void **state)
{
    dl_partition_options_t opts = {.segment_bytes = 300}; /* several segments */
    dl_partition_t *p = open_ok(*state, &opts);
    for (int i = 0; i < 6; i++) {
        dl_buf_t b = make_batch(1 + i % 3, 100 * i, 40);
        append_ok(p, &b);
        dl_buf_free(&b);
    }
    int64_t hw = dl_partition_high_watermark(p);
    uint64_t size = dl_partition_size_bytes(p);
    dl_buf_t before = {0}, middle_before = {0};
    assert_int_equal(dl_partition_read(p, 0, SIZE_MAX, &before), 0);
    assert_int_equal(dl_partition_read(p, 5, 1, &middle_before), 0);
    dl_partition_close(p);

    p = open_ok(*state, &opts);
    assert_int_equal(dl_partition_high_watermark(p), hw);
    assert_int_equal(dl_partition_log_start_offset(p), 0);
    assert_int_equal(dl_partition_size_bytes(p), size);
    dl_buf_t after = {0}, middle_after = {0};
    assert_int_equal(dl_partition_read(p, 0, SIZE_MAX, &after), 0);
    assert_int_equal(dl_partition_read(p, 5, 1, &middle_after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
    assert_int_equal(middle_after.len, middle_before.len);
    assert_memory_equal(middle_after.data, middle_before.data, middle_before.len);

    dl_buf_t b = make_batch(2, 0, 1);
    assert_int_equal(append_ok(p, &b), hw); /* appends carry on where the log ended */
    dl_buf_free(&b);
    dl_buf_free(&before);
    dl_buf_free(&after);
    dl_buf_free(&middle_before);
    dl_buf_free(&middle_after);
    dl_partition_close(p);
}

static void test_partition_read_returns_whole_batches_from_the_one_holding_the_offset(void **state)
{
    dl_partition_t *p = open_ok(*state, NULL);
    size_t sizes[3];
    for (int i = 0; i < 3; i++) { /* offsets 0-2, 3-5, 6-8 */
        dl_buf_t b = make_batch(3, 0, 20 + 10 * (size_t)i);
        append_ok(p, &b);
        sizes[i] = b.len;
        dl_buf_free(&b);
    }
    dl_buf_t out = {0};
    dl_kbatch_t bs[4];

    /* The first batch is whole even though it is larger than max_bytes. */
    assert_int_equal(dl_partition_read(p, 4, 1, &out), 0);
    assert_int_equal(out.len, sizes[1]);
    assert_int_equal(parse_all(out.data, out.len, bs, 4), 1);
    assert_int_equal(bs[0].base_offset, 3);

    /* Later batches only while the total stays within max_bytes; out is appended to. */
    out.len = 0;
    assert_int_equal(dl_partition_read(p, 4, sizes[1] + sizes[2] - 1, &out), 0);
    assert_int_equal(out.len, sizes[1]);
    assert_int_equal(dl_partition_read(p, 4, sizes[1] + sizes[2], &out), 0);
    assert_int_equal(out.len, 2 * sizes[1] + sizes[2]);
    assert_int_equal(parse_all(out.data, out.len, bs, 4), 3);
    assert_int_equal(bs[1].base_offset, 3);
    assert_int_equal(bs[2].base_offset, 6);

    /* The last offset of a batch, and the high watermark, where there is nothing yet. */
    out.len = 0;
    assert_int_equal(dl_partition_read(p, 8, SIZE_MAX, &out), 0);
    assert_int_equal(out.len, sizes[2]);
    out.len = 0;
    assert_int_equal(dl_partition_read(p, 9, SIZE_MAX, &out), 0);
    assert_int_equal(out.len, 0);

    assert_int_equal(dl_partition_read(p, -1, SIZE_MAX, &out), -ERANGE);
    assert_int_equal(dl_partition_read(p, 10, SIZE_MAX, &out), -ERANGE);
    assert_int_equal(out.len, 0);
    dl_buf_free(&out);
    dl_partition_close(p);
}

/* Writes the given records straight into a seglog in dir, around the partition. */
static void seglog_write(const char *dir, const struct iovec *records, size_t count)
{
    dl_seglog_t *log = NULL;
    char err[512];
    assert_int_equal(dl_seglog_open(dir, NULL, &log, NULL, err, sizeof(err)), 0);
    assert_int_equal(dl_seglog_append(log, records, count, NULL), 0);
    assert_int_equal(dl_seglog_sync(log), 0);
    dl_seglog_close(log);
}

static void test_partition_log_start_is_the_first_stored_batch(void **state)
{
    /* As after retention dropped the oldest segments: the first batch starts at offset 100. */
    dl_buf_t b1 = make_batch(2, 0, 5), b2 = make_batch(3, 0, 5);
    dl_kbatch_set_base_offset(b1.data, 100);
    dl_kbatch_set_base_offset(b2.data, 102);
    struct iovec iov[2] = {{b1.data, b1.len}, {b2.data, b2.len}};
    seglog_write(*state, iov, 2);

    dl_partition_t *p = open_ok(*state, NULL);
    assert_int_equal(dl_partition_log_start_offset(p), 100);
    assert_int_equal(dl_partition_high_watermark(p), 105);
    dl_buf_t out = {0};
    assert_int_equal(dl_partition_read(p, 99, SIZE_MAX, &out), -ERANGE);
    assert_int_equal(dl_partition_read(p, 100, 1, &out), 0);
    assert_int_equal(out.len, b1.len);
    assert_memory_equal(out.data, b1.data, b1.len);
    dl_buf_free(&out);
    dl_partition_close(p);
    dl_buf_free(&b1);
    dl_buf_free(&b2);
}

static void test_partition_reopen_cuts_a_torn_tail_back_to_the_last_whole_batch(void **state)
{
    dl_partition_t *p = open_ok(*state, NULL);
    for (int i = 0; i < 2; i++) {
        dl_buf_t b = make_batch(2, 0, 30);
        append_ok(p, &b);
        dl_buf_free(&b);
    }
    assert_int_equal(dl_seglog_sync(dl_partition_log(p)), 0);
    uint64_t synced_size = dl_partition_size_bytes(p);
    dl_buf_t torn = make_batch(4, 0, 30);
    append_ok(p, &torn);
    dl_partition_close(p);

    size_t n;
    char **names = test_list_names(*state, ".seg", &n);
    assert_int_equal(n, 1);
    /* The segment file is preallocated with zeros past its records (12 bytes of framing
       each): cut where the third record ends, less 5 bytes, as if that write was cut mid-way. */
    char *last = test_path(*state, names[0]);
    long long end = 3 * 12 + (long long)(synced_size + torn.len);
    assert_true(test_file_size(last) >= end);
    assert_int_equal(truncate(last, end - 5), 0);

    p = open_ok(*state, NULL);
    assert_int_equal(dl_partition_high_watermark(p), 4);
    assert_int_equal(dl_partition_size_bytes(p), synced_size);
    dl_buf_t out = {0};
    assert_int_equal(dl_partition_read(p, 0, SIZE_MAX, &out), 0);
    assert_int_equal(out.len, synced_size);
    assert_int_equal(append_ok(p, &torn), 4);
    assert_int_equal(dl_partition_high_watermark(p), 8);

    dl_buf_free(&out);
    dl_buf_free(&torn);
    dl_partition_close(p);
    free(last);
    test_free_names(names, n);
}

static void test_partition_open_refuses_a_stored_record_that_is_not_a_batch(void **state)
{
    dl_buf_t b = make_batch(2, 0, 5);
    dl_kbatch_set_base_offset(b.data, 0);
    char garbage[] = "this is not a record batch, magic or otherwise, at all......";
    struct iovec iov[2] = {{b.data, b.len}, {garbage, sizeof(garbage)}};
    seglog_write(*state, iov, 2);

    dl_partition_t *p = (dl_partition_t *)1;
    char err[512];
    assert_int_equal(dl_partition_open(*state, NULL, &p, err, sizeof(err)), DL_ECORRUPT);
    assert_null(p);
    assert_non_null(strstr(err, *state));
    assert_non_null(strstr(err, "seglog index 2"));
    dl_buf_free(&b);
}

/* Stores batches of 3 and 1 records at offsets 0 and second_base, and expects the open to refuse
 * them with a message holding want. */
static void expect_refused(const char *dir, int64_t second_base, const char *want)
{
    dl_buf_t b1 = make_batch(3, 0, 5), b2 = make_batch(1, 0, 5);
    dl_kbatch_set_base_offset(b1.data, 0);
    dl_kbatch_set_base_offset(b2.data, second_base);
    struct iovec iov[2] = {{b1.data, b1.len}, {b2.data, b2.len}};
    seglog_write(dir, iov, 2);

    dl_partition_t *p = NULL;
    char err[512];
    assert_int_equal(dl_partition_open(dir, NULL, &p, err, sizeof(err)), DL_ECORRUPT);
    assert_null(p);
    assert_non_null(strstr(err, dir));
    if (strstr(err, want) == NULL)
        fail_msg("'%s' does not say '%s'", err, want);
    dl_buf_free(&b1);
    dl_buf_free(&b2);
}

static void test_partition_open_refuses_a_gap_in_a_partition_never_compacted(void **state)
{
    /* 3 is missing, and no compaction (no start-offset file) explains it. */
    expect_refused(*state, 4,
                   "seglog index 2, offset 4 (expected 3): the base offset does not "
                   "follow on");
}

static void test_partition_open_refuses_batches_whose_offsets_go_back(void **state)
{
    expect_refused(*state, 2, "seglog index 2, offset 2 (expected 3): the base offset is below");
}

static void test_partition_offset_for_time_picks_the_first_batch_reaching_the_time(void **state)
{
    dl_partition_t *p = open_ok(*state, NULL);
    int64_t ts = 0;
    assert_int_equal(dl_partition_offset_for_time(p, 0, &ts), -1); /* empty */

    /* Max timestamps 101, 301, 201, 401 (a producer may go back in time) at offsets 0, 2, 4, 6. */
    const int64_t base_ts[] = {100, 300, 200, 400};
    for (int i = 0; i < 4; i++) {
        dl_buf_t b = make_batch(2, base_ts[i], 1);
        append_ok(p, &b);
        dl_buf_free(&b);
    }
    assert_int_equal(dl_partition_offset_for_time(p, 0, &ts), 0);
    assert_int_equal(ts, 101);
    assert_int_equal(dl_partition_offset_for_time(p, 101, &ts), 0);
    assert_int_equal(dl_partition_offset_for_time(p, 102, &ts), 2);
    assert_int_equal(ts, 301);
    assert_int_equal(dl_partition_offset_for_time(p, 250, NULL), 2); /* not the later 201 */
    assert_int_equal(dl_partition_offset_for_time(p, 302, &ts), 6);
    assert_int_equal(ts, 401);
    assert_int_equal(dl_partition_offset_for_time(p, 401, NULL), 6);
    assert_int_equal(dl_partition_offset_for_time(p, 402, NULL), -1);
    dl_partition_close(p);
}

static void test_partition_append_larger_than_max_batch_bytes_changes_nothing(void **state)
{
    dl_partition_options_t opts = {.max_batch_bytes = 200};
    dl_partition_t *p = open_ok(*state, &opts);
    dl_buf_t small = make_batch(1, 0, 10), big = make_batch(5, 0, 40);
    assert_true(small.len <= 200 && big.len > 200);
    append_ok(p, &small);
    uint64_t size = dl_partition_size_bytes(p);

    int64_t base = -1;
    assert_int_equal(dl_partition_append(p, big.data, big.len, &base), DL_ETOOLARGE);
    assert_int_equal(base, -1);
    assert_int_equal((int64_t)dl_kbe64(big.data), 777); /* not rewritten either */
    assert_int_equal(dl_partition_high_watermark(p), 1);
    assert_int_equal(dl_partition_size_bytes(p), size);
    assert_int_equal(dl_seglog_last_index(dl_partition_log(p)), 1);
    assert_int_equal(append_ok(p, &small), 1);
    dl_partition_close(p);
    dl_buf_free(&small);
    dl_buf_free(&big);
}

static void test_partition_append_refuses_bytes_that_are_not_one_batch(void **state)
{
    dl_partition_t *p = open_ok(*state, NULL);
    dl_buf_t b = make_batch(2, 0, 10);
    int64_t base = -1;
    uint8_t junk[80] = {0};
    assert_int_equal(dl_partition_append(p, junk, sizeof(junk), &base), -EINVAL);
    assert_int_equal(dl_buf_put_u8(&b, 0), 0); /* a byte after the batch's end */
    assert_int_equal(dl_partition_append(p, b.data, b.len, &base), -EINVAL);
    assert_int_equal(dl_partition_high_watermark(p), 0);
    assert_int_equal(dl_seglog_last_index(dl_partition_log(p)), 0);
    dl_buf_free(&b);
    dl_partition_close(p);
}

static void test_partition_retention_by_bytes_drops_whole_old_segments(void **state)
{
    dl_partition_options_t opts = {.segment_bytes = 1000};
    dl_partition_t *p = open_ok(*state, &opts);
    for (int i = 0; i < 40; i++) { /* 40 batches of about 150 bytes, 6 or so per segment */
        dl_buf_t b = make_batch(2, 1000 + i, 40);
        append_ok(p, &b);
        dl_buf_free(&b);
    }
    uint64_t before = dl_partition_size_bytes(p), dropped = 0;
    assert_int_equal(dl_partition_retain(p, 0, -1, 2000, &dropped), 0);
    assert_true(dropped > 0);
    assert_int_equal(dl_partition_size_bytes(p), before - dropped);
    /* Whole segments only: somewhat more than the limit may stay, never more than a segment. */
    assert_true(dl_partition_size_bytes(p) <= 2000 + 1000 + 200);
    int64_t start = dl_partition_log_start_offset(p);
    assert_true(start > 0);
    assert_int_equal(dl_partition_high_watermark(p), 80);
    dl_buf_t out = {0};
    assert_int_equal(dl_partition_read(p, start - 1, SIZE_MAX, &out), -ERANGE);
    assert_int_equal(dl_partition_read(p, start, SIZE_MAX, &out), 0);
    dl_kbatch_t first;
    assert_int_equal(dl_kbatch_parse(out.data, out.len, 1, &first), DL_KBATCH_OK);
    assert_int_equal(first.base_offset, start);
    dl_buf_free(&out);
    dl_partition_close(p);
    /* Reopened, the partition starts where retention left it. */
    p = open_ok(*state, &opts);
    assert_int_equal(dl_partition_log_start_offset(p), start);
    assert_int_equal(dl_partition_high_watermark(p), 80);
    dl_partition_close(p);
}

static void test_partition_retention_by_time_keeps_segments_with_a_recent_record(void **state)
{
    dl_partition_options_t opts = {.segment_bytes = 600};
    dl_partition_t *p = open_ok(*state, &opts);
    for (int i = 0; i < 30; i++) { /* timestamps 0, 100, ..., 2900 */
        dl_buf_t b = make_batch(1, 100 * i, 40);
        append_ok(p, &b);
        dl_buf_free(&b);
    }
    uint64_t dropped = 0;
    assert_int_equal(dl_partition_retain(p, 10000, 20000, -1, &dropped), 0);
    assert_int_equal(dropped, 0); /* nothing older than 20 s before t = 10 s */
    assert_int_equal(dl_partition_retain(p, 3000, 1500, -1, &dropped), 0); /* before t = 1.5 s */
    int64_t start = dl_partition_log_start_offset(p);
    assert_true(dropped > 0 && start > 0);
    assert_true(start <= 15); /* the batch of t = 1.5 s (offset 15) is kept */
    assert_int_equal(dl_partition_retain(p, 1000000, 1, -1, &dropped), 0);
    assert_int_equal(dl_partition_high_watermark(p), 30); /* the active segment always stays */
    assert_true(dl_partition_log_start_offset(p) < 30);
    dl_partition_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TMPDIR_TEST(test_partition_assigns_consecutive_offsets_across_batches),
        TMPDIR_TEST(test_partition_reopen_rebuilds_the_offset_index),
        TMPDIR_TEST(test_partition_read_returns_whole_batches_from_the_one_holding_the_offset),
        TMPDIR_TEST(test_partition_log_start_is_the_first_stored_batch),
        TMPDIR_TEST(test_partition_reopen_cuts_a_torn_tail_back_to_the_last_whole_batch),
        TMPDIR_TEST(test_partition_open_refuses_a_stored_record_that_is_not_a_batch),
        TMPDIR_TEST(test_partition_open_refuses_a_gap_in_a_partition_never_compacted),
        TMPDIR_TEST(test_partition_open_refuses_batches_whose_offsets_go_back),
        TMPDIR_TEST(test_partition_offset_for_time_picks_the_first_batch_reaching_the_time),
        TMPDIR_TEST(test_partition_append_larger_than_max_batch_bytes_changes_nothing),
        TMPDIR_TEST(test_partition_append_refuses_bytes_that_are_not_one_batch),
        TMPDIR_TEST(test_partition_retention_by_bytes_drops_whole_old_segments),
        TMPDIR_TEST(test_partition_retention_by_time_keeps_segments_with_a_recent_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
