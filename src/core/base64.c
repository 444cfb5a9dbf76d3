/* Base64 encoding for binary values in JSON. */
#include "ddialab/base64.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>

char *dl_base64_encode(const void *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

int dl_base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > (size_t)INT32_MAX)
        return -EINVAL;
    /* OpenSSL's decoder tolerates padding in the middle and surrounding blanks: base64 in a
       JSON body is the alphabet, with '=' only as the last one or two characters. */
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int in_alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '+' || c == '/';
        int padding = c == '=' && (i == len - 1 || (i == len - 2 && text[len - 1] == '='));
        if (!in_alphabet && !padding)
            return -EINVAL;
    }
    unsigned char *buf = malloc(len / 4 * 3 + 1);
    if (buf == NULL)
        return -ENOMEM;
    /* OpenSSL decodes; it counts the padding as zero bytes, which come off here. */
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(buf);
        return -EINVAL;
    }
    size_t pad = len >= 1 && text[len - 1] == '=' ? (len >= 2 && text[len - 2] == '=' ? 2 : 1) : 0;
    *out = buf;
    *out_len = (size_t)n - pad;
    return 0;
}
