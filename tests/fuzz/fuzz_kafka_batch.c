/*
 * libFuzzer target for the record batch parser and the record walker, which read what producers
 * send before anything is stored. Any input is either refused with a status or parses into
 * records whose fields lie inside the batch; never a crash, a hang or a read out of bounds. The
 * CRC is fixed up for half of the inputs so that the fuzzer reaches the records too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddialab/crc32c.h"
#include "events/batch.h"

static void inside(const dl_kslice_t s, const uint8_t *from, const uint8_t *to)
{
    if (s.len > 0 && (s.p < from || s.p + s.len > to))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (size >= DL_KBATCH_HEADER_BYTES && (size & 1)) {
        /* A batch length that fits, and the CRC it needs. */
        uint32_t batch_length = (uint32_t)(size - DL_KBATCH_OVERHEAD);
        dl_kput_be32(copy + DL_KBATCH_LENGTH_OFFSET, batch_length);
        copy[16] = 2;
        dl_kput_be32(copy + 17, dl_crc32c(0, copy + 21, size - 21));
    }
    dl_kbatch_t b;
    if (dl_kbatch_parse(copy, size, 1, &b) == DL_KBATCH_OK) {
        if (b.total_len > size || b.records + b.records_len > copy + size)
            abort();
        dl_kreader_t r = dl_kr_init(b.records, b.records_len);
        dl_krecord_t rec;
        int n = 0;
        while (n < 100000 && dl_krecord_next(&r, &rec) == 1) {
            inside(rec.key, b.records, b.records + b.records_len);
            inside(rec.value, b.records, b.records + b.records_len);
            dl_kslice_t k, v;
            for (int32_t i = 0; i < rec.n_headers && dl_krecord_header(&rec, &k, &v) == 0; i++) {
                inside(k, b.records, b.records + b.records_len);
                inside(v, b.records, b.records + b.records_len);
            }
            n++;
        }
    }
    free(copy);
    return 0;
}
