/*
 * Committed consumer-group offsets, durable in SQLite (<data-dir>/consumer_offsets.db) with
 * synchronous=FULL: an OffsetCommit is answered only after its transaction is fsynced, so a
 * committed offset survives kill -9 as the records do. Kafka keeps these in the compacted topic
 * __consumer_offsets; a table keyed by (group, topic, partition) is the same idea with the
 * compaction done by the primary key. Used from the loop thread.
 */
#ifndef DDIALAB_EVENTS_OFFSETS_H
#define DDIALAB_EVENTS_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct dl_offsets_s dl_offsets_t;

int dl_offsets_open(const char *path, dl_offsets_t **out, char *errmsg, size_t errlen);
void dl_offsets_close(dl_offsets_t *o);

/* A commit of several partitions is one transaction: begin, put each, end (commit = 1) or
 * abandon (commit = 0). 0 or an error (-EIO, DL_ECORRUPT). */
int dl_offsets_begin(dl_offsets_t *o);
int dl_offsets_put(dl_offsets_t *o, const char *group, const char *topic, int32_t partition,
                   int64_t offset, const char *metadata /* may be NULL */);
int dl_offsets_end(dl_offsets_t *o, int commit);

/* The committed offset, or -1 when none (*metadata, if not NULL, a malloc'd copy or NULL). */
int64_t dl_offsets_get(dl_offsets_t *o, const char *group, const char *topic, int32_t partition,
                       char **metadata);

/* Calls fn for each committed partition of group, in topic and partition order. */
int dl_offsets_each(dl_offsets_t *o, const char *group,
                    void (*fn)(void *ctx, const char *topic, int32_t partition, int64_t offset,
                               const char *metadata),
                    void *ctx);

/* Forgets every group's committed offsets of topic (DeleteTopics, as Kafka does). */
int dl_offsets_delete_topic(dl_offsets_t *o, const char *topic);

#endif
