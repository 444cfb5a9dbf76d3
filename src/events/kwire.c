/* The Kafka wire protocol's primitive types (kwire.h). */
#include "events/kwire.h"

#include <string.h>

dl_kreader_t dl_kr_init(const void *p, size_t len)
{
    dl_kreader_t r = {.p = p, .end = (const uint8_t *)p + len, .failed = 0};
    if (p == NULL)
        r.p = r.end = NULL;
    return r;
}

/* Fails the reader: every later read returns zero or empty. */
static void fail(dl_kreader_t *r)
{
    r->failed = 1;
    r->p = r->end;
}

const uint8_t *dl_kr_raw(dl_kreader_t *r, size_t n)
{
    if (r->failed || (size_t)(r->end - r->p) < n) {
        fail(r);
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

int8_t dl_kr_i8(dl_kreader_t *r)
{
    const uint8_t *p = dl_kr_raw(r, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t dl_kr_i16(dl_kreader_t *r)
{
    const uint8_t *p = dl_kr_raw(r, 2);
    return p ? (int16_t)((uint16_t)p[0] << 8 | p[1]) : 0;
}

uint32_t dl_kr_u32(dl_kreader_t *r)
{
    const uint8_t *p = dl_kr_raw(r, 4);
    return p ? dl_kbe32(p) : 0;
}

int32_t dl_kr_i32(dl_kreader_t *r)
{
    return (int32_t)dl_kr_u32(r);
}

int64_t dl_kr_i64(dl_kreader_t *r)
{
    const uint8_t *p = dl_kr_raw(r, 8);
    return p ? (int64_t)dl_kbe64(p) : 0;
}

/* An unsigned LEB128 value of at most max_bytes bytes (5 for 32 bits, 10 for 64). */
static uint64_t leb128(dl_kreader_t *r, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = dl_kr_raw(r, 1);
        if (p == NULL)
            return 0;
        v |= (uint64_t)(*p & 0x7f) << (7 * i);
        if ((*p & 0x80) == 0)
            return v;
    }
    fail(r); /* too long: Kafka's ByteUtils rejects it too */
    return 0;
}

uint32_t dl_kr_uvarint(dl_kreader_t *r)
{
    uint64_t v = leb128(r, 5);
    if (v > UINT32_MAX) {
        fail(r);
        return 0;
    }
    return (uint32_t)v;
}

int32_t dl_kr_varint(dl_kreader_t *r)
{
    uint32_t v = dl_kr_uvarint(r);
    return (int32_t)((v >> 1) ^ (~(v & 1) + 1));
}

int64_t dl_kr_varlong(dl_kreader_t *r)
{
    uint64_t v = leb128(r, 10);
    return (int64_t)((v >> 1) ^ (~(v & 1) + 1));
}

/* A field of n bytes (n -1: null) at the reader's position. */
static dl_kslice_t slice(dl_kreader_t *r, int64_t n)
{
    dl_kslice_t s = {NULL, -1};
    if (r->failed || n < -1) {
        fail(r);
        return s;
    }
    if (n == -1)
        return s;
    const uint8_t *p = dl_kr_raw(r, (size_t)n);
    if (p != NULL) {
        s.p = p;
        s.len = (int32_t)n;
    }
    return s;
}

dl_kslice_t dl_kr_string(dl_kreader_t *r)
{
    return slice(r, dl_kr_i16(r));
}

dl_kslice_t dl_kr_bytes(dl_kreader_t *r)
{
    return slice(r, dl_kr_i32(r));
}

dl_kslice_t dl_kr_compact_string(dl_kreader_t *r)
{
    uint32_t n = dl_kr_uvarint(r);
    return slice(r, r->failed ? -2 : (int64_t)n - 1);
}

void dl_kr_skip_tags(dl_kreader_t *r)
{
    uint32_t n = dl_kr_uvarint(r);
    for (uint32_t i = 0; i < n && !r->failed; i++) {
        (void)dl_kr_uvarint(r); /* the tag */
        uint32_t size = dl_kr_uvarint(r);
        (void)dl_kr_raw(r, size);
    }
}

/* Whether count elements of at least min bytes each could fit in what is left. */
static int32_t checked_count(dl_kreader_t *r, int64_t count, size_t min_element_bytes)
{
    if (r->failed || count < 0 ||
        (uint64_t)count * (min_element_bytes ? min_element_bytes : 1) > dl_kr_left(r)) {
        fail(r);
        return 0;
    }
    return (int32_t)count;
}

int32_t dl_kr_array(dl_kreader_t *r, size_t min_element_bytes, int *is_null)
{
    int32_t n = dl_kr_i32(r);
    if (is_null != NULL)
        *is_null = !r->failed && n == -1;
    if (n == -1 && !r->failed)
        return 0;
    return checked_count(r, n, min_element_bytes);
}

int32_t dl_kr_compact_array(dl_kreader_t *r, size_t min_element_bytes)
{
    uint32_t n = dl_kr_uvarint(r);
    if (n == 0 || r->failed)
        return 0;
    return checked_count(r, (int64_t)n - 1, min_element_bytes);
}

int dl_kslice_eq(dl_kslice_t s, const char *c)
{
    size_t n = strlen(c);
    return s.len >= 0 && (size_t)s.len == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

/* ---- Writing ------------------------------------------------------------------------------ */

int dl_kw_i8(dl_buf_t *b, int8_t v)
{
    return dl_buf_put_u8(b, (uint8_t)v);
}

int dl_kw_i16(dl_buf_t *b, int16_t v)
{
    uint8_t x[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    return dl_buf_append(b, x, 2);
}

int dl_kw_i32(dl_buf_t *b, int32_t v)
{
    uint8_t x[4];
    dl_kput_be32(x, (uint32_t)v);
    return dl_buf_append(b, x, 4);
}

int dl_kw_i64(dl_buf_t *b, int64_t v)
{
    uint8_t x[8];
    dl_kput_be64(x, (uint64_t)v);
    return dl_buf_append(b, x, 8);
}

static int put_leb128(dl_buf_t *b, uint64_t v)
{
    uint8_t x[10];
    size_t n = 0;
    do {
        x[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            x[n] |= 0x80;
        n++;
    } while (v != 0);
    return dl_buf_append(b, x, n);
}

int dl_kw_uvarint(dl_buf_t *b, uint32_t v)
{
    return put_leb128(b, v);
}

int dl_kw_varint(dl_buf_t *b, int32_t v)
{
    return put_leb128(b, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}

int dl_kw_varlong(dl_buf_t *b, int64_t v)
{
    return put_leb128(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Appends a length (written by put_len) and then the bytes, or nothing on failure. */
static int with_length(dl_buf_t *b, int (*put_len)(dl_buf_t *, int64_t), const void *p, int64_t len)
{
    size_t before = b->len;
    if (put_len(b, len) != 0)
        return -ENOMEM;
    if (len > 0 && dl_buf_append(b, p, (size_t)len) != 0) {
        b->len = before;
        return -ENOMEM;
    }
    return 0;
}

static int len16(dl_buf_t *b, int64_t n)
{
    return dl_kw_i16(b, (int16_t)n);
}

static int len32(dl_buf_t *b, int64_t n)
{
    return dl_kw_i32(b, (int32_t)n);
}

static int len_compact(dl_buf_t *b, int64_t n)
{
    return dl_kw_uvarint(b, (uint32_t)(n + 1));
}

int dl_kw_string(dl_buf_t *b, const char *s)
{
    return with_length(b, len16, s, s ? (int64_t)strlen(s) : -1);
}

int dl_kw_slice(dl_buf_t *b, dl_kslice_t s)
{
    return with_length(b, len16, s.p, s.p ? s.len : -1);
}

int dl_kw_bytes(dl_buf_t *b, const void *p, int32_t len)
{
    return with_length(b, len32, p, p ? len : -1);
}

int dl_kw_compact_string(dl_buf_t *b, const char *s)
{
    return with_length(b, len_compact, s, s ? (int64_t)strlen(s) : -1);
}

int dl_kw_no_tags(dl_buf_t *b)
{
    return dl_kw_uvarint(b, 0);
}

void dl_kw_patch_i32(dl_buf_t *b, size_t at, int32_t v)
{
    dl_kput_be32(b->data + at, (uint32_t)v);
}
