/*
 * The segmented log: opening and recovery, segment files, appends and reads.
 * Removing records is in seglog_trim.c, group commit in seglog_sync.c, and the per-segment
 * recovery rules in seglog_recover.c. The contract is in ddialab/seglog.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ddialab/crc32c.h"
#include "ddialab/error.h"
#include "ddialab/fsutil.h"
#include "storage/seglog_internal.h"

#define DEFAULT_SEGMENT_BYTES    DL_SEGLOG_DEFAULT_SEGMENT_BYTES
#define DEFAULT_MAX_RECORD_BYTES (64u << 20)
#define MAX_OPEN_SEALED          32  /* sealed segments whose fd stays open for reads */
#define BATCH_CHUNK_RECORDS      512 /* records per pwritev: two iovecs each, within IOV_MAX */

/* ---- errors ------------------------------------------------------------------------------- */

int dl__seglog_error(dl_seglog_t *log, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log->errmsg, sizeof(log->errmsg), fmt, ap);
    va_end(ap);
    return rv;
}

int dl__seglog_fail(dl_seglog_t *log, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log->errmsg, sizeof(log->errmsg), fmt, ap);
    va_end(ap);
    log->failed = rv;
    return rv;
}

const char *dl_seglog_errmsg(const dl_seglog_t *log)
{
    return log->errmsg;
}

/* ---- segments ----------------------------------------------------------------------------- */

void dl__seglog_segment_name(uint64_t first_index, char name[DL__SEGLOG_NAME_BYTES])
{
    snprintf(name, DL__SEGLOG_NAME_BYTES, "%020" PRIu64 ".seg", first_index);
}

/* Parses a segment file name; 0 if name is not one. */
static int parse_segment_name(const char *name, uint64_t *first_index)
{
    if (strlen(name) != DL__SEGLOG_NAME_BYTES - 1 ||
        strcmp(name + DL__SEGLOG_NAME_DIGITS, ".seg") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < DL__SEGLOG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        unsigned digit = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return 0;
        v = v * 10 + digit;
    }
    *first_index = v;
    return 1;
}

int dl__seglog_reserve_offsets(dl__seglog_segment_t *seg, size_t n)
{
    if (seg->count + n <= seg->offsets_cap)
        return 0;
    size_t cap = seg->offsets_cap ? seg->offsets_cap : 64;
    while (cap < seg->count + n)
        cap *= 2;
    uint64_t *bigger = realloc(seg->offsets, cap * sizeof(*bigger));
    if (bigger == NULL)
        return -ENOMEM;
    seg->offsets = bigger;
    seg->offsets_cap = cap;
    return 0;
}

static int reserve_segments(dl_seglog_t *log, size_t n)
{
    if (log->nsegs + n <= log->segs_cap)
        return 0;
    size_t cap = log->segs_cap ? log->segs_cap * 2 : 8;
    while (cap < log->nsegs + n)
        cap *= 2;
    dl__seglog_segment_t *bigger = realloc(log->segs, cap * sizeof(*bigger));
    if (bigger == NULL)
        return -ENOMEM;
    log->segs = bigger;
    log->segs_cap = cap;
    return 0;
}

static dl__seglog_segment_t *active_segment(const dl_seglog_t *log)
{
    return &log->segs[log->nsegs - 1];
}

static void segment_path(const dl_seglog_t *log, uint64_t first_index, char *out, size_t outlen)
{
    char name[DL__SEGLOG_NAME_BYTES];
    dl__seglog_segment_name(first_index, name);
    snprintf(out, outlen, "%s/%s", log->dir, name);
}

int dl__seglog_fsync_dir(dl_seglog_t *log)
{
    if (fsync(log->dirfd) != 0)
        return dl__seglog_fail(log, -errno, "seglog: fsync of directory %s failed: %s", log->dir,
                               strerror(errno));
    return 0;
}

/* Closes sealed segments' fds, least recently used first, until at most max_open stay open. */
static void limit_open_sealed(dl_seglog_t *log, size_t max_open)
{
    for (;;) {
        size_t open = 0, lru = 0;
        for (size_t i = 0; i + 1 < log->nsegs; i++) {
            if (log->segs[i].fd < 0)
                continue;
            if (open == 0 || log->segs[i].last_used < log->segs[lru].last_used)
                lru = i;
            open++;
        }
        if (open <= max_open)
            return;
        close(log->segs[lru].fd);
        log->segs[lru].fd = -1;
    }
}

int dl__seglog_segment_fd(dl_seglog_t *log, size_t i)
{
    dl__seglog_segment_t *seg = &log->segs[i];
    seg->last_used = ++log->tick;
    if (seg->fd >= 0)
        return seg->fd;
    limit_open_sealed(log, MAX_OPEN_SEALED - 1);
    char name[DL__SEGLOG_NAME_BYTES];
    dl__seglog_segment_name(seg->first_index, name);
    int fd = openat(log->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        char path[1024];
        segment_path(log, seg->first_index, path, sizeof(path));
        /* A listed segment that vanished is damage, not an index outside the log. */
        int rv = errno == ENOENT ? -EIO : -errno;
        return dl__seglog_error(log, rv, "seglog: cannot open %s: %s", path, strerror(errno));
    }
    seg->fd = fd;
    return fd;
}

int dl__seglog_create_segment(dl_seglog_t *log, uint64_t first_index)
{
    char name[DL__SEGLOG_NAME_BYTES];
    int rv = reserve_segments(log, 1);
    if (rv < 0)
        return dl__seglog_error(log, rv, "seglog: out of memory");
    dl__seglog_segment_name(first_index, name);
    int fd = openat(log->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return dl__seglog_error(log, -errno, "seglog: cannot create %s/%s: %s", log->dir, name,
                                strerror(errno));
    log->segs[log->nsegs++] =
        (dl__seglog_segment_t){.first_index = first_index, .fd = fd, .last_used = ++log->tick};
    return dl__seglog_fsync_dir(log);
}

int dl__seglog_remove_segment(dl_seglog_t *log, size_t i)
{
    dl__seglog_segment_t *seg = &log->segs[i];
    char name[DL__SEGLOG_NAME_BYTES];
    dl__seglog_segment_name(seg->first_index, name);
    if (unlinkat(log->dirfd, name, 0) != 0 && errno != ENOENT)
        return dl__seglog_error(log, -errno, "seglog: cannot delete %s/%s: %s", log->dir, name,
                                strerror(errno));
    if (seg->fd >= 0)
        close(seg->fd);
    free(seg->offsets);
    memmove(seg, seg + 1, (log->nsegs - i - 1) * sizeof(*seg));
    log->nsegs--;
    return dl__seglog_fsync_dir(log);
}

/* ---- open and close ----------------------------------------------------------------------- */

static int apply_options(dl_seglog_t *log, const dl_seglog_options_t *opts)
{
    dl_seglog_options_t o = {0};
    if (opts != NULL)
        o = *opts;
    if (o.segment_bytes == 0)
        o.segment_bytes = DEFAULT_SEGMENT_BYTES;
    if (o.max_record_bytes == 0)
        o.max_record_bytes = DEFAULT_MAX_RECORD_BYTES;
    if (o.sync_policy != DL_SYNC_BATCH && o.sync_policy != DL_SYNC_INTERVAL &&
        o.sync_policy != DL_SYNC_NONE)
        return dl__seglog_error(log, DL_ECONFIG, "seglog: unknown sync policy %d",
                                (int)o.sync_policy);
    if (o.sync_interval_ms < 0)
        return dl__seglog_error(log, DL_ECONFIG, "seglog: sync_interval_ms is negative");
    log->opts = o;
    return 0;
}

static int compare_segments(const void *a, const void *b)
{
    uint64_t x = ((const dl__seglog_segment_t *)a)->first_index;
    uint64_t y = ((const dl__seglog_segment_t *)b)->first_index;
    return x < y ? -1 : x > y;
}

/* Fills log->segs with the segment files in the directory, sorted, not yet opened. */
static int list_segments(dl_seglog_t *log)
{
    int fd = dup(log->dirfd);
    if (fd < 0)
        return dl__seglog_error(log, -errno, "seglog: dup: %s", strerror(errno));
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return dl__seglog_error(log, -errno, "seglog: cannot list %s: %s", log->dir,
                                strerror(errno));
    }
    rewinddir(d);
    int rv = 0;
    struct dirent *e;
    while ((errno = 0, e = readdir(d)) != NULL) {
        uint64_t first_index;
        if (!parse_segment_name(e->d_name, &first_index))
            continue;
        if (first_index == 0) {
            rv = dl__seglog_error(log, DL_ECORRUPT,
                                  "seglog: corrupt record in %s/%s at offset 0: "
                                  "a segment cannot start at index 0",
                                  log->dir, e->d_name);
            goto out;
        }
        rv = reserve_segments(log, 1);
        if (rv < 0)
            goto out;
        log->segs[log->nsegs++] = (dl__seglog_segment_t){.first_index = first_index, .fd = -1};
    }
    if (errno != 0)
        rv = dl__seglog_error(log, -errno, "seglog: cannot list %s: %s", log->dir, strerror(errno));
    if (log->nsegs > 1)
        qsort(log->segs, log->nsegs, sizeof(*log->segs), compare_segments);
out:
    closedir(d);
    return rv;
}

/* Opens, checks and indexes every segment, oldest first, and makes the result durable. */
static int recover(dl_seglog_t *log, dl_seglog_recovery_t *report)
{
    char path[1024];
    for (size_t i = 0; i < log->nsegs; i++) {
        dl__seglog_segment_t *seg = &log->segs[i];
        int is_last = i + 1 == log->nsegs;
        segment_path(log, seg->first_index, path, sizeof(path));
        if (i > 0) {
            const dl__seglog_segment_t *prev = &log->segs[i - 1];
            uint64_t expected = prev->first_index + prev->count;
            if (seg->first_index != expected)
                return dl__seglog_error(log, DL_ECORRUPT,
                                        "seglog: corrupt record in %s at offset 0: the segment "
                                        "starts at index %" PRIu64 " but the one before it ends "
                                        "at %" PRIu64 " (%s)",
                                        path, seg->first_index, expected - 1,
                                        seg->first_index > expected ? "a gap" : "an overlap");
        }
        int fd = dl__seglog_segment_fd(log, i);
        if (fd < 0)
            return fd;
        struct stat st;
        if (fstat(fd, &st) != 0)
            return dl__seglog_error(log, -errno, "seglog: cannot stat %s: %s", path,
                                    strerror(errno));
        seg->size = (uint64_t)st.st_size;
        seg->allocated = seg->size;
        int rv = dl__seglog_scan_segment(log, seg, is_last, report);
        if (rv < 0)
            return rv;
        if (seg->count > UINT64_MAX - seg->first_index)
            return dl__seglog_error(log, DL_ECORRUPT,
                                    "seglog: corrupt record in %s at offset 0: indices overflow",
                                    path);
        report->records += seg->count;
        if (!is_last) {
            close(seg->fd);
            seg->fd = -1;
        }
    }
    /* Records that a crashed process left in the page cache, and the cut of a torn tail, become
       durable now, before anyone counts them as synced. Sealed segments were fdatasynced when
       they were sealed. */
    dl__seglog_segment_t *last = active_segment(log);
    if (fdatasync(last->fd) != 0) {
        segment_path(log, last->first_index, path, sizeof(path));
        return dl__seglog_error(log, -errno, "seglog: fdatasync of %s failed: %s", path,
                                strerror(errno));
    }
    int rv = dl__seglog_fsync_dir(log);
    if (rv < 0)
        return rv;
    log->synced_index = dl_seglog_last_index(log);
    return 0;
}

int dl_seglog_open(const char *dir, const dl_seglog_options_t *opts, dl_seglog_t **out,
                   dl_seglog_recovery_t *report, char *errmsg, size_t errlen)
{
    dl_seglog_recovery_t scratch;
    int rv;
    *out = NULL;
    if (errlen > 0)
        errmsg[0] = '\0';
    if (report == NULL)
        report = &scratch;
    memset(report, 0, sizeof(*report));

    dl_seglog_t *log = calloc(1, sizeof(*log));
    if (log == NULL) {
        if (errlen > 0)
            snprintf(errmsg, errlen, "seglog: out of memory");
        return -ENOMEM;
    }
    log->dirfd = -1;
    log->lockfd = -1;
    log->dir = strdup(dir);
    if (log->dir == NULL) {
        rv = dl__seglog_error(log, -ENOMEM, "seglog: out of memory");
        goto err;
    }
    rv = apply_options(log, opts);
    if (rv < 0)
        goto err;
    rv = dl_mkdir_p(dir);
    if (rv < 0) {
        dl__seglog_error(log, rv, "seglog: cannot create directory %s: %s", dir, dl_strerror(rv));
        goto err;
    }
    log->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->dirfd < 0) {
        rv = dl__seglog_error(log, -errno, "seglog: cannot open directory %s: %s", dir,
                              strerror(errno));
        goto err;
    }
    /* Two writers on one log would interleave records; the lock keeps the second one out. It is
       released when the fd closes, including when the process dies. */
    log->lockfd = openat(log->dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (log->lockfd < 0) {
        rv = dl__seglog_error(log, -errno, "seglog: cannot open %s/LOCK: %s", dir, strerror(errno));
        goto err;
    }
    if (flock(log->lockfd, LOCK_EX | LOCK_NB) != 0) {
        rv = errno == EWOULDBLOCK ? -EBUSY : -errno;
        dl__seglog_error(log, rv, "seglog: %s is already open (%s/LOCK is locked)", dir, dir);
        goto err;
    }
    rv = list_segments(log);
    if (rv < 0)
        goto err;
    if (log->nsegs == 0) {
        rv = dl__seglog_create_segment(log, 1);
        if (rv < 0)
            goto err;
    }
    rv = recover(log, report);
    if (rv < 0)
        goto err;
    *out = log;
    return 0;

err:
    if (errlen > 0)
        snprintf(errmsg, errlen, "%s", log->errmsg);
    dl_seglog_close(log);
    return rv;
}

void dl_seglog_close(dl_seglog_t *log)
{
    if (log == NULL)
        return;
    for (size_t i = 0; i < log->nsegs; i++) {
        if (log->segs[i].fd >= 0)
            close(log->segs[i].fd);
        free(log->segs[i].offsets);
    }
    free(log->segs);
    if (log->lockfd >= 0)
        close(log->lockfd);
    if (log->dirfd >= 0)
        close(log->dirfd);
    free(log->dir);
    free(log);
}

/* ---- positions ---------------------------------------------------------------------------- */

uint64_t dl_seglog_first_index(const dl_seglog_t *log)
{
    return log->segs[0].first_index;
}

uint64_t dl_seglog_last_index(const dl_seglog_t *log)
{
    const dl__seglog_segment_t *seg = active_segment(log);
    return seg->first_index + seg->count - 1;
}

uint64_t dl_seglog_synced_index(const dl_seglog_t *log)
{
    return log->synced_index;
}

uint64_t dl_seglog_stable_index(const dl_seglog_t *log)
{
    if (log->opts.sync_policy == DL_SYNC_BATCH)
        return log->synced_index;
    return dl_seglog_last_index(log);
}

/* ---- append ------------------------------------------------------------------------------- */

/* pwritev(2) or preadv(2) of every byte of iov (which it consumes), retrying short transfers.
   Returns 0, a negative errno, or -ENODATA when a read meets the end of the file. */
static int transfer_all(int fd, struct iovec *iov, int iovcnt, uint64_t offset, int writing)
{
    while (iovcnt > 0 && iov->iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        ssize_t n = writing ? pwritev(fd, iov, iovcnt, (off_t)offset)
                            : preadv(fd, iov, iovcnt, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return writing ? -EIO : -ENODATA;
        offset += (uint64_t)n;
        size_t done = (size_t)n;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static void encode_header(unsigned char h[DL__SEGLOG_HEADER_BYTES], const void *payload,
                          uint32_t len)
{
    dl__put_le32(h, len);
    dl__put_le32(h + 4, dl_crc32c(0, payload, len));
    dl__put_le32(h + 8, dl_crc32c(0, h, 8));
}

/* Seals the active segment (fdatasync, so that no torn record can ever sit in front of a later
   segment) and starts a new one at the next index. */
#define PREALLOC_BYTES (4u << 20)

static int roll(dl_seglog_t *log)
{
    dl__seglog_segment_t *seg = active_segment(log);
    uint64_t last = seg->first_index + seg->count - 1;
    int cut = seg->allocated > seg->size;
    if (cut && ftruncate(seg->fd, (off_t)seg->size) != 0) {
        char path[1024];
        segment_path(log, seg->first_index, path, sizeof(path));
        return dl__seglog_fail(log, -errno, "seglog: cannot cut %s back to its records: %s", path,
                               strerror(errno));
    }
    seg->allocated = seg->size;
    /* A sealed segment holds whole records only: recovery refuses anything else in it. */
    if (log->synced_index < last || cut) {
        if (fdatasync(seg->fd) != 0) {
            char path[1024];
            segment_path(log, seg->first_index, path, sizeof(path));
            return dl__seglog_fail(log, -errno, "seglog: fdatasync of %s failed: %s", path,
                                   strerror(errno));
        }
        log->synced_index = last; /* every segment's directory entry was fsynced at creation */
    }
    int rv = dl__seglog_create_segment(log, last + 1);
    if (rv < 0)
        return rv;
    limit_open_sealed(log, MAX_OPEN_SEALED);
    return 0;
}

/*
 * Makes the active segment's file at least `end` bytes long, zero-filling ahead in steps of
 * PREALLOC_BYTES (never past the segment size), so that most group commits overwrite existing
 * blocks. Zeros are never a valid record, and recovery reads them as the end of the log.
 */
static int preallocate(dl_seglog_t *log, dl__seglog_segment_t *seg, uint64_t end)
{
    static const unsigned char zeros[64 * 1024];
    if (end <= seg->allocated)
        return 0;
    uint64_t target = seg->allocated + PREALLOC_BYTES;
    if (target > log->opts.segment_bytes)
        target = log->opts.segment_bytes;
    if (target < end)
        target = end;
    uint64_t at = seg->allocated;
    while (at < target) {
        size_t n = target - at < sizeof(zeros) ? (size_t)(target - at) : sizeof(zeros);
        ssize_t w = pwrite(seg->fd, zeros, n, (off_t)at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            char path[1024];
            segment_path(log, seg->first_index, path, sizeof(path));
            return dl__seglog_error(log, w < 0 ? -errno : -EIO,
                                    "seglog: cannot preallocate %s to %" PRIu64 " bytes: %s", path,
                                    target, w < 0 ? strerror(errno) : "short write");
        }
        at += (uint64_t)w;
    }
    seg->allocated = target;
    return 0;
}

/* Undoes a batch that failed with rv: deletes the segments it created and cuts the segment it
   started in back to where it was. */
static int undo_batch(dl_seglog_t *log, size_t nsegs_before, uint64_t count_before,
                      uint64_t size_before, int rv)
{
    char cause[sizeof(log->errmsg)];
    memcpy(cause, log->errmsg, sizeof(cause));
    int undo_rv = 0;
    while (undo_rv == 0 && log->nsegs > nsegs_before)
        undo_rv = dl__seglog_remove_segment(log, log->nsegs - 1);
    int fd = undo_rv == 0 ? dl__seglog_segment_fd(log, log->nsegs - 1) : undo_rv;
    if (fd < 0)
        undo_rv = fd;
    else if (ftruncate(fd, (off_t)size_before) != 0)
        undo_rv = dl__seglog_error(log, -errno, "ftruncate: %s", strerror(errno));
    if (undo_rv < 0) {
        char why[sizeof(log->errmsg)];
        memcpy(why, log->errmsg, sizeof(why));
        return dl__seglog_fail(log, rv, "%s; undoing the batch failed too: %s", cause, why);
    }
    dl__seglog_segment_t *seg = active_segment(log);
    seg->count = count_before;
    seg->size = size_before;
    seg->allocated = size_before;
    if (log->synced_index > dl_seglog_last_index(log))
        log->synced_index = dl_seglog_last_index(log);
    memcpy(log->errmsg, cause, sizeof(cause));
    return rv;
}

int dl_seglog_append(dl_seglog_t *log, const struct iovec *records, size_t count,
                     uint64_t *first_index)
{
    if (log->failed)
        return log->failed;
    uint64_t first = dl_seglog_last_index(log) + 1;
    if (first_index != NULL)
        *first_index = first;
    if (count == 0)
        return 0;
    /* The highest index a log holds is UINT64_MAX - 1: recovery needs first + count to fit. */
    if (count > UINT64_MAX - first)
        return dl__seglog_error(log, -EOVERFLOW, "seglog: indices would overflow");
    for (size_t i = 0; i < count; i++) {
        if (records[i].iov_len > log->opts.max_record_bytes)
            return dl__seglog_error(log, DL_ETOOLARGE,
                                    "seglog: record %zu of the batch has %zu bytes, above "
                                    "max_record_bytes %" PRIu32,
                                    i, records[i].iov_len, log->opts.max_record_bytes);
    }

    size_t nsegs_before = log->nsegs;
    uint64_t count_before = active_segment(log)->count;
    uint64_t size_before = active_segment(log)->size;
    unsigned char headers[BATCH_CHUNK_RECORDS][DL__SEGLOG_HEADER_BYTES];
    struct iovec iov[2 * BATCH_CHUNK_RECORDS];
    size_t done = 0;
    int rv;

    while (done < count) {
        dl__seglog_segment_t *seg = active_segment(log);
        if (seg->count > 0 && seg->size >= log->opts.segment_bytes) {
            rv = roll(log);
            if (rv < 0)
                goto undo;
            seg = active_segment(log);
        }
        size_t n = 0;
        uint64_t end = seg->size;
        size_t want = count - done < BATCH_CHUNK_RECORDS ? count - done : BATCH_CHUNK_RECORDS;
        rv = dl__seglog_reserve_offsets(seg, want);
        if (rv < 0) {
            dl__seglog_error(log, rv, "seglog: out of memory");
            goto undo;
        }
        /* A chunk stops after the record that fills the segment, so the next one rolls. */
        while (n < want && end < log->opts.segment_bytes) {
            const struct iovec *rec = &records[done + n];
            encode_header(headers[n], rec->iov_base, (uint32_t)rec->iov_len);
            iov[2 * n] = (struct iovec){headers[n], DL__SEGLOG_HEADER_BYTES};
            iov[2 * n + 1] = *rec;
            seg->offsets[seg->count + n] = end;
            end += DL__SEGLOG_HEADER_BYTES + rec->iov_len;
            n++;
        }
        rv = preallocate(log, seg, end);
        if (rv < 0)
            goto undo;
        rv = transfer_all(seg->fd, iov, (int)(2 * n), seg->size, 1);
        if (rv < 0) {
            char path[1024];
            segment_path(log, seg->first_index, path, sizeof(path));
            dl__seglog_error(log, rv, "seglog: write to %s at offset %" PRIu64 " failed: %s", path,
                             seg->size, strerror(-rv));
            goto undo;
        }
        seg->count += n;
        seg->size = end;
        done += n;
    }
    return 0;

undo:
    return undo_batch(log, nsegs_before, count_before, size_before, rv);
}

/* ---- read --------------------------------------------------------------------------------- */

size_t dl__seglog_find_segment(const dl_seglog_t *log, uint64_t index)
{
    size_t lo = 0, hi = log->nsegs - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (log->segs[mid].first_index <= index)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int dl_seglog_read(dl_seglog_t *log, uint64_t index, void **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (index < dl_seglog_first_index(log) || index > dl_seglog_last_index(log))
        return -ENOENT;
    size_t i = dl__seglog_find_segment(log, index);
    int fd = dl__seglog_segment_fd(log, i);
    if (fd < 0)
        return fd;
    const dl__seglog_segment_t *seg = &log->segs[i];
    uint64_t k = index - seg->first_index;
    uint64_t start = seg->offsets[k];
    uint64_t end = k + 1 < seg->count ? seg->offsets[k + 1] : seg->size;
    size_t payload_len = (size_t)(end - start - DL__SEGLOG_HEADER_BYTES);

    unsigned char h[DL__SEGLOG_HEADER_BYTES];
    unsigned char *payload = malloc(payload_len > 0 ? payload_len : 1);
    if (payload == NULL)
        return dl__seglog_error(log, -ENOMEM, "seglog: out of memory");
    struct iovec iov[2] = {{h, sizeof(h)}, {payload, payload_len}};
    int rv = transfer_all(fd, iov, 2, start, 0);
    const char *why = NULL;
    if (rv == -ENODATA)
        why = "the file ends inside the record";
    else if (rv < 0)
        why = strerror(-rv);
    else if (dl_crc32c(0, h, 8) != dl__get_le32(h + 8))
        why = "header checksum mismatch";
    else if (dl__get_le32(h) != payload_len)
        why = "length differs from the one recovery indexed";
    else if (dl_crc32c(0, payload, payload_len) != dl__get_le32(h + 4))
        why = "payload checksum mismatch";
    if (why != NULL) {
        char path[1024];
        free(payload);
        segment_path(log, seg->first_index, path, sizeof(path));
        if (rv < 0 && rv != -ENODATA)
            return dl__seglog_error(log, rv, "seglog: cannot read %s at offset %" PRIu64 ": %s",
                                    path, start, why);
        return dl__seglog_error(log, DL_ECORRUPT,
                                "seglog: corrupt record in %s at offset %" PRIu64 ": %s", path,
                                start, why);
    }
    *data = payload;
    *len = payload_len;
    return 0;
}

int dl_seglog_set_dir(dl_seglog_t *log, const char *dir)
{
    char *copy = strdup(dir);
    if (copy == NULL)
        return -ENOMEM;
    free(log->dir);
    log->dir = copy;
    return 0;
}
