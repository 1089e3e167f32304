/* SPDX-License-Identifier: MIT */
/*
 * test_clock.c - the clock (lib/base/clock.c, clock_internal.h): the
 * message stamp weiri_stamp_ns against weiri_now_ns, in one thread and in
 * more threads than cores, its fallbacks to the clock, and deadlines.
 *
 * What a stamp promises (clock_internal.h): never earlier than
 * weiri_now_ns would say at that moment, and at most a few tens of ns
 * later.  So a stamp taken after a clock reading is never below it, the
 * exact check here; and a stamp taken after another one, in any thread,
 * is never below it by more than that lateness, checked with a margin of
 * a microsecond, which no load changes: lateness comes from the TSC's
 * rate and base, not from scheduling.  Closeness to the clock is
 * checked only within a second.
 *
 * On a machine whose kernel keeps time with the TSC, stamps are read
 * from it; elsewhere (a kvm-clock guest, another architecture) every
 * stamp is a clock reading.  The read side of the TSC path is also
 * driven directly with bases written here, so that it is tested on
 * either kind of machine.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "clock_internal.h"
#include "support/support.h"
#include "weir.h"

/* How far one stamp may fall below an earlier one: lateness, and room. */
#define STAMP_BACK_MAX WEIR_USEC

/* Whether stamp s, taken between clock readings before and after, is near. */
static int
within(int64_t before, int64_t s, int64_t after)
{
    return s >= before && s <= after + WEIR_SEC;
}

/*
 * In one thread, over ~200 ms (long enough for the TSC path, where there
 * is one, to measure its rate and go through thousands of 20 us bases):
 * a stamp is never below the clock reading before it, nor below the stamp
 * before it by more than STAMP_BACK_MAX, and is within a second of the
 * clock after it.
 */
static void
test_clock_stamp_monotonic_and_never_early(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    uint64_t reads = 0, early = 0, back = 0, far = 0;
    int64_t prev = weiri_stamp_ns();
    int64_t end = weiri_now_ns() + 200 * WEIR_MSEC;
    /* 16 rounds at least, however late a loaded machine runs us. */
    for (unsigned round = 0; round < 16 || weiri_now_ns() < end; round++) {
        for (int i = 0; i < 1000; i++, reads++) {
            int64_t s = weiri_stamp_ns();
            back += s < prev - STAMP_BACK_MAX;
            prev = s;
        }
        int64_t before = weiri_now_ns();
        int64_t s = weiri_stamp_ns();
        int64_t after = weiri_now_ns();
        early += s < before;
        far += !within(before, s, after);
        back += s < prev - STAMP_BACK_MAX;
        prev = s;
        if (round % 16 == 0)
            ts_sleep_ms(1); /* let bases expire between reads */
    }
    assert_true(reads > 1000);
    assert_int_equal(early, 0);
    assert_int_equal(back, 0);
    assert_int_equal(far, 0);
    ts_watchdog_disarm();
}

/* ---- across threads ------------------------------------------------------ */

typedef struct shared_stamps {
    _Atomic int64_t latest;    /* the highest stamp any thread has published */
    _Atomic int go;
    _Atomic uint64_t early, back, far;
    int64_t until;             /* CLOCK_MONOTONIC when the threads stop */
} shared_stamps;

/*
 * Read the latest stamp any thread published, then take one: it came
 * later, so it may fall below that one by no more than STAMP_BACK_MAX.
 * Then publish it, and check a stamp against the clock around it.
 */
static void *
stamp_thread(void *arg)
{
    shared_stamps *sh = arg;
    while (!atomic_load(&sh->go))
        ts_sleep_ms(1);
    uint64_t early = 0, back = 0, far = 0;
    /* 2000 rounds at least: a loaded machine may start us after until. */
    for (unsigned n = 0; n < 2000 || weiri_now_ns() < sh->until; n++) {
        int64_t seen = atomic_load(&sh->latest);
        int64_t s = weiri_stamp_ns();
        back += s < seen - STAMP_BACK_MAX;
        while (seen < s && !atomic_compare_exchange_weak(&sh->latest, &seen, s))
            ;
        int64_t before = weiri_now_ns();
        s = weiri_stamp_ns();
        int64_t after = weiri_now_ns();
        early += s < before;
        far += !within(before, s, after);
        if (n % 256 == 0)
            sched_yield();
    }
    atomic_fetch_add(&sh->early, early);
    atomic_fetch_add(&sh->back, back);
    atomic_fetch_add(&sh->far, far);
    return NULL;
}

/*
 * More threads than cores stamp at once for ~300 ms, so that bases are
 * refreshed while others read them (where the TSC path is used) and
 * threads move between CPUs: every stamp keeps both promises against
 * the clock and against every earlier stamp of any thread.
 */
static void
test_clock_stamp_across_threads(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    enum { MAX_THREADS = 9 };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus < 2 ? 5 : cpus > 4 ? MAX_THREADS : 2 * (unsigned)cpus + 1;
    static shared_stamps sh;
    memset(&sh, 0, sizeof(sh));
    pthread_t th[MAX_THREADS];
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, stamp_thread, &sh), 0);
    /* Set before go (seq_cst), which the threads read it after. */
    sh.until = weiri_now_ns() + 300 * WEIR_MSEC;
    atomic_store(&sh.go, 1);
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&sh.early), 0);
    assert_int_equal(atomic_load(&sh.back), 0);
    assert_int_equal(atomic_load(&sh.far), 0);
    assert_true(atomic_load(&sh.latest) > 0);
    ts_watchdog_disarm();
}

/* ---- the fallbacks to the clock ------------------------------------------ */

#ifdef WEIRI_STAMP_TSC
/* Write a base as stamp_publish would, but with seq given (odd: mid-write). */
static void
set_base(uint64_t seq, uint64_t base_tsc, int64_t base_ns, uint64_t mult,
         uint64_t window)
{
    struct weiri_stamp_base *b = &weiri_stamp_base;
    atomic_store(&b->base_tsc, base_tsc);
    atomic_store(&b->base_ns, base_ns);
    atomic_store(&b->mult, mult);
    atomic_store(&b->window, window);
    atomic_store(&b->seq, seq);
}

/* A stamp, which must have come from the clock, not from the base. */
static void
assert_from_clock(void)
{
    int64_t before = weiri_now_ns();
    int64_t s = weiri_stamp_ns();
    int64_t after = weiri_now_ns();
    assert_true(within(before, s, after));
}
#endif

/*
 * weiri_stamp_slow, what every stamp the base cannot serve returns, is
 * a clock reading taken within the call, whatever else it does (check
 * the machine, pair the clock with the TSC, move the base).  Without a
 * TSC path, weiri_stamp_ns itself is the clock.
 */
static void
test_clock_stamp_slow_path_is_the_clock(void **state)
{
    (void)state;
    for (int i = 0; i < 10000; i++) {
        int64_t before = weiri_now_ns();
#ifdef WEIRI_STAMP_TSC
        int64_t s = weiri_stamp_slow();
#else
        int64_t s = weiri_stamp_ns();
#endif
        int64_t after = weiri_now_ns();
        assert_true(s >= before);
        assert_true(s <= after);
    }
}

/*
 * The read side of the TSC path, driven with bases written here: a base
 * in range is used (a stamp far from the clock proves it), and each base
 * it must not use, being written (seq odd), not yet serving (window 0,
 * no rate), used up (past its window) or from ahead of this TSC reading
 * (another CPU's, or the wrap that a stale base gives), sends the stamp
 * to the clock.  Each base it must refuse is one that, used, would give
 * a stamp of some 2^61 ns, which the check would catch.  At the end the
 * base is left empty with an even seq, as at start-up; on a TSC machine
 * the next stamps measure a rate afresh.
 */
static void
test_clock_stamp_base_used_only_in_range(void **state)
{
    (void)state;
#ifdef WEIRI_STAMP_TSC
    const int64_t far = INT64_C(1) << 61;
    const uint64_t one = UINT64_C(1) << 32;   /* 1 ns a tick, in 32.32 */
    const uint64_t window = UINT64_C(1) << 40;
    uint64_t seq = (atomic_load(&weiri_stamp_base.seq) | 1) + 1; /* even */

    /* In range: the stamp is the base's. */
    set_base(seq, __builtin_ia32_rdtsc(), far, one, window);
    int64_t s = weiri_stamp_ns();
    assert_true(s >= far);
    assert_true(s < far + (int64_t)window);

    seq += 2;
    set_base(seq + 1, __builtin_ia32_rdtsc(), far, one, window); /* odd */
    assert_from_clock();
    seq += 2;
    set_base(seq, __builtin_ia32_rdtsc(), far, 0, 0);            /* no rate */
    assert_from_clock();
    seq += 2;
    set_base(seq, __builtin_ia32_rdtsc() - 2 * window, far, one, window);
    assert_from_clock();                                         /* used up */
    seq += 2;
    set_base(seq, __builtin_ia32_rdtsc() + (window << 4), far, one, window);
    assert_from_clock();                                         /* ahead */

    seq += 2;
    set_base(seq, 0, 0, 0, 0);
#endif
    /* Whatever the path, stamps are sane again afterwards. */
    for (int i = 0; i < 1000; i++) {
        int64_t before = weiri_now_ns();
        int64_t s2 = weiri_stamp_ns();
        int64_t after = weiri_now_ns();
        assert_true(within(before, s2, after));
    }
}

/* ---- deadlines and sleeping ---------------------------------------------- */

/*
 * A timeout becomes an absolute deadline once: WEIR_FOREVER is none,
 * WEIR_NOWAIT and 0 are now, a value is now plus it, and one too large to
 * add saturates instead of wrapping into the past.
 */
static void
test_clock_deadline_sentinels_and_saturation(void **state)
{
    (void)state;
    assert_int_equal(weiri_deadline(WEIR_FOREVER), WEIRI_NO_DEADLINE);
    assert_int_equal(weiri_deadline(INT64_MAX), WEIRI_NO_DEADLINE);
    assert_int_equal(weiri_deadline(INT64_MAX - 1), WEIRI_NO_DEADLINE);
    int64_t before = weiri_now_ns();
    int64_t now = weiri_deadline(WEIR_NOWAIT);
    int64_t zero = weiri_deadline(0);
    int64_t sec = weiri_deadline(WEIR_SEC);
    int64_t after = weiri_now_ns();
    assert_true(now >= before && now <= after);
    assert_true(zero >= before && zero <= after);
    assert_true(sec >= before + WEIR_SEC && sec <= after + WEIR_SEC);
    assert_true(weiri_bad_timeout(WEIR_NOWAIT - 1));
    assert_false(weiri_bad_timeout(WEIR_NOWAIT));
    assert_false(weiri_bad_timeout(WEIR_FOREVER));
    assert_true(weiri_try_once(WEIR_NOWAIT));
    assert_true(weiri_try_once(0));
    assert_false(weiri_try_once(1));
}

/* weiri_sleep_until never returns before its deadline (a lower bound only). */
static void
test_clock_sleep_until_never_early(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    for (int i = 0; i < 20; i++) {
        int64_t deadline = weiri_now_ns() + (i % 4) * WEIR_MSEC;
        weiri_sleep_until(deadline);
        assert_true(weiri_now_ns() >= deadline);
    }
    weiri_sleep_until(0); /* long past: returns at once */
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_stamp_monotonic_and_never_early),
        cmocka_unit_test(test_clock_stamp_across_threads),
        cmocka_unit_test(test_clock_stamp_slow_path_is_the_clock),
        cmocka_unit_test(test_clock_stamp_base_used_only_in_range),
        cmocka_unit_test(test_clock_deadline_sentinels_and_saturation),
        cmocka_unit_test(test_clock_sleep_until_never_early),
    };
    return cmocka_run_group_tests_name("clock", tests, ts_watchdog_group, NULL);
}
