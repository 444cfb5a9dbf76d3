/* JSON helpers shared by the labs' HTTP APIs. */
#ifndef DDIALAB_JSON_UTIL_H
#define DDIALAB_JSON_UTIL_H

#include <jansson.h>
#include <stddef.h>

/*
 * Sets obj[name] to the bytes as a JSON string when they are valid UTF-8, else sets
 * obj["<name>_base64"] to their base64 encoding, so binary keys and values survive JSON.
 * Returns 0, or -ENOMEM.
 */
int dl_json_set_bytes(json_t *obj, const char *name, const void *data, size_t len);

#endif
