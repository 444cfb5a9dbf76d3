/* Standard base64 (RFC 4648, with padding), for binary data in JSON bodies. */
#ifndef DDIALAB_BASE64_H
#define DDIALAB_BASE64_H

#include <stddef.h>

/* Returns a malloc'd NUL-terminated encoding of data (caller frees), or NULL on ENOMEM. */
char *dl_base64_encode(const void *data, size_t len);

#endif
