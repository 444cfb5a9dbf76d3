/*
 * Log compaction (events/compact.h): the newest record per key survives with its offset,
 * tombstones go once older than delete.retention.ms, batches thinned in a codec are rewritten in
 * it with a valid CRC, a producer's newest batch stays whole, appends made during a pass are
 * kept, and a swap cut short by a crash is finished (or forgotten) at the next open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../storage/storage_test_util.h"
#include "ddialab/error.h"
#include "events/batch.h"
#include "events/compact.h"
#include "events/decompress.h"
#include "events/kwire.h"
#include "events/partition.h"
#include "events/topics.h"

#define NOW 1700000000000LL /* ms: every record below is stamped NOW - 1000 + i */

/* A record to put in a batch: a NULL value is a tombstone. */
typedef struct kv_s {
    const char *key, *value;
} kv_t;

/* A batch of the n records, compressed with codec, from producer pid (-1: none). */
static dl_buf_t make_batch(const kv_t *kvs, int n, int codec, int64_t pid)
{
    dl_buf_t recs = {0};
    int rv = 0;
    for (int i = 0; i < n; i++) {
        dl_buf_t rec = {0};
        rv |= dl_kw_i8(&rec, 0) | dl_kw_varlong(&rec, i) | dl_kw_varint(&rec, i);
        rv |= dl_kw_varint(&rec, (int32_t)strlen(kvs[i].key)) |
              dl_buf_append(&rec, kvs[i].key, strlen(kvs[i].key));
        if (kvs[i].value == NULL)
            rv |= dl_kw_varint(&rec, -1);
        else
            rv |= dl_kw_varint(&rec, (int32_t)strlen(kvs[i].value)) |
                  dl_buf_append(&rec, kvs[i].value, strlen(kvs[i].value));
        rv |= dl_kw_varint(&rec, 0);
        rv |= dl_kw_varint(&recs, (int32_t)rec.len) | dl_buf_append(&recs, rec.data, rec.len);
        dl_buf_free(&rec);
    }
    dl_buf_t b = {0};
    rv |= dl_kw_i64(&b, 0) | dl_kw_i32(&b, 0) | dl_kw_i32(&b, 0) | dl_kw_i8(&b, 2) |
          dl_kw_i32(&b, 0) | dl_kw_i16(&b, (int16_t)codec) | dl_kw_i32(&b, n - 1) |
          dl_kw_i64(&b, NOW - 1000) | dl_kw_i64(&b, NOW - 1000 + n - 1) | dl_kw_i64(&b, pid) |
          dl_kw_i16(&b, pid >= 0 ? 0 : -1) | dl_kw_i32(&b, pid >= 0 ? 0 : -1) | dl_kw_i32(&b, n);
    rv |= dl_kcompress(codec, recs.data, recs.len, &b);
    assert_int_equal(rv, 0);
    dl_kbatch_seal(b.data, b.len);
    dl_buf_free(&recs);
    return b;
}

static dl_partition_t *open_ok(const char *dir)
{
    dl_partition_t *p = NULL;
    char err[512];
    int rv = dl_partition_open(dir, NULL, &p, err, sizeof(err));
    if (rv != 0)
        print_error("open %s: %s (%s)\n", dir, dl_err_name(rv), err);
    assert_int_equal(rv, 0);
    return p;
}

static int64_t append(dl_partition_t *p, const kv_t *kvs, int n, int codec, int64_t pid)
{
    dl_buf_t b = make_batch(kvs, n, codec, pid);
    int64_t base;
    assert_int_equal(dl_partition_append(p, b.data, b.len, &base), 0);
    dl_buf_free(&b);
    return base;
}

static dl_compaction_stats_t compact(dl_partition_t *p, int64_t now_ms, int64_t delete_retention)
{
    dl_compaction_options_t o = {.now_ms = now_ms, .delete_retention_ms = delete_retention};
    dl_compaction_stats_t st;
    char err[512];
    int rv = dl_compact_partition(p, &o, &st, err, sizeof(err));
    if (rv != 0)
        print_error("compact: %s (%s)\n", dl_err_name(rv), err);
    assert_int_equal(rv, 0);
    return st;
}

/* The partition's records from offset 0 as "offset:key=value" (value "-" for a tombstone),
 * joined by spaces, with every batch's CRC checked. */
static void dump(dl_partition_t *p, char *out, size_t cap)
{
    dl_buf_t batches = {0}, plain = {0};
    out[0] = '\0';
    assert_int_equal(dl_partition_read(p, dl_partition_log_start_offset(p), SIZE_MAX, &batches), 0);
    for (size_t at = 0; at < batches.len;) {
        dl_kbatch_t b;
        assert_int_equal(dl_kbatch_parse(batches.data + at, batches.len - at,
                                         DL_KBATCH_VERIFY_CRC | DL_KBATCH_COMPACTED, &b),
                         DL_KBATCH_OK);
        plain.len = 0;
        assert_int_equal(
            dl_kdecompress(b.attributes & 7, b.records, b.records_len, 1 << 20, &plain), 0);
        dl_kreader_t r = dl_kr_init(plain.data, plain.len);
        dl_krecord_t rec;
        int32_t n = 0;
        while (dl_krecord_next(&r, &rec) == 1) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s%lld:%.*s=%.*s", len ? " " : "",
                     (long long)(b.base_offset + rec.offset_delta), (int)rec.key.len,
                     (const char *)rec.key.p, rec.value.len < 0 ? 1 : (int)rec.value.len,
                     rec.value.len < 0 ? "-" : (const char *)rec.value.p);
            n++;
        }
        assert_int_equal(n, b.records_count);
        at += b.total_len;
    }
    dl_buf_free(&batches);
    dl_buf_free(&plain);
}

static char *part_dir(void **state)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/t-0", (const char *)*state);
    return dir;
}

static void test_compaction_keeps_the_newest_record_per_key_at_its_offset(void **state)
{
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k1", "a"}, {"k2", "b"}}, 2, 0, -1); /* 0, 1 */
    append(p, (kv_t[]){{"k1", "c"}}, 1, 0, -1);              /* 2 */
    append(p, (kv_t[]){{"k3", "d"}, {"k2", "e"}}, 2, 0, -1); /* 3, 4 */
    append(p, (kv_t[]){{"k4", "f"}}, 1, 0, -1);              /* 5 */
    dl_compaction_stats_t st = compact(p, NOW, 0);
    assert_int_equal(st.records_removed, 2);
    assert_int_equal(st.batches_before, 4);
    assert_int_equal(st.batches_after, 3);

    char text[512];
    dump(p, text, sizeof(text));
    assert_string_equal(text, "2:k1=c 3:k3=d 4:k2=e 5:k4=f");
    assert_int_equal(dl_partition_log_start_offset(p), 0); /* the log start does not move */
    assert_int_equal(dl_partition_high_watermark(p), 6);

    /* A consumer at an offset compaction removed reads on from the next record kept. */
    dl_buf_t out = {0};
    assert_int_equal(dl_partition_read(p, 1, 1, &out), 0);
    dl_kbatch_t b;
    assert_int_equal(dl_kbatch_parse(out.data, out.len, 0, &b), DL_KBATCH_OK);
    assert_int_equal(b.base_offset, 2);
    dl_buf_free(&out);

    /* A restart sees the same log, log start offset and high watermark; appends go on. */
    dl_partition_close(p);
    p = open_ok(part_dir(state));
    dump(p, text, sizeof(text));
    assert_string_equal(text, "2:k1=c 3:k3=d 4:k2=e 5:k4=f");
    assert_int_equal(dl_partition_log_start_offset(p), 0);
    assert_int_equal(append(p, (kv_t[]){{"k1", "g"}}, 1, 0, -1), 6);
    dl_partition_close(p);
    struct stat sb;
    char leftover[PATH_MAX];
    snprintf(leftover, sizeof(leftover), "%s.compacting", part_dir(state));
    assert_int_not_equal(stat(leftover, &sb), 0);
    snprintf(leftover, sizeof(leftover), "%s.old", part_dir(state));
    assert_int_not_equal(stat(leftover, &sb), 0);
}

static void test_compaction_drops_tombstones_only_after_delete_retention(void **state)
{
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k1", "a"}, {"k2", "b"}}, 2, 0, -1);
    append(p, (kv_t[]){{"k1", NULL}}, 1, 0, -1); /* delete k1 */
    append(p, (kv_t[]){{"k3", "c"}}, 1, 0, -1);
    char text[512];
    /* Young tombstones stay, so consumers reading from the start learn of the delete. */
    dl_compaction_stats_t st = compact(p, NOW, 3600 * 1000);
    assert_int_equal(st.tombstones_removed, 0);
    dump(p, text, sizeof(text));
    assert_string_equal(text, "1:k2=b 2:k1=- 3:k3=c");
    /* An hour later the key is gone altogether. */
    st = compact(p, NOW + 3600 * 1000, 3600 * 1000);
    assert_int_equal(st.tombstones_removed, 1);
    dump(p, text, sizeof(text));
    assert_string_equal(text, "1:k2=b 3:k3=c");
    dl_partition_close(p);
}

static void test_compaction_rewrites_a_thinned_batch_in_its_codec(void **state)
{
    const int codecs[] = {DL_KCOMPRESSION_GZIP, DL_KCOMPRESSION_SNAPPY, DL_KCOMPRESSION_LZ4,
                          DL_KCOMPRESSION_ZSTD};
    for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/c%zu-0", (const char *)*state, i);
        dl_partition_t *p = open_ok(dir);
        append(p, (kv_t[]){{"k1", "a"}, {"k2", "b"}, {"k3", "c"}}, 3, codecs[i], -1);
        append(p, (kv_t[]){{"k2", "d"}}, 1, codecs[i], -1);
        append(p, (kv_t[]){{"k9", "z"}}, 1, codecs[i], -1); /* the newest stays as it is */
        compact(p, NOW, 0);
        char text[512];
        dump(p, text, sizeof(text)); /* checks CRCs and record counts */
        assert_string_equal(text, "0:k1=a 2:k3=c 3:k2=d 4:k9=z");
        dl_buf_t out = {0};
        dl_kbatch_t b;
        assert_int_equal(dl_partition_read(p, 0, 1, &out), 0);
        assert_int_equal(dl_kbatch_parse(out.data, out.len, DL_KBATCH_COMPACTED, &b), DL_KBATCH_OK);
        assert_int_equal(b.attributes & 7, codecs[i]);
        assert_int_equal(b.records_count, 2);
        assert_int_equal(b.last_offset_delta, 2); /* the batch still spans offsets 0 .. 2 */
        assert_int_equal(b.max_timestamp, NOW - 1000 + 2);
        dl_buf_free(&out);
        dl_partition_close(p);
    }
}

static void test_compaction_keeps_a_producers_newest_batch_whole(void **state)
{
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k1", "a"}}, 1, 0, 7);
    append(p, (kv_t[]){{"k1", "b"}, {"k2", "c"}}, 2, 0, 7); /* producer 7's newest */
    append(p, (kv_t[]){{"k1", "d"}, {"k2", "e"}}, 2, 0, -1);
    append(p, (kv_t[]){{"k9", "z"}}, 1, 0, -1);
    compact(p, NOW, 0);
    char text[512];
    dump(p, text, sizeof(text));
    assert_string_equal(text, "1:k1=b 2:k2=c 3:k1=d 4:k2=e 5:k9=z");
    dl_partition_close(p);
}

static void test_a_tombstone_stays_while_a_producers_batch_holds_its_key(void **state)
{
    /* Producer 7's newest batch is kept whole, with its stale k=v1: removing the tombstone
       after it would bring k back. */
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k", "v1"}}, 1, 0, 7);
    append(p, (kv_t[]){{"k", NULL}}, 1, 0, -1);
    append(p, (kv_t[]){{"x", "1"}}, 1, 0, -1);
    append(p, (kv_t[]){{"y", "2"}}, 1, 0, -1);
    compact(p, NOW + 3600 * 1000, 0); /* the tombstone is long expired */
    char text[512];
    dump(p, text, sizeof(text));
    assert_string_equal(text, "0:k=v1 1:k=- 2:x=1 3:y=2");
    dl_partition_close(p);
}

static void test_topics_open_finishes_a_swap_that_left_partition_0_only_compacted(void **state)
{
    char data[PATH_MAX], dir[PATH_MAX], compacted[PATH_MAX], err[256];
    snprintf(data, sizeof(data), "%s/data", (const char *)*state);
    dl_topics_options_t o = {.data_dir = data};
    dl_topics_t *t;
    assert_int_equal(dl_topics_open(&o, &t, err, sizeof(err)), 0);
    assert_int_equal(
        dl_topics_create(t, "t", 1, 2, "{\"cleanup.policy\": \"compact\"}", NULL, err, sizeof(err)),
        0);
    dl_topics_close(t);
    /* A crash between the fallback's renames: t-0 -> t-0.old done, t-0.compacted -> t-0 not. */
    snprintf(dir, sizeof(dir), "%s/t-0", data);
    snprintf(compacted, sizeof(compacted), "%s/t-0.compacted", data);
    dl_partition_t *q = open_ok(compacted);
    dl_buf_t b = make_batch((kv_t[]){{"k", "new"}}, 1, 0, -1);
    dl_kbatch_set_base_offset(b.data, 3);
    assert_int_equal(dl_partition_append_stored(q, b.data, b.len), 0);
    dl_buf_free(&b);
    dl_partition_close(q);
    char old[PATH_MAX];
    snprintf(old, sizeof(old), "%s.old", dir);
    assert_int_equal(rename(dir, old), 0);

    assert_int_equal(dl_topics_open(&o, &t, err, sizeof(err)), 0);
    dl_topic_t *topic = dl_topics_find(t, "t", 1);
    assert_non_null(topic);
    assert_int_equal(topic->n_partitions, 2);
    assert_true(topic->config.compact);
    assert_int_equal(dl_partition_high_watermark(topic->partitions[0]), 4);
    dl_topics_close(t);
    struct stat st;
    assert_int_not_equal(stat(old, &st), 0);
    assert_int_not_equal(stat(compacted, &st), 0);
}

static void test_compaction_keeps_what_was_appended_during_the_pass(void **state)
{
    dl_partition_t *p = open_ok(part_dir(state));
    for (int i = 0; i < 50; i++)
        append(p, (kv_t[]){{i % 2 ? "odd" : "even", "x"}}, 1, 0, -1);
    dl_compaction_options_t o = {.now_ms = NOW};
    dl_compaction_t *c;
    char err[256];
    assert_int_equal(dl_compaction_start(p, &o, &c, err, sizeof(err)), 0);
    assert_non_null(c);
    int rv, steps = 0;
    while ((rv = dl_compaction_step(c, 100, err, sizeof(err))) == 0) {
        if (steps++ == 30) /* in the middle of the pass */
            append(p, (kv_t[]){{"odd", "late"}, {"new", "y"}}, 2, 0, -1);
    }
    assert_int_equal(rv, 1);
    assert_true(steps > 30);
    append(p, (kv_t[]){{"even", "last"}}, 1, 0, -1);
    dl_compaction_stats_t st;
    assert_int_equal(dl_compaction_finish(c, &st, err, sizeof(err)), 0);
    char text[512];
    dump(p, text, sizeof(text));
    /* 0 .. 48 were compacted to their newest (48 even, 47 odd); 49 on were copied. */
    assert_string_equal(text, "47:odd=x 48:even=x 49:odd=x 50:odd=late 51:new=y 52:even=last");
    assert_int_equal(dl_partition_high_watermark(p), 53);
    dl_partition_close(p);
}

static void test_partition_open_finishes_a_swap_a_crash_interrupted(void **state)
{
    char compacted[PATH_MAX], compacting[PATH_MAX], old[PATH_MAX];
    snprintf(compacted, sizeof(compacted), "%s.compacted", part_dir(state));
    snprintf(compacting, sizeof(compacting), "%s.compacting", part_dir(state));
    snprintf(old, sizeof(old), "%s.old", part_dir(state));
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k", "before"}}, 1, 0, -1);
    dl_partition_close(p);
    /* Committed: a finished compacted log next to the old one, and a stale pass's leftovers. */
    dl_partition_t *q = open_ok(compacted);
    dl_buf_t b = make_batch((kv_t[]){{"k", "after"}}, 1, 0, -1);
    dl_kbatch_set_base_offset(b.data, 5);
    assert_int_equal(dl_partition_append_stored(q, b.data, b.len), 0);
    dl_partition_close(q);
    dl_partition_close(open_ok(compacting));

    p = open_ok(part_dir(state));
    char text[512];
    dump(p, text, sizeof(text));
    assert_string_equal(text, "5:k=after");
    dl_partition_close(p);
    struct stat st;
    assert_int_not_equal(stat(compacted, &st), 0);
    assert_int_not_equal(stat(compacting, &st), 0);
    assert_int_not_equal(stat(old, &st), 0);

    /* Cut between the two renames: only "<dir>.old" and "<dir>.compacted" exist. */
    assert_int_equal(rename(part_dir(state), old), 0);
    q = open_ok(compacted);
    dl_kbatch_set_base_offset(b.data, 9);
    dl_kbatch_seal(b.data, b.len);
    assert_int_equal(dl_partition_append_stored(q, b.data, b.len), 0);
    dl_partition_close(q);
    p = open_ok(part_dir(state));
    dump(p, text, sizeof(text));
    assert_string_equal(text, "9:k=after");
    assert_int_equal(dl_partition_high_watermark(p), 10);
    dl_partition_close(p);
    assert_int_not_equal(stat(old, &st), 0);
    dl_buf_free(&b);
}

static void test_compaction_of_one_batch_does_nothing(void **state)
{
    dl_partition_t *p = open_ok(part_dir(state));
    append(p, (kv_t[]){{"k", "a"}, {"k", "b"}}, 2, 0, -1);
    dl_compaction_stats_t st = compact(p, NOW, 0);
    assert_int_equal(st.batches_before, 0); /* the newest batch is never compacted */
    char text[512];
    dump(p, text, sizeof(text));
    assert_string_equal(text, "0:k=a 1:k=b");
    dl_partition_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_compaction_keeps_the_newest_record_per_key_at_its_offset, test_tmpdir_setup,
            test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(
            test_compaction_drops_tombstones_only_after_delete_retention, test_tmpdir_setup,
            test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_rewrites_a_thinned_batch_in_its_codec,
                                        test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_keeps_a_producers_newest_batch_whole,
                                        test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(
            test_a_tombstone_stays_while_a_producers_batch_holds_its_key, test_tmpdir_setup,
            test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(
            test_topics_open_finishes_a_swap_that_left_partition_0_only_compacted,
            test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_keeps_what_was_appended_during_the_pass,
                                        test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_partition_open_finishes_a_swap_a_crash_interrupted,
                                        test_tmpdir_setup, test_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_of_one_batch_does_nothing,
                                        test_tmpdir_setup, test_tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
