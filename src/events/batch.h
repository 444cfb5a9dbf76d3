/*
 * Kafka record batches (message format v2, "magic 2"), as producers send them and the broker
 * stores and serves them: pure code, no I/O. Layout (Kafka's docs/implementation.html 5.3):
 *
 *   baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 (2) |
 *   crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
 *   maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
 *   recordsCount int32 | records (compressed as a whole when attributes say so)
 *
 * batchLength counts the bytes after itself; the CRC-32C covers attributes to the end, so the
 * broker may rewrite baseOffset and partitionLeaderEpoch without recomputing it, and stores a
 * producer's batch as it came.
 *
 *   record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
 *           keyLength varint (-1: null) | key | valueLength varint | value |
 *           headersCount varint | [keyLength varint | key | valueLength varint | value] ...
 */
#ifndef DDIALAB_EVENTS_BATCH_H
#define DDIALAB_EVENTS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"
#include "events/kwire.h"

#define DL_KBATCH_HEADER_BYTES  61 /* up to and with recordsCount */
#define DL_KBATCH_LENGTH_OFFSET 8  /* batchLength */
#define DL_KBATCH_OVERHEAD      12 /* baseOffset and batchLength, outside batchLength */

/* attributes */
#define DL_KBATCH_COMPRESSION_MASK     0x07 /* 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd */
#define DL_KBATCH_TIMESTAMP_LOG_APPEND 0x08
#define DL_KBATCH_TRANSACTIONAL        0x10
#define DL_KBATCH_CONTROL              0x20

typedef enum {
    DL_KCOMPRESSION_NONE = 0,
    DL_KCOMPRESSION_GZIP = 1,
    DL_KCOMPRESSION_SNAPPY = 2,
    DL_KCOMPRESSION_LZ4 = 3,
    DL_KCOMPRESSION_ZSTD = 4,
} dl_kcompression_t;

typedef struct dl_kbatch_s {
    int64_t base_offset;
    int32_t batch_length;
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp, max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
    const uint8_t *records; /* after recordsCount: compressed when attributes say so */
    size_t records_len;
    size_t total_len; /* the whole batch: batch_length + DL_KBATCH_OVERHEAD */
} dl_kbatch_t;

/* Why a batch was refused (the Kafka error the broker answers with follows in brackets). */
typedef enum {
    DL_KBATCH_OK = 0,
    DL_KBATCH_TRUNCATED, /* fewer bytes than the header or batchLength says [CORRUPT_MESSAGE] */
    DL_KBATCH_BAD_MAGIC, /* not message format v2 [UNSUPPORTED_VERSION] */
    DL_KBATCH_BAD_CRC,   /* the CRC-32C does not match [CORRUPT_MESSAGE] */
    DL_KBATCH_BAD_COUNT, /* recordsCount < 1 or lastOffsetDelta != count - 1 [INVALID_RECORD] */
    DL_KBATCH_BAD_COMPRESSION, /* a codec number Kafka does not define [CORRUPT_MESSAGE] */
} dl_kbatch_status_t;

/* A sentence for a status, for logs and error messages. */
const char *dl_kbatch_status_text(dl_kbatch_status_t status);

/* dl_kbatch_parse's flags. */
#define DL_KBATCH_VERIFY_CRC 1 /* check the CRC-32C (a batch that comes in) */
/* A stored batch that compaction may have thinned (compact.h): its records keep their offset
 * deltas, so it may hold fewer records than lastOffsetDelta + 1 (but at least one). */
#define DL_KBATCH_COMPACTED 2

/*
 * Parses the batch at the start of len bytes at p into *b (pointers into p) and checks what a
 * broker checks on produce: complete, magic 2, CRC-32C, a codec Kafka defines, and at least one
 * record with lastOffsetDelta = recordsCount - 1 (offsets 0 .. n-1, as producers number them).
 * Without DL_KBATCH_VERIFY_CRC in flags the CRC is not checked (a stored batch, checked when it
 * came in); with DL_KBATCH_COMPACTED fewer records than offsets are allowed.
 */
dl_kbatch_status_t dl_kbatch_parse(const uint8_t *p, size_t len, int flags, dl_kbatch_t *b);

/* Sets the batchLength of the len-byte batch at p to match len, and its CRC-32C to match its
 * contents (after a batch was rebuilt). */
void dl_kbatch_seal(uint8_t *p, size_t len);

/* Rewrites the base offset of the batch at p (the broker's one change to a produced batch). */
static inline void dl_kbatch_set_base_offset(uint8_t *p, int64_t base_offset)
{
    dl_kput_be64(p, (uint64_t)base_offset);
}

typedef struct dl_krecord_s {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    dl_kslice_t key, value; /* len -1: null */
    int32_t n_headers;
    dl_kreader_t headers; /* n_headers of (key, value); read with dl_krecord_header */
} dl_krecord_t;

/*
 * The next record of an uncompressed records section (b->records when the batch is not
 * compressed, else the decompressed bytes) read from r: 1 with *rec set, 0 at the end, -1 when
 * the record is malformed (its length disagrees with its fields, or a field runs past it).
 */
int dl_krecord_next(dl_kreader_t *r, dl_krecord_t *rec);
/* The next header of rec: 0, or -1 when malformed. A header's key is never null. */
int dl_krecord_header(dl_krecord_t *rec, dl_kslice_t *key, dl_kslice_t *value);

/* A record to encode (dl_kbatch_build): len -1 slices are null. */
typedef struct dl_krecord_in_s {
    dl_kslice_t key, value;
    const dl_kslice_t *header_keys, *header_values;
    size_t n_headers;
} dl_krecord_in_t;

/*
 * Appends to out an uncompressed record batch v2 holding the n records (n >= 1), all with
 * timestamp timestamp_ms (CreateTime), no producer id, base offset 0 (the partition assigns
 * it), and its CRC-32C: what the HTTP API's POST stores. 0 or -ENOMEM (out as it was).
 */
int dl_kbatch_build(dl_buf_t *out, const dl_krecord_in_t *records, size_t n, int64_t timestamp_ms);

#endif
