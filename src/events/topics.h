/*
 * The broker's topics: each a name and N partitions, each partition a dl_partition_t in its own
 * directory "<data-dir>/<topic>-<partition>" (Kafka's layout). Used from the loop thread.
 *
 * A topic's partition count is the number of directories 0, 1, ... that exist: creation makes
 * them in order and fsyncs the data directory, so a crash in the middle leaves a topic with
 * fewer partitions, never one with a hole. Topic names follow Kafka's rule: 1 to 249 characters
 * of [a-zA-Z0-9._-], and neither "." nor "..".
 */
#ifndef DDIALAB_EVENTS_TOPICS_H
#define DDIALAB_EVENTS_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#include "events/partition.h"

#define DL_TOPIC_NAME_MAX       249
#define DL_TOPIC_PARTITIONS_MAX 1024

/* DL_TOPIC_UNSET: the broker's flag decides. */
#define DL_TOPIC_UNSET INT64_MIN

/*
 * A topic's configs, by their Kafka names (set at CreateTopics; kept in "<name>.config" in the
 * data directory as the JSON object of the names and values given):
 *   cleanup.policy             "delete" (default), "compact", or "compact,delete"
 *   retention.ms, retention.bytes       override --retention-ms / --retention-bytes (-1: none)
 *   delete.retention.ms        how long a tombstone outlives compaction (default 1 day)
 *   min.cleanable.dirty.ratio  compact when this share of the log is new since the last pass
 *   segment.bytes              segment size, and the least new data that triggers compaction
 */
typedef struct dl_topic_config_s {
    int compact, delete_old;                              /* cleanup.policy */
    int64_t retention_ms, retention_bytes, segment_bytes; /* DL_TOPIC_UNSET: the broker's */
    int64_t delete_retention_ms;
    double min_cleanable_dirty_ratio;
} dl_topic_config_t;

/* Kafka's defaults: delete, 1 day for tombstones, ratio 0.5, the broker's for the rest. */
void dl_topic_config_init(dl_topic_config_t *c);
/* Sets config name (nlen bytes) to value (vlen bytes): 0, or -EINVAL with errmsg naming the
 * problem (a name not listed above, or a value out of range). */
int dl_topic_config_set(dl_topic_config_t *c, const char *name, size_t nlen, const char *value,
                        size_t vlen, char *errmsg, size_t errlen);

/* A partition's compaction bookkeeping (the broker's, shown by GET /topics/{t}). */
typedef struct dl_partition_cleaning_s {
    uint64_t clean_bytes; /* the partition's size after its last pass (0: never compacted) */
    int requested;        /* POST /topics/{t}/compact: compact at the next check */
    uint64_t passes, bytes_removed, records_removed;
    int64_t last_pass_ms; /* wall clock; 0: none */
} dl_partition_cleaning_t;

typedef struct dl_topic_s {
    char *name;
    int32_t n_partitions;
    dl_partition_t **partitions;
    dl_topic_config_t config;
    char *config_json;                 /* the configs as given, or NULL */
    dl_partition_cleaning_t *cleaning; /* one per partition */
    uint64_t deletion; /* once deleted: the number in its "<dir>.<n>.deleting" names */
} dl_topic_t;

typedef struct dl_topics_s dl_topics_t;

typedef struct dl_topics_options_s {
    const char *data_dir;
    int32_t default_partitions;       /* for topics created on first use; 0: 1 */
    dl_partition_options_t partition; /* for every partition */
} dl_topics_options_t;

/* Opens the data directory (creating it when missing) and every topic found there. The options
 * are copied. errmsg (errlen bytes) says why on failure. */
int dl_topics_open(const dl_topics_options_t *opts, dl_topics_t **out, char *errmsg, size_t errlen);
/* Closes every partition and frees everything; NULL is fine. */
void dl_topics_close(dl_topics_t *t);

/* Whether name (len bytes, not NUL-terminated) is a valid Kafka topic name. */
int dl_topic_name_valid(const char *name, size_t len);

/* The topic called name (len bytes), or NULL. */
dl_topic_t *dl_topics_find(dl_topics_t *t, const char *name, size_t len);
/* The partition, or NULL when the topic has no such partition. */
dl_partition_t *dl_topic_partition(const dl_topic_t *topic, int32_t partition);

/*
 * Creates topic name (len bytes) with n_partitions (0: the default) and the configs given as a
 * JSON object of strings (config_json, NULL: none; checked with dl_topic_config_set). -EINVAL
 * for a bad name, count (1 .. DL_TOPIC_PARTITIONS_MAX) or config, -EEXIST when it exists; *out
 * (may be NULL) receives it. The config file is written (durably) before the partitions, and
 * directories left by a deletion cut short are removed first.
 */
int dl_topics_create(dl_topics_t *t, const char *name, size_t len, int32_t n_partitions,
                     const char *config_json, dl_topic_t **out, char *errmsg, size_t errlen);

/*
 * Deletes topic name (len bytes): it leaves the list at once, and its directories are renamed
 * out of the way ("<dir>.<n>.deleting", partition 0 first, so a crash can never bring back part
 * of it) and its config file removed, durably. The partitions stay open in the graveyard until
 * dl_topics_reap (the broker reaps when no fsync is in flight). -ENOENT when there is no such
 * topic; another error when a rename failed (what was renamed stays deleted).
 */
int dl_topics_delete(dl_topics_t *t, const char *name, size_t len, char *errmsg, size_t errlen);
/* The deleted topics not yet reaped (*n of them). */
dl_topic_t *const *dl_topics_graveyard(const dl_topics_t *t, size_t *n);
/* Closes the graveyard's partitions and removes their directories. */
void dl_topics_reap(dl_topics_t *t);

/* The partition options a topic's partitions are opened with: its segment.bytes applied, the
 * seglog's default made explicit. */
dl_partition_options_t dl_topic_partition_options(const dl_topics_t *t, const dl_topic_t *topic);

/* A set of partitions (each at most once), for the partitions a request wrote and those the
 * next fsync round covers. */
typedef struct dl_partition_set_s {
    dl_partition_t **items;
    size_t n, cap;
} dl_partition_set_t;
/* Adds p unless it is there; 0 or -ENOMEM. */
int dl_partition_set_add(dl_partition_set_t *set, dl_partition_t *p);

/* The topics in name order: *n receives how many; valid until the next create. */
dl_topic_t *const *dl_topics_list(const dl_topics_t *t, size_t *n);

#endif
