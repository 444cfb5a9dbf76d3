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

typedef struct dl_topic_s {
    char *name;
    int32_t n_partitions;
    dl_partition_t **partitions;
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
 * Creates topic name (len bytes) with n_partitions (0: the default). -EINVAL for a bad name or
 * count (1 .. DL_TOPIC_PARTITIONS_MAX), -EEXIST when it exists; *out (may be NULL) receives it.
 */
int dl_topics_create(dl_topics_t *t, const char *name, size_t len, int32_t n_partitions,
                     dl_topic_t **out, char *errmsg, size_t errlen);

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
