/*
 * Log compaction (Kafka's cleanup.policy=compact; DDIA chapter 11): a partition is rewritten so
 * that it keeps, for every key, only the newest record, and forgets keys whose newest record is
 * a tombstone (a null value) once that tombstone is older than delete.retention.ms. Records keep
 * their offsets, so a compacted log has gaps; a batch keeps its base offset and lastOffsetDelta
 * and is rewritten (in its own codec, with a new CRC) only when it lost some of its records.
 *
 * How a pass works, in steps that each do a bounded amount of work on the loop thread, between
 * which the broker goes on serving and appending:
 *
 *   1. map: read batches 0 .. end-1 (end: every batch but the newest) and remember, per key, the
 *      offset of its newest record (the whole key, so no two keys can be confused);
 *   2. copy: write a new log in "<partition dir>.compacting": batches below end filtered through
 *      the map, batches from end on as they are, including those appended meanwhile;
 *   3. finish: copy what was appended since, fsync, and swap the directories (partition.h's
 *      dl_partition_adopt, which a crash cannot leave half-done).
 *
 * What is always kept: the newest batch (so the high watermark survives a restart), control
 * batches, and each idempotent producer's newest batch whole (its sequence numbers are rebuilt
 * from the log at open). Records without a key are dropped, as Kafka's cleaner drops them.
 * The log start offset does not move: a consumer at an offset compaction removed reads on from
 * the next record kept.
 */
#ifndef DDIALAB_EVENTS_COMPACT_H
#define DDIALAB_EVENTS_COMPACT_H

#include <stddef.h>
#include <stdint.h>

#include "events/partition.h"

typedef struct dl_compaction_options_s {
    int64_t now_ms;                   /* wall clock, against record timestamps */
    int64_t delete_retention_ms;      /* tombstones younger than this are kept */
    size_t max_map_bytes;             /* 0: 128 MiB; a fuller map ends the pass's range early */
    dl_partition_options_t partition; /* for the new log */
} dl_compaction_options_t;

typedef struct dl_compaction_stats_s {
    uint64_t batches_before, batches_after;
    uint64_t bytes_before, bytes_after;
    uint64_t records_read, records_removed, tombstones_removed;
} dl_compaction_stats_t;

typedef struct dl_compaction_s dl_compaction_t;

/*
 * Begins a pass over p. *out is NULL (and 0 returned) when there is nothing to compact (fewer
 * than two batches). Errors: -ENOMEM, or what opening the new log gave (errmsg says).
 */
int dl_compaction_start(dl_partition_t *p, const dl_compaction_options_t *opts,
                        dl_compaction_t **out, char *errmsg, size_t errlen);

/* Does about budget bytes of reading and writing: 0 when there is more to do, 1 when the pass
 * is ready to finish, or an error (abort the pass). */
int dl_compaction_step(dl_compaction_t *c, size_t budget, char *errmsg, size_t errlen);

/* Copies the batches appended since the last step and swaps the new log in; frees c in every
 * case. Call it only when no sync job is prepared on the partition's log. */
int dl_compaction_finish(dl_compaction_t *c, dl_compaction_stats_t *stats, char *errmsg,
                         size_t errlen);

/* Gives up a pass: the new log is deleted and p stays as it is. NULL is fine. */
void dl_compaction_abort(dl_compaction_t *c);

/* The partition a pass works on. */
dl_partition_t *dl_compaction_partition(const dl_compaction_t *c);

/* A whole pass at once (start, steps, finish), for tests and the forced compaction of the
 * HTTP API. 0 with stats (all zero when there was nothing to do), or an error. */
int dl_compact_partition(dl_partition_t *p, const dl_compaction_options_t *opts,
                         dl_compaction_stats_t *stats, char *errmsg, size_t errlen);

#endif
