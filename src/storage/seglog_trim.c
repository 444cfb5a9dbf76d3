/*
 * Removing records from the segmented log: a suffix (Raft's conflicting entries), a prefix of
 * whole segments (compaction after a snapshot), or everything (installing a snapshot).
 *
 * Each one deletes files in an order that leaves a valid log at every step, so that a crash in
 * the middle never produces a gap between segments, which recovery would refuse.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "ddialab/seglog.h"
#include "storage/seglog_internal.h"

int dl_seglog_truncate_suffix(dl_seglog_t *log, uint64_t from_index)
{
    if (log->failed)
        return log->failed;
    if (from_index > dl_seglog_last_index(log))
        return 0;
    if (from_index < dl_seglog_first_index(log))
        return dl__seglog_error(log, -EINVAL,
                                "seglog: cannot truncate from %" PRIu64
                                ", below the first index %" PRIu64 " (use reset)",
                                from_index, dl_seglog_first_index(log));

    /* From here on, sync jobs prepared earlier must not advance synced_index. */
    log->generation++;
    int rv = 0;
    size_t keep = dl__seglog_find_segment(log, from_index);
    /* Newest first: a crash in between leaves a shorter but contiguous log. */
    while (rv == 0 && log->nsegs - 1 > keep)
        rv = dl__seglog_remove_segment(log, log->nsegs - 1);
    int fd = rv == 0 ? dl__seglog_segment_fd(log, keep) : rv;
    if (fd < 0) {
        log->failed = fd;
        return fd;
    }
    /* The segment holding from_index stays, possibly empty, as the active segment. */
    dl__seglog_segment_t *seg = &log->segs[keep];
    uint64_t k = from_index - seg->first_index;
    uint64_t size = seg->offsets[k];
    if (ftruncate(fd, (off_t)size) != 0 || fdatasync(fd) != 0)
        return dl__seglog_fail(log, -errno,
                               "seglog: truncating %s at segment %" PRIu64 " offset %" PRIu64
                               " failed: %s",
                               log->dir, seg->first_index, size, strerror(errno));
    seg->count = k;
    seg->size = size;
    seg->allocated = size;
    /* Sealed segments were fdatasynced when sealed, and this one just was. */
    log->synced_index = from_index - 1;
    return 0;
}

int dl_seglog_drop_prefix(dl_seglog_t *log, uint64_t before_index)
{
    if (log->failed)
        return log->failed;
    /* Oldest first: a crash in between leaves a contiguous suffix. */
    while (log->nsegs > 1 && log->segs[1].first_index <= before_index) {
        int rv = dl__seglog_remove_segment(log, 0);
        if (rv < 0)
            return rv;
    }
    return 0;
}

int dl_seglog_reset(dl_seglog_t *log, uint64_t next_index)
{
    if (log->failed)
        return log->failed;
    if (next_index == 0)
        return dl__seglog_error(log, -EINVAL, "seglog: indices start at 1");

    log->generation++;
    int rv = 0;
    /* Newest first, then the new empty segment: a crash in between leaves a (possibly empty)
       prefix of the old log, never old and new segments side by side. */
    while (rv == 0 && log->nsegs > 0)
        rv = dl__seglog_remove_segment(log, log->nsegs - 1);
    if (rv == 0)
        rv = dl__seglog_create_segment(log, next_index);
    if (rv < 0) {
        /* Keep the invariant that there is a segment, so that positions stay answerable; the
           failed state stops any write to it. */
        if (log->nsegs == 0)
            log->segs[log->nsegs++] = (dl__seglog_segment_t){.first_index = next_index, .fd = -1};
        log->failed = rv;
        return rv;
    }
    log->synced_index = next_index - 1;
    return 0;
}
