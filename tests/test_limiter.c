/* SPDX-License-Identifier: MIT */
/*
 * test_limiter.c - the GCRA rate limiter, on a virtual clock for exact
 * counts and on the real clock for a loose end-to-end check.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "support/support.h"
#include "weir.h"

static void
init_virtual(weir_limiter *l, ts_vclock *c, double rate, double burst)
{
    weir_clock clock = { ts_vclock_now, ts_vclock_sleep_until, c };
    assert_int_equal(weir_limiter_init_clock(l, rate, burst, &clock), 0);
}

/* Try-acquire single permits until refused; how many passed. */
static unsigned
drain(weir_limiter *l)
{
    unsigned n = 0;
    while (weir_limiter_acquire(l, 1, WEIR_NOWAIT) == 0)
        n++;
    return n;
}

/*
 * Step virtual time in steps of step_ns up to end_ns, taking all that is
 * due.
 */
static unsigned
admitted_over(weir_limiter *l, ts_vclock *c, int64_t end_ns, int64_t step_ns)
{
    unsigned n = drain(l);
    while (atomic_load(&c->now) < end_ns) {
        ts_vclock_advance(c, step_ns);
        n += drain(l);
    }
    return n;
}

static void
test_limiter_exact_count_over_ten_seconds(void **state)
{
    (void)state;
    /*
     * With burst 1 a permit taken late starts the next interval late (that
     * is GCRA: lateness is not made up beyond the burst), so time steps
     * divide the interval.  A burst of 2 or more absorbs the lateness of a
     * step that does not.
     */
    const double bursts[] = { 1, 2, 5, 100 };
    const int64_t steps[] = { 100 * WEIR_USEC, 37 * WEIR_USEC, 37 * WEIR_USEC,
                              333 * WEIR_USEC };
    for (size_t i = 0; i < 4; i++) {
        ts_vclock c = { 1000 * WEIR_SEC };
        weir_limiter l;
        init_virtual(&l, &c, 1000, bursts[i]);
        unsigned n = admitted_over(&l, &c, atomic_load(&c.now) + 10 * WEIR_SEC,
                                   steps[i]);
        assert_int_equal(n, 10000 + (unsigned)bursts[i]);
    }
}

static void
test_limiter_burst_after_idle(void **state)
{
    (void)state;
    ts_vclock c = { 0 };
    weir_limiter l;
    init_virtual(&l, &c, 10, 4);
    assert_int_equal(drain(&l), 4);
    ts_vclock_advance(&c, 100 * WEIR_MSEC); /* one interval: one permit */
    assert_int_equal(drain(&l), 1);
    ts_vclock_advance(&c, 60 * WEIR_SEC);   /* long idle refills only to
                                               burst */
    assert_int_equal(drain(&l), 4);
    assert_int_equal(weir_limiter_wait_ns(&l, 1), 100 * WEIR_MSEC);
}

static void
test_limiter_fractional_rate(void **state)
{
    (void)state;
    ts_vclock c = { 0 };
    weir_limiter l;
    init_virtual(&l, &c, 0.5, 1);   /* one permit every 2 s */
    assert_int_equal(drain(&l), 1);
    assert_int_equal(weir_limiter_wait_ns(&l, 1), 2 * WEIR_SEC);
    ts_vclock_advance(&c, 1999 * WEIR_MSEC);
    assert_int_equal(drain(&l), 0);
    ts_vclock_advance(&c, 1 * WEIR_MSEC);
    assert_int_equal(drain(&l), 1);
    c.now = 0;
    init_virtual(&l, &c, 2.5, 1);
    assert_int_equal(admitted_over(&l, &c, 100 * WEIR_SEC, 10 * WEIR_MSEC),
                     1 + 250);
}

static void
test_limiter_rate_change_mid_run(void **state)
{
    (void)state;
    ts_vclock c = { 0 };
    weir_limiter l;
    init_virtual(&l, &c, 100, 1);
    unsigned first = admitted_over(&l, &c, 1 * WEIR_SEC, 1 * WEIR_MSEC);
    assert_int_equal(first, 1 + 100);
    assert_int_equal(weir_limiter_set_rate(&l, 1000, 1), 0);
    unsigned second = admitted_over(&l, &c, 2 * WEIR_SEC, 100 * WEIR_USEC);
    /* The permit reserved at the old rate ends 10 ms in, then 1000/s. */
    assert_true(second >= 989 && second <= 991);
    assert_int_equal(weir_limiter_set_rate(&l, 0, 1), WEIR_EINVAL);
    assert_int_equal(weir_limiter_set_rate(&l, 10, 0.5), WEIR_EINVAL);
    assert_int_equal(weir_limiter_set_rate(NULL, 10, 1), WEIR_EINVAL);
    /* A refused change leaves the rate alone. */
    ts_vclock_advance(&c, 1 * WEIR_SEC);
    assert_int_equal(drain(&l), 1);
    assert_int_equal(weir_limiter_wait_ns(&l, 1), 1 * WEIR_MSEC);
}

static void
test_limiter_acquire_more_than_burst_waits(void **state)
{
    (void)state;
    ts_vclock c = { 0 };
    weir_limiter l;
    init_virtual(&l, &c, 100, 10);
    /* 30 permits, 10 available: 20 intervals of 10 ms. */
    assert_int_equal(weir_limiter_wait_ns(&l, 30), 200 * WEIR_MSEC);
    assert_int_equal(weir_limiter_acquire(&l, 30, WEIR_NOWAIT), WEIR_EAGAIN);
    assert_int_equal(weir_limiter_acquire(&l, 30, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&c.now), 200 * WEIR_MSEC); /* it slept */
    /* TAT now sits a full burst ahead: the next permit is one interval off. */
    assert_int_equal(drain(&l), 0);
    assert_int_equal(weir_limiter_wait_ns(&l, 1), 10 * WEIR_MSEC);
}

static void
test_limiter_timeout_shorter_than_wait_fails_at_once(void **state)
{
    (void)state;
    ts_vclock c = { 0 };
    weir_limiter l;
    init_virtual(&l, &c, 10, 1);
    assert_int_equal(drain(&l), 1);
    assert_int_equal(weir_limiter_acquire(&l, 1, 99 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    assert_int_equal(atomic_load(&c.now), 0);               /* no sleep */
    /* nothing taken */
    assert_int_equal(weir_limiter_wait_ns(&l, 1), 100 * WEIR_MSEC);
    assert_int_equal(weir_limiter_acquire(&l, 1, 100 * WEIR_MSEC), 0);
    assert_int_equal(atomic_load(&c.now), 100 * WEIR_MSEC);
}

/*
 * A clock of any origin: read near the top of int64_t, with a rate so
 * slow that the next permit is decades away, the limiter saturates
 * (UBSan would report a wrapped sum) and stays in order.
 */
static void
test_limiter_clock_near_its_top_never_wraps(void **state)
{
    (void)state;
    ts_vclock c = { (int64_t)1 << 62 };
    weir_limiter l;
    init_virtual(&l, &c, 1e-12, 1);
    assert_int_equal(weir_limiter_acquire(&l, 1, WEIR_NOWAIT), 0);
    assert_true(weir_limiter_wait_ns(&l, 1) > 0);
    assert_int_equal(weir_limiter_acquire(&l, 1, WEIR_NOWAIT), WEIR_EAGAIN);
    ts_vclock_advance(&c, INT64_MAX - atomic_load(&c.now) - 1);
    assert_true(weir_limiter_wait_ns(&l, 1) >= 0);
}

static void
test_limiter_rejects_bad_input(void **state)
{
    (void)state;
    weir_limiter l;
    memset(&l, 0x5a, sizeof(l));
    const double bad_rates[] = { 0, -1, NAN, INFINITY, -INFINITY, 2e9 };
    for (size_t i = 0; i < sizeof(bad_rates) / sizeof(bad_rates[0]); i++)
        assert_int_equal(weir_limiter_init(&l, bad_rates[i], 1), WEIR_EINVAL);
    const double bad_bursts[] = { 0, 0.99, -1, NAN, INFINITY };
    for (size_t i = 0; i < sizeof(bad_bursts) / sizeof(bad_bursts[0]); i++)
        assert_int_equal(weir_limiter_init(&l, 10, bad_bursts[i]), WEIR_EINVAL);
    assert_int_equal(weir_limiter_init(NULL, 10, 1), WEIR_EINVAL);
    weir_clock broken = { NULL, ts_vclock_sleep_until, NULL };
    assert_int_equal(weir_limiter_init_clock(&l, 10, 1, &broken), WEIR_EINVAL);

    assert_int_equal(weir_limiter_init(&l, 10, 1), 0);
    assert_int_equal(weir_limiter_acquire(&l, 0, WEIR_NOWAIT), WEIR_EINVAL);
    assert_int_equal(weir_limiter_acquire(NULL, 1, WEIR_NOWAIT), WEIR_EINVAL);
    assert_int_equal(weir_limiter_acquire(&l, 1, -3), WEIR_EINVAL);
    assert_int_equal(weir_limiter_wait_ns(&l, 0), WEIR_EINVAL);
    assert_int_equal(weir_limiter_wait_ns(NULL, 1), WEIR_EINVAL);
    assert_int_equal(weir_limiter_set_rate(&l, NAN, 1), WEIR_EINVAL);
    assert_int_equal(weir_limiter_set_rate(&l, 10, INFINITY), WEIR_EINVAL);
}

/* ---- several threads on one limiter -------------------------------------- */

typedef struct race {
    weir_limiter l;
    ts_vclock c;
    int64_t end_ns;           /* virtual or real end of the run */
    int real;                 /* 1: real clock, blocking acquires */
    _Atomic unsigned admitted;
    _Atomic int errors;
} race;

static void *
race_thread(void *arg)
{
    race *r = arg;
    unsigned fails = 0;
    for (;;) {
        int64_t now = r->real ? ts_now_ns() : atomic_load(&r->c.now);
        if (now >= r->end_ns)
            return NULL;
        int rc = r->real ? weir_limiter_acquire(&r->l, 1, r->end_ns - now)
                         : weir_limiter_acquire(&r->l, 1, WEIR_NOWAIT);
        if (rc == 0) {
            atomic_fetch_add(&r->admitted, 1);
            fails = 0;
        } else if (rc == WEIR_EAGAIN || rc == WEIR_ETIMEDOUT) {
            if (!r->real) /* virtual time: let time pass */
                ts_vclock_advance(&r->c, 50 * WEIR_USEC);
            ts_backoff(&fails);
        } else {
            atomic_fetch_add(&r->errors, 1);
            return NULL;
        }
    }
}

static void
run_race(race *r, int threads)
{
    pthread_t th[8];
    for (int i = 0; i < threads; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, r), 0);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r->errors), 0);
}

/*
 * Four threads race on virtual time, each advancing it when refused.  The
 * clock may overshoot the end by a few steps, so the bound is taken at the
 * clock's final reading: never more than burst + rate * elapsed.
 */
static void
test_limiter_threads_never_exceed_bound(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static race r;
    memset(&r, 0, sizeof(r));
    weir_clock clock = { ts_vclock_now, ts_vclock_sleep_until, &r.c };
    assert_int_equal(weir_limiter_init_clock(&r.l, 1000, 20, &clock), 0);
    r.end_ns = 2 * WEIR_SEC;
    run_race(&r, 4);
    double elapsed_s = (double)atomic_load(&r.c.now) / WEIR_SEC;
    unsigned bound = 20 + (unsigned)(1000 * elapsed_s);
    assert_true(atomic_load(&r.admitted) <= bound);
    assert_true(atomic_load(&r.admitted) >= 20 + 1900); /* and it kept pace */
    ts_watchdog_disarm();
}

/*
 * The real clock: 4 threads for one second at 2,000/s with burst 50.
 * Expect 2,050 within 10% and never above the bound at the measured time.
 */
static void
test_limiter_real_clock_four_threads(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static race r;
    memset(&r, 0, sizeof(r));
    r.real = 1;
    assert_int_equal(weir_limiter_init(&r.l, 2000, 50), 0);
    int64_t t0 = ts_now_ns();
    r.end_ns = t0 + 1 * WEIR_SEC;
    run_race(&r, 4);
    double elapsed_s = (double)(ts_now_ns() - t0) / WEIR_SEC;
    unsigned n = atomic_load(&r.admitted);
    assert_true(n <= 50 + (unsigned)(2000 * elapsed_s) + 1);
    assert_true(n >= 2050 * 0.9 && n <= 2050 * 1.1);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limiter_exact_count_over_ten_seconds),
        cmocka_unit_test(test_limiter_burst_after_idle),
        cmocka_unit_test(test_limiter_fractional_rate),
        cmocka_unit_test(test_limiter_rate_change_mid_run),
        cmocka_unit_test(test_limiter_acquire_more_than_burst_waits),
        cmocka_unit_test(test_limiter_timeout_shorter_than_wait_fails_at_once),
        cmocka_unit_test(test_limiter_clock_near_its_top_never_wraps),
        cmocka_unit_test(test_limiter_rejects_bad_input),
        cmocka_unit_test(test_limiter_threads_never_exceed_bound),
        cmocka_unit_test(test_limiter_real_clock_four_threads),
    };
    return cmocka_run_group_tests_name("limiter", tests, ts_watchdog_group,
                                       NULL);
}
