/*
 * libFuzzer target for the peer-frame decoder, the first code that touches bytes from the peer
 * port. Any input must either decode into a message that re-encodes to the same frame, or be
 * refused with DL_EPROTO; never crash, hang or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/crc32c.h"
#include "ddialab/error.h"
#include "ddialab/raft_wire.h"

/* Fixes up the header of an arbitrary input so that the fuzzer also reaches the body decoder. */
static size_t make_frame(const uint8_t *data, size_t size, uint8_t *out, size_t cap)
{
    if (size < 1 || size + DL_WIRE_HEADER_BYTES > cap)
        return 0;
    size_t body = size - 1;
    out[0] = 'D';
    out[1] = 'L';
    out[2] = DL_WIRE_VERSION;
    out[3] = data[0] % 8 == 0 ? DL_WIRE_HELLO : (uint8_t)(1 + data[0] % 7);
    dl_set_u32(out + 4, (uint32_t)body);
    dl_set_u32(out + 8, dl_crc32c(0, data + 1, body));
    memcpy(out + DL_WIRE_HEADER_BYTES, data + 1, body);
    return DL_WIRE_HEADER_BYTES + body;
}

static void check(const uint8_t *buf, size_t len)
{
    size_t frame_len;
    int rc = dl_wire_peek(buf, len, &frame_len);
    if (rc != 0)
        return;
    dl_wire_frame_t f;
    if (dl_wire_decode(buf, frame_len, &f) != 0)
        return;
    dl_buf_t out = {0};
    int rv = f.kind == DL_WIRE_HELLO ? dl_wire_encode_hello(&out, &f.hello)
                                     : dl_wire_encode_msg(&out, &f.msg);
    if (rv == 0 && (out.len != frame_len || memcmp(out.data, buf, frame_len) != 0)) {
        fprintf(stderr, "decoded frame does not re-encode to the same bytes\n");
        abort();
    }
    dl_buf_free(&out);
    dl_wire_frame_clear(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    static uint8_t frame[1 << 20];
    size_t n = make_frame(data, size, frame, sizeof(frame));
    if (n > 0)
        check(frame, n);
    return 0;
}
