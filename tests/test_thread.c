/* SPDX-License-Identifier: MIT */
/*
 * test_thread.c - thread starts that fail (the seam of lib/base/thread.c):
 * a subscription whose k-th worker cannot start, a first delayed publish
 * whose timer thread cannot start, a retry whose timer thread cannot
 * start.  Each is refused or counted, never lost, never hung.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "thread_internal.h"
#include "weir.h"

/*
 * Fails the starts numbered fail_from and later (counted from 1), or
 * with fail_one that start alone.
 */
static _Atomic long starts, fail_from;
static _Atomic bool fail_one;

static int
failing_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    long n = atomic_fetch_add(&starts, 1) + 1;
    long from = atomic_load(&fail_from);
    if (from != 0 && (atomic_load(&fail_one) ? n == from : n >= from))
        return 11; /* EAGAIN, as pthread_create says when out of threads */
    return pthread_create(t, NULL, fn, arg);
}

static void
fail_starts_from(long k)
{
    atomic_store(&starts, 0);
    atomic_store(&fail_from, k);
    atomic_store(&fail_one, false);
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

/*
 * A user's path that starts every kind of thread: workers of two
 * subscriptions, the delays timer, the retries timer.  Returns how many
 * calls were refused; checks that what was accepted was handled.
 */
static long
thread_path(void)
{
    static _Atomic uint64_t got;
    static _Atomic int calls;
    atomic_store(&got, 0);
    atomic_store(&calls, 0);
    long refused = 0;
    uint64_t ok = 0;
    weir_bus *bus = make_bus();
    weir_sub_opts two = { .workers = 2 };
    weir_sub_opts retry = { .max_attempts = 2, .retry_backoff_ns = 1 };
    weir_sub *a = NULL, *b = NULL;
    int rc = weir_bus_subscribe(bus, "a", count_any, &got, &two, &a);
    refused += rc != 0;
    assert_true(rc == 0 || rc == WEIR_ENOMEM);
    rc = weir_bus_subscribe(bus, "b", fail_first, &calls, &retry, &b);
    refused += rc != 0;
    assert_true(rc == 0 || rc == WEIR_ENOMEM);
    weir_pub_opts later = { .delay_ns = 1 };
    for (int i = 0; i < 3; i++) {
        rc = weir_bus_publish(bus, "a", "x", 1, NULL);
        assert_int_equal(rc, 0);
        ok += a != NULL;
        rc = weir_bus_publish(bus, "a", "y", 1, &later);
        assert_true(rc == 0 || rc == WEIR_ENOMEM);
        refused += rc != 0;
        ok += rc == 0 && a != NULL;
        assert_int_equal(weir_bus_publish(bus, "b", "z", 1, NULL), 0);
    }
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    if (a != NULL) {
        weir_sub_stats st = stats_of(a);
        assert_balanced(&st);
        assert_int_equal(st.acked, ok);
        assert_int_equal(atomic_load(&got), ok);
    }
    if (b != NULL) {
        /* A retry that could not be scheduled is counted failed. */
        weir_sub_stats st = stats_of(b);
        assert_balanced(&st);
        assert_int_equal(st.queued + st.in_flight, 0);
        assert_int_equal(st.acked + st.failed, 3);
    }
    weir_bus_destroy(bus);
    return refused;
}

/* Every thread start of the path fails in turn; none loses a message. */
static void
test_thread_each_start_fails_in_turn(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    fail_starts_from(0);
    assert_int_equal(thread_path(), 0);
    long total = atomic_load(&starts);
    assert_true(total >= 5);
    long seen = 0;
    for (long k = 1; k <= total; k++) {
        fail_starts_from(k);
        atomic_store(&fail_one, true);
        seen += thread_path() > 0;
    }
    weiri_thread_set_creator(NULL);
    print_message("%ld thread starts failed in turn, %ld refused a call\n",
                  total, seen);
    ts_watchdog_disarm();
}

/*
 * A durable subscription starts a worker and its feeder: either start
 * failing is WEIR_ENOMEM, nothing subscribed, and the name is free for
 * the next subscribe, which gets what was published meanwhile.
 */
static void
test_thread_durable_subscription_start_fails(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/weir-test-thread-%d", (int)getpid());
    for (long k = 1; k <= 2; k++) {
        assert_int_equal(ts_remove_tree(dir), 0);
        weir_bus_opts o = { .journal_dir = dir };
        weir_bus *bus;
        assert_int_equal(weir_bus_create(&bus, &o), 0);
        weir_topic *t;
        assert_int_equal(weir_bus_durable_topic(bus, "t", &t), 0);
        static _Atomic uint64_t got;
        atomic_store(&got, 0);
        weir_sub_opts d = { .name = "d", .durable = true };
        weir_sub *s;
        fail_starts_from(k);
        atomic_store(&fail_one, true);
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &got, &d,
                                            &s),
                         WEIR_ENOMEM);
        weiri_thread_set_creator(NULL);
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &got, &d,
                                            &s),
                         0);
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        assert_int_equal(atomic_load(&got), 1);
        weir_bus_destroy(bus);
    }
    assert_int_equal(ts_remove_tree(dir), 0);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_worker_start_fails),
        cmocka_unit_test(test_thread_timer_start_fails_for_a_delayed_publish),
        cmocka_unit_test(test_thread_timer_start_fails_for_a_retry),
        cmocka_unit_test(test_thread_each_start_fails_in_turn),
        cmocka_unit_test(test_thread_durable_subscription_start_fails),
    };
    return cmocka_run_group_tests_name("thread", tests, ts_watchdog_group,
                                       NULL);
}
