/* CRC-32C: known vectors, incremental use, and the hardware and software paths agreeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ddialab/crc32c.h"
#include "storage/crc32c_internal.h"

static void test_crc32c_check_value_of_123456789(void **state)
{
    assert_int_equal(dl_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(dl__crc32c_sw(0, "123456789", 9), 0xE3069283u);
}

static void test_crc32c_of_nothing_is_zero(void **state)
{
    assert_int_equal(dl_crc32c(0, NULL, 0), 0);
    assert_int_equal(dl_crc32c(0x12345678u, "", 0), 0x12345678u);
}

/* The iSCSI test patterns of RFC 3720, appendix B.4. */
static void test_crc32c_rfc3720_vectors(void **state)
{
    unsigned char buf[32];
    memset(buf, 0, sizeof(buf));
    assert_int_equal(dl_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(dl_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(dl_crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_int_equal(dl_crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_incremental_equals_one_shot(void **state)
{
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    uint32_t whole = dl_crc32c(0, buf, sizeof(buf));
    for (size_t split = 0; split <= sizeof(buf); split++) {
        uint32_t crc = dl_crc32c(0, buf, split);
        assert_int_equal(dl_crc32c(crc, buf + split, sizeof(buf) - split), whole);
        crc = dl__crc32c_sw(0, buf, split);
        assert_int_equal(dl__crc32c_sw(crc, buf + split, sizeof(buf) - split), whole);
    }
}

/* Every length from 0 to 100 at every alignment from 0 to 15, plus long random buffers. On a
   CPU without SSE4.2 both sides are the software path and the test is trivially true. */
static void test_crc32c_hardware_and_software_paths_agree(void **state)
{
    unsigned char *buf = malloc(70000);
    assert_non_null(buf);
    srand(42);
    for (size_t i = 0; i < 70000; i++)
        buf[i] = (unsigned char)rand();
    for (size_t align = 0; align < 16; align++)
        for (size_t len = 0; len <= 100; len++)
            assert_int_equal(dl_crc32c(7, buf + align, len), dl__crc32c_sw(7, buf + align, len));
    for (int round = 0; round < 50; round++) {
        size_t off = (size_t)rand() % 1000, len = (size_t)rand() % 65000;
        assert_int_equal(dl_crc32c(0, buf + off, len), dl__crc32c_sw(0, buf + off, len));
    }
    free(buf);
    print_message("crc32c: hardware path %s\n",
                  dl__crc32c_hw_available() ? "in use" : "not available on this CPU");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value_of_123456789),
        cmocka_unit_test(test_crc32c_of_nothing_is_zero),
        cmocka_unit_test(test_crc32c_rfc3720_vectors),
        cmocka_unit_test(test_crc32c_incremental_equals_one_shot),
        cmocka_unit_test(test_crc32c_hardware_and_software_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
