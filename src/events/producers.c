/* Idempotent producers: per-partition sequence state and producer ids (producers.h). */
#include "events/producers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/fsutil.h"
#include "events/protocol.h"

#define ID_BLOCK 1000

typedef struct kept_s {
    int32_t first_seq, last_seq;
    int64_t base_offset;
} kept_t;

typedef struct producer_s {
    int64_t id;
    int16_t epoch;
    kept_t kept[DL_PRODUCER_BATCHES_KEPT]; /* a ring, newest at (next - 1) */
    int n_kept, next;
} producer_t;

struct dl_producers_s {
    producer_t *items; /* sorted by id */
    size_t n, cap;
};

dl_producers_t *dl_producers_new(void)
{
    return calloc(1, sizeof(dl_producers_t));
}

void dl_producers_free(dl_producers_t *s)
{
    if (s == NULL)
        return;
    free(s->items);
    free(s);
}

/* Where producer id is (or would go); *found says which. */
static size_t position(const dl_producers_t *s, int64_t id, int *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < s->n && s->items[lo].id == id;
    return lo;
}

/* The sequence of b's last record: sequences wrap from INT32_MAX to 0, as Kafka's do. */
static int32_t last_sequence(const dl_kbatch_t *b)
{
    return (int32_t)(((int64_t)b->base_sequence + b->last_offset_delta) % ((int64_t)INT32_MAX + 1));
}

int16_t dl_producers_check(const dl_producers_t *s, const dl_kbatch_t *b, int64_t *duplicate_offset)
{
    if (b->producer_id < 0)
        return DL_KERR_NONE;
    int found;
    size_t at = position(s, b->producer_id, &found);
    if (!found || b->producer_epoch > s->items[at].epoch)
        return b->base_sequence == 0 ? DL_KERR_NONE : DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    const producer_t *p = &s->items[at];
    if (b->producer_epoch < p->epoch)
        return DL_KERR_INVALID_PRODUCER_EPOCH;
    int32_t last = last_sequence(b);
    for (int i = 0; i < p->n_kept; i++)
        if (p->kept[i].first_seq == b->base_sequence && p->kept[i].last_seq == last) {
            *duplicate_offset = p->kept[i].base_offset;
            return DL_KERR_DUPLICATE_SEQUENCE_NUMBER;
        }
    int32_t newest =
        p->kept[(p->next + DL_PRODUCER_BATCHES_KEPT - 1) % DL_PRODUCER_BATCHES_KEPT].last_seq;
    int32_t expected = newest == INT32_MAX ? 0 : newest + 1;
    return b->base_sequence == expected ? DL_KERR_NONE : DL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
}

int dl_producers_reserve(dl_producers_t *s)
{
    if (s->n < s->cap)
        return 0;
    size_t cap = s->cap ? 2 * s->cap : 8;
    producer_t *items = realloc(s->items, cap * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    s->items = items;
    s->cap = cap;
    return 0;
}

void dl_producers_record(dl_producers_t *s, const dl_kbatch_t *b, int64_t base_offset)
{
    if (b->producer_id < 0)
        return;
    int found;
    size_t at = position(s, b->producer_id, &found);
    if (!found) {
        memmove(s->items + at + 1, s->items + at, (s->n - at) * sizeof(*s->items));
        s->items[at] = (producer_t){.id = b->producer_id, .epoch = b->producer_epoch};
        s->n++;
    }
    producer_t *p = &s->items[at];
    if (b->producer_epoch != p->epoch) {
        p->epoch = b->producer_epoch;
        p->n_kept = p->next = 0;
    }
    p->kept[p->next] = (kept_t){b->base_sequence, last_sequence(b), base_offset};
    p->next = (p->next + 1) % DL_PRODUCER_BATCHES_KEPT;
    if (p->n_kept < DL_PRODUCER_BATCHES_KEPT)
        p->n_kept++;
}

/* ---- Producer ids -------------------------------------------------------------------- */

struct dl_producer_ids_s {
    char *path;
    int64_t next, block_end; /* ids in [next, block_end) are reserved and free */
};

void dl_producer_ids_close(dl_producer_ids_t *ids)
{
    if (ids == NULL)
        return;
    free(ids->path);
    free(ids);
}

int dl_producer_ids_open(const char *path, dl_producer_ids_t **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    dl_producer_ids_t *ids = calloc(1, sizeof(*ids));
    if (ids == NULL || (ids->path = strdup(path)) == NULL) {
        free(ids);
        snprintf(errmsg, errlen, "out of memory");
        return -ENOMEM;
    }
    char *text = NULL;
    size_t len;
    int rv = dl_read_file(path, &text, &len);
    if (rv == 0) {
        char *end;
        errno = 0;
        long long block = strtoll(text, &end, 10);
        if (errno != 0 || end == text || (*end != '\n' && *end != '\0') || block < 0) {
            snprintf(errmsg, errlen, "%s: expected the next free producer id, found '%.40s'", path,
                     text);
            free(text);
            dl_producer_ids_close(ids);
            return -EINVAL;
        }
        ids->next = ids->block_end = block;
    } else if (rv != -ENOENT) {
        snprintf(errmsg, errlen, "cannot read %s: %s", path, strerror(-rv));
        dl_producer_ids_close(ids);
        return rv;
    }
    free(text);
    *out = ids;
    return 0;
}

int dl_producer_ids_next(dl_producer_ids_t *ids, int64_t *id)
{
    if (ids->next == ids->block_end) {
        char text[32];
        int n = snprintf(text, sizeof(text), "%" PRId64 "\n", ids->block_end + ID_BLOCK);
        int rv = dl_atomic_write_file(ids->path, text, (size_t)n);
        if (rv != 0)
            return rv;
        ids->block_end += ID_BLOCK;
    }
    *id = ids->next++;
    return 0;
}
