/* Internal to the storage module and its tests: the two CRC-32C implementations, separately. */
#ifndef DDIALAB_STORAGE_CRC32C_INTERNAL_H
#define DDIALAB_STORAGE_CRC32C_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The portable slicing-by-8 path; same contract as dl_crc32c(). */
uint32_t dl__crc32c_sw(uint32_t crc, const void *data, size_t len);

/* 1 when dl_crc32c() uses the SSE4.2 instruction on this CPU, else 0. */
int dl__crc32c_hw_available(void);

#endif
