/* SPDX-License-Identifier: MIT */
/*
 * test_common.c - error strings, version and time constants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support/support.h"
#include "weir.h"

static void
test_common_strerror_names_every_code(void **state)
{
    (void)state;
    const int codes[] = { WEIR_EINVAL, WEIR_ENOMEM, WEIR_EAGAIN, WEIR_ETIMEDOUT,
                          WEIR_ECLOSED, WEIR_ENOENT, WEIR_EEXIST,
                          WEIR_EDEADLK, WEIR_EBUSY, WEIR_EIO,
                          WEIR_ECORRUPT };
    const char *unknown = weir_strerror(-1000);
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *s = weir_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        assert_string_not_equal(s, weir_strerror(0));
        /* Distinct codes get distinct texts. */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, weir_strerror(codes[j]));
    }
    assert_string_equal(weir_strerror(0), "success");
}

static void
test_common_strerror_answers_unknown_codes(void **state)
{
    (void)state;
    assert_string_equal(weir_strerror(WEIR_ELAST - 1), "unknown error");
    assert_string_equal(weir_strerror(1), "unknown error");
    assert_string_equal(weir_strerror(-2147483647 - 1), "unknown error");
    assert_string_equal(weir_strerror(2147483647), "unknown error");
}

static void
test_common_codes_are_negative_and_distinct(void **state)
{
    (void)state;
    const int codes[] = { WEIR_EINVAL, WEIR_ENOMEM, WEIR_EAGAIN, WEIR_ETIMEDOUT,
                          WEIR_ECLOSED, WEIR_ENOENT, WEIR_EEXIST,
                          WEIR_EDEADLK, WEIR_EBUSY, WEIR_EIO,
                          WEIR_ECORRUPT };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] < 0);
        assert_true(codes[i] >= WEIR_ELAST);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_int_equal(WEIR_OK, 0);
}

static void
test_common_version_matches_macros(void **state)
{
    (void)state;
    char want[64];
    snprintf(want, sizeof(want), "%d.%d.%d", WEIR_VERSION_MAJOR,
             WEIR_VERSION_MINOR, WEIR_VERSION_PATCH);
    assert_string_equal(weir_version(), want);
}

static void
test_common_time_constants(void **state)
{
    (void)state;
    /* Issue 18: NOWAIT is a sentinel of its own, not 0 (an option's
     * default). */
    assert_true(WEIR_NOWAIT == -2);
    assert_true(WEIR_NOWAIT != 0 && WEIR_NOWAIT != WEIR_FOREVER);
    assert_true(WEIR_FOREVER == -1);
    assert_true(sizeof(WEIR_FOREVER) == sizeof(int64_t));
    assert_true(WEIR_SEC == 1000 * WEIR_MSEC);
    assert_true(WEIR_MSEC == 1000 * WEIR_USEC);
    assert_true(WEIR_USEC == 1000 * WEIR_NSEC);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_strerror_names_every_code),
        cmocka_unit_test(test_common_strerror_answers_unknown_codes),
        cmocka_unit_test(test_common_codes_are_negative_and_distinct),
        cmocka_unit_test(test_common_version_matches_macros),
        cmocka_unit_test(test_common_time_constants),
    };
    return cmocka_run_group_tests_name("common", tests, ts_watchdog_group,
                                       NULL);
}
