/* CRC-32C (Castagnoli), the checksum on every record ddialab stores or sends between peers. */
#ifndef DDIALAB_CRC32C_H
#define DDIALAB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc over len bytes of data. Start with crc = 0; dl_crc32c(0, "123456789", 9) is
 * 0xE3069283. Uses the SSE4.2 instruction when the CPU has it, else slicing-by-8 tables.
 */
uint32_t dl_crc32c(uint32_t crc, const void *data, size_t len);

#endif
