/* SPDX-License-Identifier: MIT */
/*
 * test_crc.c - CRC-32C against published check values, and continued
 * over pieces equal to the CRC of the whole at every split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc_internal.h"

static void
test_crc_check_values(void **state)
{
    (void)state;
    /* The CRC catalogue's check value, and RFC 3720's test vectors. */
    assert_int_equal(weiri_crc32c(0, "123456789", 9), 0xE3069283u);
    unsigned char b[32];
    memset(b, 0, sizeof(b));
    assert_int_equal(weiri_crc32c(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(weiri_crc32c(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    assert_int_equal(weiri_crc32c(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    assert_int_equal(weiri_crc32c(0, b, 32), 0x113FDB5Cu);
    assert_int_equal(weiri_crc32c(0, b, 0), 0);
}

static void
test_crc_continues_over_pieces(void **state)
{
    (void)state;
    unsigned char b[100];
    for (int i = 0; i < 100; i++)
        b[i] = (unsigned char)(i * 7 + 3);
    uint32_t whole = weiri_crc32c(0, b, sizeof(b));
    for (size_t cut = 0; cut <= sizeof(b); cut++)
        assert_int_equal(weiri_crc32c(weiri_crc32c(0, b, cut), b + cut,
                                      sizeof(b) - cut),
                         whole);
    /* Any one bit flipped changes it. */
    for (size_t bit = 0; bit < 8 * sizeof(b); bit++) {
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_not_equal(weiri_crc32c(0, b, sizeof(b)), whole);
        b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
}

/* The CPU's instruction, where used, and the tables agree everywhere. */
static void
test_crc_instruction_and_tables_agree(void **state)
{
    (void)state;
    unsigned char b[1000];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof(b); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (unsigned char)x;
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; off + len <= sizeof(b); len += 1 + len / 3)
            assert_int_equal(weiri_crc32c(7, b + off, len),
                             weiri_crc32c_portable(7, b + off, len));
    assert_int_equal(weiri_crc32c_portable(0, "123456789", 9), 0xE3069283u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_check_values),
        cmocka_unit_test(test_crc_continues_over_pieces),
        cmocka_unit_test(test_crc_instruction_and_tables_agree),
    };
    return cmocka_run_group_tests_name("crc", tests, NULL, NULL);
}
