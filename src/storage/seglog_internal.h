/* Internal to the segmented log: the structures shared by seglog*.c. See ddialab/seglog.h. */
#ifndef DDIALAB_STORAGE_SEGLOG_INTERNAL_H
#define DDIALAB_STORAGE_SEGLOG_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "ddialab/seglog.h"

#define DL__SEGLOG_HEADER_BYTES 12
#define DL__SEGLOG_NAME_DIGITS  20
#define DL__SEGLOG_NAME_BYTES   (DL__SEGLOG_NAME_DIGITS + sizeof(".seg")) /* with the NUL */

/* One segment file and its in-memory offset index. */
typedef struct dl__seglog_segment_s {
    uint64_t first_index; /* the index in the file name; the first record's index */
    uint64_t count;       /* records in the file */
    uint64_t size;        /* bytes of whole records */
    /* The file's length: the active segment is zero-filled ahead of its records, so that the
       fdatasync of a group commit overwrites blocks that exist instead of growing the file (on
       ext4 that halves its cost: no journal commit for the new size). Sealed segments are cut
       back to size. */
    uint64_t allocated;
    uint64_t *offsets; /* offsets[i]: where record first_index + i starts; malloc'd */
    size_t offsets_cap;
    int fd;             /* O_RDWR; -1 while a sealed segment is closed (opened on demand) */
    uint64_t last_used; /* tick of the last read, to close the least recently used sealed fd */
} dl__seglog_segment_t;

struct dl_seglog_s {
    char *dir;  /* as given to open; for messages */
    int dirfd;  /* the directory: openat/unlinkat relative to it, fsync for entries */
    int lockfd; /* LOCK, flock'd for as long as the log is open */
    dl_seglog_options_t opts;

    /* Sorted by first_index, contiguous, never empty; the last one is the active segment.
       first_index and last_index are derived from it. */
    dl__seglog_segment_t *segs;
    size_t nsegs;
    size_t segs_cap;

    /* Invariant: synced_index >= the last index of every sealed segment (sealing fdatasyncs). */
    uint64_t synced_index;
    uint64_t generation; /* bumped by truncate_suffix and reset */
    uint64_t last_sync_ms;
    int have_synced; /* last_sync_ms is meaningful */
    uint64_t tick;   /* for last_used */

    int failed; /* sticky error: the log no longer knows that memory matches the disk */
    char errmsg[768];
};

static inline void dl__put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t dl__get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes the 20-digit file name of the segment starting at first_index into name. */
void dl__seglog_segment_name(uint64_t first_index, char name[DL__SEGLOG_NAME_BYTES]);

/* Makes room for n more offsets in seg's index. 0 or -ENOMEM. */
int dl__seglog_reserve_offsets(dl__seglog_segment_t *seg, size_t n);

/*
 * Reads the segment whose fd, first_index and size are set, filling count and offsets, and
 * applies the recovery rules of ddialab/seglog.h. is_last selects the torn-tail rules; a torn
 * tail is truncated (not yet fsynced) and described in report. Returns 0, DL_ECORRUPT with
 * log->errmsg set, or another error.
 */
int dl__seglog_scan_segment(dl_seglog_t *log, dl__seglog_segment_t *seg, int is_last,
                            dl_seglog_recovery_t *report);

/* Formats log->errmsg; returns rv so that callers can `return dl__seglog_error(...)`. */
int dl__seglog_error(dl_seglog_t *log, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts the log in the failed state with rv and a message, and returns rv. */
int dl__seglog_fail(dl_seglog_t *log, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns the fd of segment i, opening it if it was closed (at most a few dozen sealed segments
   stay open), or a negative error with log->errmsg set. */
int dl__seglog_segment_fd(dl_seglog_t *log, size_t i);

/* The position in log->segs of the segment holding index, which must be in the log. */
size_t dl__seglog_find_segment(const dl_seglog_t *log, uint64_t index);

/* Creates an empty segment file starting at first_index, appends it to log->segs and fsyncs
   the directory. A failed directory fsync puts the log in the failed state. */
int dl__seglog_create_segment(dl_seglog_t *log, uint64_t first_index);

/* Deletes segment i: unlinks its file, drops it from log->segs and fsyncs the directory. If the
   unlink fails nothing changes; a failed directory fsync puts the log in the failed state. */
int dl__seglog_remove_segment(dl_seglog_t *log, size_t i);

/* fsyncs the log's directory; a failure puts the log in the failed state. */
int dl__seglog_fsync_dir(dl_seglog_t *log);

#endif
