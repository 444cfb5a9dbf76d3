/* Log compaction of one partition, in bounded steps (compact.h). */
#include "events/compact.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/error.h"
#include "ddialab/fsutil.h"
#include "events/batch.h"
#include "events/decompress.h"

#define DEFAULT_MAX_MAP_BYTES (128u << 20)
#define ENTRY_OVERHEAD        48 /* what a key costs besides its bytes */

/* ---- A map from keys (whole, any bytes) to offsets: open addressing, linear probing ----- */

typedef struct slot_s {
    uint8_t *key; /* NULL: empty */
    uint32_t len;
    uint64_t hash;
    int64_t value;
} slot_t;

typedef struct keymap_s {
    slot_t *slots;
    size_t n, cap; /* cap a power of two, or 0 */
    size_t bytes;  /* memory the keys take, for the map's limit */
} keymap_t;

static uint64_t hash_bytes(const uint8_t *p, size_t len)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static slot_t *lookup(const keymap_t *m, const uint8_t *key, size_t len, uint64_t h)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        slot_t *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static int grow(keymap_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    keymap_t bigger = {slots, m->n, cap, m->bytes};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != NULL)
            *lookup(&bigger, m->slots[i].key, m->slots[i].len, m->slots[i].hash) = m->slots[i];
    free(m->slots);
    *m = bigger;
    return 0;
}

/* Sets key's value (inserting it): 0 or -ENOMEM. */
static int keymap_put(keymap_t *m, const uint8_t *key, size_t len, int64_t value)
{
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) != 0)
        return -ENOMEM;
    uint64_t h = hash_bytes(key, len);
    slot_t *s = lookup(m, key, len, h);
    if (s->key == NULL) {
        if ((s->key = malloc(len ? len : 1)) == NULL)
            return -ENOMEM;
        memcpy(s->key, key, len);
        s->len = (uint32_t)len;
        s->hash = h;
        m->n++;
        m->bytes += len + ENTRY_OVERHEAD;
    }
    s->value = value;
    return 0;
}

/* key's value, or -1 when it has none. */
static int64_t keymap_get(const keymap_t *m, const uint8_t *key, size_t len)
{
    if (m->cap == 0)
        return -1;
    const slot_t *s = lookup(m, key, len, hash_bytes(key, len));
    return s->key ? s->value : -1;
}

static void keymap_free(keymap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    *m = (keymap_t){0};
}

/* ---- A pass ------------------------------------------------------------------------------ */

enum { PHASE_MAP, PHASE_COPY };

struct dl_compaction_s {
    dl_partition_t *p, *q; /* the partition, the new log */
    dl_compaction_options_t opts;
    int64_t start_offset; /* p's log start, kept */
    size_t end;           /* batches [0, end) are compacted, the rest copied */
    size_t pos;           /* the next batch of the phase */
    int phase;
    keymap_t keys;      /* key -> offset of its newest record in [0, end) */
    keymap_t producers; /* producer id -> position of its newest batch in [0, end) */
    keymap_t pinned;    /* keys in batches kept whole for their producer: see pin_keys */
    dl_buf_t plain, kept, rebuilt;
    dl_compaction_stats_t stats;
};

dl_partition_t *dl_compaction_partition(const dl_compaction_t *c)
{
    return c->p;
}

void dl_compaction_abort(dl_compaction_t *c)
{
    if (c == NULL)
        return;
    if (c->q != NULL) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", dl_partition_dir(c->q));
        dl_partition_close(c->q);
        dl_remove_tree(dir);
    }
    keymap_free(&c->keys);
    keymap_free(&c->producers);
    keymap_free(&c->pinned);
    dl_buf_free(&c->plain);
    dl_buf_free(&c->kept);
    dl_buf_free(&c->rebuilt);
    free(c);
}

int dl_compaction_start(dl_partition_t *p, const dl_compaction_options_t *opts,
                        dl_compaction_t **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    size_t count = dl_partition_batch_count(p);
    if (count < 2)
        return 0;
    dl_compaction_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    c->p = p;
    c->opts = *opts;
    if (c->opts.max_map_bytes == 0)
        c->opts.max_map_bytes = DEFAULT_MAX_MAP_BYTES;
    c->start_offset = dl_partition_log_start_offset(p);
    c->end = count - 1;
    c->phase = PHASE_MAP;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s.compacting", dl_partition_dir(p));
    int rv = dl_remove_tree(dir); /* a pass given up before (dl_partition_open removes it too) */
    if (rv == 0)
        rv = dl_partition_open(dir, &c->opts.partition, &c->q, errmsg, errlen);
    else
        snprintf(errmsg, errlen, "cannot remove %s: %s", dir, strerror(-rv));
    if (rv != 0) {
        dl_compaction_abort(c);
        return rv;
    }
    *out = c;
    return 0;
}

/* The records of batch b, uncompressed, in c->plain. */
static int records_of(dl_compaction_t *c, const dl_kbatch_t *b, char *errmsg, size_t errlen)
{
    c->plain.len = 0;
    int rv = dl_kdecompress(b->attributes & DL_KBATCH_COMPRESSION_MASK, b->records, b->records_len,
                            DL_KDECOMPRESS_MAX, &c->plain);
    if (rv != 0)
        snprintf(errmsg, errlen, "cannot decompress the batch at offset %lld: %s",
                 (long long)b->base_offset,
                 rv == -EFBIG ? "over 64 MiB of records" : "corrupt compressed data");
    return rv;
}

/* Reads batch i of p into *data and *b (the caller frees *data). */
static int read_batch(dl_compaction_t *c, size_t i, void **data, dl_kbatch_t *b, char *errmsg,
                      size_t errlen)
{
    size_t len;
    int rv = dl_partition_batch_at(c->p, i, data, &len);
    if (rv == 0 && dl_kbatch_parse(*data, len, DL_KBATCH_COMPACTED, b) != DL_KBATCH_OK) {
        free(*data);
        rv = DL_ECORRUPT;
    }
    if (rv != 0)
        snprintf(errmsg, errlen, "cannot read batch %zu of %s: %s", i, dl_partition_dir(c->p),
                 dl_strerror(rv));
    return rv;
}

static void put_id(uint8_t id[8], int64_t producer_id)
{
    dl_kput_be64(id, (uint64_t)producer_id);
}

/* Map phase: the newest offset of each key in batch i, and its producer's newest batch. */
static int map_batch(dl_compaction_t *c, size_t i, const dl_kbatch_t *b, char *errmsg,
                     size_t errlen)
{
    if (b->attributes & DL_KBATCH_CONTROL)
        return 0;
    if (b->producer_id >= 0) {
        uint8_t id[8];
        put_id(id, b->producer_id);
        if (keymap_put(&c->producers, id, sizeof(id), (int64_t)i) != 0)
            return -ENOMEM;
    }
    int rv = records_of(c, b, errmsg, errlen);
    if (rv != 0)
        return rv;
    dl_kreader_t r = dl_kr_init(c->plain.data, c->plain.len);
    dl_krecord_t rec;
    while ((rv = dl_krecord_next(&r, &rec)) == 1)
        if (rec.key.len >= 0 && keymap_put(&c->keys, rec.key.p, (size_t)rec.key.len,
                                           b->base_offset + rec.offset_delta) != 0)
            return -ENOMEM;
    if (rv < 0) {
        snprintf(errmsg, errlen, "a malformed record in the batch at offset %lld",
                 (long long)b->base_offset);
        return DL_ECORRUPT;
    }
    return 0;
}

/*
 * A producer's newest batch is kept whole, stale records and all. A tombstone for one of its
 * keys must then stay too, however old: without it the stale record would be the key's last
 * word, and a deleted key would come back. So the keys of those batches are pinned.
 */
static int pin_keys(dl_compaction_t *c, char *errmsg, size_t errlen)
{
    for (size_t s = 0; s < c->producers.cap; s++) {
        if (c->producers.slots[s].key == NULL)
            continue;
        void *data;
        dl_kbatch_t b;
        int rv = read_batch(c, (size_t)c->producers.slots[s].value, &data, &b, errmsg, errlen);
        if (rv == 0)
            rv = records_of(c, &b, errmsg, errlen);
        free(data);
        if (rv != 0)
            return rv;
        dl_kreader_t r = dl_kr_init(c->plain.data, c->plain.len);
        dl_krecord_t rec;
        while (dl_krecord_next(&r, &rec) == 1)
            if (rec.key.len >= 0 &&
                keymap_put(&c->pinned, rec.key.p, (size_t)rec.key.len, 1) != 0) {
                snprintf(errmsg, errlen, "out of memory");
                return -ENOMEM;
            }
    }
    return 0;
}

/*
 * Copy phase, for a batch below end: whether it goes whole (*keep_whole), not at all (neither
 * set), or rewritten with the records kept (*rewritten, in c->rebuilt).
 */
static int filter_batch(dl_compaction_t *c, size_t i, const uint8_t *data, const dl_kbatch_t *b,
                        int *keep_whole, int *rewritten, char *errmsg, size_t errlen)
{
    *keep_whole = *rewritten = 0;
    uint8_t id[8];
    put_id(id, b->producer_id);
    if ((b->attributes & DL_KBATCH_CONTROL) ||
        (b->producer_id >= 0 && keymap_get(&c->producers, id, sizeof(id)) == (int64_t)i)) {
        *keep_whole = 1;
        return 0;
    }
    int rv = records_of(c, b, errmsg, errlen);
    if (rv != 0)
        return rv;
    int log_append_time = (b->attributes & DL_KBATCH_TIMESTAMP_LOG_APPEND) != 0;
    int64_t horizon = c->opts.now_ms - c->opts.delete_retention_ms;
    int64_t max_ts = INT64_MIN;
    int32_t kept = 0, n = 0;
    c->kept.len = 0;
    dl_kreader_t r = dl_kr_init(c->plain.data, c->plain.len);
    dl_krecord_t rec;
    const uint8_t *at = r.p;
    while ((rv = dl_krecord_next(&r, &rec)) == 1) {
        n++;
        int64_t offset = b->base_offset + rec.offset_delta;
        int64_t ts = log_append_time ? b->max_timestamp : b->base_timestamp + rec.timestamp_delta;
        int newest =
            rec.key.len >= 0 && keymap_get(&c->keys, rec.key.p, (size_t)rec.key.len) == offset;
        int expired = newest && rec.value.len < 0 && ts < horizon &&
                      keymap_get(&c->pinned, rec.key.p, (size_t)rec.key.len) < 0;
        if (newest && !expired) {
            if (dl_buf_append(&c->kept, at, (size_t)(r.p - at)) != 0)
                return -ENOMEM;
            kept++;
            if (ts > max_ts)
                max_ts = ts;
        } else {
            c->stats.records_removed++;
            if (newest)
                c->stats.tombstones_removed++;
        }
        at = r.p;
    }
    c->stats.records_read += (uint64_t)n;
    if (rv < 0) {
        snprintf(errmsg, errlen, "a malformed record in the batch at offset %lld",
                 (long long)b->base_offset);
        return DL_ECORRUPT;
    }
    if (kept == n) {
        *keep_whole = 1;
        return 0;
    }
    if (kept == 0)
        return 0;
    c->rebuilt.len = 0;
    if (dl_buf_append(&c->rebuilt, data, DL_KBATCH_HEADER_BYTES) != 0)
        return -ENOMEM;
    if ((rv = dl_kcompress(b->attributes & DL_KBATCH_COMPRESSION_MASK, c->kept.data, c->kept.len,
                           &c->rebuilt)) != 0) {
        snprintf(errmsg, errlen, "cannot compress a compacted batch");
        return rv;
    }
    uint8_t *h = c->rebuilt.data;
    if (!log_append_time)
        dl_kput_be64(h + 35, (uint64_t)max_ts); /* maxTimestamp */
    dl_kput_be32(h + 57, (uint32_t)kept);       /* recordsCount */
    dl_kbatch_seal(h, c->rebuilt.len);
    *rewritten = 1;
    return 0;
}

/* Appends len bytes at batch to the new log. */
static int write_batch(dl_compaction_t *c, const uint8_t *batch, size_t len, char *errmsg,
                       size_t errlen)
{
    int rv = dl_partition_append_stored(c->q, batch, len);
    if (rv != 0)
        snprintf(errmsg, errlen, "cannot write the compacted log %s: %s", dl_partition_dir(c->q),
                 dl_strerror(rv));
    c->stats.batches_after++;
    c->stats.bytes_after += len;
    return rv;
}

/* One batch of the copy phase. */
static int copy_batch(dl_compaction_t *c, size_t i, char *errmsg, size_t errlen, size_t *work)
{
    void *data;
    dl_kbatch_t b;
    int rv = read_batch(c, i, &data, &b, errmsg, errlen);
    if (rv != 0)
        return rv;
    *work += b.total_len;
    c->stats.batches_before++;
    c->stats.bytes_before += b.total_len;
    int keep_whole = 1, rewritten = 0;
    if (i < c->end)
        rv = filter_batch(c, i, data, &b, &keep_whole, &rewritten, errmsg, errlen);
    else
        c->stats.records_read += (uint64_t)b.records_count;
    if (rv == 0 && keep_whole)
        rv = write_batch(c, data, b.total_len, errmsg, errlen);
    else if (rv == 0 && rewritten)
        rv = write_batch(c, c->rebuilt.data, c->rebuilt.len, errmsg, errlen);
    free(data);
    return rv;
}

int dl_compaction_step(dl_compaction_t *c, size_t budget, char *errmsg, size_t errlen)
{
    size_t work = 0;
    int rv;
    if (dl_partition_failed(c->p)) {
        snprintf(errmsg, errlen, "the partition failed");
        return DL_EINTERNAL;
    }
    while (c->phase == PHASE_MAP && work < budget) {
        if (c->pos == c->end || c->keys.bytes > c->opts.max_map_bytes) {
            /* Batches from pos on are copied as they are: the keys already mapped for them
               only make older records go, never a newest one. */
            c->end = c->pos;
            c->phase = PHASE_COPY;
            c->pos = 0;
            if ((rv = pin_keys(c, errmsg, errlen)) != 0)
                return rv;
            break;
        }
        void *data;
        dl_kbatch_t b;
        if ((rv = read_batch(c, c->pos, &data, &b, errmsg, errlen)) != 0)
            return rv;
        work += b.total_len;
        rv = map_batch(c, c->pos, &b, errmsg, errlen);
        free(data);
        if (rv == -ENOMEM)
            snprintf(errmsg, errlen, "out of memory");
        if (rv != 0)
            return rv;
        c->pos++;
    }
    while (c->phase == PHASE_COPY && work < budget && c->pos < dl_partition_batch_count(c->p)) {
        if ((rv = copy_batch(c, c->pos, errmsg, errlen, &work)) != 0)
            return rv;
        c->pos++;
    }
    return c->phase == PHASE_COPY && c->pos == dl_partition_batch_count(c->p);
}

int dl_compaction_finish(dl_compaction_t *c, dl_compaction_stats_t *stats, char *errmsg,
                         size_t errlen)
{
    int rv;
    while ((rv = dl_compaction_step(c, SIZE_MAX, errmsg, errlen)) == 0)
        ;
    if (rv == 1) {
        rv = dl_partition_adopt(c->p, c->q, c->start_offset, errmsg, errlen);
        if (rv >= 0)
            c->q = NULL; /* now the partition's log */
        if (rv == 1)
            rv = DL_EINTERNAL; /* swapped in, but the partition failed (errmsg) */
    }
    if (rv == 0 && stats != NULL)
        *stats = c->stats;
    dl_compaction_abort(c);
    return rv;
}

int dl_compact_partition(dl_partition_t *p, const dl_compaction_options_t *opts,
                         dl_compaction_stats_t *stats, char *errmsg, size_t errlen)
{
    *stats = (dl_compaction_stats_t){0};
    dl_compaction_t *c;
    int rv = dl_compaction_start(p, opts, &c, errmsg, errlen);
    if (rv != 0 || c == NULL)
        return rv;
    return dl_compaction_finish(c, stats, errmsg, errlen);
}
