/*
 * One partition of a topic: an append-only log of Kafka record batches on a dl_seglog_t (one
 * batch per seglog record, stored as the producer sent it with only its base offset rewritten),
 * plus an in-memory offset index from Kafka offsets to seglog indices. The broker owns one per
 * topic-partition directory; like the seglog under it, a partition is used from one thread.
 *
 * Offsets: the first batch appended to an empty partition gets base offset 0; each batch takes
 * records_count consecutive offsets. The high watermark is the offset the next record will get.
 * The log start offset is the base offset of the oldest batch still stored (retention moves it).
 *
 * Recovery: dl_partition_open opens the seglog (which truncates a torn tail, see seglog.h) and
 * rebuilds the offset index by reading each stored batch's header; a stored batch that is not
 * a valid magic-2 batch, or whose offsets do not follow on from the one before, fails the open
 * with DL_ECORRUPT and a message naming the directory and offset.
 *
 * Errors: 0 or a negative errno / DL_E* code (ddialab/error.h), with errmsg filled where given.
 */
#ifndef DDIALAB_EVENTS_PARTITION_H
#define DDIALAB_EVENTS_PARTITION_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"
#include "ddialab/seglog.h"

typedef struct dl_partition_s dl_partition_t;

typedef struct dl_partition_options_s {
    uint64_t segment_bytes;       /* 0: 64 MiB */
    uint32_t max_batch_bytes;     /* 0: 16 MiB; larger appends fail with DL_ETOOLARGE */
    dl_sync_policy_t sync_policy; /* see seglog.h: BATCH (every batch) or INTERVAL */
    int64_t sync_interval_ms;
} dl_partition_options_t;

/* Opens (creating when missing) the partition stored in dir. *out is closed with
 * dl_partition_close. errmsg (errlen bytes) says why on failure. */
int dl_partition_open(const char *dir, const dl_partition_options_t *opts, dl_partition_t **out,
                      char *errmsg, size_t errlen);
/* Closes the files and frees the partition; NULL is fine. Finish sync jobs first. */
void dl_partition_close(dl_partition_t *p);

int64_t dl_partition_log_start_offset(const dl_partition_t *p);
int64_t dl_partition_high_watermark(const dl_partition_t *p);
/* Bytes of batches stored (the sum of their lengths). */
uint64_t dl_partition_size_bytes(const dl_partition_t *p);
/* The underlying seglog, for the broker's group commit (dl_seglog_sync_prepare and friends). */
dl_seglog_t *dl_partition_log(dl_partition_t *p);

/*
 * Appends one record batch of len bytes at batch (already checked with dl_kbatch_parse by the
 * caller): rewrites its base offset in place to the high watermark, stores it, and sets
 * *base_offset. The caller keeps ownership of batch. Not durable until the seglog is synced.
 */
int dl_partition_append(dl_partition_t *p, uint8_t *batch, size_t len, int64_t *base_offset);

/*
 * The same, but only batches that start below end (an offset at or below the high watermark):
 * a fetch under --flush batch reads only what is fsynced. Nothing (0) when offset is at or past
 * end but not past the high watermark.
 */
int dl_partition_read_upto(dl_partition_t *p, int64_t offset, size_t max_bytes, int64_t end,
                           dl_buf_t *out);

/* The offset after the last batch known fsynced (its log's synced index): what a consumer may
 * read under --flush batch, Kafka's "high watermark" for a single durable copy. */
int64_t dl_partition_stable_offset(const dl_partition_t *p);

/* An fsync of the partition's log failed (broker.c): from then on it refuses produces, also
 * retries it would have answered from memory, until the broker restarts and re-reads the disk. */
void dl_partition_set_failed(dl_partition_t *p);
int dl_partition_failed(const dl_partition_t *p);

/*
 * Judges an idempotent producer's batch b before it is appended (producers.h): DL_KERR_NONE,
 * DL_KERR_DUPLICATE_SEQUENCE_NUMBER with *duplicate_offset (a retry: do not store it again), or
 * the error to answer. The partition's producer state is rebuilt at open from the stored batches.
 */
struct dl_kbatch_s;
int16_t dl_partition_check_producer(const dl_partition_t *p, const struct dl_kbatch_s *b,
                                    int64_t *duplicate_offset);

/*
 * Appends to out whole stored batches starting with the one that holds offset, while the total
 * stays within max_bytes, except that the first batch is always whole even when larger (so a
 * consumer always makes progress, as Kafka does). Returns 0 (nothing appended when offset equals
 * the high watermark); -ERANGE when offset is below the log start offset or above the high
 * watermark (the broker answers OFFSET_OUT_OF_RANGE); or an I/O error (DL_ECORRUPT included).
 */
int dl_partition_read(dl_partition_t *p, int64_t offset, size_t max_bytes, dl_buf_t *out);

/*
 * The offset of the first batch whose max timestamp is at or after timestamp_ms (ListOffsets by
 * time), or -1 when there is none. *batch_timestamp receives that batch's max timestamp (may be
 * NULL).
 */
int64_t dl_partition_offset_for_time(const dl_partition_t *p, int64_t timestamp_ms,
                                     int64_t *batch_timestamp);

/*
 * Retention (Kafka's retention.ms and retention.bytes): deletes the oldest segment files whose
 * batches are all older than retention_ms before now_ms (by their newest timestamp), and then
 * more while the partition holds over retention_bytes (-1: no limit for either). Only whole
 * segments go, never the active one, so a partition may keep somewhat more than the limits. The
 * log start offset moves up; fetches below it get OFFSET_OUT_OF_RANGE. *dropped_bytes receives
 * how much was deleted. 0 or an I/O error (what was deleted before it stays deleted).
 */
int dl_partition_retain(dl_partition_t *p, int64_t now_ms, int64_t retention_ms,
                        int64_t retention_bytes, uint64_t *dropped_bytes);

/* ---- For compaction (compact.h) ----------------------------------------------------------- */

/* The partition's directory, as opened. */
const char *dl_partition_dir(const dl_partition_t *p);
/* How many batches are stored, and the i-th of them (0: the oldest) as a malloc'd copy. */
size_t dl_partition_batch_count(const dl_partition_t *p);
int dl_partition_batch_at(dl_partition_t *p, size_t i, void **data, size_t *len);
int64_t dl_partition_batch_last_offset(const dl_partition_t *p, size_t i);

/* Appends a stored batch with its base offset as it is (at or above the high watermark, so
 * offsets may jump): how a compaction writes its new log. -EINVAL for anything else. */
int dl_partition_append_stored(dl_partition_t *p, const uint8_t *batch, size_t len);

/*
 * Makes q (opened at "<dir of p>.compacting" and written with dl_partition_append_stored) the
 * partition p: fsyncs it, records start_offset as the log start offset, and swaps the
 * directories, atomically with renameat2(RENAME_EXCHANGE) where the file system has it, else by
 * renames that dl_partition_recover_dir finishes after a crash. Returns 0 when done; a negative
 * error before the commit point (q untouched: the caller closes it; p as it was); or 1 when the
 * swap committed but a later step failed: p holds the new log but is set failed (no more writes
 * until a restart settles the directories), errmsg says why. q is freed unless the result is
 * negative. Call it only when no sync job is prepared on p's log.
 */
int dl_partition_adopt(dl_partition_t *p, dl_partition_t *q, int64_t start_offset, char *errmsg,
                       size_t errlen);

/* Finishes (or forgets) a swap a crash interrupted around partition directory dir: a
 * "<dir>.compacted" replaces dir, "<dir>.old" and "<dir>.compacting" are deleted. Runs in
 * dl_partition_open; topics.c runs it too for a partition 0 that a crash left only as
 * "<dir>.compacted". 0 or an errno. */
int dl_partition_recover_dir(const char *dir);

#endif
