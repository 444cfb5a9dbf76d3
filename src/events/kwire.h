/*
 * The Kafka wire protocol's primitive types, read and written: pure code, no I/O. The broker
 * (events/broker*.c) decodes requests and encodes responses with these; the fuzz target feeds
 * them arbitrary bytes. The encodings are those of Apache Kafka's protocol guide and its
 * `Type.java`: big-endian integers; STRING with an int16 length, NULLABLE_STRING with -1 for
 * null; BYTES with an int32 length; ARRAY with an int32 count (-1: null); VARINT and VARLONG
 * zig-zag encoded as in Protocol Buffers; and, in flexible versions (KIP-482), COMPACT_* lengths
 * as unsigned varints of N + 1 (0: null) and a tagged-field section at the end of each struct.
 *
 * Reading never trusts a length: a reader that would run past its end (or meets a malformed
 * varint, or a count larger than the bytes left could hold) fails, and from then on every read
 * returns zero or empty, so a decoder reads a whole struct and checks dl_kr_failed() once.
 * Strings and byte fields are returned as pointers into the frame (not copied, not
 * NUL-terminated); they stay valid as long as the frame does.
 */
#ifndef DDIALAB_EVENTS_KWIRE_H
#define DDIALAB_EVENTS_KWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"

/* A string or byte field inside a frame: len -1 is null (NULLABLE_STRING, NULLABLE_BYTES). */
typedef struct dl_kslice_s {
    const uint8_t *p;
    int32_t len;
} dl_kslice_t;

typedef struct dl_kreader_s {
    const uint8_t *p, *end;
    int failed;
} dl_kreader_t;

/* A reader over len bytes at p. */
dl_kreader_t dl_kr_init(const void *p, size_t len);
static inline int dl_kr_failed(const dl_kreader_t *r)
{
    return r->failed;
}
static inline size_t dl_kr_left(const dl_kreader_t *r)
{
    return r->failed ? 0 : (size_t)(r->end - r->p);
}

int8_t dl_kr_i8(dl_kreader_t *r);
int16_t dl_kr_i16(dl_kreader_t *r);
int32_t dl_kr_i32(dl_kreader_t *r);
uint32_t dl_kr_u32(dl_kreader_t *r);
int64_t dl_kr_i64(dl_kreader_t *r);
/* Zig-zag VARINT (at most 5 bytes) and VARLONG (at most 10). */
int32_t dl_kr_varint(dl_kreader_t *r);
int64_t dl_kr_varlong(dl_kreader_t *r);
/* UNSIGNED_VARINT (at most 5 bytes, fits 32 bits). */
uint32_t dl_kr_uvarint(dl_kreader_t *r);
/* n raw bytes; NULL (and failed) when fewer are left. */
const uint8_t *dl_kr_raw(dl_kreader_t *r, size_t n);

/* STRING / NULLABLE_STRING (int16 length); a null string is {NULL, -1}. STRING callers that
 * must not accept null check len >= 0. */
dl_kslice_t dl_kr_string(dl_kreader_t *r);
/* BYTES / NULLABLE_BYTES (int32 length). */
dl_kslice_t dl_kr_bytes(dl_kreader_t *r);
/* COMPACT_STRING / COMPACT_NULLABLE_STRING and COMPACT_BYTES (uvarint N + 1). */
dl_kslice_t dl_kr_compact_string(dl_kreader_t *r);
/* Skips a tagged-field section (flexible versions). */
void dl_kr_skip_tags(dl_kreader_t *r);

/*
 * ARRAY's count (int32; -1, null, reads as 0 with *is_null set when is_null is not NULL). Fails
 * the reader when the count is below -1 or when count * min_element_bytes exceeds the bytes
 * left, so that a decoder may size an allocation by the count.
 */
int32_t dl_kr_array(dl_kreader_t *r, size_t min_element_bytes, int *is_null);
/* COMPACT_ARRAY's count (uvarint N + 1; 0, null, reads as 0), with the same checks. */
int32_t dl_kr_compact_array(dl_kreader_t *r, size_t min_element_bytes);

/* Whether a slice equals a C string. */
int dl_kslice_eq(dl_kslice_t s, const char *c);

/*
 * Writing. Each appends to b and returns 0 or -ENOMEM (b is then unchanged by that call), so a
 * sequence can be or-ed together and checked once: a failed append leaves a shorter buffer that
 * the caller throws away.
 */
int dl_kw_i8(dl_buf_t *b, int8_t v);
int dl_kw_i16(dl_buf_t *b, int16_t v);
int dl_kw_i32(dl_buf_t *b, int32_t v);
int dl_kw_i64(dl_buf_t *b, int64_t v);
int dl_kw_varint(dl_buf_t *b, int32_t v);
int dl_kw_varlong(dl_buf_t *b, int64_t v);
int dl_kw_uvarint(dl_buf_t *b, uint32_t v);
/* STRING from a C string; NULL writes a null NULLABLE_STRING. */
int dl_kw_string(dl_buf_t *b, const char *s);
/* STRING from a slice (len -1: null). */
int dl_kw_slice(dl_buf_t *b, dl_kslice_t s);
/* NULLABLE_BYTES: len bytes at p, or null when p is NULL. */
int dl_kw_bytes(dl_buf_t *b, const void *p, int32_t len);
/* COMPACT_STRING from a C string (NULL: null). */
int dl_kw_compact_string(dl_buf_t *b, const char *s);
/* An empty tagged-field section. */
int dl_kw_no_tags(dl_buf_t *b);

/* Overwrites the big-endian int32 at offset at (a size or a count written before it was known). */
void dl_kw_patch_i32(dl_buf_t *b, size_t at, int32_t v);

/* Big-endian loads and stores on raw memory (record batch headers). */
static inline uint32_t dl_kbe32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}
static inline uint64_t dl_kbe64(const uint8_t *p)
{
    return (uint64_t)dl_kbe32(p) << 32 | dl_kbe32(p + 4);
}
static inline void dl_kput_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void dl_kput_be64(uint8_t *p, uint64_t v)
{
    dl_kput_be32(p, (uint32_t)(v >> 32));
    dl_kput_be32(p + 4, (uint32_t)v);
}

#endif
