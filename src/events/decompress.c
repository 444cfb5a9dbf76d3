/* Decompressing and compressing records sections (decompress.h), on Debian's zlib, snappy, lz4
 * and zstd. */
#include "events/decompress.h"

#include <errno.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "events/batch.h"
#include "events/kwire.h"

#define CHUNK (64u << 10)

/* Makes room for a chunk of output within max_out; 0, -EFBIG or -ENOMEM. */
static int room(dl_buf_t *out, size_t start, size_t max_out)
{
    if (out->len - start >= max_out)
        return -EFBIG;
    return dl_buf_reserve(out, CHUNK);
}

static int gunzip(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start)
{
    z_stream z = {.next_in = (Bytef *)in, .avail_in = (uInt)len};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -ENOMEM;
    int rv = 0, zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if ((rv = room(out, start, max_out)) != 0)
            break;
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)(out->cap - out->len);
        zr = inflate(&z, Z_NO_FLUSH);
        out->len = out->cap - z.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rv = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        if (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
            rv = -EINVAL; /* truncated */
            break;
        }
    }
    inflateEnd(&z);
    return rv;
}

static int unsnappy_block(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out,
                          size_t start)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return -EINVAL;
    if (n > max_out - (out->len - start))
        return -EFBIG;
    if (dl_buf_reserve(out, n) != 0)
        return -ENOMEM;
    if (snappy_uncompress((const char *)in, len, (char *)out->data + out->len, &n) != SNAPPY_OK)
        return -EINVAL;
    out->len += n;
    return 0;
}

static int unsnappy(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start)
{
    static const uint8_t xerial[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    if (len < 16 || memcmp(in, xerial, sizeof(xerial)) != 0)
        return unsnappy_block(in, len, max_out, out, start);
    /* xerial: the magic, a version and a compatible version, then blocks with a length. */
    size_t at = 16;
    while (at < len) {
        if (len - at < 4)
            return -EINVAL;
        uint32_t n = dl_kbe32(in + at);
        at += 4;
        if (n > len - at)
            return -EINVAL;
        int rv = unsnappy_block(in + at, n, max_out, out, start);
        if (rv != 0)
            return rv;
        at += n;
    }
    return 0;
}

static int unlz4(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start)
{
    LZ4F_dctx *ctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION)))
        return -ENOMEM;
    int rv = 0;
    size_t at = 0, hint = 1;
    while (hint != 0) {
        if ((rv = room(out, start, max_out)) != 0)
            break;
        size_t src = len - at, dst = out->cap - out->len;
        hint = LZ4F_decompress(ctx, out->data + out->len, &dst, in + at, &src, NULL);
        if (LZ4F_isError(hint)) {
            rv = -EINVAL;
            break;
        }
        at += src;
        out->len += dst;
        if (hint != 0 && at == len && dst == 0) {
            rv = -EINVAL; /* truncated */
            break;
        }
    }
    LZ4F_freeDecompressionContext(ctx);
    return rv;
}

static int unzstd(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    if (z == NULL)
        return -ENOMEM;
    ZSTD_inBuffer src = {in, len, 0};
    int rv = 0;
    size_t hint = 1;
    while (hint != 0) {
        if ((rv = room(out, start, max_out)) != 0)
            break;
        ZSTD_outBuffer dst = {out->data + out->len, out->cap - out->len, 0};
        hint = ZSTD_decompressStream(z, &dst, &src);
        if (ZSTD_isError(hint)) {
            rv = -EINVAL;
            break;
        }
        out->len += dst.pos;
        if (hint != 0 && src.pos == src.size && dst.pos < dst.size) {
            rv = -EINVAL; /* truncated */
            break;
        }
    }
    ZSTD_freeDStream(z);
    return rv;
}

/* ---- Compression (compaction rewrites batches in their codec) --------------------------- */

static int gzip_into(const uint8_t *in, size_t len, dl_buf_t *out)
{
    z_stream z = {.next_in = (Bytef *)in, .avail_in = (uInt)len};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    uLong bound = deflateBound(&z, (uLong)len) + 32; /* + the gzip header and trailer */
    int rv = dl_buf_reserve(out, bound);
    if (rv == 0) {
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)bound;
        rv = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -EINVAL;
        if (rv == 0)
            out->len += bound - z.avail_out;
    }
    deflateEnd(&z);
    return rv;
}

static int snappy_into(const uint8_t *in, size_t len, dl_buf_t *out)
{
    size_t n = snappy_max_compressed_length(len);
    if (dl_buf_reserve(out, n) != 0)
        return -ENOMEM;
    if (snappy_compress((const char *)in, len, (char *)out->data + out->len, &n) != SNAPPY_OK)
        return -EINVAL;
    out->len += n;
    return 0;
}

static int lz4_into(const uint8_t *in, size_t len, dl_buf_t *out)
{
    /* Independent 64 KiB blocks and no content size: what Kafka's Java reader takes. */
    LZ4F_preferences_t prefs = {0};
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t n = LZ4F_compressFrameBound(len, &prefs);
    if (dl_buf_reserve(out, n) != 0)
        return -ENOMEM;
    n = LZ4F_compressFrame(out->data + out->len, n, in, len, &prefs);
    if (LZ4F_isError(n))
        return -EINVAL;
    out->len += n;
    return 0;
}

static int zstd_into(const uint8_t *in, size_t len, dl_buf_t *out)
{
    size_t n = ZSTD_compressBound(len);
    if (dl_buf_reserve(out, n) != 0)
        return -ENOMEM;
    n = ZSTD_compress(out->data + out->len, n, in, len, ZSTD_CLEVEL_DEFAULT);
    if (ZSTD_isError(n))
        return -EINVAL;
    out->len += n;
    return 0;
}

static int copy_out(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start)
{
    (void)start;
    return len <= max_out ? dl_buf_append(out, in, len) : -EFBIG;
}

static int copy_in(const uint8_t *in, size_t len, dl_buf_t *out)
{
    return dl_buf_append(out, in, len);
}

/* The codecs by their number in a batch's attributes (dl_kcompression_t). */
static const struct {
    int (*unpack)(const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out, size_t start);
    int (*pack)(const uint8_t *in, size_t len, dl_buf_t *out);
} CODECS[] = {
    [DL_KCOMPRESSION_NONE] = {copy_out, copy_in},
    [DL_KCOMPRESSION_GZIP] = {gunzip, gzip_into},
    [DL_KCOMPRESSION_SNAPPY] = {unsnappy, snappy_into},
    [DL_KCOMPRESSION_LZ4] = {unlz4, lz4_into},
    [DL_KCOMPRESSION_ZSTD] = {unzstd, zstd_into},
};

int dl_kdecompress(int codec, const uint8_t *in, size_t len, size_t max_out, dl_buf_t *out)
{
    if (codec < 0 || (size_t)codec >= sizeof(CODECS) / sizeof(*CODECS))
        return -EINVAL;
    size_t start = out->len;
    int rv = CODECS[codec].unpack(in, len, max_out, out, start);
    if (rv != 0)
        out->len = start;
    return rv;
}

int dl_kcompress(int codec, const uint8_t *in, size_t len, dl_buf_t *out)
{
    if (codec < 0 || (size_t)codec >= sizeof(CODECS) / sizeof(*CODECS))
        return -EINVAL;
    size_t start = out->len;
    int rv = CODECS[codec].pack(in, len, out);
    if (rv != 0)
        out->len = start;
    return rv;
}
