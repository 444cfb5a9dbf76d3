/*
 * Idempotent producers (KIP-98), as Kafka does them. InitProducerId hands a producer an id; each
 * batch it sends carries that id, an epoch and the sequence number of its first record, counted
 * per partition from 0. A partition remembers, per producer id, the epoch and the last five
 * batches it stored, so that:
 *
 *   - a retried batch (the same first and last sequence as one of those five) is not stored
 *     again: the producer is told it succeeded, with the offset it got the first time;
 *   - a batch whose first sequence is not the one after the last stored is refused with
 *     OUT_OF_ORDER_SEQUENCE_NUMBER (a gap: an earlier batch was lost, and storing this one would
 *     reorder the producer's records);
 *   - a batch from an older epoch is refused with INVALID_PRODUCER_EPOCH (a fenced zombie).
 *
 * The table is rebuilt at open from the stored batches' headers (dl_partition_open), so the
 * guarantees hold across a restart, as Kafka rebuilds its producer state from the log.
 *
 * Producer ids come from a block reserved in a file (<data-dir>/producer_ids) before any id of
 * it is handed out, so an id is never handed out twice, even across a crash.
 */
#ifndef DDIALAB_EVENTS_PRODUCERS_H
#define DDIALAB_EVENTS_PRODUCERS_H

#include <stddef.h>
#include <stdint.h>

#include "events/batch.h"

#define DL_PRODUCER_BATCHES_KEPT 5 /* Kafka's too: librdkafka keeps at most 5 in flight */

typedef struct dl_producers_s dl_producers_t;

dl_producers_t *dl_producers_new(void);
void dl_producers_free(dl_producers_t *s);

/*
 * Judges batch b (producer_id >= 0) before it is stored: DL_KERR_NONE to store it,
 * DL_KERR_DUPLICATE_SEQUENCE_NUMBER for a retry already stored (*duplicate_offset its base
 * offset), or OUT_OF_ORDER_SEQUENCE_NUMBER / INVALID_PRODUCER_EPOCH. A batch without a producer
 * id (-1) is always DL_KERR_NONE.
 */
int16_t dl_producers_check(const dl_producers_t *s, const dl_kbatch_t *b,
                           int64_t *duplicate_offset);

/* Makes room for one more producer, so that recording the next batch cannot fail (call it
 * before the batch is stored). 0 or -ENOMEM. */
int dl_producers_reserve(dl_producers_t *s);
/* Remembers a stored batch (its base offset as stored), room reserved. */
void dl_producers_record(dl_producers_t *s, const dl_kbatch_t *b, int64_t base_offset);

typedef struct dl_producer_ids_s dl_producer_ids_t;

/* Opens the id allocator whose state is the file at path (created when missing). */
int dl_producer_ids_open(const char *path, dl_producer_ids_t **out, char *errmsg, size_t errlen);
void dl_producer_ids_close(dl_producer_ids_t *ids);
/* The next producer id; reserves (and fsyncs) a new block when this one is used up. */
int dl_producer_ids_next(dl_producer_ids_t *ids, int64_t *id);

#endif
