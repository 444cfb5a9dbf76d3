/*
 * One partition of a topic: record batches on a seglog, one batch per seglog record, and an
 * in-memory offset index rebuilt from the batch headers at open. The contract is in
 * events/partition.h.
 */
#include "events/partition.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <limits.h>
#include <unistd.h>

#include "ddialab/error.h"
#include "ddialab/fsutil.h"
#include "events/batch.h"
#include "events/producers.h"

#define DEFAULT_MAX_BATCH_BYTES (16u << 20)
#define START_FILE              "start-offset" /* a seglog ignores names not its segments' */

/*
 * One stored batch. index[i] is seglog record first_index + i, and the batches are in offset
 * order (index[i + 1].base_offset > index[i].last_offset; equal to last_offset + 1 unless
 * compaction removed the batches between), so a binary search on base_offset finds the batch
 * that holds an offset, or the first one after it.
 */
typedef struct entry_s {
    int64_t base_offset;
    int64_t last_offset;
    /* The largest max timestamp of this batch and every batch before it. Producers may send
       timestamps out of order; a running maximum never decreases, so offset_for_time can
       binary-search it, and where it first reaches a value it is that batch's own. */
    int64_t max_timestamp;
    uint32_t size;
} entry_t;

struct dl_partition_s {
    char *dir;
    dl_seglog_t *log;
    /* The log start offset when it lies below the first batch (compaction removed the batches
       in between; kept in the file START_FILE), else INT64_MAX: the first batch's base. */
    int64_t start_offset;
    int gaps;             /* compacted (a START_FILE exists): offsets may jump between batches */
    uint64_t first_index; /* seglog index of index[0] */
    entry_t *index;
    size_t count, cap;
    int64_t high_watermark;
    uint64_t size_bytes;
    uint32_t max_batch_bytes;
    dl_producers_t *producers; /* idempotent producers' sequences (producers.h) */
    int failed;                /* an fsync of its log failed: no more writes or answers */
};

/* Makes room for one more index entry, so that a batch already written always gets its entry. */
static int reserve(dl_partition_t *p)
{
    if (dl_producers_reserve(p->producers) != 0)
        return -ENOMEM;
    if (p->count < p->cap)
        return 0;
    size_t cap = p->cap ? p->cap * 2 : 64;
    entry_t *index = realloc(p->index, cap * sizeof(*index));
    if (index == NULL)
        return -ENOMEM;
    p->index = index;
    p->cap = cap;
    return 0;
}

/* Records a stored batch of size bytes in the index (room reserved) and advances the offsets. */
static void push(dl_partition_t *p, const dl_kbatch_t *b, uint32_t size)
{
    int64_t max_ts = b->max_timestamp;
    if (p->count > 0 && p->index[p->count - 1].max_timestamp > max_ts)
        max_ts = p->index[p->count - 1].max_timestamp;
    int64_t last = b->base_offset + b->last_offset_delta;
    p->index[p->count++] = (entry_t){b->base_offset, last, max_ts, size};
    dl_producers_record(p->producers, b, b->base_offset);
    p->high_watermark = last + 1;
    p->size_bytes += size;
}

/*
 * Checks that the stored record at seglog index idx (len bytes at data) is one whole valid batch
 * that follows on from the batch before, and fills *b. Otherwise DL_ECORRUPT, with errmsg naming
 * dir, idx and the offset.
 */
static int check_stored(const dl_partition_t *p, const char *dir, uint64_t idx, const uint8_t *data,
                        size_t len, dl_kbatch_t *b, char *errmsg, size_t errlen)
{
    dl_kbatch_status_t st =
        dl_kbatch_parse(data, len, DL_KBATCH_VERIFY_CRC | DL_KBATCH_COMPACTED, b);
    const char *why = NULL;
    if (st != DL_KBATCH_OK)
        why = dl_kbatch_status_text(st);
    else if (b->total_len != len)
        why = "the record holds bytes after the end of the batch";
    else if (b->base_offset < 0 || b->base_offset > INT64_MAX - 1 - b->last_offset_delta)
        why = "the base offset is out of range";
    else if (p->count > 0 && b->base_offset < p->high_watermark)
        why = "the base offset is below the end of the batch before";
    else if (p->count > 0 && b->base_offset != p->high_watermark && !p->gaps)
        why = "the base offset does not follow on from the batch before (and the partition "
              "was never compacted)";
    if (why == NULL)
        return 0;
    /* A record too short to hold a base offset is named by the offset expected there. */
    int64_t offset = len >= 8 ? (int64_t)dl_kbe64(data) : p->high_watermark;
    if (errlen > 0)
        snprintf(errmsg, errlen,
                 "partition %s: corrupt batch at seglog index %" PRIu64 ", offset %" PRId64
                 " (expected %" PRId64 "): %s",
                 dir, idx, offset, p->high_watermark, why);
    return DL_ECORRUPT;
}

/* Reads every stored batch, first to last, and rebuilds the offset index from their headers. */
static int rebuild_index(dl_partition_t *p, const char *dir, char *errmsg, size_t errlen)
{
    uint64_t last = dl_seglog_last_index(p->log);
    p->first_index = dl_seglog_first_index(p->log);
    for (uint64_t idx = p->first_index; idx <= last; idx++) {
        int rv = reserve(p);
        if (rv < 0) {
            if (errlen > 0)
                snprintf(errmsg, errlen, "partition %s: out of memory", dir);
            return rv;
        }
        void *data;
        size_t len;
        rv = dl_seglog_read(p->log, idx, &data, &len);
        if (rv < 0) {
            if (errlen > 0)
                snprintf(errmsg, errlen, "partition %s: cannot read seglog index %" PRIu64 ": %s",
                         dir, idx, dl_seglog_errmsg(p->log));
            return rv;
        }
        dl_kbatch_t b;
        rv = check_stored(p, dir, idx, data, len, &b, errmsg, errlen);
        if (rv == 0)
            push(p, &b, (uint32_t)len);
        free(data);
        if (rv < 0)
            return rv;
    }
    return 0;
}

/* The directory next to dir with suffix appended ("<dir>.compacted"). */
static void sibling(char out[PATH_MAX], const char *dir, const char *suffix)
{
    snprintf(out, PATH_MAX, "%s%s", dir, suffix);
}

/* The parent directory of dir, for fsyncing renames in it. */
static int fsync_parent(const char *dir)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        return dl_fsync_dir(".");
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    return dl_fsync_dir(parent);
}

/*
 * Completes or undoes a compaction's swap that a crash interrupted (partition.h): a
 * "<dir>.compacted" is a finished, fsynced log that replaces dir; "<dir>.old" and
 * "<dir>.compacting" are leftovers to delete. Each step is safe to repeat.
 */
int dl_partition_recover_dir(const char *dir)
{
    char compacted[PATH_MAX], old[PATH_MAX], compacting[PATH_MAX];
    sibling(compacted, dir, ".compacted");
    sibling(old, dir, ".old");
    sibling(compacting, dir, ".compacting");
    struct stat st;
    int rv;
    if (stat(compacted, &st) == 0) {
        if (stat(dir, &st) == 0) {
            if ((rv = dl_remove_tree(old)) != 0)
                return rv;
            if (rename(dir, old) != 0)
                return -errno;
        }
        if (rename(compacted, dir) != 0)
            return -errno;
        if ((rv = fsync_parent(dir)) != 0)
            return rv;
    }
    if ((rv = dl_remove_tree(old)) != 0 || (rv = dl_remove_tree(compacting)) != 0)
        return rv;
    return 0;
}

/* The log start offset kept in dir's START_FILE, or INT64_MAX when there is none. */
static int64_t read_start_offset(const char *dir)
{
    char path[PATH_MAX], *text;
    size_t len;
    snprintf(path, sizeof(path), "%s/" START_FILE, dir);
    if (dl_read_file(path, &text, &len) != 0)
        return INT64_MAX;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    int ok = errno == 0 && end != text && v >= 0;
    free(text);
    return ok ? (int64_t)v : INT64_MAX;
}

int dl_partition_open(const char *dir, const dl_partition_options_t *opts, dl_partition_t **out,
                      char *errmsg, size_t errlen)
{
    int rv;
    *out = NULL;
    if (errlen > 0)
        errmsg[0] = '\0';
    dl_partition_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        if (errlen > 0)
            snprintf(errmsg, errlen, "partition %s: out of memory", dir);
        return -ENOMEM;
    }
    if ((p->producers = dl_producers_new()) == NULL) {
        free(p);
        if (errlen > 0)
            snprintf(errmsg, errlen, "partition %s: out of memory", dir);
        return -ENOMEM;
    }
    p->start_offset = INT64_MAX;
    if ((p->dir = strdup(dir)) == NULL) {
        dl_producers_free(p->producers);
        free(p);
        if (errlen > 0)
            snprintf(errmsg, errlen, "partition %s: out of memory", dir);
        return -ENOMEM;
    }
    if ((rv = dl_partition_recover_dir(dir)) != 0) {
        if (errlen > 0)
            snprintf(errmsg, errlen, "partition %s: cannot finish a compaction: %s", dir,
                     strerror(-rv));
        goto err_after_alloc;
    }
    dl_partition_options_t o = opts ? *opts : (dl_partition_options_t){0};
    p->max_batch_bytes = o.max_batch_bytes ? o.max_batch_bytes : DEFAULT_MAX_BATCH_BYTES;
    dl_seglog_options_t lo = {
        .segment_bytes = o.segment_bytes,
        .max_record_bytes = p->max_batch_bytes,
        .sync_policy = o.sync_policy,
        .sync_interval_ms = o.sync_interval_ms,
    };
    rv = dl_seglog_open(dir, &lo, &p->log, NULL, errmsg, errlen);
    if (rv < 0)
        goto err_after_alloc;
    p->start_offset = read_start_offset(dir);
    p->gaps = p->start_offset != INT64_MAX;
    rv = rebuild_index(p, dir, errmsg, errlen);
    if (rv < 0)
        goto err_after_log;
    *out = p;
    return 0;

err_after_log:
    free(p->index);
    dl_seglog_close(p->log);
err_after_alloc:
    dl_producers_free(p->producers);
    free(p->dir);
    free(p);
    return rv;
}

void dl_partition_close(dl_partition_t *p)
{
    if (p == NULL)
        return;
    free(p->dir);
    dl_seglog_close(p->log);
    dl_producers_free(p->producers);
    free(p->index);
    free(p);
}

int16_t dl_partition_check_producer(const dl_partition_t *p, const dl_kbatch_t *b,
                                    int64_t *duplicate_offset)
{
    return dl_producers_check(p->producers, b, duplicate_offset);
}

int64_t dl_partition_log_start_offset(const dl_partition_t *p)
{
    if (p->count == 0)
        return p->high_watermark;
    return p->start_offset < p->index[0].base_offset ? p->start_offset : p->index[0].base_offset;
}

int64_t dl_partition_high_watermark(const dl_partition_t *p)
{
    return p->high_watermark;
}

uint64_t dl_partition_size_bytes(const dl_partition_t *p)
{
    return p->size_bytes;
}

dl_seglog_t *dl_partition_log(dl_partition_t *p)
{
    return p->log;
}

int dl_partition_append(dl_partition_t *p, uint8_t *batch, size_t len, int64_t *base_offset)
{
    if (p->failed)
        return DL_EINTERNAL;
    if (len > p->max_batch_bytes)
        return DL_ETOOLARGE;
    dl_kbatch_t b;
    if (dl_kbatch_parse(batch, len, 0, &b) != DL_KBATCH_OK || b.total_len != len)
        return -EINVAL;
    if (b.records_count > INT64_MAX - p->high_watermark)
        return -EOVERFLOW;
    /* Room in the index first: once the seglog holds the batch, indexing it must not fail. */
    int rv = reserve(p);
    if (rv < 0)
        return rv;
    dl_kbatch_set_base_offset(batch, p->high_watermark);
    b.base_offset = p->high_watermark;
    struct iovec iov = {batch, len};
    uint64_t idx;
    rv = dl_seglog_append(p->log, &iov, 1, &idx);
    if (rv < 0)
        return rv;
    assert(idx == p->first_index + p->count);
    push(p, &b, (uint32_t)len);
    *base_offset = b.base_offset;
    return 0;
}

/* The position in the index of the batch holding offset, which lies in [log start, hw), or
 * of the first batch after it when compaction removed the batch that held it. */
static size_t find(const dl_partition_t *p, int64_t offset)
{
    size_t lo = 0, hi = p->count; /* the first entry whose last_offset >= offset */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->index[mid].last_offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    assert(lo < p->count);
    return lo;
}

int dl_partition_read(dl_partition_t *p, int64_t offset, size_t max_bytes, dl_buf_t *out)
{
    return dl_partition_read_upto(p, offset, max_bytes, p->high_watermark, out);
}

int64_t dl_partition_stable_offset(const dl_partition_t *p)
{
    uint64_t synced = dl_seglog_synced_index(p->log);
    if (p->count == 0 || synced < p->first_index)
        return dl_partition_log_start_offset(p);
    uint64_t i = synced - p->first_index;
    return i >= p->count ? p->high_watermark : p->index[i].last_offset + 1;
}

void dl_partition_set_failed(dl_partition_t *p)
{
    p->failed = 1;
}

int dl_partition_failed(const dl_partition_t *p)
{
    return p->failed;
}

int dl_partition_read_upto(dl_partition_t *p, int64_t offset, size_t max_bytes, int64_t end,
                           dl_buf_t *out)
{
    int rv;
    if (offset < dl_partition_log_start_offset(p) || offset > p->high_watermark)
        return -ERANGE;
    if (offset >= end)
        return 0;
    size_t start_len = out->len, total = 0;
    for (size_t i = find(p, offset); i < p->count && p->index[i].base_offset < end; i++) {
        if (total > 0 && (total > max_bytes || p->index[i].size > max_bytes - total))
            break;
        void *data;
        size_t len;
        rv = dl_seglog_read(p->log, p->first_index + i, &data, &len);
        if (rv < 0)
            goto err;
        /* A length that disagrees with the index means the seglog changed under it. */
        rv = len == p->index[i].size ? dl_buf_append(out, data, len) : DL_ECORRUPT;
        free(data);
        if (rv < 0)
            goto err;
        total += len;
    }
    return 0;

err:
    out->len = start_len; /* whole batches or nothing: the caller's buffer is as it was */
    return rv;
}

/*
 * Known simplification: the answer is batch-level. Kafka answers the offset of the first record
 * whose timestamp is at or after timestamp_ms; this returns the base offset of the batch that
 * holds it, which may be earlier when that batch also holds older records.
 */
int64_t dl_partition_offset_for_time(const dl_partition_t *p, int64_t timestamp_ms,
                                     int64_t *batch_timestamp)
{
    size_t lo = 0, hi = p->count; /* the first entry whose running max reaches timestamp_ms */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->index[mid].max_timestamp >= timestamp_ms)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == p->count)
        return -1;
    if (batch_timestamp != NULL)
        *batch_timestamp = p->index[lo].max_timestamp;
    return p->index[lo].base_offset;
}

int dl_partition_retain(dl_partition_t *p, int64_t now_ms, int64_t retention_ms,
                        int64_t retention_bytes, uint64_t *dropped_bytes)
{
    *dropped_bytes = 0;
    /* The first batch to keep: older batches go by time (the running maximum timestamp never
       decreases, so they are a prefix), then more while the rest is over the size limit. */
    size_t keep = 0;
    uint64_t size = p->size_bytes;
    if (retention_ms >= 0)
        while (keep < p->count && p->index[keep].max_timestamp < now_ms - retention_ms)
            size -= p->index[keep++].size;
    if (retention_bytes >= 0)
        while (keep < p->count && size > (uint64_t)retention_bytes)
            size -= p->index[keep++].size;
    if (keep == 0)
        return 0;
    /* Only whole segments go, and never the active one: the seglog keeps the segment holding
       the first batch to keep, and everything after it. */
    int rv = dl_seglog_drop_prefix(p->log, p->first_index + keep);
    uint64_t first = dl_seglog_first_index(p->log);
    size_t gone = (size_t)(first - p->first_index);
    for (size_t i = 0; i < gone; i++)
        *dropped_bytes += p->index[i].size;
    memmove(p->index, p->index + gone, (p->count - gone) * sizeof(*p->index));
    p->count -= gone;
    p->first_index = first;
    p->size_bytes -= *dropped_bytes;
    if (gone > 0 && p->start_offset != INT64_MAX) {
        p->start_offset = INT64_MAX; /* the first batch kept starts the log now */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/" START_FILE, p->dir);
        if ((unlink(path) != 0 && errno != ENOENT) || dl_fsync_dir(p->dir) != 0)
            rv = rv ? rv : -EIO; /* a restart would answer an earliest offset too low */
    }
    return rv;
}

const char *dl_partition_dir(const dl_partition_t *p)
{
    return p->dir;
}

size_t dl_partition_batch_count(const dl_partition_t *p)
{
    return p->count;
}

int dl_partition_batch_at(dl_partition_t *p, size_t i, void **data, size_t *len)
{
    if (i >= p->count)
        return -ENOENT;
    int rv = dl_seglog_read(p->log, p->first_index + i, data, len);
    if (rv == 0 && *len != p->index[i].size) {
        free(*data);
        *data = NULL;
        return DL_ECORRUPT;
    }
    return rv;
}

int64_t dl_partition_batch_last_offset(const dl_partition_t *p, size_t i)
{
    return p->index[i].last_offset;
}

int dl_partition_append_stored(dl_partition_t *p, const uint8_t *batch, size_t len)
{
    dl_kbatch_t b;
    if (len > p->max_batch_bytes)
        return DL_ETOOLARGE;
    if (dl_kbatch_parse(batch, len, DL_KBATCH_COMPACTED, &b) != DL_KBATCH_OK ||
        b.total_len != len || b.base_offset < p->high_watermark ||
        b.base_offset > INT64_MAX - 1 - b.last_offset_delta)
        return -EINVAL;
    int rv = reserve(p);
    if (rv < 0)
        return rv;
    struct iovec iov = {(void *)batch, len};
    uint64_t idx;
    if ((rv = dl_seglog_append(p->log, &iov, 1, &idx)) < 0)
        return rv;
    assert(idx == p->first_index + p->count);
    push(p, &b, (uint32_t)len);
    return 0;
}

int dl_partition_adopt(dl_partition_t *p, dl_partition_t *q, int64_t start_offset, char *errmsg,
                       size_t errlen)
{
    char compacted[PATH_MAX], old[PATH_MAX], path[PATH_MAX], text[32];
    sibling(compacted, p->dir, ".compacted");
    sibling(old, p->dir, ".old");
    int rv;
    /* Before the commit point: any failure leaves p as it was (its next open deletes q's dir). */
    if ((rv = dl_seglog_sync(q->log)) != 0) {
        snprintf(errmsg, errlen, "cannot fsync the compacted log: %s", dl_seglog_errmsg(q->log));
        return rv;
    }
    snprintf(path, sizeof(path), "%s/" START_FILE, q->dir);
    int n = snprintf(text, sizeof(text), "%" PRId64 "\n", start_offset);
    if ((rv = dl_atomic_write_file(path, text, (size_t)n)) != 0 ||
        (rv = dl_remove_tree(old)) != 0 || (rv = dl_remove_tree(compacted)) != 0) {
        snprintf(errmsg, errlen, "cannot prepare the swap of %s: %s", p->dir, strerror(-rv));
        return rv;
    }
    /* The commit point. Where the file system can (ext4, xfs, btrfs, tmpfs), one atomic
       exchange of the two directories: the partition's name never stops existing, and the old
       log ends up under q's name. Elsewhere, renames that dl_partition_open finishes after a
       crash: q -> .compacted (the commit), p -> .old, .compacted -> p. */
    char gone[PATH_MAX]; /* where the old log is afterwards */
    snprintf(gone, sizeof(gone), "%s", q->dir);
    int post = 0;
    if (renameat2(AT_FDCWD, q->dir, AT_FDCWD, p->dir, RENAME_EXCHANGE) == 0) {
        post = fsync_parent(p->dir);
    } else if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
        rv = -errno;
        snprintf(errmsg, errlen, "cannot swap in the compacted log of %s: %s", p->dir,
                 strerror(-rv));
        return rv;
    } else if (rename(q->dir, compacted) != 0) {
        rv = -errno;
        snprintf(errmsg, errlen, "cannot rename %s: %s", q->dir, strerror(-rv));
        return rv;
    } else {
        snprintf(gone, sizeof(gone), "%s", old);
        if ((post = fsync_parent(p->dir)) == 0 && rename(p->dir, old) != 0)
            post = -errno;
        if (post == 0 && rename(compacted, p->dir) != 0)
            post = -errno;
        if (post == 0)
            post = fsync_parent(p->dir);
    }
    /* Past the commit point the compacted log is the partition, whatever happens next: a
       restart would find it (or finish the renames that make it so). */
    char *dir = p->dir;
    dl_seglog_close(p->log);
    dl_producers_free(p->producers);
    free(p->index);
    free(q->dir);
    *p = *q; /* the log, its index, producers and offsets; not failed */
    p->dir = dir;
    p->start_offset = start_offset;
    p->gaps = 1;
    free(q);
    dl_seglog_set_dir(p->log, p->dir);
    if (post != 0) {
        /* The renames did not all reach the disk: no more writes until a restart settles it. */
        p->failed = 1;
        snprintf(errmsg, errlen, "the compacted log of %s is swapped in, but: %s", p->dir,
                 strerror(-post));
        return 1;
    }
    (void)dl_remove_tree(gone); /* the old log; a leftover goes at the next open */
    return 0;
}
