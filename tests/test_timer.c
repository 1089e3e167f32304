/* SPDX-License-Identifier: MIT */
/*
 * test_timer.c - the generic timer (lib/bus/timer.c) on its own: order of
 * firing, seal, take, waiting for idle, the locked mode's promise that a
 * taken entry is never firing, and many adders at once.  Every wait has a
 * deadline or the watchdog; no assertion is on how soon anything fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "clock_internal.h"
#include "support/support.h"
#include "timer_internal.h"
#include "weir/common.h"

enum { LOG_MAX = 4096 };

/* What the callbacks saw, in the order they ran. */
typedef struct fire_log {
    pthread_mutex_t mu;
    int order[LOG_MAX];
    _Atomic int n;
    _Atomic int block;      /* callbacks with value 1 wait while set */
    _Atomic int in_fire;    /* a blocking callback is running */
    _Atomic int after_take; /* set by the test once a take returned */
    _Atomic int late;       /* callbacks that ran with after_take set */
} fire_log;

static void
log_init(fire_log *l)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(pthread_mutex_init(&l->mu, NULL), 0);
}

/* item: the entry's number, as an intptr_t. */
static void
record(const weiri_timed *e)
{
    fire_log *l = e->target;
    if (e->value == 1) {
        atomic_store(&l->in_fire, 1);
        while (atomic_load(&l->block))
            ts_sleep_ms(1);
        atomic_store(&l->in_fire, 0);
    }
    if (atomic_load(&l->after_take))
        atomic_fetch_add(&l->late, 1);
    pthread_mutex_lock(&l->mu);
    int i = atomic_load(&l->n);
    if (i < LOG_MAX)
        l->order[i] = (int)(intptr_t)e->item;
    atomic_store(&l->n, i + 1);
    pthread_mutex_unlock(&l->mu);
}

static weiri_timed
entry(fire_log *l, int64_t due, int id)
{
    return (weiri_timed){ .due = due, .fire = record, .target = l,
                          .item = (void *)(intptr_t)id };
}

/*
 * Start t (unlocked) with a blocker entry (-1) firing and held until
 * l->block is cleared, so that the entries added next are all queued
 * before any fires.  Returns a base time a second in the past: entries
 * due after it but before now fire as soon as the blocker lets go.
 */
static int64_t
start_held(weiri_timer *t, fire_log *l)
{
    assert_int_equal(weiri_timer_init(t, false), 0);
    atomic_store(&l->block, 1);
    int64_t base = weiri_now_ns() - WEIR_SEC;
    weiri_timed b = entry(l, base - 1, -1);
    b.value = 1;
    assert_int_equal(weiri_timer_add(t, b), 0);
    while (!atomic_load(&l->in_fire))
        ts_sleep_ms(1);
    return base;
}

static void
await_count(fire_log *l, int n)
{
    int64_t until = ts_now_ns() + 30 * WEIR_SEC;
    while (atomic_load(&l->n) < n && ts_now_ns() < until)
        ts_sleep_ms(1);
    assert_int_equal(atomic_load(&l->n), n);
}

/*
 * Entries added out of order fire by due time, and those with equal dues
 * in the order they were added.  All dues are in the past, so the thread
 * finds every entry queued (added before the first can fire: the thread
 * starts on the first add, and the last add is what the test waits on).
 */
static void
test_timer_fires_in_due_order_ties_by_add(void **state)
{
    (void)state;
    static fire_log l;
    log_init(&l);
    weiri_timer t;
    int64_t base = start_held(&t, &l);
    static const int64_t offs[] = { 5, 1, 3, 1, 4, 0, 3, 2, 1, 5 };
    enum { N = sizeof(offs) / sizeof(offs[0]) };
    for (int i = 0; i < N; i++)
        assert_int_equal(weiri_timer_add(&t, entry(&l, base + offs[i], i)), 0);
    assert_int_equal(weiri_timer_busy(&t), N + 1);
    atomic_store(&l.block, 0);
    await_count(&l, N + 1);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(30 * WEIR_SEC)));
    assert_int_equal(weiri_timer_busy(&t), 0);
    /* Expected: by (offset, index). */
    int k = 1;
    for (int64_t off = 0; off <= 5; off++)
        for (int i = 0; i < N; i++)
            if (offs[i] == off)
                assert_int_equal(l.order[k++], i);
    assert_int_equal(l.order[0], -1);
    weiri_timer_stop(&t);
}

/* A sealed timer refuses adds; what it holds still fires. */
static void
test_timer_seal_refuses_adds_keeps_queued(void **state)
{
    (void)state;
    static fire_log l;
    log_init(&l);
    weiri_timer t;
    assert_int_equal(weiri_timer_init(&t, true), 0);
    int64_t soon = weiri_now_ns() + 20 * WEIR_MSEC;
    assert_int_equal(weiri_timer_add(&t, entry(&l, soon, 1)), 0);
    weiri_timer_seal(&t);
    assert_int_equal(weiri_timer_add(&t, entry(&l, soon, 2)), WEIR_ECLOSED);
    await_count(&l, 1);
    assert_int_equal(l.order[0], 1);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(30 * WEIR_SEC)));
    weiri_timer_stop(&t);
}

static bool
keep_even(const weiri_timed *e, void *arg)
{
    (void)arg;
    return (intptr_t)e->item % 2 == 0;
}

static void
count_drop(weiri_timed *e, void *arg)
{
    (void)e;
    atomic_fetch_add((_Atomic int *)arg, 1);
}

/*
 * take removes exactly the entries its predicate does not keep, hands
 * each to drop once, and the heap still fires the rest in order.
 */
static void
test_timer_take_removes_exactly_the_unkept(void **state)
{
    (void)state;
    static fire_log l;
    log_init(&l);
    weiri_timer t;
    assert_int_equal(weiri_timer_init(&t, false), 0);
    /* Far out, so nothing fires before the take. */
    int64_t later = weiri_now_ns() + 3600 * WEIR_SEC;
    enum { N = 101 };
    for (int i = 0; i < N; i++)
        assert_int_equal(weiri_timer_add(&t, entry(&l, later - i, i)), 0);
    _Atomic int dropped = 0;
    assert_int_equal(weiri_timer_take(&t, keep_even, count_drop, &dropped),
                     N / 2);
    assert_int_equal(atomic_load(&dropped), N / 2);
    assert_int_equal(weiri_timer_busy(&t), N - N / 2);
    /* Not idle: the kept ones wait an hour; the wait ends at its deadline. */
    assert_false(weiri_timer_await_idle(&t, weiri_deadline(WEIR_MSEC)));
    /* What is kept is still a heap: taking all hands back the rest. */
    assert_int_equal(weiri_timer_take(&t, NULL, count_drop, &dropped),
                     N - N / 2);
    assert_int_equal(atomic_load(&dropped), N);
    assert_int_equal(weiri_timer_busy(&t), 0);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(WEIR_SEC)));
    assert_int_equal(atomic_load(&l.n), 0);
    weiri_timer_stop(&t);
}

/* After a take, the kept entries fire by due time (the heap was rebuilt). */
static void
test_timer_heap_holds_after_take(void **state)
{
    (void)state;
    static fire_log l;
    log_init(&l);
    weiri_timer t;
    int64_t base = start_held(&t, &l);
    enum { N = 64 };
    for (int i = 0; i < N; i++) /* dues scrambled: 37 is prime to 64 */
        assert_int_equal(weiri_timer_add(&t, entry(&l, base + (i * 37) % N,
                                                   (i * 37) % N)), 0);
    _Atomic int dropped = 0;
    assert_int_equal(weiri_timer_take(&t, keep_even, count_drop, &dropped),
                     N / 2);
    atomic_store(&l.block, 0);
    await_count(&l, 1 + N / 2);
    for (int k = 1; k <= N / 2; k++)
        assert_int_equal(l.order[k], 2 * (k - 1));
    weiri_timer_stop(&t);
}

/*
 * Unlocked: a callback that waits does not hold up adds or takes, and
 * await_idle counts it until it returns.
 */
static void
test_timer_unlocked_callback_may_wait(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static fire_log l;
    log_init(&l);
    weiri_timer t;
    assert_int_equal(weiri_timer_init(&t, false), 0);
    atomic_store(&l.block, 1);
    weiri_timed b = entry(&l, weiri_now_ns(), 7);
    b.value = 1;
    assert_int_equal(weiri_timer_add(&t, b), 0);
    while (!atomic_load(&l.in_fire))
        ts_sleep_ms(1);
    /* Firing, so out of the heap, yet busy. */
    assert_int_equal(weiri_timer_busy(&t), 1);
    assert_false(weiri_timer_await_idle(&t, weiri_deadline(WEIR_MSEC)));
    int64_t later = weiri_now_ns() + 3600 * WEIR_SEC;
    assert_int_equal(weiri_timer_add(&t, entry(&l, later, 8)), 0);
    _Atomic int dropped = 0;
    assert_int_equal(weiri_timer_take(&t, NULL, count_drop, &dropped), 1);
    assert_int_equal(weiri_timer_busy(&t), 1);
    atomic_store(&l.block, 0);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(30 * WEIR_SEC)));
    assert_int_equal(atomic_load(&l.n), 1);
    assert_int_equal(l.order[0], 7);
    weiri_timer_stop(&t);
    ts_watchdog_disarm();
}

typedef struct adder {
    weiri_timer *t;
    fire_log *l;
    int from, n;
} adder;

static void *
add_many(void *arg)
{
    adder *a = arg;
    for (int i = 0; i < a->n; i++) {
        /* Due now or up to 2 ms out: many fire while others are added. */
        int64_t due = weiri_now_ns() + (i % 3) * WEIR_MSEC;
        assert_int_equal(weiri_timer_add(a->t, entry(a->l, due, a->from + i)),
                         0);
    }
    return NULL;
}

/*
 * Locked: a take racing the firing thread leaves no entry half-fired:
 * every entry is fired or dropped exactly once, and once the take
 * returns no callback runs.  Eight adders on two cores.
 */
static void
test_timer_locked_take_races_firing(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    enum { THREADS = 8, EACH = 400 };
    static fire_log l;
    static int seen[THREADS * EACH];
    for (int round = 0; round < 5; round++) {
        log_init(&l);
        weiri_timer t;
        assert_int_equal(weiri_timer_init(&t, true), 0);
        pthread_t th[THREADS];
        adder a[THREADS];
        for (int i = 0; i < THREADS; i++) {
            a[i] = (adder){ &t, &l, i * EACH, EACH };
            assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]),
                             0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        weiri_timer_seal(&t);
        _Atomic int dropped = 0;
        size_t taken = weiri_timer_take(&t, NULL, count_drop, &dropped);
        atomic_store(&l.after_take, 1);
        assert_int_equal((int)taken, atomic_load(&dropped));
        assert_int_equal(weiri_timer_busy(&t), 0);
        weiri_timer_stop(&t);
        assert_int_equal(atomic_load(&l.late), 0);
        int fired = atomic_load(&l.n);
        assert_int_equal(fired + (int)taken, THREADS * EACH);
        memset(seen, 0, sizeof(seen));
        for (int i = 0; i < fired; i++) {
            assert_true(l.order[i] >= 0 && l.order[i] < THREADS * EACH);
            assert_int_equal(seen[l.order[i]]++, 0);
        }
    }
    ts_watchdog_disarm();
}

/* Many adders, nothing taken: every entry fires exactly once. */
static void
test_timer_many_adders_fire_exactly_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    enum { THREADS = 8, EACH = 500 };
    static fire_log l;
    static int seen[THREADS * EACH];
    log_init(&l);
    weiri_timer t;
    assert_int_equal(weiri_timer_init(&t, false), 0);
    pthread_t th[THREADS];
    adder a[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (adder){ &t, &l, i * EACH, EACH };
        assert_int_equal(pthread_create(&th[i], NULL, add_many, &a[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(60 * WEIR_SEC)));
    assert_int_equal(atomic_load(&l.n), THREADS * EACH);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < THREADS * EACH; i++)
        assert_int_equal(seen[l.order[i]]++, 0);
    weiri_timer_stop(&t);
    ts_watchdog_disarm();
}

/* A timer never added to starts no thread and stops cleanly. */
static void
test_timer_unused_stops(void **state)
{
    (void)state;
    weiri_timer t;
    assert_int_equal(weiri_timer_init(&t, false), 0);
    assert_false(t.running);
    assert_int_equal(weiri_timer_busy(&t), 0);
    assert_true(weiri_timer_await_idle(&t, weiri_deadline(0)));
    weiri_timer_stop(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_fires_in_due_order_ties_by_add),
        cmocka_unit_test(test_timer_seal_refuses_adds_keeps_queued),
        cmocka_unit_test(test_timer_take_removes_exactly_the_unkept),
        cmocka_unit_test(test_timer_heap_holds_after_take),
        cmocka_unit_test(test_timer_unlocked_callback_may_wait),
        cmocka_unit_test(test_timer_locked_take_races_firing),
        cmocka_unit_test(test_timer_many_adders_fire_exactly_once),
        cmocka_unit_test(test_timer_unused_stops),
    };
    return cmocka_run_group_tests(tests, ts_watchdog_group, NULL);
}
