/* The broker's topics and their partition directories (topics.h). */
#include "events/topics.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ddialab/error.h"
#include "ddialab/fsutil.h"

struct dl_topics_s {
    char *data_dir;
    dl_topics_options_t opts;
    dl_topic_t **topics; /* sorted by name */
    size_t n, cap;
};

int dl_topic_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > DL_TOPIC_NAME_MAX || (len == 1 && name[0] == '.') ||
        (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int compare_name(const char *name, size_t len, const dl_topic_t *topic)
{
    size_t n = strlen(topic->name);
    int c = memcmp(name, topic->name, len < n ? len : n);
    return c != 0 ? c : (len > n) - (len < n);
}

/* Where name would go in the sorted list; *found set when it is there. */
static size_t position(const dl_topics_t *t, const char *name, size_t len, int *found)
{
    size_t lo = 0, hi = t->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_name(name, len, t->topics[mid]);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

dl_topic_t *dl_topics_find(dl_topics_t *t, const char *name, size_t len)
{
    int found;
    size_t i = position(t, name, len, &found);
    return found ? t->topics[i] : NULL;
}

dl_partition_t *dl_topic_partition(const dl_topic_t *topic, int32_t partition)
{
    if (partition < 0 || partition >= topic->n_partitions)
        return NULL;
    return topic->partitions[partition];
}

dl_topic_t *const *dl_topics_list(const dl_topics_t *t, size_t *n)
{
    *n = t->n;
    return t->topics;
}

static void free_topic(dl_topic_t *topic)
{
    if (topic == NULL)
        return;
    for (int32_t i = 0; i < topic->n_partitions; i++)
        dl_partition_close(topic->partitions[i]);
    free(topic->partitions);
    free(topic->name);
    free(topic);
}

/*
 * Opens partitions 0 .. of topic name (len bytes) whose directories exist, or creates n of them
 * when create is set; NULL with errmsg on failure.
 */
static dl_topic_t *open_topic(dl_topics_t *t, const char *name, size_t len, int32_t n, int create,
                              char *errmsg, size_t errlen)
{
    dl_topic_t *topic = calloc(1, sizeof(*topic));
    if (topic == NULL || (topic->name = strndup(name, len)) == NULL ||
        (topic->partitions = calloc((size_t)n, sizeof(*topic->partitions))) == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        free_topic(topic);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%s-%d", t->data_dir, topic->name, (int)i);
        struct stat st;
        if (!create && stat(dir, &st) != 0)
            break; /* the first missing partition ends the topic (a creation cut short) */
        if (dl_partition_open(dir, &t->opts.partition, &topic->partitions[i], errmsg, errlen) !=
            0) {
            free_topic(topic);
            return NULL;
        }
        topic->n_partitions = i + 1;
    }
    int rv = create ? dl_fsync_dir(t->data_dir) : 0;
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot fsync %s: %s", t->data_dir, strerror(-rv));
        free_topic(topic);
        return NULL;
    }
    return topic;
}

/* Inserts topic at its sorted place; 0 or -ENOMEM. */
static int insert(dl_topics_t *t, dl_topic_t *topic)
{
    int found;
    size_t at = position(t, topic->name, strlen(topic->name), &found);
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        dl_topic_t **topics = realloc(t->topics, cap * sizeof(*topics));
        if (topics == NULL)
            return -ENOMEM;
        t->topics = topics;
        t->cap = cap;
    }
    memmove(t->topics + at + 1, t->topics + at, (t->n - at) * sizeof(*t->topics));
    t->topics[at] = topic;
    t->n++;
    return 0;
}

int dl_topics_create(dl_topics_t *t, const char *name, size_t len, int32_t n_partitions,
                     dl_topic_t **out, char *errmsg, size_t errlen)
{
    if (n_partitions == 0)
        n_partitions = t->opts.default_partitions;
    if (!dl_topic_name_valid(name, len)) {
        snprintf(errmsg, errlen, "invalid topic name: 1 to %d characters of [a-zA-Z0-9._-]",
                 DL_TOPIC_NAME_MAX);
        return -EINVAL;
    }
    if (n_partitions < 1 || n_partitions > DL_TOPIC_PARTITIONS_MAX) {
        snprintf(errmsg, errlen, "a topic has 1 to %d partitions", DL_TOPIC_PARTITIONS_MAX);
        return -EINVAL;
    }
    if (dl_topics_find(t, name, len) != NULL) {
        snprintf(errmsg, errlen, "topic '%.*s' already exists", (int)len, name);
        return -EEXIST;
    }
    dl_topic_t *topic = open_topic(t, name, len, n_partitions, 1, errmsg, errlen);
    if (topic == NULL)
        return -EIO;
    if (insert(t, topic) != 0) {
        free_topic(topic);
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    if (out != NULL)
        *out = topic;
    return 0;
}

/* Opens every topic whose partition 0 directory ("<name>-0") is in the data directory. */
static int load(dl_topics_t *t, char *errmsg, size_t errlen)
{
    DIR *d = opendir(t->data_dir);
    if (d == NULL) {
        snprintf(errmsg, errlen, "cannot open %s: %s", t->data_dir, strerror(errno));
        return -errno;
    }
    int rv = 0;
    struct dirent *entry;
    while (rv == 0 && (entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len < 3 || strcmp(entry->d_name + len - 2, "-0") != 0 ||
            !dl_topic_name_valid(entry->d_name, len - 2))
            continue;
        dl_topic_t *topic =
            open_topic(t, entry->d_name, len - 2, DL_TOPIC_PARTITIONS_MAX, 0, errmsg, errlen);
        if (topic == NULL)
            rv = DL_ECORRUPT;
        else if ((rv = insert(t, topic)) != 0)
            free_topic(topic);
    }
    closedir(d);
    return rv;
}

int dl_topics_open(const dl_topics_options_t *opts, dl_topics_t **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    dl_topics_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->data_dir = strdup(opts->data_dir)) == NULL) {
        free(t);
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    t->opts = *opts;
    t->opts.data_dir = t->data_dir;
    if (t->opts.default_partitions == 0)
        t->opts.default_partitions = 1;
    int rv = dl_mkdir_p(t->data_dir);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot create %s: %s", t->data_dir, strerror(-rv));
        dl_topics_close(t);
        return rv;
    }
    if ((rv = load(t, errmsg, errlen)) != 0) {
        dl_topics_close(t);
        return rv;
    }
    *out = t;
    return 0;
}

void dl_topics_close(dl_topics_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        free_topic(t->topics[i]);
    free(t->topics);
    free(t->data_dir);
    free(t);
}

int dl_partition_set_add(dl_partition_set_t *set, dl_partition_t *p)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i] == p)
            return 0;
    if (set->n == set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 8;
        dl_partition_t **items = realloc(set->items, cap * sizeof(*items));
        if (items == NULL)
            return -ENOMEM;
        set->items = items;
        set->cap = cap;
    }
    set->items[set->n++] = p;
    return 0;
}
