/* Kafka record batches, message format v2 (batch.h). */
#include "events/batch.h"

#include <errno.h>

#include "ddialab/crc32c.h"

const char *dl_kbatch_status_text(dl_kbatch_status_t status)
{
    switch (status) {
    case DL_KBATCH_OK:
        return "a valid record batch";
    case DL_KBATCH_TRUNCATED:
        return "the record batch is shorter than its header or its batchLength says";
    case DL_KBATCH_BAD_MAGIC:
        return "only record batches of message format v2 (magic 2) are accepted";
    case DL_KBATCH_BAD_CRC:
        return "the record batch's CRC-32C does not match its contents";
    case DL_KBATCH_BAD_COUNT:
        return "the record batch must hold at least one record, numbered 0 .. recordsCount - 1";
    case DL_KBATCH_BAD_COMPRESSION:
        return "the record batch names a compression codec Kafka does not define";
    }
    return "unknown record batch status";
}

dl_kbatch_status_t dl_kbatch_parse(const uint8_t *p, size_t len, int flags, dl_kbatch_t *b)
{
    /* The magic byte sits at the same place in every format: read it before the rest, whose
     * layout depends on it. */
    if (len < 17)
        return DL_KBATCH_TRUNCATED;
    if ((int8_t)p[16] != 2)
        return DL_KBATCH_BAD_MAGIC;
    if (len < DL_KBATCH_HEADER_BYTES)
        return DL_KBATCH_TRUNCATED;
    dl_kreader_t r = dl_kr_init(p, DL_KBATCH_HEADER_BYTES);
    b->base_offset = dl_kr_i64(&r);
    b->batch_length = dl_kr_i32(&r);
    b->leader_epoch = dl_kr_i32(&r);
    b->magic = dl_kr_i8(&r);
    b->crc = dl_kr_u32(&r);
    b->attributes = dl_kr_i16(&r);
    b->last_offset_delta = dl_kr_i32(&r);
    b->base_timestamp = dl_kr_i64(&r);
    b->max_timestamp = dl_kr_i64(&r);
    b->producer_id = dl_kr_i64(&r);
    b->producer_epoch = dl_kr_i16(&r);
    b->base_sequence = dl_kr_i32(&r);
    b->records_count = dl_kr_i32(&r);
    if (b->batch_length < DL_KBATCH_HEADER_BYTES - DL_KBATCH_OVERHEAD ||
        (uint64_t)b->batch_length + DL_KBATCH_OVERHEAD > len)
        return DL_KBATCH_TRUNCATED;
    b->total_len = (size_t)b->batch_length + DL_KBATCH_OVERHEAD;
    b->records = p + DL_KBATCH_HEADER_BYTES;
    b->records_len = b->total_len - DL_KBATCH_HEADER_BYTES;
    const size_t crc_from = 21; /* attributes */
    if ((flags & DL_KBATCH_VERIFY_CRC) &&
        dl_crc32c(0, p + crc_from, b->total_len - crc_from) != b->crc)
        return DL_KBATCH_BAD_CRC;
    if ((b->attributes & DL_KBATCH_COMPRESSION_MASK) > DL_KCOMPRESSION_ZSTD)
        return DL_KBATCH_BAD_COMPRESSION;
    if (b->records_count < 1 || b->last_offset_delta < b->records_count - 1 ||
        (!(flags & DL_KBATCH_COMPACTED) && b->last_offset_delta != b->records_count - 1))
        return DL_KBATCH_BAD_COUNT;
    return DL_KBATCH_OK;
}

void dl_kbatch_seal(uint8_t *p, size_t len)
{
    dl_kput_be32(p + DL_KBATCH_LENGTH_OFFSET, (uint32_t)(len - DL_KBATCH_OVERHEAD));
    dl_kput_be32(p + 17, dl_crc32c(0, p + 21, len - 21));
}

int dl_krecord_next(dl_kreader_t *r, dl_krecord_t *rec)
{
    if (dl_kr_left(r) == 0)
        return r->failed ? -1 : 0;
    int32_t length = dl_kr_varint(r);
    if (r->failed || length < 0 || (size_t)length > dl_kr_left(r))
        return -1;
    dl_kreader_t body = dl_kr_init(dl_kr_raw(r, (size_t)length), (size_t)length);
    rec->attributes = dl_kr_i8(&body);
    rec->timestamp_delta = dl_kr_varlong(&body);
    rec->offset_delta = dl_kr_varint(&body);
    int32_t key_len = dl_kr_varint(&body);
    rec->key = (dl_kslice_t){NULL, -1};
    if (key_len >= 0)
        rec->key = (dl_kslice_t){dl_kr_raw(&body, (size_t)key_len), key_len};
    int32_t value_len = dl_kr_varint(&body);
    rec->value = (dl_kslice_t){NULL, -1};
    if (value_len >= 0)
        rec->value = (dl_kslice_t){dl_kr_raw(&body, (size_t)value_len), value_len};
    rec->n_headers = dl_kr_varint(&body);
    /* Each header takes at least two bytes (two empty lengths). */
    if (body.failed || key_len < -1 || value_len < -1 || rec->n_headers < 0 ||
        (size_t)rec->n_headers * 2 > dl_kr_left(&body))
        return -1;
    rec->headers = body;
    /* The headers must end exactly at the record's end: walk them once. */
    dl_krecord_t probe = *rec;
    dl_kslice_t k, v;
    for (int32_t i = 0; i < rec->n_headers; i++)
        if (dl_krecord_header(&probe, &k, &v) != 0)
            return -1;
    if (dl_kr_left(&probe.headers) != 0)
        return -1;
    return 1;
}

int dl_krecord_header(dl_krecord_t *rec, dl_kslice_t *key, dl_kslice_t *value)
{
    dl_kreader_t *h = &rec->headers;
    int32_t key_len = dl_kr_varint(h);
    if (h->failed || key_len < 0)
        return -1;
    *key = (dl_kslice_t){dl_kr_raw(h, (size_t)key_len), key_len};
    int32_t value_len = dl_kr_varint(h);
    if (h->failed || value_len < -1)
        return -1;
    *value = (dl_kslice_t){NULL, -1};
    if (value_len >= 0)
        *value = (dl_kslice_t){dl_kr_raw(h, (size_t)value_len), value_len};
    return h->failed ? -1 : 0;
}

/* A varint length and the bytes of a slice (len -1: the null length alone). */
static int put_field(dl_buf_t *b, dl_kslice_t s)
{
    return dl_kw_varint(b, s.len) | (s.len > 0 ? dl_buf_append(b, s.p, (size_t)s.len) : 0);
}

int dl_kbatch_build(dl_buf_t *out, const dl_krecord_in_t *records, size_t n, int64_t timestamp_ms)
{
    size_t start = out->len;
    int rv = dl_kw_i64(out, 0) | dl_kw_i32(out, 0) /* batchLength, below */ |
             dl_kw_i32(out, -1) /* partition leader epoch */ | dl_kw_i8(out, 2) |
             dl_kw_i32(out, 0) /* crc, below */ | dl_kw_i16(out, 0) |
             dl_kw_i32(out, (int32_t)n - 1) | dl_kw_i64(out, timestamp_ms) |
             dl_kw_i64(out, timestamp_ms) | dl_kw_i64(out, -1) /* no producer id */ |
             dl_kw_i16(out, -1) | dl_kw_i32(out, -1) | dl_kw_i32(out, (int32_t)n);
    dl_buf_t rec = {0};
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const dl_krecord_in_t *r = &records[i];
        rec.len = 0;
        rv |= dl_kw_i8(&rec, 0) | dl_kw_varlong(&rec, 0) | dl_kw_varint(&rec, (int32_t)i) |
              put_field(&rec, r->key) | put_field(&rec, r->value) |
              dl_kw_varint(&rec, (int32_t)r->n_headers);
        for (size_t k = 0; k < r->n_headers; k++)
            rv |= put_field(&rec, r->header_keys[k]) | put_field(&rec, r->header_values[k]);
        rv |= dl_kw_varint(out, (int32_t)rec.len) | dl_buf_append(out, rec.data, rec.len);
    }
    dl_buf_free(&rec);
    if (rv != 0) {
        out->len = start;
        return -ENOMEM;
    }
    dl_kbatch_seal(out->data + start, out->len - start);
    return 0;
}
