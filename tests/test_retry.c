/* SPDX-License-Identifier: MIT */
/*
 * test_retry.c - retries: backoff timing and attempt fields, giving up,
 * pending retries at close, huge backoffs, due retries going first, and
 * bad delivery options.
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

/* ---- backoff timing, attempt fields, the worker is not held -------------- */

static void
test_backoff_grows_and_frees_the_worker(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    trace t = { .mu = PTHREAD_MUTEX_INITIALIZER };
    weir_sub *s;
    weir_sub_opts o = { .max_attempts = 4, .retry_backoff_ns = 30 * WEIR_MSEC,
                        .retry_multiplier = 2.0 };
    assert_int_equal(weir_bus_subscribe(bus, "t", trace_handler, &t, &o, &s),
                     0);
    assert_int_equal(weir_bus_publish(bus, "t", "A", 2, NULL), 0);
    assert_int_equal(weir_bus_publish(bus, "t", "B", 2, NULL), 0);
    while (stats_of(s).acked < 2)
        ts_sleep_ms(1);
    pthread_mutex_lock(&t.mu);
    /* B ran while A waited for its retry: one worker, not held. */
    assert_string_equal(t.order, "ABAA");
    assert_int_equal(t.na, 3);
    /* Never early: 30 ms after the first failure, 60 ms after the second. */
    assert_true(t.at[1] - t.at[0] >= 30 * WEIR_MSEC);
    assert_true(t.at[2] - t.at[1] >= 60 * WEIR_MSEC);
    assert_int_equal(t.last_error[0], 0);
    assert_int_equal(t.last_error[1], -7);
    assert_int_equal(t.last_error[2], -8);
    pthread_mutex_unlock(&t.mu);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.retried, 2);
    assert_int_equal(st.delivered, 4);
    assert_int_equal(st.acked, 2);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* Without a dead-letter topic, a message given up counts as failed. */
static void
test_given_up_without_dead_letter_is_failed(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    weir_sub_opts o = { .max_attempts = 3, .retry_backoff_ns = WEIR_MSEC };
    weir_sub_stats st = fail_all(bus, &o, 10, &calls);
    assert_int_equal(atomic_load(&calls), 30);
    assert_int_equal(st.failed, 10);
    assert_int_equal(st.retried, 20);
    assert_int_equal(st.dead_lettered, 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* A close that times out with retries pending reports them as left. */
static void
test_close_with_pending_retries_reports_them(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    weir_sub *s;
    weir_sub_opts o = { .max_attempts = 2, .retry_backoff_ns = 10 * WEIR_SEC,
                        .retry_backoff_max_ns = 10 * WEIR_SEC };
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, &calls, &o, &s),
                     0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weir_bus_publish(bus, "x", &i, sizeof(i), NULL), 0);
    while (stats_of(s).retried < 5)
        ts_sleep_ms(1);
    assert_int_equal(weir_bus_close(bus, 20 * WEIR_MSEC), WEIR_ETIMEDOUT);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.queued, 5);
    assert_int_equal(st.in_flight, 0);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- found in review: close races, stalls, overflows --------------------- */

/* A delayed message stuck on a full queue holds up no retry. */
static void
test_retries_not_held_by_a_blocked_delayed_message(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    gate_handler held = { 0 };
    _Atomic int calls = 0;
    weir_sub *z;
    full_held_sub(bus, "x", &held, 1, WEIR_OVERFLOW_BLOCK);
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    assert_int_equal(weir_bus_publish(bus, "x", "3", 1, &later), 0);
    ts_sleep_ms(10); /* the delayed message is due, and waits for room */
    weir_sub_opts oz = { .max_attempts = 2, .retry_backoff_ns = WEIR_MSEC };
    assert_int_equal(weir_bus_subscribe(bus, "z", always_fail, &calls, &oz, &z),
                     0);
    assert_int_equal(weir_bus_publish(bus, "z", "a", 1, NULL), 0);
    for (int i = 0; i < 5000 && stats_of(z).failed == 0; i++)
        ts_sleep_ms(1);
    assert_int_equal(stats_of(z).failed, 1); /* retried while x was stuck */
    assert_int_equal(atomic_load(&calls), 2);
    atomic_store(&held.release, 1);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&held.count), 3);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* Huge backoffs and delays wait (no overflow into "now"); destroy does not. */
static void
test_huge_backoff_and_delay(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0, seen = 0;
    weir_sub *s, *d;
    weir_sub_opts o = { .max_attempts = 2, .retry_backoff_ns = INT64_MAX,
                        .retry_backoff_max_ns = INT64_MAX };
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, &calls, &o, &s),
                     0);
    assert_int_equal(weir_bus_subscribe(bus, "y", count_handler, &seen, NULL,
                                        &d), 0);
    assert_int_equal(weir_bus_publish(bus, "x", "a", 1, NULL), 0);
    weir_pub_opts never = { .delay_ns = INT64_MAX };
    assert_int_equal(weir_bus_publish(bus, "y", "b", 1, &never), 0);
    while (stats_of(s).retried == 0)
        ts_sleep_ms(1);
    ts_sleep_ms(20);
    assert_int_equal(atomic_load(&calls), 1);
    assert_int_equal(atomic_load(&seen), 0);
    /* destroy gives up what is not due instead of waiting for it. */
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* Without a cap, a first backoff above the default cap is kept. */
static void
test_default_cap_keeps_a_longer_first_backoff(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    trace t = { .mu = PTHREAD_MUTEX_INITIALIZER };
    weir_sub *s;
    weir_sub_opts o = { .max_attempts = 3,
                        .retry_backoff_ns = 1200 * WEIR_MSEC };
    assert_int_equal(weir_bus_subscribe(bus, "t", trace_handler, &t, &o, &s),
                     0);
    assert_int_equal(weir_bus_publish(bus, "t", "A", 2, NULL), 0);
    while (stats_of(s).delivered < 2)
        ts_sleep_ms(5);
    pthread_mutex_lock(&t.mu);
    assert_true(t.at[1] - t.at[0] >= 1200 * WEIR_MSEC);
    pthread_mutex_unlock(&t.mu);
    /* third pending */
    assert_int_equal(weir_bus_close(bus, 0), WEIR_ETIMEDOUT);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- bad input ----------------------------------------------------------- */

static void
test_delivery_options_reject_bad_input(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    _Atomic int n = 0;
    weir_sub_opts bad[] = {
        { .max_attempts = WEIR_MAX_ATTEMPTS + 1 },
        { .retry_backoff_ns = -1 },
        { .retry_multiplier = 0.5 },
        { .retry_backoff_ns = 10 * WEIR_MSEC,
          .retry_backoff_max_ns = WEIR_MSEC },
        { .dead_letter_topic = "bad topic" },
        { .dead_letter_topic = "t" }, /* its own topic */
        { .dedup_window_ns = -1 },
        { .dedup_window_ns = 1, .dedup_max_keys = WEIR_DEDUP_MAX_KEYS + 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(weir_bus_subscribe(bus, "t", count_handler, &n,
                                            &bad[i], NULL), WEIR_EINVAL);
    weir_pub_opts neg = { .delay_ns = -1 };
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &neg), WEIR_EINVAL);
    weir_batch *batch;
    assert_int_equal(weir_batch_begin(NULL, &batch), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(bus, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    assert_int_equal(weir_batch_publish(batch, "t", "x", 1, &later),
                     WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(batch, "bad topic", "x", 1, NULL),
                     WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(NULL, "t", "x", 1, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_commit(batch, -5), WEIR_EINVAL); /* and freed */
    assert_int_equal(weir_batch_commit(NULL, 0), WEIR_EINVAL);
    assert_null(weir_msg_origin_topic(NULL));
    assert_int_equal(weir_msg_last_error(NULL), 0);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "t", "x", 1, NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weir_batch_begin(bus, &batch), WEIR_ECLOSED);
    weir_bus_destroy(bus);
}

/* ---- a due retry does not wait behind its worker's batch ----------------- */

typedef struct retry_order {
    _Atomic int entered;
    _Atomic int go;
    _Atomic int calls;          /* handler calls so far */
    _Atomic int retry_at;       /* the call that was message 1's retry */
} retry_order;

/*
 * Message 0 holds the worker until go, so that 1..64 queue up and are
 * taken in one batch; message 1 fails once; every call takes 3 ms.
 */
static int
retry_order_handler(const weir_msg *m, void *ctx)
{
    retry_order *r = ctx;
    int seq = *(const unsigned char *)weir_msg_data(m);
    int call = atomic_fetch_add(&r->calls, 1);
    if (seq == 0) {
        atomic_store(&r->entered, 1);
        while (!atomic_load(&r->go))
            ts_sleep_ms(1);
        return 0;
    }
    ts_sleep_ms(3);
    if (seq == 1 && weir_msg_attempt(m) == 1)
        return -1;
    if (seq == 1)
        atomic_store(&r->retry_at, call);
    return 0;
}

/*
 * One worker takes 64 messages at once.  The first of them fails, and
 * its retry comes due 1 ms later, while the worker is still on the
 * batch: the retry runs before the next message of the batch, not after
 * all 63 (within a handler or two; the assertion leaves room for a slow
 * timer thread).
 */
static void
test_due_retry_goes_before_the_rest_of_the_batch(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    static retry_order r;
    memset(&r, 0, sizeof(r));
    weir_sub_opts o = { .max_attempts = 2, .retry_backoff_ns = WEIR_MSEC };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", retry_order_handler, &r, &o,
                                        &s), 0);
    unsigned char seq = 0;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, 1, NULL), 0);
    while (!atomic_load(&r.entered))
        ts_sleep_ms(1);
    for (seq = 1; seq <= 64; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, 1, NULL), 0);
    atomic_store(&r.go, 1);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.acked, 65);
    assert_int_equal(st.retried, 1);
    /* Call 1 was message 1's first try; 65 would be after the batch. */
    assert_true(atomic_load(&r.retry_at) > 1);
    assert_true(atomic_load(&r.retry_at) <= 32);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_grows_and_frees_the_worker),
        cmocka_unit_test(test_given_up_without_dead_letter_is_failed),
        cmocka_unit_test(test_close_with_pending_retries_reports_them),
        cmocka_unit_test(test_retries_not_held_by_a_blocked_delayed_message),
        cmocka_unit_test(test_huge_backoff_and_delay),
        cmocka_unit_test(test_default_cap_keeps_a_longer_first_backoff),
        cmocka_unit_test(test_delivery_options_reject_bad_input),
        cmocka_unit_test(test_due_retry_goes_before_the_rest_of_the_batch),
    };
    return cmocka_run_group_tests_name("retry", tests, ts_watchdog_group, NULL);
}
