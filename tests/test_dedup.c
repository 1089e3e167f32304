/* SPDX-License-Identifier: MIT */
/*
 * test_dedup.c - duplicate suppression: the weir_dedup table (bound, window,
 * errors, concurrent inserts) and a subscription that skips repeated
 * keys.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

/* ---- duplicate suppression ----------------------------------------------- */

static void
test_dedup_table_bound_window_and_errors(void **state)
{
    (void)state;
    weir_dedup *d;
    assert_int_equal(weir_dedup_create(&d, 4, WEIR_SEC * 60), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "ab", 2), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "", 0), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "", 0), 0);
    assert_int_equal(weir_dedup_size(d), 4);
    /* evicts "a" */
    assert_int_equal(weir_dedup_check_and_insert(d, "c", 1), 1);
    assert_int_equal(weir_dedup_size(d), 4);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 0);
    /* forgotten; evicts "b" */
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 1);
    weir_dedup_destroy(d);

    assert_int_equal(weir_dedup_create(&d, 0, 20 * WEIR_MSEC), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 0);
    ts_sleep_ms(30);
    /* window over */
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(NULL, "x", 1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_check_and_insert(d, NULL, 1), WEIR_EINVAL);
    weir_dedup_destroy(d);
    weir_dedup_destroy(NULL);

    assert_int_equal(weir_dedup_create(NULL, 1, 1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_create(&d, 1, 0), WEIR_EINVAL);
    assert_null(d);
    assert_int_equal(weir_dedup_create(&d, 1, -1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_create(&d, WEIR_DEDUP_MAX_KEYS + 1, 1),
                     WEIR_EINVAL);
}

typedef struct dedup_run {
    weir_dedup *d;
    int keys;
    _Atomic int fresh;
} dedup_run;

static void *
dedup_worker(void *arg)
{
    dedup_run *r = arg;
    for (int i = 0; i < r->keys; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "key-%d", i);
        if (weir_dedup_check_and_insert(r->d, key, (size_t)len) == 1)
            atomic_fetch_add(&r->fresh, 1);
    }
    return NULL;
}

static void
test_dedup_concurrent_inserts_count_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    dedup_run r = { .keys = (int)ts_scale(20000) };
    assert_int_equal(weir_dedup_create(&r.d, 1 << 20, WEIR_SEC * 60), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, dedup_worker, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.fresh), r.keys);
    assert_int_equal(weir_dedup_size(r.d), (size_t)r.keys);
    weir_dedup_destroy(r.d);
    ts_watchdog_disarm();
}

static void
test_dedup_subscription_skips_repeated_keys(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    weir_sub *s;
    weir_sub_opts o = { .workers = 4, .dedup_window_ns = WEIR_SEC * 60 };
    assert_int_equal(weir_bus_subscribe(bus, "pay", count_handler, &calls, &o,
                                        &s), 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof(key), "req-%d", i);
            weir_pub_opts po = { .key = key };
            assert_int_equal(weir_bus_publish(bus, "pay", &i, sizeof(i), &po),
                             0);
        }
    }
    for (int i = 0; i < 5; i++) /* no key: never suppressed */
        assert_int_equal(weir_bus_publish(bus, "pay", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(atomic_load(&calls), 55);
    assert_int_equal(st.duplicates, 50);
    assert_int_equal(st.acked, 105);
    assert_int_equal(st.delivered, 55);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup_table_bound_window_and_errors),
        cmocka_unit_test(test_dedup_concurrent_inserts_count_once),
        cmocka_unit_test(test_dedup_subscription_skips_repeated_keys),
    };
    return cmocka_run_group_tests_name("dedup", tests, ts_watchdog_group, NULL);
}
