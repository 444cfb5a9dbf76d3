/*
 * libFuzzer target for the segmented log's recovery (dl_seglog_open) on damaged segment files.
 *
 * Each input becomes the content of one or two segment files in a fresh directory (on tmpfs when
 * /dev/shm exists). The content is either the raw input bytes, or records built from the input
 * with correct checksums and then damaged by small edits the input also describes (bit flips,
 * cuts, zero fill, raw garbage), so that the fuzzer gets past the checksums and reaches every
 * recovery rule.
 *
 * A reference model of the recovery rules as ddialab/seglog.h and docs/storage.md state them
 * predicts the outcome, and the log must agree:
 *   - open fails with DL_ECORRUPT and a "seglog: corrupt record in ..." message exactly when the
 *     model finds corruption, and with nothing else;
 *   - otherwise first/last index, the recovery report (records kept, torn tail cut) and every
 *     record read back with dl_seglog_read match the model;
 *   - appending after the open works (rolling to new segments on the way: segments are tiny)
 *     and reads back, and the log reopens with every record and no further cut.
 *
 * Input layout: ctl, delta, split (u16 LE), body.
 *   ctl bit 0      two segment files instead of one
 *   ctl bit 1      build records from the body (see build_file) instead of using it raw
 *   ctl bits 2-4   index of the first segment (see first_indices)
 *   ctl bit 5      name the second segment delta (int8) away from where the first one ends
 *   ctl bits 6-7   how many records to append after a successful open (1 + value % 3)
 *   split          bytes of the body that go to the first file (modulo the body length + 1)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ddialab/crc32c.h"
#include "ddialab/error.h"
#include "ddialab/logging.h"
#include "ddialab/seglog.h"

#define HEADER_BYTES     12
#define MAX_RECORD_BYTES 56  /* synthesized payloads go up to 63 bytes, so some are refused */
#define SEGMENT_BYTES    200 /* appends after open roll to new segments */
#define FILE_CAP         (64 * 1024)
#define MAX_RECORDS      (FILE_CAP / HEADER_BYTES + 1)

/* See the append step in LLVMFuzzerTestOneInput; 0 once the bug is fixed. */

static const uint64_t first_indices[8] = {
    1, 1, 2, 17, 1000000, 0, UINT64_MAX - 2, UINT64_MAX,
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_seglog_recovery: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ---- segment files ------------------------------------------------------------------------ */

typedef struct file_s {
    uint64_t first_index; /* from the file name */
    uint8_t data[FILE_CAP];
    size_t len;
} file_t;

static void append_bytes(file_t *f, const uint8_t *p, size_t n)
{
    if (n > FILE_CAP - f->len)
        n = FILE_CAP - f->len;
    if (p != NULL)
        memcpy(f->data + f->len, p, n);
    else
        memset(f->data + f->len, 0, n);
    f->len += n;
}

/*
 * Builds a file from a little program, one op byte at a time:
 *   00-BF  a valid record whose payload (op % 64 bytes) comes from the next input bytes
 *          (zero-padded when the input runs out)
 *   C0-CF  flip bit (op & 7) of the byte (next input byte % len) back from the end
 *   D0-DF  cut (op & 15) + 1 bytes off the end
 *   E0-EF  append ((op & 15) + 1) * 4 zero bytes
 *   F0-FF  append the next (op & 15) + 1 input bytes as they are
 */
static void build_file(const uint8_t *in, size_t n, file_t *f)
{
    size_t i = 0;
    f->len = 0;
    while (i < n) {
        uint8_t op = in[i++];
        if (op < 0xC0) {
            uint8_t payload[64] = {0};
            uint32_t len = op % 64;
            size_t take = n - i < len ? n - i : len;
            memcpy(payload, in + i, take);
            i += take;
            uint8_t h[HEADER_BYTES];
            put_le32(h, len);
            put_le32(h + 4, dl_crc32c(0, payload, len));
            put_le32(h + 8, dl_crc32c(0, h, 8));
            if (f->len + HEADER_BYTES + len > FILE_CAP)
                return;
            append_bytes(f, h, HEADER_BYTES);
            append_bytes(f, payload, len);
        } else if (op < 0xD0) {
            if (i < n && f->len > 0) {
                size_t back = in[i++] % f->len;
                f->data[f->len - 1 - back] ^= (uint8_t)(1u << (op & 7));
            }
        } else if (op < 0xE0) {
            size_t cut = (size_t)(op & 15) + 1;
            f->len = cut < f->len ? f->len - cut : 0;
        } else if (op < 0xF0) {
            append_bytes(f, NULL, ((size_t)(op & 15) + 1) * 4);
        } else {
            size_t take = (size_t)(op & 15) + 1;
            if (take > n - i)
                take = n - i;
            append_bytes(f, in + i, take);
            i += take;
        }
    }
}

/* ---- the reference model of recovery --------------------------------------------------------- */

typedef struct model_s {
    int corrupt;
    uint64_t first_index, records;
    size_t offsets[MAX_RECORDS * 2]; /* of every kept record, both files in order */
    uint32_t lens[MAX_RECORDS * 2];
    const file_t *files[MAX_RECORDS * 2];
    size_t cut_file; /* which file was cut, or SIZE_MAX */
    size_t cut_offset, cut_bytes;
} model_t;

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Scans one file; returns its record count, or -1 for corruption. */
static int64_t model_scan(model_t *m, size_t which, const file_t *f, int is_last)
{
    size_t off = 0;
    int64_t count = 0;
    while (off < f->len) {
        size_t left = f->len - off, damage_end;
        const uint8_t *h = f->data + off;
        if (left < HEADER_BYTES) {
            damage_end = f->len;
        } else if (dl_crc32c(0, h, 8) != get_le32(h + 8)) {
            damage_end = off + HEADER_BYTES;
        } else if (get_le32(h) > MAX_RECORD_BYTES) {
            return -1; /* a trustworthy length above the limit */
        } else if (get_le32(h) > left - HEADER_BYTES) {
            damage_end = f->len;
        } else if (dl_crc32c(0, h + HEADER_BYTES, get_le32(h)) != get_le32(h + 4)) {
            damage_end = off + HEADER_BYTES + get_le32(h);
        } else {
            m->offsets[m->records] = off;
            m->lens[m->records] = get_le32(h);
            m->files[m->records] = f;
            m->records++;
            count++;
            off += HEADER_BYTES + get_le32(h);
            continue;
        }
        /* Zeros from a record boundary on: space preallocated ahead of the records, not a torn
           tail; the log ends here and nothing is reported. */
        if (is_last && all_zero(f->data + off, f->len - off))
            return count;
        if (!is_last || !all_zero(f->data + damage_end, f->len - damage_end))
            return -1;
        m->cut_file = which;
        m->cut_offset = off;
        m->cut_bytes = f->len - off;
        return count;
    }
    return count;
}

/* files are sorted by first_index. */
static void model_recover(model_t *m, const file_t *const *files, size_t nfiles)
{
    memset(m, 0, offsetof(model_t, offsets));
    m->cut_file = SIZE_MAX;
    m->first_index = files[0]->first_index;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i]->first_index == 0) {
            m->corrupt = 1;
            return;
        }
    }
    uint64_t next = files[0]->first_index;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i]->first_index != next) {
            m->corrupt = 1; /* a gap or an overlap */
            return;
        }
        int64_t count = model_scan(m, i, files[i], i + 1 == nfiles);
        if (count < 0 || (uint64_t)count > UINT64_MAX - files[i]->first_index) {
            m->corrupt = 1;
            return;
        }
        next = files[i]->first_index + (uint64_t)count;
    }
}

/* ---- the directory ------------------------------------------------------------------------ */

static const char *log_dir(void)
{
    static char dir[256];
    if (dir[0] == '\0') {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/ddialab-fuzz-seglog-%d", base, (int)getpid());
        dl_log_set_level(DL_LOG_ERROR); /* every torn tail is logged at WARN */
    }
    return dir;
}

static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void segment_path(const char *dir, uint64_t first_index, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%020" PRIu64 ".seg", dir, first_index);
}

static void write_file(const char *dir, const file_t *f)
{
    char path[512];
    segment_path(dir, f->first_index, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (f->len > 0 && write(fd, f->data, f->len) != (ssize_t)f->len))
        fail("cannot write %s: %s", path, strerror(errno));
    close(fd);
}

/* ---- checks on an open log ------------------------------------------------------------------ */

static void expect_record(dl_seglog_t *log, uint64_t index, const void *want, size_t want_len)
{
    void *data;
    size_t len;
    int rv = dl_seglog_read(log, index, &data, &len);
    if (rv != 0)
        fail("read of record %" PRIu64 " failed: %s (%s)", index, dl_strerror(rv),
             dl_seglog_errmsg(log));
    if (data == NULL || len != want_len || (len > 0 && memcmp(data, want, len) != 0))
        fail("record %" PRIu64 " reads back %zu bytes, expected %zu", index, len, want_len);
    free(data);
}

static void expect_absent(dl_seglog_t *log, uint64_t index)
{
    void *data;
    size_t len;
    int rv = dl_seglog_read(log, index, &data, &len);
    if (rv != -ENOENT)
        fail("read of %" PRIu64 " outside the log returned %d, not -ENOENT", index, rv);
}

#define MAX_APPEND 3

typedef struct appended_s {
    uint8_t data[MAX_APPEND][64];
    size_t len[MAX_APPEND];
    size_t count;
} appended_t;

/* Checks the records of an open log against the model, and the records appended since: every
   one when full is set, else the appended ones and about 16 of the recovered ones (they were
   all read once already; reads are most of the cost of a run). */
static void check_log(dl_seglog_t *log, const model_t *m, const appended_t *app, int full)
{
    uint64_t total = m->records + app->count;
    if (dl_seglog_first_index(log) != m->first_index)
        fail("first index %" PRIu64 ", expected %" PRIu64, dl_seglog_first_index(log),
             m->first_index);
    if (dl_seglog_last_index(log) != m->first_index + total - 1)
        fail("last index %" PRIu64 ", expected %" PRIu64, dl_seglog_last_index(log),
             m->first_index + total - 1);
    uint64_t stride = full || m->records <= 16 ? 1 : m->records / 16;
    for (uint64_t k = 0; k < m->records; k += stride)
        expect_record(log, m->first_index + k, m->files[k]->data + m->offsets[k] + HEADER_BYTES,
                      m->lens[k]);
    if (stride > 1) {
        uint64_t k = m->records - 1;
        expect_record(log, m->first_index + k, m->files[k]->data + m->offsets[k] + HEADER_BYTES,
                      m->lens[k]);
    }
    for (size_t k = 0; k < app->count; k++)
        expect_record(log, m->first_index + m->records + k, app->data[k], app->len[k]);
    expect_absent(log, m->first_index - 1);
    if (m->first_index + total != 0)
        expect_absent(log, m->first_index + total);
}

static void check_open(const char *dir, const file_t *const *files, size_t nfiles, const model_t *m,
                       int rv, dl_seglog_t *log, const dl_seglog_recovery_t *rep, const char *err)
{
    if (m->corrupt) {
        if (rv != DL_ECORRUPT)
            fail("open of a corrupt log returned %d (%s), not DL_ECORRUPT", rv,
                 rv == 0 ? "success" : err);
        if (strncmp(err, "seglog: corrupt record in ", 26) != 0)
            fail("DL_ECORRUPT with the message \"%s\"", err);
        return;
    }
    if (rv != 0)
        fail("open of a recoverable log failed: %s (%s)", dl_strerror(rv), err);
    if (rep->records != m->records)
        fail("report says %" PRIu64 " records, expected %" PRIu64, rep->records, m->records);
    if (m->cut_file == SIZE_MAX) {
        if (rep->truncated_bytes != 0 || rep->truncated_file[0] != '\0')
            fail("a cut was reported where there is no torn tail");
    } else {
        char path[512];
        segment_path(dir, files[m->cut_file]->first_index, path, sizeof(path));
        if (rep->truncated_bytes != m->cut_bytes || rep->truncated_offset != m->cut_offset ||
            strcmp(rep->truncated_file, path) != 0)
            fail("reported a cut of %" PRIu64 " bytes at %" PRIu64 " in %s, expected %zu at %zu "
                 "in %s",
                 rep->truncated_bytes, rep->truncated_offset, rep->truncated_file, m->cut_bytes,
                 m->cut_offset, path);
    }
    if (dl_seglog_synced_index(log) != dl_seglog_last_index(log))
        fail("synced index %" PRIu64 " after open, last index %" PRIu64,
             dl_seglog_synced_index(log), dl_seglog_last_index(log));
}

/* ---- the target --------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static file_t file_a, file_b;
    static model_t model;
    if (size < 4)
        return 0;
    uint8_t ctl = data[0];
    int8_t delta = (int8_t)data[1];
    const uint8_t *body = data + 4;
    size_t body_len = size - 4;
    size_t split = (size_t)(data[2] | data[3] << 8) % (body_len + 1);
    int two = ctl & 1;
    if (!two)
        split = body_len;

    file_t *fa = &file_a, *fb = &file_b;
    if (ctl & 2) {
        build_file(body, split, fa);
        build_file(body + split, body_len - split, fb);
    } else {
        fa->len = 0;
        fb->len = 0;
        append_bytes(fa, body, split);
        append_bytes(fb, body + split, body_len - split);
    }
    fa->first_index = first_indices[(ctl >> 2) & 7];

    const file_t *files[2] = {fa, fb};
    size_t nfiles = 1;
    if (two) {
        /* Where the first file ends according to the model, moved by delta if asked. */
        model_recover(&model, files, 1);
        fb->first_index = fa->first_index + model.records;
        if (ctl & 0x20)
            fb->first_index += (uint64_t)(int64_t)delta;
        if (fb->first_index != fa->first_index) {
            nfiles = 2;
            if (fb->first_index < fa->first_index) {
                files[0] = fb;
                files[1] = fa;
            }
        }
    }
    model_recover(&model, files, nfiles);

    const char *dir = log_dir();
    clean_dir(dir);
    if (mkdir(dir, 0755) != 0)
        fail("cannot create %s: %s", dir, strerror(errno));
    for (size_t i = 0; i < nfiles; i++)
        write_file(dir, files[i]);

    dl_seglog_options_t opts = {.segment_bytes = SEGMENT_BYTES,
                                .max_record_bytes = MAX_RECORD_BYTES,
                                .sync_policy = DL_SYNC_NONE};
    dl_seglog_t *log;
    dl_seglog_recovery_t rep;
    char err[1024];
    int rv = dl_seglog_open(dir, &opts, &log, &rep, err, sizeof(err));
    check_open(dir, files, nfiles, &model, rv, log, &rep, err);
    if (rv != 0) {
        clean_dir(dir);
        return 0;
    }

    appended_t app = {.count = 0};
    check_log(log, &model, &app, 1);

    /* Append a batch after the recovered records. Indices must not run past UINT64_MAX. */
    size_t want = 1 + (size_t)(ctl >> 6) % MAX_APPEND;
    struct iovec iov[MAX_APPEND];
    for (size_t k = 0; k < want; k++) {
        app.len[k] = (size * 7 + k * 23) % 50;
        for (size_t j = 0; j < app.len[k]; j++)
            app.data[k][j] = (uint8_t)(j * 31 + k + size);
        iov[k] = (struct iovec){app.data[k], app.len[k]};
    }
    uint64_t last = dl_seglog_last_index(log), first_new = 0;
    /* Recovery refuses a segment holding index UINT64_MAX (first + count must not overflow), so
       that is one past the highest index a log can hold. */
    int overflows = want > UINT64_MAX - (last + 1);
    rv = dl_seglog_append(log, iov, want, &first_new);
    if (overflows) {
        if (rv != -EOVERFLOW)
            fail("append up to or past index UINT64_MAX returned %d, not -EOVERFLOW (last "
                 "index was %" PRIu64 ", %zu records)",
                 rv, last, want);
        dl_seglog_close(log);
        clean_dir(dir);
        return 0;
    }
    if (rv != 0)
        fail("append after open failed: %s (%s)", dl_strerror(rv), dl_seglog_errmsg(log));
    if (first_new != last + 1)
        fail("append got index %" PRIu64 ", expected %" PRIu64, first_new, last + 1);
    app.count = want;
    check_log(log, &model, &app, 0);
    dl_seglog_close(log);

    /* Whatever was recovered and appended survives a reopen, with nothing more cut. */
    rv = dl_seglog_open(dir, &opts, &log, &rep, err, sizeof(err));
    if (rv != 0)
        fail("reopen after recovery and append failed: %s (%s)", dl_strerror(rv), err);
    if (rep.truncated_bytes != 0 || rep.records != model.records + app.count)
        fail("reopen kept %" PRIu64 " records and cut %" PRIu64 " bytes, expected %" PRIu64
             " and none",
             rep.records, rep.truncated_bytes, model.records + app.count);
    check_log(log, &model, &app, 0);
    dl_seglog_close(log);
    clean_dir(dir);
    return 0;
}
