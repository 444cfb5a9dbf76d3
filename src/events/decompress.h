/*
 * Decompression of record batches' records sections, for the places that must read records
 * rather than pass batches on (the HTTP API, compaction). The broker itself never decompresses: it
 * stores and serves batches as producers compressed them. Codecs as Kafka defines them: gzip
 * (zlib's gzip format), snappy (raw, or in the xerial framing the Java client writes), lz4 (the LZ4
 * frame format) and zstd.
 */
#ifndef DDIALAB_EVENTS_DECOMPRESS_H
#define DDIALAB_EVENTS_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "ddialab/buf.h"

/* The most a batch's records may decompress to wherever the broker reads them. */
#define DL_KDECOMPRESS_MAX (64u << 20)

/* Appends the decompressed form of len bytes at in (codec: dl_kcompression_t) to out, at most
 * max_out bytes (more is -EFBIG, a decompression bomb). 0, -EINVAL for corrupt input or an
 * unknown codec, -EFBIG, -ENOMEM. */
int dl_kdecompress(int codec, const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out);

/* Appends len bytes at in compressed with codec (raw snappy, the LZ4 frame format, gzip, zstd)
 * to out: how compaction writes a batch it thinned in the codec the producer chose. 0,
 * -EINVAL (unknown codec or a library failure) or -ENOMEM (out as it was). */
int dl_kcompress(int codec, const uint8_t *in, size_t len, dl_buf_t *out);

#endif
