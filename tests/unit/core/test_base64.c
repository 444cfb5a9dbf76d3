/* Base64 (ddialab/base64.h): encoding, and decoding with its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "ddialab/base64.h"

static void test_round_trips_every_padding(void **state)
{
    const char *inputs[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *encoded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(*inputs); i++) {
        char *e = dl_base64_encode(inputs[i], strlen(inputs[i]));
        assert_string_equal(e, encoded[i]);
        unsigned char *d;
        size_t len;
        assert_int_equal(dl_base64_decode(e, strlen(e), &d, &len), 0);
        assert_int_equal(len, strlen(inputs[i]));
        assert_memory_equal(d, inputs[i], len);
        free(d);
        free(e);
    }
}

static void test_binary_bytes_round_trip(void **state)
{
    unsigned char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (unsigned char)(255 - i);
    char *e = dl_base64_encode(bytes, sizeof(bytes));
    unsigned char *d;
    size_t len;
    assert_int_equal(dl_base64_decode(e, strlen(e), &d, &len), 0);
    assert_int_equal(len, sizeof(bytes));
    assert_memory_equal(d, bytes, len);
    free(d);
    free(e);
}

static void test_decoding_refuses_what_is_not_base64(void **state)
{
    const char *bad[] = {"Zg=", "Zm9v!A==", "not base64!", "Zg==Zg=="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unsigned char *d = (unsigned char *)"sentinel";
        size_t len = 7;
        assert_int_equal(dl_base64_decode(bad[i], strlen(bad[i]), &d, &len), -EINVAL);
        assert_null(d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips_every_padding),
        cmocka_unit_test(test_binary_bytes_round_trip),
        cmocka_unit_test(test_decoding_refuses_what_is_not_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
