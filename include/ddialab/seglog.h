/*
 * A segmented, append-only log of opaque records, with checksums, group commit and crash
 * recovery. The Raft log of the kv store sits on it, and so will the partitions of the event
 * broker. docs/storage.md explains the choices below at more length.
 *
 * Records are numbered by consecutive 64-bit indices starting at first_index. The log lives in
 * one directory of segment files, each named by the index of its first record, zero-padded to
 * 20 digits ("00000000000000000001.seg"), plus a LOCK file that keeps a second process out.
 * There is always at least one segment file; the last one is the "active" segment that appends
 * go to, and it may hold no records.
 *
 * On-disk record framing (all integers little-endian):
 *
 *   [u32 payload length][u32 crc32c(payload)][u32 crc32c(the first 8 header bytes)][payload]
 *
 * The header checksum lets recovery trust the length before it reads the payload, so a flipped
 * bit in a length can never make it skip over (and silently lose) the records behind it.
 *
 * Recovery (dl_seglog_open) reads every segment, checks every checksum and builds the in-memory
 * offset index. Damage is classified as follows.
 *
 *   Torn tail (the log is cut back to the last whole record, and the cut is reported in
 *   dl_seglog_recovery_t and logged). Only in the LAST segment, at the first damaged record:
 *   - fewer than 12 bytes are left at the end of the file;
 *   - the header is valid but its payload extends past the end of the file;
 *   - everything from the record to the end of the file is zero bytes (a file whose length
 *     reached the disk before its data did);
 *   - the payload checksum is wrong and the record ends exactly at the end of the file (the
 *     last write was cut mid-way);
 *   - more generally: the damaged record (its 12-byte header when the header checksum is wrong,
 *     the whole record otherwise) is followed only by zero bytes or by nothing. Zero bytes never
 *     form a valid record (the header checksum of an all-zero header is not zero), so nothing
 *     that was ever a record is dropped this way.
 *
 *   Corruption (dl_seglog_open fails with DL_ECORRUPT and errmsg reads
 *   "seglog: corrupt record in <file> at offset <N>: <why>"). Everything else:
 *   - a wrong header checksum or a wrong payload checksum with non-zero bytes after the record;
 *   - any damage at all in a segment that is not the last one, including a short tail;
 *   - a header with a valid checksum whose length is above max_record_bytes (so lowering
 *     max_record_bytes below the size of stored records makes open refuse the log);
 *   - segment files whose indices do not follow on from each other (a gap or an overlap).
 *   The log never silently drops a record that is followed by valid data, and never returns a
 *   payload whose checksum does not match (dl_seglog_read re-verifies on every read).
 *
 * Durability. dl_seglog_append only writes (pwritev(2)); records reach the disk when a sync
 * job runs (see group commit below), when dl_seglog_sync is called, or whenever the OS decides.
 * Three things are fsynced on the calling thread because the recovery rules depend on them:
 *   - a segment is fdatasynced when it is sealed (when the log rolls to a new segment), so a
 *     crash can never leave a torn record in front of a later segment; this stall is bounded by
 *     the unsynced bytes of one segment (under DL_SYNC_BATCH, at most the current batch);
 *   - a new segment file, and every segment deletion, fsync the directory;
 *   - dl_seglog_open fdatasyncs the last segment (records left in the page cache by a process
 *     that crashed become durable before anyone relies on them), and truncate_suffix and reset
 *     are durable before they return.
 * If an fsync fails, or the log cannot undo a half-done change, the log enters a failed state:
 * every later call that writes returns the same error (reads still work). Once fsync has failed
 * the kernel may have dropped the dirty pages, so retrying it would lie; reopening the log
 * re-reads what is really on disk.
 *
 * Threads. A dl_seglog_t is not thread-safe: every function must be called from the thread that
 * owns the log (in ddialab, the libuv loop thread), except dl_seglog_sync_run, which touches only
 * its job and may run on any thread (libuv's thread pool) while the owner goes on appending.
 *
 * Errors: 0 on success, a negative errno value, or a DL_E* code from ddialab/error.h.
 */
#ifndef DDIALAB_SEGLOG_H
#define DDIALAB_SEGLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct dl_seglog_s dl_seglog_t;

typedef enum {
    /* a batch counts as stable only once fsynced (group commit: one fsync per batch) */
    DL_SYNC_BATCH = 0,
    DL_SYNC_INTERVAL = 1, /* fsync at most every sync_interval_ms; stable as soon as written */
    DL_SYNC_NONE = 2,     /* never fsync on its own (the OS decides); stable as soon as written */
} dl_sync_policy_t;

#define DL_SEGLOG_DEFAULT_SEGMENT_BYTES (64ull << 20)

typedef struct dl_seglog_options_s {
    /* roll to a new segment file when the active one reaches this; 0 = 64 MiB */
    uint64_t segment_bytes;
    uint32_t max_record_bytes; /* larger appends fail with DL_ETOOLARGE; 0 = 64 MiB */
    dl_sync_policy_t sync_policy;
    int64_t sync_interval_ms; /* for DL_SYNC_INTERVAL */
} dl_seglog_options_t;

typedef struct dl_seglog_recovery_s {
    uint64_t records;          /* valid records kept */
    uint64_t truncated_bytes;  /* bytes of torn tail removed (0 if none) */
    char truncated_file[512];  /* which file was cut (its path), "" if none */
    uint64_t truncated_offset; /* where */
} dl_seglog_recovery_t;

/*
 * Opens the log in dir (creating the directory if missing) and recovers it as described above.
 * opts may be NULL for the defaults (64 MiB segments and records, DL_SYNC_BATCH); options are
 * not stored on disk, so each open may use different ones. An empty log has first_index 1 and
 * last_index 0. On success *out is a log the caller closes with dl_seglog_close.
 * On failure *out is NULL and errmsg (errlen bytes, may be 0) says why: DL_ECORRUPT names the file
 * and byte offset, -EBUSY means another process (or another open in this one) holds the log,
 * DL_ECONFIG means bad options. report, if not NULL, is filled in on success.
 */
int dl_seglog_open(const char *dir, const dl_seglog_options_t *opts, dl_seglog_t **out,
                   dl_seglog_recovery_t *report /* may be NULL */, char *errmsg, size_t errlen);

/* Closes the files and frees the log. Finish every prepared sync job first. NULL is fine. */
void dl_seglog_close(dl_seglog_t *log);

/* The log's directory was renamed to dir (the log works through a directory descriptor, so it
 * goes on working; this keeps its messages right). 0 or -ENOMEM (the old name stays). */
int dl_seglog_set_dir(dl_seglog_t *log, const char *dir);

uint64_t dl_seglog_first_index(const dl_seglog_t *log);
uint64_t dl_seglog_last_index(const dl_seglog_t *log);   /* first_index - 1 when empty */
uint64_t dl_seglog_synced_index(const dl_seglog_t *log); /* highest index known fsynced */
/* BATCH: synced index; INTERVAL/NONE: last index */
uint64_t dl_seglog_stable_index(const dl_seglog_t *log);

/*
 * The context of the last error (which file, which offset, which system call), or "" if none.
 * Valid until the next call on the log.
 */
const char *dl_seglog_errmsg(const dl_seglog_t *log);

/*
 * Appends count records as one batch with pwritev(2), without fsync (except that sealing a full
 * segment fdatasyncs it, see above). Rolls segments as needed: a segment is sealed once it holds
 * at least segment_bytes, so a segment may pass segment_bytes by up to one record.
 * *first_index (may be NULL) receives the index of the first record; indices are consecutive.
 * The payloads are copied into the kernel before it returns; the caller keeps ownership.
 * A record longer than max_record_bytes fails the whole batch with DL_ETOOLARGE before anything
 * is written. If a write fails, the batch is undone (in memory and on disk) and the error is
 * returned; only if undoing fails does the log enter the failed state. A batch that failed or was
 * never synced may still be found, whole or in part, after a crash, like any unsynced write.
 */
int dl_seglog_append(dl_seglog_t *log, const struct iovec *records, size_t count,
                     uint64_t *first_index);

/*
 * Reads the record at index. On success *data is a malloc'd copy of the payload that the caller
 * frees (never NULL, even for an empty payload) and *len its length. The checksums are verified
 * again: DL_ECORRUPT on a mismatch, with dl_seglog_errmsg naming file and offset. Returns -ENOENT
 * when index is outside [first_index, last_index]. Costs one pread(2), located through the
 * in-memory index; at most a few dozen sealed segments keep a file descriptor open at once.
 */
int dl_seglog_read(dl_seglog_t *log, uint64_t index, void **data, size_t *len);

/*
 * Removes from_index and everything after it; durable (segment files deleted newest first with
 * a directory fsync after each, then ftruncate + fdatasync) before it returns. Afterwards
 * last_index and synced_index are from_index - 1 and the next append gets from_index.
 * from_index above last_index is a no-op; below first_index it is -EINVAL (use reset).
 */
int dl_seglog_truncate_suffix(dl_seglog_t *log, uint64_t from_index);

/*
 * Deletes whole segment files whose records all lie below before_index, oldest first, with a
 * directory fsync after each; first_index may stay below before_index. The last segment is never
 * deleted (it holds the position of the next append; use reset to empty the log).
 */
int dl_seglog_drop_prefix(dl_seglog_t *log, uint64_t before_index);

/*
 * Deletes everything; the next append gets next_index (>= 1), and first_index is next_index.
 * Used after installing a snapshot. The old segments are deleted newest first with a directory
 * fsync after each, then an empty segment named next_index is created and the directory fsynced.
 * A crash in the middle leaves either the new empty log or a contiguous prefix of the old one,
 * never a mix, so a caller that made its snapshot durable first can simply reset again.
 */
int dl_seglog_reset(dl_seglog_t *log, uint64_t next_index);

/*
 * Group commit off the loop thread, in three steps:
 * prepare (owning thread) -> run (any thread, e.g. libuv's thread pool) -> finish (owning thread).
 * The owner keeps appending while a job runs; records appended after prepare are simply not
 * covered by that job. One job in flight at a time is the intended use (more are safe but
 * redundant). Every prepared job must be finished, before dl_seglog_close.
 */
#define DL_SEGLOG_SYNC_MAX_FDS 8
typedef struct dl_seglog_sync_s {
    int fds[DL_SEGLOG_SYNC_MAX_FDS]; /* dup'd, so segments may roll or close meanwhile */
    int nfds;
    uint64_t upto;       /* everything up to this index is durable once the job succeeds */
    uint64_t generation; /* internal: detects truncations that happened meanwhile */
    int rv;              /* set by run */
} dl_seglog_sync_t;

/*
 * Returns 0 with a job to run, or 1 when the policy says there is nothing to do now (nothing
 * unsynced; or DL_SYNC_INTERVAL and less than sync_interval_ms since the last job was prepared;
 * or DL_SYNC_NONE), or a negative error (the failed state, or dup(2) failing). now_ms is any
 * monotonic clock in milliseconds (uv_now()); only DL_SYNC_INTERVAL looks at it.
 */
int dl_seglog_sync_prepare(dl_seglog_t *log, uint64_t now_ms, dl_seglog_sync_t *job);

/* fdatasyncs each fd of the job and stores 0 or the first error in job->rv. Any thread. */
void dl_seglog_sync_run(dl_seglog_sync_t *job);

/*
 * Closes the job's fds and, if job->rv is 0, advances synced_index to job->upto, unless a
 * truncate_suffix or reset happened after prepare: then it leaves synced_index alone, so it never
 * marks records written after the truncation as synced. A failed job puts the log in the failed
 * state. Returns job->rv.
 */
int dl_seglog_sync_finish(dl_seglog_t *log, dl_seglog_sync_t *job);

/* Force: prepare + run + finish on this thread, whatever the policy. Returns 0 or the error. */
int dl_seglog_sync(dl_seglog_t *log);

#endif
