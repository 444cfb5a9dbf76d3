/*
 * The segmented log: round trips, crash recovery (every torn tail, every flipped byte), removal
 * of records, and group commit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include "ddialab/error.h"
#include "ddialab/seglog.h"
#include "storage_test_util.h"

#define HEADER 12

/* The payload of record index in "version" seed: 1 to 40 bytes, never zero bytes, so that a
   test can tell a record from the zero fill of a torn file. */
static size_t payload_for(uint64_t index, unsigned seed, unsigned char buf[64])
{
    size_t len = 1 + (size_t)((index * 7 + seed * 13) % 40);
    for (size_t j = 0; j < len; j++)
        buf[j] = (unsigned char)(1 + (index * 31 + j * 7 + seed) % 255);
    return len;
}

static dl_seglog_options_t small_segments(uint64_t segment_bytes)
{
    return (dl_seglog_options_t){.segment_bytes = segment_bytes, .sync_policy = DL_SYNC_BATCH};
}

static dl_seglog_t *open_ok(const char *dir, const dl_seglog_options_t *opts,
                            dl_seglog_recovery_t *report)
{
    dl_seglog_t *log = NULL;
    char err[512];
    int rv = dl_seglog_open(dir, opts, &log, report, err, sizeof(err));
    if (rv != 0)
        print_error("open %s: %s (%s)\n", dir, dl_err_name(rv), err);
    assert_int_equal(rv, 0);
    assert_non_null(log);
    return log;
}

/* Appends records [from, to] of version seed in batches of batch records. */
static void append_range(dl_seglog_t *log, uint64_t from, uint64_t to, unsigned seed, size_t batch)
{
    static unsigned char bufs[256][64];
    struct iovec iov[256];
    assert_true(batch <= 256);
    for (uint64_t i = from; i <= to;) {
        size_t n = 0;
        for (; n < batch && i + n <= to; n++)
            iov[n] = (struct iovec){bufs[n], payload_for(i + n, seed, bufs[n])};
        uint64_t first = 0;
        assert_int_equal(dl_seglog_append(log, iov, n, &first), 0);
        assert_int_equal(first, i);
        i += n;
    }
    assert_int_equal(dl_seglog_last_index(log), to);
}

/* Checks that records [from, to] read back as version seed. */
static void check_range(dl_seglog_t *log, uint64_t from, uint64_t to, unsigned seed)
{
    for (uint64_t i = from; i <= to; i++) {
        unsigned char want[64];
        size_t want_len = payload_for(i, seed, want);
        void *data;
        size_t len;
        int rv = dl_seglog_read(log, i, &data, &len);
        if (rv != 0)
            print_error("read %" PRIu64 ": %s (%s)\n", i, dl_err_name(rv), dl_seglog_errmsg(log));
        assert_int_equal(rv, 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(data, want, len);
        free(data);
    }
}

/* Record boundaries of one segment file: starts[k] for its records, and the end. */
typedef struct {
    uint64_t first_index;
    size_t count;
    long long starts[512];
    long long end;
} layout_t;

static void layout_of(const char *dir, const char *name, unsigned seed, layout_t *out)
{
    char *path = test_path(dir, name);
    out->first_index = strtoull(name, NULL, 10);
    long long file_size = test_file_size(path);
    /* The records end where the zeros the log preallocates begin (or at the end of the file). */
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    out->count = 0;
    long long off = 0;
    while (off < file_size) {
        unsigned char header[HEADER], buf[64];
        assert_int_equal(fseek(fp, (long)off, SEEK_SET), 0);
        size_t got = fread(header, 1, HEADER, fp);
        int zero = 1;
        for (size_t i = 0; i < got; i++)
            zero &= header[i] == 0;
        if (got == HEADER && zero)
            break;
        out->starts[out->count] = off;
        off += HEADER + (long long)payload_for(out->first_index + out->count, seed, buf);
        out->count++;
    }
    fclose(fp);
    out->end = off;
    assert_true(off <= file_size);
    free(path);
}

/* ---- round trips -------------------------------------------------------------------------- */

static void test_open_creates_empty_log_with_first_index_1(void **state)
{
    const char *root = *state;
    char *dir = test_path(root, "a/b/log");
    dl_seglog_recovery_t report;
    dl_seglog_t *log = open_ok(dir, NULL, &report);
    assert_int_equal(dl_seglog_first_index(log), 1);
    assert_int_equal(dl_seglog_last_index(log), 0);
    assert_int_equal(dl_seglog_synced_index(log), 0);
    assert_int_equal(dl_seglog_stable_index(log), 0);
    assert_int_equal(report.records, 0);
    assert_int_equal(report.truncated_bytes, 0);
    assert_string_equal(report.truncated_file, "");
    void *data;
    size_t len;
    assert_int_equal(dl_seglog_read(log, 1, &data, &len), -ENOENT);
    assert_int_equal(dl_seglog_read(log, 0, &data, &len), -ENOENT);
    dl_seglog_close(log);
    free(dir);
}

static void test_append_read_round_trip_across_segment_rolls_and_reopen(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(100);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 10, 0, 1);
    append_range(log, 11, 60, 0, 7);
    append_range(log, 61, 200, 0, 140);
    check_range(log, 1, 200, 0);

    /* Every sealed segment reached segment_bytes, and passed it by less than one record. */
    size_t n;
    char **names = test_list_names(dir, ".seg", &n);
    assert_true(n > 20);
    for (size_t i = 0; i + 1 < n; i++) {
        layout_t l;
        layout_of(dir, names[i], 0, &l);
        assert_true(l.end >= 100);
        assert_true(l.starts[l.count - 1] < 100);
    }
    test_free_names(names, n);
    dl_seglog_close(log);

    dl_seglog_recovery_t report;
    log = open_ok(dir, &opts, &report);
    assert_int_equal(report.records, 200);
    assert_int_equal(report.truncated_bytes, 0);
    assert_int_equal(dl_seglog_first_index(log), 1);
    assert_int_equal(dl_seglog_last_index(log), 200);
    assert_int_equal(dl_seglog_synced_index(log), 200);
    check_range(log, 1, 200, 0);
    append_range(log, 201, 210, 0, 3);
    check_range(log, 195, 210, 0);
    dl_seglog_close(log);
    free(dir);
}

static void test_append_one_batch_larger_than_iov_max(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    enum { N = 3000 };
    static unsigned char bufs[N][64];
    static struct iovec iov[N];
    for (size_t i = 0; i < N; i++)
        iov[i] = (struct iovec){bufs[i], payload_for(i + 1, 0, bufs[i])};
    uint64_t first = 0;
    assert_int_equal(dl_seglog_append(log, iov, N, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(dl_seglog_last_index(log), N);
    check_range(log, 1, N, 0);
    dl_seglog_close(log);
    log = open_ok(dir, NULL, NULL);
    check_range(log, 1, N, 0);
    dl_seglog_close(log);
    free(dir);
}

static void test_append_empty_batch_and_empty_record(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    uint64_t first = 0;
    assert_int_equal(dl_seglog_append(log, NULL, 0, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(dl_seglog_last_index(log), 0);
    struct iovec empty = {NULL, 0};
    assert_int_equal(dl_seglog_append(log, &empty, 1, NULL), 0);
    assert_int_equal(dl_seglog_last_index(log), 1);
    dl_seglog_close(log);
    log = open_ok(dir, NULL, NULL);
    void *data;
    size_t len = 99;
    assert_int_equal(dl_seglog_read(log, 1, &data, &len), 0);
    assert_non_null(data);
    assert_int_equal(len, 0);
    free(data);
    dl_seglog_close(log);
    free(dir);
}

static void test_append_rejects_record_above_max_record_bytes(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = {.max_record_bytes = 16};
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    char small[16] = "0123456789abcdef", big[17] = "0123456789abcdefg";
    struct iovec batch[2] = {{small, 16}, {big, 17}};
    assert_int_equal(dl_seglog_append(log, batch, 2, NULL), DL_ETOOLARGE);
    assert_non_null(strstr(dl_seglog_errmsg(log), "max_record_bytes"));
    assert_int_equal(dl_seglog_last_index(log), 0); /* nothing of the batch was written */
    assert_int_equal(dl_seglog_append(log, batch, 1, NULL), 0);
    assert_int_equal(dl_seglog_last_index(log), 1);
    dl_seglog_close(log);
    free(dir);
}

static void test_failed_write_undoes_the_whole_batch(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    append_range(log, 1, 5, 0, 5);
    char *seg = test_path(dir, "00000000000000000001.seg");
    /* Where the five records end; the file itself is longer (zero-filled ahead). */
    long long size = 0;
    for (uint64_t i = 1; i <= 5; i++) {
        unsigned char tmp[64];
        size += 12 + (long long)payload_for(i, 0, tmp);
    }
    assert_true(test_file_size(seg) >= size);

    /* RLIMIT_FSIZE makes the kernel refuse writes past a size: the batch writes a part and then
       fails with EFBIG. */
    struct rlimit saved, limit;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    limit = saved;
    limit.rlim_cur = (rlim_t)size + 50;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);
    static unsigned char bufs[10][64];
    struct iovec iov[10];
    for (int i = 0; i < 10; i++)
        iov[i] = (struct iovec){bufs[i], payload_for(6 + (uint64_t)i, 0, bufs[i])};
    int rv = dl_seglog_append(log, iov, 10, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rv, -EFBIG);
    assert_int_equal(dl_seglog_last_index(log), 5);
    assert_int_equal(test_file_size(seg), size); /* cut back to the records */
    append_range(log, 6, 15, 0, 10);             /* the log is still usable */
    dl_seglog_close(log);
    log = open_ok(dir, NULL, NULL);
    check_range(log, 1, 15, 0);
    dl_seglog_close(log);
    free(seg);
    free(dir);
}

static void test_read_keeps_few_sealed_segments_open(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(1); /* one record per segment */
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 150, 0, 10);
    dl_seglog_close(log);
    log = open_ok(dir, &opts, NULL);
    check_range(log, 1, 150, 0);
    check_range(log, 1, 150, 0);
    size_t nfds;
    char **fds = test_list_names("/proc/self/fd", "", &nfds);
    test_free_names(fds, nfds);
    assert_true(nfds < 60);
    dl_seglog_close(log);
    free(dir);
}

static void test_read_detects_corruption_after_open(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    append_range(log, 1, 3, 0, 3);
    layout_t l;
    layout_of(dir, "00000000000000000001.seg", 0, &l);
    char *seg = test_path(dir, "00000000000000000001.seg");
    assert_int_equal(test_flip_byte(seg, l.starts[1] + HEADER, 0x01), 0);
    void *data = (void *)1;
    size_t len;
    assert_int_equal(dl_seglog_read(log, 2, &data, &len), DL_ECORRUPT);
    assert_null(data);
    char want[64];
    snprintf(want, sizeof(want), "at offset %lld: payload checksum mismatch", l.starts[1]);
    assert_non_null(strstr(dl_seglog_errmsg(log), want));
    assert_non_null(strstr(dl_seglog_errmsg(log), "00000000000000000001.seg"));
    check_range(log, 1, 1, 0);
    check_range(log, 3, 3, 0);
    dl_seglog_close(log);
    free(seg);
    free(dir);
}

static void test_open_refuses_a_second_opener(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL), *second = (dl_seglog_t *)1;
    char err[256];
    assert_int_equal(dl_seglog_open(dir, NULL, &second, NULL, err, sizeof(err)), -EBUSY);
    assert_null(second);
    assert_non_null(strstr(err, "already open"));
    dl_seglog_close(log);
    log = open_ok(dir, NULL, NULL); /* closing released the lock */
    dl_seglog_close(log);
    free(dir);
}

static void test_open_rejects_bad_options(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log;
    char err[256];
    dl_seglog_options_t opts = {.sync_policy = (dl_sync_policy_t)7};
    assert_int_equal(dl_seglog_open(dir, &opts, &log, NULL, err, sizeof(err)), DL_ECONFIG);
    opts = (dl_seglog_options_t){.sync_policy = DL_SYNC_INTERVAL, .sync_interval_ms = -1};
    assert_int_equal(dl_seglog_open(dir, &opts, &log, NULL, err, sizeof(err)), DL_ECONFIG);
    assert_non_null(strstr(err, "sync_interval_ms"));
    free(dir);
}

/* ---- recovery ----------------------------------------------------------------------------- */

/* A log of FIXTURE_RECORDS records in segments of about 150 bytes; the last segment holds
   several, and the last record has a 22-byte payload. */
#define FIXTURE_RECORDS 43
static char *make_recovery_fixture(const char *root, size_t *nsegs)
{
    char *dir = test_path(root, "log");
    dl_seglog_options_t opts = small_segments(150);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, FIXTURE_RECORDS, 0, 4);
    dl_seglog_close(log);
    char **names = test_list_names(dir, ".seg", nsegs);
    assert_true(*nsegs >= 3);
    layout_t l;
    layout_of(dir, names[*nsegs - 1], 0, &l);
    assert_true(l.count >= 3);
    assert_int_equal(l.end - l.starts[l.count - 1], HEADER + 22);
    test_free_names(names, *nsegs);
    return dir;
}

static void test_recovery_truncates_torn_tail_at_every_offset_of_last_segment(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    layout_t l;
    layout_of(dir, names[nsegs - 1], 0, &l);
    uint64_t before_last = l.first_index - 1; /* records in the earlier segments */
    char *copy = test_path(*state, "copy");
    dl_seglog_options_t opts = small_segments(150);

    for (long long cut = 0; cut <= l.end; cut++) {
        test_remove_tree(copy);
        assert_int_equal(test_copy_dir(dir, copy), 0);
        char *last = test_path(copy, names[nsegs - 1]);
        assert_int_equal(truncate(last, cut), 0);

        size_t whole = 0;
        while (whole < l.count && (whole + 1 < l.count ? l.starts[whole + 1] : l.end) <= cut)
            whole++;
        long long kept_bytes = whole < l.count ? l.starts[whole] : l.end;

        dl_seglog_recovery_t report;
        dl_seglog_t *log = open_ok(copy, &opts, &report);
        assert_int_equal(report.records, before_last + whole);
        assert_int_equal(report.truncated_bytes, (uint64_t)(cut - kept_bytes));
        if (cut > kept_bytes) {
            assert_string_equal(report.truncated_file, last);
            assert_int_equal(report.truncated_offset, (uint64_t)kept_bytes);
        } else {
            assert_string_equal(report.truncated_file, "");
        }
        assert_int_equal(test_file_size(last), kept_bytes);
        assert_int_equal(dl_seglog_last_index(log), before_last + whole);
        check_range(log, 1, before_last + whole, 0);

        /* Appends go on after the cut, and survive a reopen. */
        append_range(log, before_last + whole + 1, before_last + whole + 2, 5, 2);
        dl_seglog_close(log);
        log = open_ok(copy, &opts, &report);
        assert_int_equal(report.truncated_bytes, 0);
        check_range(log, 1, before_last + whole, 0);
        check_range(log, before_last + whole + 1, before_last + whole + 2, 5);
        dl_seglog_close(log);
        free(last);
    }
    test_free_names(names, nsegs);
    free(copy);
    free(dir);
}

static void test_recovery_refuses_or_drops_only_last_record_for_every_flipped_byte(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    char *copy = test_path(*state, "copy");
    dl_seglog_options_t opts = small_segments(150);
    int refused = 0, dropped = 0;

    for (size_t s = 0; s < nsegs; s++) {
        layout_t l;
        layout_of(dir, names[s], 0, &l);
        for (long long b = 0; b < l.end; b++) {
            size_t rec = 0;
            while (rec + 1 < l.count && l.starts[rec + 1] <= b)
                rec++;
            int last_payload = s == nsegs - 1 && rec == l.count - 1 && b >= l.starts[rec] + HEADER;

            test_remove_tree(copy);
            assert_int_equal(test_copy_dir(dir, copy), 0);
            char *path = test_path(copy, names[s]);
            assert_int_equal(test_flip_byte(path, b, (unsigned char)(1u << (b % 8))), 0);

            dl_seglog_t *log = (dl_seglog_t *)1;
            dl_seglog_recovery_t report;
            char err[512];
            int rv = dl_seglog_open(copy, &opts, &log, &report, err, sizeof(err));
            if (last_payload) {
                /* The last write cut mid-way looks just like this: drop exactly that record. */
                assert_int_equal(rv, 0);
                assert_int_equal(report.records, l.first_index + l.count - 2);
                assert_int_equal(report.truncated_offset, (uint64_t)l.starts[rec]);
                assert_int_equal(report.truncated_bytes, (uint64_t)(l.end - l.starts[rec]));
                check_range(log, 1, l.first_index + l.count - 2, 0);
                dl_seglog_close(log);
                dropped++;
            } else {
                char want[1024];
                snprintf(want, sizeof(want), "corrupt record in %s at offset %lld: ", path,
                         l.starts[rec]);
                if (rv != DL_ECORRUPT || strstr(err, want) == NULL)
                    print_error("flip of byte %lld of %s: rv %d, \"%s\"\n", b, names[s], rv, err);
                assert_int_equal(rv, DL_ECORRUPT);
                assert_null(log);
                assert_non_null(strstr(err, want));
                refused++;
            }
            free(path);
        }
    }
    assert_int_equal(dropped, 22); /* each byte of the last payload */
    assert_true(refused > 300);
    test_free_names(names, nsegs);
    free(copy);
    free(dir);
}

static void test_recovery_reads_zeros_at_a_record_boundary_as_the_end(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    char *last = test_path(dir, names[nsegs - 1]);
    layout_t l;
    layout_of(dir, names[nsegs - 1], 0, &l);

    /* Zeros right after the last record: space preallocated ahead of the records, or a length
       that reached the disk before its data. Either way the log ends there, with no damage. */
    assert_int_equal(test_fill_bytes(last, l.end, 4096, 0), 0);
    dl_seglog_recovery_t report;
    dl_seglog_t *log = open_ok(dir, NULL, &report);
    assert_int_equal(report.records, FIXTURE_RECORDS);
    assert_int_equal(report.truncated_bytes, 0);
    /* Appends go over the zeros and survive a reopen. */
    append_range(log, FIXTURE_RECORDS + 1, FIXTURE_RECORDS + 3, 0, 3);
    dl_seglog_close(log);
    log = open_ok(dir, NULL, &report);
    assert_int_equal(report.truncated_bytes, 0);
    check_range(log, 1, FIXTURE_RECORDS + 3, 0);
    dl_seglog_truncate_suffix(log, FIXTURE_RECORDS + 1);
    dl_seglog_close(log);

    /* Now the second half of the last record and beyond are zeros: only that record goes. */
    long long mid = l.starts[l.count - 1] + HEADER / 2;
    assert_int_equal(test_fill_bytes(last, mid, (size_t)(l.end - mid) + 100, 0), 0);
    log = open_ok(dir, NULL, &report);
    assert_int_equal(report.records, FIXTURE_RECORDS - 1);
    assert_int_equal(report.truncated_offset, (uint64_t)l.starts[l.count - 1]);
    check_range(log, 1, FIXTURE_RECORDS - 1, 0);
    dl_seglog_close(log);
    test_free_names(names, nsegs);
    free(last);
    free(dir);
}

static void test_recovery_refuses_zeros_followed_by_valid_records(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    char *last = test_path(dir, names[nsegs - 1]);
    layout_t l;
    layout_of(dir, names[nsegs - 1], 0, &l);
    /* A whole record in the middle of the last segment reads as zeros. */
    assert_int_equal(test_fill_bytes(last, l.starts[1], (size_t)(l.starts[2] - l.starts[1]), 0), 0);
    dl_seglog_t *log;
    char err[512], want[640];
    assert_int_equal(dl_seglog_open(dir, NULL, &log, NULL, err, sizeof(err)), DL_ECORRUPT);
    snprintf(want, sizeof(want), "corrupt record in %s at offset %lld: header checksum mismatch",
             last, l.starts[1]);
    assert_non_null(strstr(err, want));
    test_free_names(names, nsegs);
    free(last);
    free(dir);
}

static void test_recovery_refuses_damage_in_an_earlier_segment(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    char *copy = test_path(*state, "copy");
    layout_t l;
    layout_of(dir, names[1], 0, &l);
    dl_seglog_t *log;
    char err[512];

    /* A torn tail is only a torn tail in the last segment. */
    test_copy_dir(dir, copy);
    char *middle = test_path(copy, names[1]);
    assert_int_equal(truncate(middle, l.end - 1), 0);
    assert_int_equal(dl_seglog_open(copy, NULL, &log, NULL, err, sizeof(err)), DL_ECORRUPT);
    assert_non_null(strstr(err, names[1]));
    assert_non_null(strstr(err, "not the last one"));

    /* So are trailing zeros. */
    test_remove_tree(copy);
    test_copy_dir(dir, copy);
    assert_int_equal(test_fill_bytes(middle, l.end, 100, 0), 0);
    assert_int_equal(dl_seglog_open(copy, NULL, &log, NULL, err, sizeof(err)), DL_ECORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "at offset %lld", l.end);
    assert_non_null(strstr(err, want));
    test_free_names(names, nsegs);
    free(middle);
    free(copy);
    free(dir);
}

static void test_recovery_refuses_gap_between_segments(void **state)
{
    size_t nsegs;
    char *dir = make_recovery_fixture(*state, &nsegs);
    char **names = test_list_names(dir, ".seg", &nsegs);
    char *middle = test_path(dir, names[1]);
    assert_int_equal(unlink(middle), 0);
    dl_seglog_t *log;
    char err[512];
    assert_int_equal(dl_seglog_open(dir, NULL, &log, NULL, err, sizeof(err)), DL_ECORRUPT);
    assert_non_null(strstr(err, names[2]));
    assert_non_null(strstr(err, "at offset 0"));
    assert_non_null(strstr(err, "a gap"));
    test_free_names(names, nsegs);
    free(middle);
    free(dir);
}

static void test_recovery_refuses_length_above_max_with_valid_header(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    char big[100];
    memset(big, 'x', sizeof(big));
    struct iovec rec = {big, sizeof(big)};
    assert_int_equal(dl_seglog_append(log, &rec, 1, NULL), 0);
    assert_int_equal(dl_seglog_append(log, &rec, 1, NULL), 0);
    dl_seglog_close(log);

    /* The records are fine, but longer than this open allows. */
    dl_seglog_options_t opts = {.max_record_bytes = 50};
    char err[512];
    assert_int_equal(dl_seglog_open(dir, &opts, &log, NULL, err, sizeof(err)), DL_ECORRUPT);
    assert_non_null(strstr(err, "00000000000000000001.seg at offset 0: length 100 is above "
                                "max_record_bytes 50"));
    free(dir);
}

static void test_recovery_ignores_files_that_are_not_segments(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    append_range(log, 1, 3, 0, 3);
    dl_seglog_close(log);
    char *notes = test_path(dir, "notes.txt");
    assert_int_equal(dl_atomic_write_file(notes, "hello", 5), 0);
    dl_seglog_recovery_t report;
    log = open_ok(dir, NULL, &report);
    assert_int_equal(report.records, 3);
    dl_seglog_close(log);
    free(notes);
    free(dir);
}

/* ---- removing records --------------------------------------------------------------------- */

static void test_truncate_suffix_then_append_reuses_indices(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(120);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 50, 0, 5);

    assert_int_equal(dl_seglog_truncate_suffix(log, 30), 0);
    assert_int_equal(dl_seglog_last_index(log), 29);
    assert_int_equal(dl_seglog_synced_index(log), 29);
    void *data;
    size_t len;
    assert_int_equal(dl_seglog_read(log, 30, &data, &len), -ENOENT);
    append_range(log, 30, 45, 1, 4); /* a different version of 30.. */
    check_range(log, 1, 29, 0);
    check_range(log, 30, 45, 1);
    dl_seglog_close(log);

    log = open_ok(dir, &opts, NULL);
    assert_int_equal(dl_seglog_last_index(log), 45);
    check_range(log, 1, 29, 0);
    check_range(log, 30, 45, 1);

    /* Truncating at the first index of a segment leaves it as the empty active segment. */
    size_t n;
    char **names = test_list_names(dir, ".seg", &n);
    uint64_t boundary = strtoull(names[2], NULL, 10);
    test_free_names(names, n);
    assert_true(boundary < 30);
    assert_int_equal(dl_seglog_truncate_suffix(log, boundary), 0);
    assert_int_equal(dl_seglog_last_index(log), boundary - 1);
    names = test_list_names(dir, ".seg", &n);
    assert_int_equal(n, 3);
    test_free_names(names, n);
    append_range(log, boundary, boundary + 3, 2, 4);
    dl_seglog_close(log);
    log = open_ok(dir, &opts, NULL);
    check_range(log, 1, boundary - 1, 0);
    check_range(log, boundary, boundary + 3, 2);

    /* Past the end is a no-op; everything empties the log in place. */
    assert_int_equal(dl_seglog_truncate_suffix(log, boundary + 100), 0);
    assert_int_equal(dl_seglog_last_index(log), boundary + 3);
    assert_int_equal(dl_seglog_truncate_suffix(log, 1), 0);
    assert_int_equal(dl_seglog_first_index(log), 1);
    assert_int_equal(dl_seglog_last_index(log), 0);
    append_range(log, 1, 2, 3, 2);
    dl_seglog_close(log);
    free(dir);
}

static void test_drop_prefix_removes_only_whole_old_segments(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(120);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 60, 0, 3);
    size_t n;
    char **names = test_list_names(dir, ".seg", &n);
    assert_true(n >= 5);
    uint64_t third = strtoull(names[2], NULL, 10), fourth = strtoull(names[3], NULL, 10);
    test_free_names(names, n);
    assert_true(third + 1 < fourth);

    /* before_index inside the third segment: the first two go, the third stays whole. */
    assert_int_equal(dl_seglog_drop_prefix(log, third + 1), 0);
    assert_int_equal(dl_seglog_first_index(log), third);
    assert_int_equal(dl_seglog_last_index(log), 60);
    void *data;
    size_t len;
    assert_int_equal(dl_seglog_read(log, third - 1, &data, &len), -ENOENT);
    check_range(log, third, 60, 0);
    size_t m;
    names = test_list_names(dir, ".seg", &m);
    assert_int_equal(m, n - 2);
    test_free_names(names, m);
    assert_int_equal(dl_seglog_truncate_suffix(log, third - 1), -EINVAL);
    dl_seglog_close(log);

    log = open_ok(dir, &opts, NULL);
    assert_int_equal(dl_seglog_first_index(log), third);
    check_range(log, third, 60, 0);

    /* Past the end: every segment but the active one goes. */
    assert_int_equal(dl_seglog_drop_prefix(log, 1000), 0);
    names = test_list_names(dir, ".seg", &m);
    assert_int_equal(m, 1);
    assert_int_equal(dl_seglog_first_index(log), strtoull(names[0], NULL, 10));
    test_free_names(names, m);
    assert_int_equal(dl_seglog_last_index(log), 60);
    append_range(log, 61, 62, 0, 2);
    check_range(log, dl_seglog_first_index(log), 62, 0);
    dl_seglog_close(log);
    free(dir);
}

static void test_reset_starts_an_empty_log_at_next_index(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(120);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 40, 0, 4);
    assert_int_equal(dl_seglog_reset(log, 0), -EINVAL);
    assert_int_equal(dl_seglog_reset(log, 1000), 0);
    assert_int_equal(dl_seglog_first_index(log), 1000);
    assert_int_equal(dl_seglog_last_index(log), 999);
    assert_int_equal(dl_seglog_synced_index(log), 999);
    size_t n;
    char **names = test_list_names(dir, ".seg", &n);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "00000000000000001000.seg");
    test_free_names(names, n);
    dl_seglog_close(log);

    log = open_ok(dir, &opts, NULL);
    assert_int_equal(dl_seglog_first_index(log), 1000);
    assert_int_equal(dl_seglog_last_index(log), 999);
    append_range(log, 1000, 1010, 0, 4);
    /* Resetting to an index the log already has is fine too. */
    assert_int_equal(dl_seglog_reset(log, 1000), 0);
    assert_int_equal(dl_seglog_last_index(log), 999);
    append_range(log, 1000, 1001, 1, 2);
    dl_seglog_close(log);
    log = open_ok(dir, &opts, NULL);
    check_range(log, 1000, 1001, 1);
    dl_seglog_close(log);
    free(dir);
}

/* ---- group commit ------------------------------------------------------------------------- */

static void test_group_commit_prepare_run_finish_advances_synced_index(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    dl_seglog_sync_t job;
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 1); /* nothing to sync */
    append_range(log, 1, 5, 0, 5);
    assert_int_equal(dl_seglog_synced_index(log), 0);
    assert_int_equal(dl_seglog_stable_index(log), 0);

    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
    assert_int_equal(job.upto, 5);
    assert_true(job.nfds >= 1);
    append_range(log, 6, 8, 0, 3); /* while the job runs */
    dl_seglog_sync_run(&job);
    assert_int_equal(job.rv, 0);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(job.nfds, 0);
    assert_int_equal(dl_seglog_synced_index(log), 5);
    assert_int_equal(dl_seglog_stable_index(log), 5);

    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
    assert_int_equal(job.upto, 8);
    dl_seglog_sync_run(&job);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(dl_seglog_stable_index(log), 8);
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 1);
    dl_seglog_close(log);
    free(dir);
}

static void *run_job(void *arg)
{
    dl_seglog_sync_run(arg);
    return NULL;
}

static void test_group_commit_run_on_another_thread_while_appending(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(200);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    uint64_t next = 1;
    for (int round = 0; round < 20; round++) {
        append_range(log, next, next + 9, 0, 10);
        next += 10;
        dl_seglog_sync_t job;
        assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, run_job, &job), 0);
        append_range(log, next, next + 9, 0, 10); /* rolls segments meanwhile */
        next += 10;
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
        assert_true(dl_seglog_synced_index(log) >= next - 11);
    }
    assert_int_equal(dl_seglog_sync(log), 0);
    assert_int_equal(dl_seglog_synced_index(log), next - 1);
    check_range(log, 1, next - 1, 0);
    dl_seglog_close(log);
    free(dir);
}

static void
test_group_commit_truncation_before_finish_does_not_mark_new_records_synced(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    append_range(log, 1, 10, 0, 10);
    dl_seglog_sync_t job;
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
    assert_int_equal(job.upto, 10);

    assert_int_equal(dl_seglog_truncate_suffix(log, 6), 0);
    assert_int_equal(dl_seglog_synced_index(log), 5);
    append_range(log, 6, 12, 1, 7); /* new records 6..12, not covered by the job */
    dl_seglog_sync_run(&job);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(dl_seglog_synced_index(log), 5);
    assert_int_equal(dl_seglog_stable_index(log), 5);

    /* The same after a reset. */
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
    assert_int_equal(job.upto, 12);
    assert_int_equal(dl_seglog_reset(log, 3), 0);
    append_range(log, 3, 20, 2, 18);
    dl_seglog_sync_run(&job);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(dl_seglog_synced_index(log), 2);
    assert_int_equal(dl_seglog_sync(log), 0);
    assert_int_equal(dl_seglog_synced_index(log), 20);
    dl_seglog_close(log);
    free(dir);
}

static void test_sync_policy_interval_waits_between_syncs_and_is_stable_when_written(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = {.sync_policy = DL_SYNC_INTERVAL, .sync_interval_ms = 100};
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 3, 0, 3);
    assert_int_equal(dl_seglog_stable_index(log), 3);
    assert_int_equal(dl_seglog_synced_index(log), 0);

    dl_seglog_sync_t job;
    assert_int_equal(dl_seglog_sync_prepare(log, 1000, &job), 0); /* the first one: at once */
    dl_seglog_sync_run(&job);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(dl_seglog_synced_index(log), 3);

    append_range(log, 4, 5, 0, 2);
    assert_int_equal(dl_seglog_stable_index(log), 5);
    assert_int_equal(dl_seglog_sync_prepare(log, 1050, &job), 1);
    assert_int_equal(dl_seglog_sync_prepare(log, 1099, &job), 1);
    assert_int_equal(dl_seglog_sync_prepare(log, 1100, &job), 0);
    assert_int_equal(job.upto, 5);
    dl_seglog_sync_run(&job);
    assert_int_equal(dl_seglog_sync_finish(log, &job), 0);
    assert_int_equal(dl_seglog_synced_index(log), 5);
    assert_int_equal(dl_seglog_sync_prepare(log, 5000, &job), 1); /* nothing unsynced */
    dl_seglog_close(log);
    free(dir);
}

static void test_sync_policy_none_never_prepares_but_sync_forces(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = {.sync_policy = DL_SYNC_NONE};
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 4, 0, 4);
    assert_int_equal(dl_seglog_stable_index(log), 4);
    dl_seglog_sync_t job;
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 1);
    assert_int_equal(dl_seglog_sync_prepare(log, 1000000, &job), 1);
    assert_int_equal(dl_seglog_synced_index(log), 0);
    assert_int_equal(dl_seglog_sync(log), 0);
    assert_int_equal(dl_seglog_synced_index(log), 4);
    dl_seglog_close(log);
    free(dir);
}

static void test_sealing_a_segment_syncs_it(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_options_t opts = small_segments(100);
    dl_seglog_t *log = open_ok(dir, &opts, NULL);
    append_range(log, 1, 30, 0, 30);
    size_t n;
    char **names = test_list_names(dir, ".seg", &n);
    assert_true(n >= 3);
    /* Everything before the active segment was fdatasynced when it was sealed. */
    uint64_t active_first = strtoull(names[n - 1], NULL, 10);
    assert_int_equal(dl_seglog_synced_index(log), active_first - 1);
    test_free_names(names, n);
    dl_seglog_close(log);
    free(dir);
}

static void test_failed_fsync_puts_log_in_failed_state(void **state)
{
    char *dir = test_path(*state, "log");
    dl_seglog_t *log = open_ok(dir, NULL, NULL);
    append_range(log, 1, 3, 0, 3);
    dl_seglog_sync_t job;
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), 0);
    dl_seglog_sync_run(&job);
    job.rv = -EIO; /* as if the disk had failed */
    assert_int_equal(dl_seglog_sync_finish(log, &job), -EIO);
    assert_int_equal(dl_seglog_synced_index(log), 0);
    assert_non_null(strstr(dl_seglog_errmsg(log), "fdatasync"));
    struct iovec rec = {"x", 1};
    assert_int_equal(dl_seglog_append(log, &rec, 1, NULL), -EIO);
    assert_int_equal(dl_seglog_sync(log), -EIO);
    assert_int_equal(dl_seglog_sync_prepare(log, 0, &job), -EIO);
    assert_int_equal(dl_seglog_truncate_suffix(log, 2), -EIO);
    check_range(log, 1, 3, 0); /* reads still work */
    dl_seglog_close(log);
    /* Reopening re-reads what is on disk and starts afresh. */
    log = open_ok(dir, NULL, NULL);
    assert_int_equal(dl_seglog_synced_index(log), 3);
    dl_seglog_close(log);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TMPDIR_TEST(test_open_creates_empty_log_with_first_index_1),
        TMPDIR_TEST(test_append_read_round_trip_across_segment_rolls_and_reopen),
        TMPDIR_TEST(test_append_one_batch_larger_than_iov_max),
        TMPDIR_TEST(test_append_empty_batch_and_empty_record),
        TMPDIR_TEST(test_append_rejects_record_above_max_record_bytes),
        TMPDIR_TEST(test_failed_write_undoes_the_whole_batch),
        TMPDIR_TEST(test_read_keeps_few_sealed_segments_open),
        TMPDIR_TEST(test_read_detects_corruption_after_open),
        TMPDIR_TEST(test_open_refuses_a_second_opener),
        TMPDIR_TEST(test_open_rejects_bad_options),
        TMPDIR_TEST(test_recovery_truncates_torn_tail_at_every_offset_of_last_segment),
        TMPDIR_TEST(test_recovery_refuses_or_drops_only_last_record_for_every_flipped_byte),
        TMPDIR_TEST(test_recovery_reads_zeros_at_a_record_boundary_as_the_end),
        TMPDIR_TEST(test_recovery_refuses_zeros_followed_by_valid_records),
        TMPDIR_TEST(test_recovery_refuses_damage_in_an_earlier_segment),
        TMPDIR_TEST(test_recovery_refuses_gap_between_segments),
        TMPDIR_TEST(test_recovery_refuses_length_above_max_with_valid_header),
        TMPDIR_TEST(test_recovery_ignores_files_that_are_not_segments),
        TMPDIR_TEST(test_truncate_suffix_then_append_reuses_indices),
        TMPDIR_TEST(test_drop_prefix_removes_only_whole_old_segments),
        TMPDIR_TEST(test_reset_starts_an_empty_log_at_next_index),
        TMPDIR_TEST(test_group_commit_prepare_run_finish_advances_synced_index),
        TMPDIR_TEST(test_group_commit_run_on_another_thread_while_appending),
        TMPDIR_TEST(test_group_commit_truncation_before_finish_does_not_mark_new_records_synced),
        TMPDIR_TEST(test_sync_policy_interval_waits_between_syncs_and_is_stable_when_written),
        TMPDIR_TEST(test_sync_policy_none_never_prepares_but_sync_forces),
        TMPDIR_TEST(test_sealing_a_segment_syncs_it),
        TMPDIR_TEST(test_failed_fsync_puts_log_in_failed_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
