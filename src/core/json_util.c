/* JSON helpers shared by the labs' HTTP APIs. */
#include "ddialab/json_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ddialab/base64.h"

int dl_json_set_bytes(json_t *obj, const char *name, const void *data, size_t len)
{
    json_t *str = json_stringn(len ? data : "", len);
    if (str != NULL)
        return json_object_set_new(obj, name, str) == 0 ? 0 : -ENOMEM;
    char *b64 = dl_base64_encode(data, len);
    if (b64 == NULL)
        return -ENOMEM;
    char field[128];
    snprintf(field, sizeof(field), "%s_base64", name);
    int rc = json_object_set_new(obj, field, json_string(b64));
    free(b64);
    return rc == 0 ? 0 : -ENOMEM;
}
