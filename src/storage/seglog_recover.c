/*
 * Recovery of one segment file: verify every record, build the offset index, and tell a torn
 * tail (cut back and reported) from corruption (refused). The rules are listed in
 * ddialab/seglog.h; this file is their only implementation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/crc32c.h"
#include "ddialab/error.h"
#include "ddialab/fsutil.h"
#include "ddialab/logging.h"
#include "storage/seglog_internal.h"

#define CHUNK_BYTES (1u << 20)

/* A forward-moving read buffer over one file, so that scanning costs one pread per megabyte
   rather than two per record. */
typedef struct reader_s {
    int fd;
    uint64_t file_size;
    unsigned char *buf;
    size_t cap;
    uint64_t buf_offset; /* file offset of buf[0] */
    size_t buf_len;
} reader_t;

/* Points *out at the bytes [offset, offset + len) of the file; len must not pass its end. */
static int reader_get(reader_t *r, uint64_t offset, size_t len, const unsigned char **out)
{
    if (offset >= r->buf_offset && offset + len <= r->buf_offset + r->buf_len) {
        *out = r->buf + (offset - r->buf_offset);
        return 0;
    }
    size_t want = len > CHUNK_BYTES ? len : CHUNK_BYTES;
    if (want > r->file_size - offset)
        want = (size_t)(r->file_size - offset);
    if (want > r->cap) {
        unsigned char *bigger = realloc(r->buf, want);
        if (bigger == NULL)
            return -ENOMEM;
        r->buf = bigger;
        r->cap = want;
    }
    size_t keep = 0; /* bytes already buffered from offset on */
    if (offset >= r->buf_offset && offset < r->buf_offset + r->buf_len) {
        keep = (size_t)(r->buf_offset + r->buf_len - offset);
        memmove(r->buf, r->buf + (offset - r->buf_offset), keep);
    }
    ssize_t n = dl_pread_all(r->fd, r->buf + keep, want - keep, offset + keep);
    if (n < 0)
        return (int)n;
    if ((size_t)n < want - keep)
        return -EIO; /* the file shrank under us: someone else is writing to the log */
    r->buf_offset = offset;
    r->buf_len = want;
    *out = r->buf;
    return 0;
}

/* Sets *zero to whether every byte of [from, file end) is zero. */
static int rest_is_zero(reader_t *r, uint64_t from, int *zero)
{
    *zero = 1;
    while (from < r->file_size) {
        uint64_t left = r->file_size - from;
        size_t n = left < CHUNK_BYTES ? (size_t)left : CHUNK_BYTES;
        const unsigned char *p;
        int rv = reader_get(r, from, n, &p);
        if (rv < 0)
            return rv;
        for (size_t i = 0; i < n; i++) {
            if (p[i] != 0) {
                *zero = 0;
                return 0;
            }
        }
        from += n;
    }
    return 0;
}

/* Cuts the torn tail of the last segment at offset and fills in the report. */
static int cut_torn_tail(dl_seglog_t *log, dl__seglog_segment_t *seg, uint64_t offset,
                         const char *path, const char *why, dl_seglog_recovery_t *report)
{
    uint64_t cut = seg->size - offset;
    if (ftruncate(seg->fd, (off_t)offset) != 0)
        return dl__seglog_error(log, -errno, "seglog: cannot truncate torn tail of %s at %" PRIu64,
                                path, offset);
    DL_WARN("seglog: recovered %s: cut a torn tail of %" PRIu64 " bytes at offset %" PRIu64 " (%s)",
            path, cut, offset, why);
    seg->size = offset;
    report->truncated_bytes = cut;
    report->truncated_offset = offset;
    snprintf(report->truncated_file, sizeof(report->truncated_file), "%.*s",
             (int)sizeof(report->truncated_file) - 1, path);
    return 0;
}

static int read_failed(dl_seglog_t *log, int rv, const char *path, uint64_t offset)
{
    return dl__seglog_error(log, rv, "seglog: cannot read %s at offset %" PRIu64 ": %s", path,
                            offset, dl_strerror(rv));
}

/* What check_record found at an offset. */
typedef struct record_check_s {
    uint32_t len;        /* payload length of a valid record */
    const char *damage;  /* NULL for a valid record, else what is wrong */
    uint64_t damage_end; /* where the damaged record ends, as far as it can be told */
} record_check_t;

/* Checks the record at offset. Returns 0 with out filled in, DL_ECORRUPT for a trustworthy
   length above the limit, or an I/O error. */
static int check_record(dl_seglog_t *log, reader_t *r, uint64_t offset, const char *path,
                        record_check_t *out)
{
    uint64_t left = r->file_size - offset;
    const unsigned char *h, *payload;
    *out = (record_check_t){0};
    if (left < DL__SEGLOG_HEADER_BYTES) {
        out->damage = "fewer than 12 bytes left for a header";
        out->damage_end = r->file_size;
        return 0;
    }
    int rv = reader_get(r, offset, DL__SEGLOG_HEADER_BYTES, &h);
    if (rv < 0)
        return rv;
    uint32_t len = dl__get_le32(h);
    uint32_t payload_crc = dl__get_le32(h + 4);
    if (dl_crc32c(0, h, 8) != dl__get_le32(h + 8)) {
        out->damage = "header checksum mismatch";
        out->damage_end = offset + DL__SEGLOG_HEADER_BYTES;
        return 0;
    }
    if (len > log->opts.max_record_bytes)
        return dl__seglog_error(log, DL_ECORRUPT,
                                "seglog: corrupt record in %s at offset %" PRIu64
                                ": length %" PRIu32 " is above max_record_bytes %" PRIu32,
                                path, offset, len, log->opts.max_record_bytes);
    if (len > left - DL__SEGLOG_HEADER_BYTES) {
        out->damage = "payload extends past the end of the file";
        out->damage_end = r->file_size;
        return 0;
    }
    rv = reader_get(r, offset + DL__SEGLOG_HEADER_BYTES, len, &payload);
    if (rv < 0)
        return rv;
    if (dl_crc32c(0, payload, len) != payload_crc) {
        out->damage = "payload checksum mismatch";
        out->damage_end = offset + DL__SEGLOG_HEADER_BYTES + len;
        return 0;
    }
    out->len = len;
    return 0;
}

int dl__seglog_scan_segment(dl_seglog_t *log, dl__seglog_segment_t *seg, int is_last,
                            dl_seglog_recovery_t *report)
{
    char name[DL__SEGLOG_NAME_BYTES];
    char path[1024];
    dl__seglog_segment_name(seg->first_index, name);
    snprintf(path, sizeof(path), "%s/%s", log->dir, name);

    reader_t r = {.fd = seg->fd, .file_size = seg->size};
    uint64_t offset = 0;
    int rv = 0;
    seg->count = 0;

    while (offset < seg->size) {
        record_check_t check;
        rv = check_record(log, &r, offset, path, &check);
        if (rv < 0 && rv != DL_ECORRUPT)
            rv = read_failed(log, rv, path, offset);
        if (rv < 0)
            goto out;
        if (check.damage == NULL) {
            rv = dl__seglog_reserve_offsets(seg, 1);
            if (rv < 0) {
                dl__seglog_error(log, rv, "seglog: out of memory indexing %s", path);
                goto out;
            }
            seg->offsets[seg->count++] = offset;
            offset += DL__SEGLOG_HEADER_BYTES + (uint64_t)check.len;
            continue;
        }
        if (!is_last) {
            rv = dl__seglog_error(log, DL_ECORRUPT,
                                  "seglog: corrupt record in %s at offset %" PRIu64
                                  ": %s, in a segment that is not the last one",
                                  path, offset, check.damage);
            goto out;
        }
        int zero;
        /* Zeros from a record boundary on are space preallocated ahead of the records (see
           seglog.c preallocate), not damage: the log simply ends here. */
        rv = rest_is_zero(&r, offset, &zero);
        if (rv < 0) {
            read_failed(log, rv, path, offset);
            goto out;
        }
        if (zero) {
            seg->size = offset;
            rv = 0;
            goto out;
        }
        rv = rest_is_zero(&r, check.damage_end, &zero);
        if (rv < 0) {
            read_failed(log, rv, path, check.damage_end);
            goto out;
        }
        if (!zero) {
            rv = dl__seglog_error(log, DL_ECORRUPT,
                                  "seglog: corrupt record in %s at offset %" PRIu64
                                  ": %s, and non-zero bytes follow it, so it is not a torn tail",
                                  path, offset, check.damage);
            goto out;
        }
        rv = cut_torn_tail(log, seg, offset, path, check.damage, report);
        goto out;
    }

out:
    if (rv < 0 && rv != DL_ECORRUPT && rv != -ENOMEM)
        dl__seglog_error(log, rv, "seglog: cannot read %s at offset %" PRIu64 ": %s", path, offset,
                         dl_strerror(rv));
    free(r.buf);
    return rv;
}
