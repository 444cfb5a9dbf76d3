/* The broker's topics and their partition directories (topics.h). */
#include "events/topics.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ddialab/error.h"
#include "ddialab/fsutil.h"

struct dl_topics_s {
    char *data_dir;
    dl_topics_options_t opts;
    dl_topic_t **topics; /* sorted by name */
    size_t n, cap;
    dl_topic_t **graveyard; /* deleted, partitions still open */
    size_t n_graveyard;
    uint64_t deletions; /* numbers the ".deleting" names */
};

/* ---- Configs ------------------------------------------------------------------------------- */

void dl_topic_config_init(dl_topic_config_t *c)
{
    *c = (dl_topic_config_t){
        .delete_old = 1,
        .retention_ms = DL_TOPIC_UNSET,
        .retention_bytes = DL_TOPIC_UNSET,
        .segment_bytes = DL_TOPIC_UNSET,
        .delete_retention_ms = 86400000,
        .min_cleanable_dirty_ratio = 0.5,
    };
}

static int parse_long(const char *text, long long min, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min)
        return -EINVAL;
    *out = v;
    return 0;
}

int dl_topic_config_set(dl_topic_config_t *c, const char *name, size_t nlen, const char *value,
                        size_t vlen, char *errmsg, size_t errlen)
{
    char n[64], v[64];
    if (nlen >= sizeof(n) || vlen >= sizeof(v) || memchr(value, '\0', vlen) != NULL) {
        snprintf(errmsg, errlen, "unknown topic config '%.*s' or a value too long",
                 (int)(nlen > 60 ? 60 : nlen), name);
        return -EINVAL;
    }
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    long long x;
    int rv = 0;
    if (strcmp(n, "cleanup.policy") == 0) {
        int compact = strcmp(v, "compact") == 0,
            both = strcmp(v, "compact,delete") == 0 || strcmp(v, "delete,compact") == 0;
        if (!compact && !both && strcmp(v, "delete") != 0)
            rv = -EINVAL;
        c->compact = compact || both;
        c->delete_old = !compact;
    } else if (strcmp(n, "retention.ms") == 0 || strcmp(n, "retention.bytes") == 0) {
        rv = parse_long(v, -1, &x);
        *(n[10] == 'm' ? &c->retention_ms : &c->retention_bytes) = x;
    } else if (strcmp(n, "delete.retention.ms") == 0) {
        rv = parse_long(v, 0, &x);
        c->delete_retention_ms = x;
    } else if (strcmp(n, "segment.bytes") == 0) {
        rv = parse_long(v, 14, &x); /* Kafka's least: a record batch header */
        c->segment_bytes = x;
    } else if (strcmp(n, "min.cleanable.dirty.ratio") == 0) {
        char *end;
        double d = strtod(v, &end);
        rv = end == v || *end != '\0' || !(d >= 0 && d <= 1) ? -EINVAL : 0;
        c->min_cleanable_dirty_ratio = d;
    } else {
        snprintf(errmsg, errlen,
                 "unknown topic config '%s' (known: cleanup.policy, retention.ms, "
                 "retention.bytes, delete.retention.ms, min.cleanable.dirty.ratio, segment.bytes)",
                 n);
        return -EINVAL;
    }
    if (rv != 0)
        snprintf(errmsg, errlen, "invalid value '%s' for topic config %s", v, n);
    return rv;
}

/* Applies the configs of a JSON object of strings to *c. */
static int config_from_json(dl_topic_config_t *c, const char *text, char *errmsg, size_t errlen)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    if (!json_is_object(obj)) {
        snprintf(errmsg, errlen, "topic configs are not a JSON object: %s", jerr.text);
        json_decref(obj);
        return -EINVAL;
    }
    const char *name;
    json_t *value;
    int rv = 0;
    json_object_foreach(obj, name, value)
    {
        if (!json_is_string(value)) {
            snprintf(errmsg, errlen, "topic config %s: the value is not a string", name);
            rv = -EINVAL;
        } else {
            rv = dl_topic_config_set(c, name, strlen(name), json_string_value(value),
                                     json_string_length(value), errmsg, errlen);
        }
        if (rv != 0)
            break;
    }
    json_decref(obj);
    return rv;
}

static void config_path(const dl_topics_t *t, const char *name, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s.config", t->data_dir, name);
}

dl_partition_options_t dl_topic_partition_options(const dl_topics_t *t, const dl_topic_t *topic)
{
    dl_partition_options_t o = t->opts.partition;
    if (topic->config.segment_bytes != DL_TOPIC_UNSET)
        o.segment_bytes = (uint64_t)topic->config.segment_bytes;
    if (o.segment_bytes == 0)
        o.segment_bytes = DL_SEGLOG_DEFAULT_SEGMENT_BYTES;
    return o;
}

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
    free(topic->cleaning);
    free(topic->config_json);
    free(topic->name);
    free(topic);
}

/*
 * Opens partitions 0 .. of topic name (len bytes) whose directories exist, or creates n of them
 * when create is set; NULL with errmsg on failure.
 */
static dl_topic_t *open_topic(dl_topics_t *t, const char *name, size_t len, int32_t n, int create,
                              const char *config_json, char *errmsg, size_t errlen)
{
    dl_topic_t *topic = calloc(1, sizeof(*topic));
    if (topic == NULL || (topic->name = strndup(name, len)) == NULL ||
        (topic->partitions = calloc((size_t)n, sizeof(*topic->partitions))) == NULL ||
        (topic->cleaning = calloc((size_t)n, sizeof(*topic->cleaning))) == NULL ||
        (config_json != NULL && (topic->config_json = strdup(config_json)) == NULL)) {
        snprintf(errmsg, errlen, "out of memory");
        free_topic(topic);
        return NULL;
    }
    dl_topic_config_init(&topic->config);
    if (config_json != NULL && config_from_json(&topic->config, config_json, errmsg, errlen)) {
        free_topic(topic);
        return NULL;
    }
    dl_partition_options_t popts = dl_topic_partition_options(t, topic);
    for (int32_t i = 0; i < n; i++) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%s-%d", t->data_dir, topic->name, (int)i);
        struct stat st;
        if (!create && stat(dir, &st) != 0)
            break; /* the first missing partition ends the topic (a creation cut short) */
        if (dl_partition_open(dir, &popts, &topic->partitions[i], errmsg, errlen) != 0) {
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

/*
 * Removes partition i of topic name's directory (when whole is set) and what a compaction's swap
 * may have left beside it (partition.h). *found (may be NULL) says whether any of them existed.
 */
static int remove_partition(const dl_topics_t *t, const char *name, int32_t i, int whole,
                            int *found, char *errmsg, size_t errlen)
{
    static const char *const suffixes[] = {"", ".compacted", ".old", ".compacting"};
    int rv = 0;
    for (size_t k = whole ? 0 : 1; rv == 0 && k < sizeof(suffixes) / sizeof(*suffixes); k++) {
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s-%d%s", t->data_dir, name, (int)i, suffixes[k]);
        if (lstat(path, &st) != 0)
            continue;
        if (found != NULL)
            *found = 1;
        if ((rv = dl_remove_tree(path)) != 0)
            snprintf(errmsg, errlen, "cannot remove %s: %s", path, strerror(-rv));
    }
    return rv;
}

int dl_topics_create(dl_topics_t *t, const char *name, size_t len, int32_t n_partitions,
                     const char *config_json, dl_topic_t **out, char *errmsg, size_t errlen)
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
    dl_topic_config_t check;
    dl_topic_config_init(&check);
    if (config_json != NULL && config_from_json(&check, config_json, errmsg, errlen) != 0)
        return -EINVAL;
    char path[PATH_MAX], topic_name[DL_TOPIC_NAME_MAX + 1];
    snprintf(topic_name, sizeof(topic_name), "%.*s", (int)len, name);
    /* What a deletion cut short may have left under this topic's names goes first. */
    int rv = 0;
    for (int32_t i = 0; rv == 0 && i < DL_TOPIC_PARTITIONS_MAX; i++) {
        int found = 0;
        rv = remove_partition(t, topic_name, i, 1, &found, errmsg, errlen);
        if (i >= n_partitions && !found)
            break; /* the topic's partitions end at the first gap: nothing past it is read */
    }
    config_path(t, topic_name, path);
    if (rv == 0)
        rv = config_json ? dl_atomic_write_file(path, config_json, strlen(config_json))
                         : (unlink(path) == 0 || errno == ENOENT ? 0 : -errno);
    if (rv == 0)
        rv = dl_fsync_dir(t->data_dir);
    if (rv != 0) {
        snprintf(errmsg, errlen, "cannot prepare the directories of topic %s: %s", topic_name,
                 strerror(-rv));
        return rv;
    }
    dl_topic_t *topic = open_topic(t, name, len, n_partitions, 1, config_json, errmsg, errlen);
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

/* Whether name ends with suffix; *base_len receives the length before it. */
static int ends_with(const char *name, const char *suffix, size_t *base_len)
{
    size_t n = strlen(name), k = strlen(suffix);
    *base_len = n - k;
    return n > k && strcmp(name + n - k, suffix) == 0;
}

/*
 * Before the topics are opened: finishes the compaction swaps a crash interrupted (a partition
 * may exist only as "<dir>.compacted" then, which the scan for "<name>-0" would miss) and
 * deletes what deletions and given-up passes left: "*.deleting", "*.old", "*.compacting".
 */
static int tidy(dl_topics_t *t, char *errmsg, size_t errlen)
{
    DIR *d = opendir(t->data_dir);
    if (d == NULL) {
        snprintf(errmsg, errlen, "cannot open %s: %s", t->data_dir, strerror(errno));
        return -errno;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rv = 0;
    struct dirent *entry;
    while (rv == 0 && (entry = readdir(d)) != NULL) {
        size_t base;
        if (!ends_with(entry->d_name, ".deleting", &base) &&
            !ends_with(entry->d_name, ".compacted", &base) &&
            !ends_with(entry->d_name, ".old", &base) &&
            !ends_with(entry->d_name, ".compacting", &base))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **more = realloc(names, cap * sizeof(*names));
            if (more == NULL) {
                rv = -ENOMEM;
                break;
            }
            names = more;
        }
        if ((names[n] = strdup(entry->d_name)) == NULL)
            rv = -ENOMEM;
        else
            n++;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        size_t base;
        if (rv == 0 && ends_with(names[i], ".deleting", &base)) {
            snprintf(path, sizeof(path), "%s/%s", t->data_dir, names[i]);
            rv = dl_remove_tree(path);
        } else if (rv == 0) {
            (void)(ends_with(names[i], ".compacted", &base) || ends_with(names[i], ".old", &base) ||
                   ends_with(names[i], ".compacting", &base));
            snprintf(path, sizeof(path), "%s/%.*s", t->data_dir, (int)base, names[i]);
            rv = dl_partition_recover_dir(path);
        }
        if (rv != 0)
            snprintf(errmsg, errlen, "cannot tidy %s/%s: %s", t->data_dir, names[i], strerror(-rv));
        free(names[i]);
    }
    free(names);
    if (rv == -ENOMEM)
        snprintf(errmsg, errlen, "out of memory");
    return rv;
}

/* Opens every topic whose partition 0 directory ("<name>-0") is in the data directory. */
static int load(dl_topics_t *t, char *errmsg, size_t errlen)
{
    int rv = tidy(t, errmsg, errlen);
    if (rv != 0)
        return rv;
    DIR *d = opendir(t->data_dir);
    if (d == NULL) {
        snprintf(errmsg, errlen, "cannot open %s: %s", t->data_dir, strerror(errno));
        return -errno;
    }
    struct dirent *entry;
    while (rv == 0 && (entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len < 3 || strcmp(entry->d_name + len - 2, "-0") != 0 ||
            !dl_topic_name_valid(entry->d_name, len - 2))
            continue;
        char path[PATH_MAX], *config = NULL;
        size_t config_len;
        snprintf(path, sizeof(path), "%s/%.*s.config", t->data_dir, (int)(len - 2), entry->d_name);
        if ((rv = dl_read_file(path, &config, &config_len)) != 0 && rv != -ENOENT) {
            snprintf(errmsg, errlen, "cannot read %s: %s", path, strerror(-rv));
            break;
        }
        rv = 0;
        dl_topic_t *topic = open_topic(t, entry->d_name, len - 2, DL_TOPIC_PARTITIONS_MAX, 0,
                                       config, errmsg, errlen);
        free(config);
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
    dl_topics_reap(t);
    free(t->graveyard);
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

/* ---- Deletion ------------------------------------------------------------------------------ */

int dl_topics_delete(dl_topics_t *t, const char *name, size_t len, char *errmsg, size_t errlen)
{
    int found;
    size_t at = position(t, name, len, &found);
    if (!found) {
        snprintf(errmsg, errlen, "no topic named '%.*s'", (int)len, name);
        return -ENOENT;
    }
    dl_topic_t **graveyard = realloc(t->graveyard, (t->n_graveyard + 1) * sizeof(*graveyard));
    if (graveyard == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    t->graveyard = graveyard;
    dl_topic_t *topic = t->topics[at];
    memmove(t->topics + at, t->topics + at + 1, (t->n - at - 1) * sizeof(*t->topics));
    t->n--;
    t->graveyard[t->n_graveyard++] = topic;
    /* Partition 0 first: once it is renamed the topic is gone, whatever happens next. */
    int rv = 0;
    uint64_t id = topic->deletion = t->deletions++;
    for (int32_t i = 0; rv == 0 && i < topic->n_partitions; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof(from), "%s/%s-%d", t->data_dir, topic->name, (int)i);
        snprintf(to, sizeof(to), "%s/%s-%d.%llu.deleting", t->data_dir, topic->name, (int)i,
                 (unsigned long long)id);
        if (rename(from, to) != 0) {
            rv = -errno;
            snprintf(errmsg, errlen, "cannot rename %s: %s", from, strerror(errno));
            if (i == 0) { /* nothing happened: the topic stays */
                t->n_graveyard--;
                (void)insert(t, topic); /* room: it was in the list a moment ago */
                return rv;
            }
        }
    }
    char path[PATH_MAX];
    /* What a compaction's swap may have left beside a partition must not bring it back. */
    for (int32_t i = 0; rv == 0 && i < topic->n_partitions; i++)
        rv = remove_partition(t, topic->name, i, 0, NULL, errmsg, errlen);
    config_path(t, topic->name, path);
    if (rv == 0 && unlink(path) != 0 && errno != ENOENT) {
        rv = -errno;
        snprintf(errmsg, errlen, "cannot remove %s: %s", path, strerror(errno));
    }
    int synced = dl_fsync_dir(t->data_dir);
    if (rv == 0 && synced != 0) {
        rv = synced;
        snprintf(errmsg, errlen, "cannot fsync %s: %s", t->data_dir, strerror(-synced));
    }
    /* The partitions keep their directory names for messages; the directories are removed by
       their new names when reaped (and at the next start if not). */
    topic->config.compact = 0;
    for (int32_t i = 0; i < topic->n_partitions; i++)
        topic->cleaning[i].requested = 0;
    return rv;
}

dl_topic_t *const *dl_topics_graveyard(const dl_topics_t *t, size_t *n)
{
    *n = t->n_graveyard;
    return t->graveyard;
}

void dl_topics_reap(dl_topics_t *t)
{
    if (t->n_graveyard == 0)
        return;
    for (size_t k = 0; k < t->n_graveyard; k++) {
        dl_topic_t *topic = t->graveyard[k];
        for (int32_t i = 0; i < topic->n_partitions; i++) {
            char path[PATH_MAX];
            dl_partition_close(topic->partitions[i]);
            topic->partitions[i] = NULL;
            snprintf(path, sizeof(path), "%s/%s-%d.%llu.deleting", t->data_dir, topic->name, (int)i,
                     (unsigned long long)topic->deletion);
            (void)dl_remove_tree(path); /* what is left goes at the next start (tidy) */
        }
        free_topic(topic);
    }
    t->n_graveyard = 0;
    (void)dl_fsync_dir(t->data_dir);
}
