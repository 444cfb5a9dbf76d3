/* Standard base64 (RFC 4648, with padding), for binary data in JSON bodies. */
#ifndef DDIALAB_BASE64_H
#define DDIALAB_BASE64_H

#include <stddef.h>

/* Returns a malloc'd NUL-terminated encoding of data (caller frees), or NULL on ENOMEM. */
char *dl_base64_encode(const void *data, size_t len);
/* Decodes padded standard base64 (len a multiple of 4) into a malloc'd buffer (*out, *out_len;
   caller frees). 0, -EINVAL for anything that is not base64, -ENOMEM. */
int dl_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

#endif
