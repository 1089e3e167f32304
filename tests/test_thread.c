/* SPDX-License-Identifier: MIT */
/*
 * test_thread.c - thread starts that fail (the seam of lib/base/thread.c):
 * a subscription whose k-th worker cannot start, a first delayed publish
 * whose timer thread cannot start, a retry whose timer thread cannot
 * start.  Each is refused or counted, never lost, never hung.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "thread_internal.h"
#include "weir.h"

/* Fails the starts numbered fail_from and later (counted from 1). */
static _Atomic long starts, fail_from;

static int
failing_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    long n = atomic_fetch_add(&starts, 1) + 1;
    long from = atomic_load(&fail_from);
    if (from != 0 && n >= from)
        return 11; /* EAGAIN, as pthread_create says when out of threads */
    return pthread_create(t, NULL, fn, arg);
}

static void
fail_starts_from(long k)
{
    atomic_store(&starts, 0);
    atomic_store(&fail_from, k);
    weiri_thread_set_creator(failing_create);
}

/*
 * A subscription of four workers whose k-th cannot start: WEIR_ENOMEM,
 * no subscription (a publish is unrouted), the workers that did start
 * are stopped; the same subscription then works.
 */
static void
test_thread_worker_start_fails(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (long k = 1; k <= 4; k++) {
        weir_bus *bus = make_bus();
        static _Atomic uint64_t sink;
        weir_sub_opts four = { .workers = 4 };
        weir_sub *s = NULL;
        fail_starts_from(k);
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &sink,
                                            &four, &s), WEIR_ENOMEM);
        assert_int_equal(atomic_load(&starts), k);
        weiri_thread_set_creator(NULL);
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
        weir_bus_stats bs;
        assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
        assert_int_equal(bs.unrouted, 1);
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &sink,
                                            &four, &s), 0);
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        assert_int_equal(stats_of(s).acked, 1);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

/*
 * The first delayed publish starts the delays timer: if it cannot, the
 * publish is WEIR_ENOMEM and nothing is counted; the next one, with
 * threads to be had, is delivered.
 */
static void
test_thread_timer_start_fails_for_a_delayed_publish(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    static _Atomic uint64_t got;
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &got, NULL, &s),
                     0);
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    fail_starts_from(1);
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &later), WEIR_ENOMEM);
    weiri_thread_set_creator(NULL);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 0);
    assert_int_equal(bs.delayed, 0);
    assert_int_equal(weir_bus_publish(bus, "t", "y", 1, &later), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&got), 1);
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 1);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

static int
fail_first(const weir_msg *m, void *ctx)
{
    atomic_fetch_add((_Atomic int *)ctx, 1);
    return weir_msg_attempt(m) == 1 ? -1 : 0;
}

/*
 * A failed delivery whose retry cannot be scheduled (the retries timer
 * cannot start) is given up at once and counted failed, not retried and
 * not lost; once threads can be had again, retries work.
 */
static void
test_thread_timer_start_fails_for_a_retry(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    static _Atomic int calls;
    atomic_store(&calls, 0);
    weir_sub_opts twice = { .max_attempts = 2, .retry_backoff_ns = 1 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", fail_first, &calls, &twice,
                                        &s), 0);
    fail_starts_from(1); /* the worker runs; only the timer is to start */
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
    int64_t until = ts_now_ns() + 10 * WEIR_SEC;
    while (stats_of(s).failed == 0 && ts_now_ns() < until)
        ts_sleep_ms(1);
    weiri_thread_set_creator(NULL);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.retried, 0);
    assert_int_equal(atomic_load(&calls), 1);
    assert_balanced(&st);
    assert_int_equal(weir_bus_publish(bus, "t", "y", 1, NULL), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    st = stats_of(s);
    assert_int_equal(st.acked, 1);
    assert_int_equal(st.retried, 1);
    assert_int_equal(st.failed, 1);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_worker_start_fails),
        cmocka_unit_test(test_thread_timer_start_fails_for_a_delayed_publish),
        cmocka_unit_test(test_thread_timer_start_fails_for_a_retry),
    };
    return cmocka_run_group_tests_name("thread", tests, ts_watchdog_group,
                                       NULL);
}
