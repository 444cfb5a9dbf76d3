/*
 * A growable byte buffer. The owner frees data with dl_buf_free; appends return 0 or -ENOMEM and
 * leave the buffer as it was on failure.
 */
#ifndef DDIALAB_BUF_H
#define DDIALAB_BUF_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct dl_buf_s {
    uint8_t *data;
    size_t len;
    size_t cap;
} dl_buf_t;

static inline int dl_buf_reserve(dl_buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int dl_buf_append(dl_buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (dl_buf_reserve(b, len))
        return -ENOMEM;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static inline int dl_buf_put_u8(dl_buf_t *b, uint8_t v)
{
    return dl_buf_append(b, &v, 1);
}

/* Little-endian integers, as on every frame and record ddialab writes. */
static inline int dl_buf_put_u32(dl_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return dl_buf_append(b, x, 4);
}

static inline int dl_buf_put_u64(dl_buf_t *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return dl_buf_append(b, x, 8);
}

static inline uint32_t dl_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t dl_get_u64(const uint8_t *p)
{
    return (uint64_t)dl_get_u32(p) | (uint64_t)dl_get_u32(p + 4) << 32;
}

static inline void dl_set_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void dl_buf_consume(dl_buf_t *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static inline void dl_buf_free(dl_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
