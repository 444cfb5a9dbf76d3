/*
 * The Kafka wire protocol's primitive types and record batches (events/kwire.h, events/batch.h),
 * against the encodings of Kafka's protocol guide and a batch that kafkajs 2.2.4 produced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "events/batch.h"
#include "events/kwire.h"

/* Bytes from hex; the caller frees. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = malloc(n ? n : 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static void test_varints_use_zigzag_and_unsigned_ones_plain_leb128(void **state)
{
    dl_buf_t b = {0};
    assert_int_equal(dl_kw_varint(&b, -1), 0);
    assert_int_equal(dl_kw_varint(&b, 1), 0);
    assert_int_equal(dl_kw_varint(&b, 300), 0);
    assert_int_equal(dl_kw_uvarint(&b, 300), 0);
    const uint8_t expected[] = {0x01, 0x02, 0xd8, 0x04, 0xac, 0x02};
    assert_int_equal(b.len, sizeof(expected));
    assert_memory_equal(b.data, expected, sizeof(expected));
    dl_buf_free(&b);
}

static void test_varints_round_trip_at_their_limits(void **state)
{
    const int32_t ints[] = {0, 1, -1, 63, -64, 64, INT32_MAX, INT32_MIN};
    const int64_t longs[] = {0, -1, 1, INT64_MAX, INT64_MIN, (int64_t)1 << 40};
    dl_buf_t b = {0};
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
        assert_int_equal(dl_kw_varint(&b, ints[i]), 0);
    for (size_t i = 0; i < sizeof(longs) / sizeof(*longs); i++)
        assert_int_equal(dl_kw_varlong(&b, longs[i]), 0);
    assert_int_equal(dl_kw_uvarint(&b, UINT32_MAX), 0);
    dl_kreader_t r = dl_kr_init(b.data, b.len);
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
        assert_int_equal(dl_kr_varint(&r), ints[i]);
    for (size_t i = 0; i < sizeof(longs) / sizeof(*longs); i++)
        assert_true(dl_kr_varlong(&r) == longs[i]);
    assert_true(dl_kr_uvarint(&r) == UINT32_MAX);
    assert_false(dl_kr_failed(&r));
    assert_int_equal(dl_kr_left(&r), 0);
    dl_buf_free(&b);
}

static void test_a_varint_longer_than_its_type_fails_the_reader(void **state)
{
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    dl_kreader_t r = dl_kr_init(six, sizeof(six));
    (void)dl_kr_varint(&r);
    assert_true(dl_kr_failed(&r));
    const uint8_t too_big[] = {0xff, 0xff, 0xff, 0xff, 0x1f}; /* 35 bits */
    r = dl_kr_init(too_big, sizeof(too_big));
    (void)dl_kr_uvarint(&r);
    assert_true(dl_kr_failed(&r));
}

static void test_big_endian_integers_and_strings_round_trip(void **state)
{
    dl_buf_t b = {0};
    int rv = dl_kw_i8(&b, -2) | dl_kw_i16(&b, -300) | dl_kw_i32(&b, 0x12345678) |
             dl_kw_i64(&b, -5) | dl_kw_string(&b, "topic") | dl_kw_string(&b, NULL) |
             dl_kw_string(&b, "") | dl_kw_bytes(&b, "ab", 2) | dl_kw_bytes(&b, NULL, 0) |
             dl_kw_compact_string(&b, "x") | dl_kw_compact_string(&b, NULL) | dl_kw_no_tags(&b);
    assert_int_equal(rv, 0);
    assert_memory_equal(b.data + 3, "\x12\x34\x56\x78", 4);
    dl_kreader_t r = dl_kr_init(b.data, b.len);
    assert_int_equal(dl_kr_i8(&r), -2);
    assert_int_equal(dl_kr_i16(&r), -300);
    assert_int_equal(dl_kr_i32(&r), 0x12345678);
    assert_true(dl_kr_i64(&r) == -5);
    assert_true(dl_kslice_eq(dl_kr_string(&r), "topic"));
    assert_int_equal(dl_kr_string(&r).len, -1);
    dl_kslice_t empty = dl_kr_string(&r);
    assert_int_equal(empty.len, 0);
    assert_true(dl_kslice_eq(empty, ""));
    dl_kslice_t ab = dl_kr_bytes(&r);
    assert_int_equal(ab.len, 2);
    assert_memory_equal(ab.p, "ab", 2);
    assert_int_equal(dl_kr_bytes(&r).len, -1);
    assert_true(dl_kslice_eq(dl_kr_compact_string(&r), "x"));
    assert_int_equal(dl_kr_compact_string(&r).len, -1);
    dl_kr_skip_tags(&r);
    assert_false(dl_kr_failed(&r));
    assert_int_equal(dl_kr_left(&r), 0);
    dl_buf_free(&b);
}

static void test_reading_past_the_end_fails_and_later_reads_are_empty(void **state)
{
    const uint8_t frame[] = {0x00, 0x05, 'a', 'b'}; /* a string of 5 bytes with 2 present */
    dl_kreader_t r = dl_kr_init(frame, sizeof(frame));
    dl_kslice_t s = dl_kr_string(&r);
    assert_true(dl_kr_failed(&r));
    assert_int_equal(s.len, -1);
    assert_int_equal(dl_kr_i32(&r), 0);
    assert_int_equal(dl_kr_left(&r), 0);
    const uint8_t negative[] = {0xff, 0xfe}; /* length -2 */
    r = dl_kr_init(negative, sizeof(negative));
    (void)dl_kr_string(&r);
    assert_true(dl_kr_failed(&r));
}

static void test_an_array_count_larger_than_the_frame_could_hold_fails(void **state)
{
    /* 1,000,000 elements of at least 4 bytes in a frame of 8 bytes after the count. */
    const uint8_t frame[] = {0x00, 0x0f, 0x42, 0x40, 0, 0, 0, 1, 0, 0, 0, 2};
    dl_kreader_t r = dl_kr_init(frame, sizeof(frame));
    assert_int_equal(dl_kr_array(&r, 4, NULL), 0);
    assert_true(dl_kr_failed(&r));
    const uint8_t two[] = {0x00, 0x00, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2};
    r = dl_kr_init(two, sizeof(two));
    assert_int_equal(dl_kr_array(&r, 4, NULL), 2);
    const uint8_t null_array[] = {0xff, 0xff, 0xff, 0xff};
    r = dl_kr_init(null_array, sizeof(null_array));
    int is_null = 0;
    assert_int_equal(dl_kr_array(&r, 4, &is_null), 0);
    assert_true(is_null);
    assert_false(dl_kr_failed(&r));
    const uint8_t compact[] = {0x03, 1, 2}; /* two elements of 1 byte */
    r = dl_kr_init(compact, sizeof(compact));
    assert_int_equal(dl_kr_compact_array(&r, 1), 2);
    assert_false(dl_kr_failed(&r));
}

static void test_patching_a_size_written_before_it_was_known(void **state)
{
    dl_buf_t b = {0};
    assert_int_equal(dl_kw_i32(&b, 0) | dl_kw_string(&b, "abc"), 0);
    dl_kw_patch_i32(&b, 0, (int32_t)(b.len - 4));
    dl_kreader_t r = dl_kr_init(b.data, b.len);
    assert_int_equal(dl_kr_i32(&r), 5);
    dl_buf_free(&b);
}

/* Two records produced by kafkajs 2.2.4: k1=hello with header h=v, then a null key with value
 * world and timestampDelta 5 (shared/research/events.md, 1.7). */
static const char *KAFKAJS_BATCH =
    "00000000000000000000004f0000000002d64388f10000000000010000018bcfe568000000018bcfe56805ffffff"
    "ffffffffff0000000000000000000222000000046b310a68656c6c6f020268027616000a02010a776f726c6400";

static void test_a_kafkajs_batch_parses_with_its_crc32c_and_records(void **state)
{
    size_t len;
    uint8_t *p = unhex(KAFKAJS_BATCH, &len);
    assert_int_equal(len, 91);
    dl_kbatch_t b;
    assert_int_equal(dl_kbatch_parse(p, len, 1, &b), DL_KBATCH_OK);
    assert_int_equal(b.total_len, 91);
    assert_int_equal(b.records_count, 2);
    assert_int_equal(b.last_offset_delta, 1);
    assert_int_equal(b.attributes & DL_KBATCH_COMPRESSION_MASK, DL_KCOMPRESSION_NONE);
    assert_true(b.producer_id == -1);
    assert_int_equal(b.producer_epoch, 0);
    assert_int_equal(b.base_sequence, 0);

    dl_kreader_t r = dl_kr_init(b.records, b.records_len);
    dl_krecord_t rec;
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_true(dl_kslice_eq(rec.key, "k1"));
    assert_true(dl_kslice_eq(rec.value, "hello"));
    assert_int_equal(rec.offset_delta, 0);
    assert_int_equal(rec.n_headers, 1);
    dl_kslice_t hk, hv;
    assert_int_equal(dl_krecord_header(&rec, &hk, &hv), 0);
    assert_true(dl_kslice_eq(hk, "h"));
    assert_true(dl_kslice_eq(hv, "v"));
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_int_equal(rec.key.len, -1);
    assert_true(dl_kslice_eq(rec.value, "world"));
    assert_true(rec.timestamp_delta == 5);
    assert_int_equal(rec.offset_delta, 1);
    assert_int_equal(rec.n_headers, 0);
    assert_int_equal(dl_krecord_next(&r, &rec), 0);
    free(p);
}

static void test_rewriting_the_base_offset_keeps_the_crc_valid(void **state)
{
    size_t len;
    uint8_t *p = unhex(KAFKAJS_BATCH, &len);
    dl_kbatch_set_base_offset(p, 123456789);
    dl_kbatch_t b;
    assert_int_equal(dl_kbatch_parse(p, len, 1, &b), DL_KBATCH_OK);
    assert_true(b.base_offset == 123456789);
    free(p);
}

static void test_a_damaged_batch_is_refused_with_the_reason(void **state)
{
    size_t len;
    uint8_t *p = unhex(KAFKAJS_BATCH, &len);
    dl_kbatch_t b;
    p[80] ^= 0x01; /* a byte of a value */
    assert_int_equal(dl_kbatch_parse(p, len, 1, &b), DL_KBATCH_BAD_CRC);
    assert_int_equal(dl_kbatch_parse(p, len, 0, &b), DL_KBATCH_OK); /* stored: not re-checked */
    p[80] ^= 0x01;
    assert_int_equal(dl_kbatch_parse(p, len - 1, 1, &b), DL_KBATCH_TRUNCATED);
    assert_int_equal(dl_kbatch_parse(p, 10, 1, &b), DL_KBATCH_TRUNCATED);
    p[16] = 1;
    assert_int_equal(dl_kbatch_parse(p, len, 1, &b), DL_KBATCH_BAD_MAGIC);
    assert_non_null(strstr(dl_kbatch_status_text(DL_KBATCH_BAD_MAGIC), "magic 2"));
    free(p);
}

static void test_a_record_whose_length_disagrees_with_its_fields_is_malformed(void **state)
{
    /* length 10 (zigzag 20 = 0x14), then attributes 0, ts 0, offset 0, null key, value "ab", no
     * headers: 7 bytes where 10 were promised. */
    const uint8_t rec_bytes[] = {0x14, 0x00, 0x00, 0x00, 0x01, 0x04, 'a', 'b', 0x00};
    dl_kreader_t r = dl_kr_init(rec_bytes, sizeof(rec_bytes));
    dl_krecord_t rec;
    assert_int_equal(dl_krecord_next(&r, &rec), -1);
    /* The same with the right length (8, zigzag 16): one record, then the end. */
    const uint8_t good[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 'a', 'b', 0x00};
    r = dl_kr_init(good, sizeof(good));
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_true(dl_kslice_eq(rec.value, "ab"));
    assert_int_equal(dl_krecord_next(&r, &rec), 0);
    /* Trailing bytes inside a record after its headers are malformed too. */
    const uint8_t trailing[] = {0x12, 0x00, 0x00, 0x00, 0x01, 0x04, 'a', 'b', 0x00, 0x00};
    r = dl_kr_init(trailing, sizeof(trailing));
    assert_int_equal(dl_krecord_next(&r, &rec), -1);
}

static void test_a_built_batch_parses_with_its_records_and_headers(void **state)
{
    dl_kslice_t hk[] = {{(const uint8_t *)"trace", 5}}, hv[] = {{(const uint8_t *)"42", 2}};
    dl_krecord_in_t in[] = {
        {.key = {(const uint8_t *)"k1", 2},
         .value = {(const uint8_t *)"hello", 5},
         .header_keys = hk,
         .header_values = hv,
         .n_headers = 1},
        {.key = {NULL, -1}, .value = {NULL, -1}},
        {.key = {(const uint8_t *)"", 0}, .value = {(const uint8_t *)"\0\1", 2}},
    };
    dl_buf_t b = {0};
    assert_int_equal(dl_kbatch_build(&b, in, 3, 1700000000000), 0);
    dl_kbatch_t batch;
    assert_int_equal(dl_kbatch_parse(b.data, b.len, 1, &batch), DL_KBATCH_OK);
    assert_int_equal(batch.total_len, b.len);
    assert_int_equal(batch.records_count, 3);
    assert_true(batch.base_timestamp == 1700000000000 && batch.producer_id == -1);
    dl_kreader_t r = dl_kr_init(batch.records, batch.records_len);
    dl_krecord_t rec;
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_true(dl_kslice_eq(rec.key, "k1") && dl_kslice_eq(rec.value, "hello"));
    dl_kslice_t k, v;
    assert_int_equal(dl_krecord_header(&rec, &k, &v), 0);
    assert_true(dl_kslice_eq(k, "trace") && dl_kslice_eq(v, "42"));
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_int_equal(rec.key.len, -1);
    assert_int_equal(rec.value.len, -1);
    assert_int_equal(rec.offset_delta, 1);
    assert_int_equal(dl_krecord_next(&r, &rec), 1);
    assert_int_equal(rec.key.len, 0);
    assert_int_equal(rec.value.len, 2);
    assert_int_equal(dl_krecord_next(&r, &rec), 0);
    dl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varints_use_zigzag_and_unsigned_ones_plain_leb128),
        cmocka_unit_test(test_varints_round_trip_at_their_limits),
        cmocka_unit_test(test_a_varint_longer_than_its_type_fails_the_reader),
        cmocka_unit_test(test_big_endian_integers_and_strings_round_trip),
        cmocka_unit_test(test_reading_past_the_end_fails_and_later_reads_are_empty),
        cmocka_unit_test(test_an_array_count_larger_than_the_frame_could_hold_fails),
        cmocka_unit_test(test_patching_a_size_written_before_it_was_known),
        cmocka_unit_test(test_a_kafkajs_batch_parses_with_its_crc32c_and_records),
        cmocka_unit_test(test_rewriting_the_base_offset_keeps_the_crc_valid),
        cmocka_unit_test(test_a_damaged_batch_is_refused_with_the_reason),
        cmocka_unit_test(test_a_record_whose_length_disagrees_with_its_fields_is_malformed),
        cmocka_unit_test(test_a_built_batch_parses_with_its_records_and_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
