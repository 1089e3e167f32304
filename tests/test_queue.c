/* SPDX-License-Identifier: MIT */
/*
 * test_queue.c - the bounded blocking queue: every return code and edge,
 * timeouts, close while threads sleep, and 4+4 thread stress runs with
 * mixed blocking, timed and burst calls asserting exactly-once delivery
 * and per-producer order.
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

#include "support/support.h"
#include "weir.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

static weir_queue *
make_queue(size_t capacity)
{
    weir_queue *q = NULL;
    assert_int_equal(weir_queue_create(&q, capacity), 0);
    assert_non_null(q);
    return q;
}

/* ---- single-threaded edges ---------------------------------------------- */

static void
test_queue_create_rejects_bad_arguments(void **state)
{
    (void)state;
    weir_queue *q = ITEM(1);
    assert_int_equal(weir_queue_create(NULL, 4), WEIR_EINVAL);
    assert_int_equal(weir_queue_create(&q, 0), WEIR_EINVAL);
    assert_null(q);
    q = ITEM(1);
    assert_int_equal(weir_queue_create(&q, SIZE_MAX), WEIR_EINVAL);
    assert_null(q);
    weir_queue_destroy(NULL);
    weir_queue_close(NULL);
    assert_false(weir_queue_is_closed(NULL));
    assert_int_equal(weir_queue_size(NULL), 0);
    assert_int_equal(weir_queue_capacity(NULL), 0);
}

static void
test_queue_calls_reject_bad_arguments(void **state)
{
    (void)state;
    weir_queue *q = make_queue(4);
    void *item = ITEM(7), *items[2] = { ITEM(1), ITEM(2) };
    assert_int_equal(weir_queue_push(NULL, item, WEIR_NOWAIT), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop(NULL, &item, WEIR_NOWAIT), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop(q, NULL, WEIR_NOWAIT), WEIR_EINVAL);
    assert_int_equal(weir_queue_push(q, item, -3), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop(q, &item, INT64_MIN), WEIR_EINVAL);
    assert_int_equal(weir_queue_push_burst(NULL, items, 2, 0), WEIR_EINVAL);
    assert_int_equal(weir_queue_push_burst(q, NULL, 2, 0), WEIR_EINVAL);
    assert_int_equal(weir_queue_push_burst(q, items, 2, -5), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop_burst(NULL, items, 2, 0), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop_burst(q, NULL, 2, 0), WEIR_EINVAL);
    assert_int_equal(weir_queue_pop_burst(q, items, 2, -5), WEIR_EINVAL);
    assert_int_equal(weir_queue_push_burst(q, items, 0, WEIR_FOREVER), 0);
    assert_int_equal(weir_queue_pop_burst(q, items, 0, WEIR_FOREVER), 0);
    assert_int_equal(weir_queue_size(q), 0); /* none of it queued anything */
    weir_queue_destroy(q);
}

/* Exact bounds, including ones that are not powers of two. */
static void
test_queue_nowait_on_full_and_empty(void **state)
{
    (void)state;
    const size_t caps[] = { 1, 3, 5, 64, 100 };
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        weir_queue *q = make_queue(caps[c]);
        void *item = ITEM(99);
        assert_int_equal(weir_queue_capacity(q), caps[c]);
        assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), WEIR_EAGAIN);
        assert_ptr_equal(item, ITEM(99));
        for (int lap = 0; lap < 3; lap++) {
            for (uintptr_t i = 0; i < caps[c]; i++)
                assert_int_equal(weir_queue_push(q, ITEM(i), WEIR_NOWAIT), 0);
            assert_int_equal(weir_queue_size(q), caps[c]);
            assert_int_equal(weir_queue_push(q, ITEM(0), WEIR_NOWAIT),
                             WEIR_EAGAIN);
            for (uintptr_t i = 0; i < caps[c]; i++) {
                assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
                assert_ptr_equal(item, ITEM(i));
            }
            assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT),
                             WEIR_EAGAIN);
        }
        weir_queue_destroy(q);
    }
}

static void
test_queue_burst_takes_what_fits(void **state)
{
    (void)state;
    weir_queue *q = make_queue(3);
    void *in[5] = { ITEM(1), ITEM(2), ITEM(3), ITEM(4), ITEM(5) }, *out[5];
    assert_int_equal(weir_queue_push_burst(q, in, 5, WEIR_NOWAIT), 3);
    assert_int_equal(weir_queue_push_burst(q, in + 3, 2, WEIR_NOWAIT),
                     WEIR_EAGAIN);
    assert_int_equal(weir_queue_push_burst(q, in + 3, 2, 1 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    assert_int_equal(weir_queue_pop_burst(q, out, 2, WEIR_NOWAIT), 2);
    assert_int_equal(weir_queue_push_burst(q, in + 3, 2, WEIR_FOREVER), 2);
    assert_int_equal(weir_queue_pop_burst(q, out + 2, 5, WEIR_FOREVER), 3);
    for (uintptr_t i = 0; i < 5; i++)
        assert_ptr_equal(out[i], ITEM(i + 1));
    assert_int_equal(weir_queue_pop_burst(q, out, 5, WEIR_NOWAIT), WEIR_EAGAIN);
    assert_int_equal(weir_queue_pop_burst(q, out, 5, 1 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    weir_queue_destroy(q);
}

/*
 * A timed wait returns no earlier than asked.  The upper bound only
 * catches a wait that ignores its deadline; it is seconds wide because a
 * loaded CI machine can stall a thread for a long time.
 */
static void
test_queue_timed_wait_honours_deadline(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_queue *q = make_queue(1);
    void *item;
    const int64_t waits[] = { 1 * WEIR_MSEC, 30 * WEIR_MSEC, 120 * WEIR_MSEC };
    for (size_t i = 0; i < 3; i++) {
        int64_t t0 = ts_now_ns();
        assert_int_equal(weir_queue_pop(q, &item, waits[i]), WEIR_ETIMEDOUT);
        int64_t took = ts_now_ns() - t0;
        assert_true(took >= waits[i]);
        assert_true(took < waits[i] + 3 * WEIR_SEC);
    }
    assert_int_equal(weir_queue_push(q, ITEM(1), WEIR_NOWAIT), 0);
    int64_t t0 = ts_now_ns();
    assert_int_equal(weir_queue_push(q, ITEM(2), 50 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    int64_t took = ts_now_ns() - t0;
    assert_true(took >= 50 * WEIR_MSEC);
    assert_true(took < 50 * WEIR_MSEC + 3 * WEIR_SEC);
    assert_int_equal(weir_queue_size(q), 1);
    weir_queue_destroy(q);
    ts_watchdog_disarm();
}

static void
test_queue_close_drains_then_reports_closed(void **state)
{
    (void)state;
    weir_queue *q = make_queue(8);
    void *item, *items[4];
    for (uintptr_t i = 0; i < 5; i++)
        assert_int_equal(weir_queue_push(q, ITEM(i), WEIR_NOWAIT), 0);
    assert_false(weir_queue_is_closed(q));
    weir_queue_close(q);
    weir_queue_close(q); /* idempotent */
    assert_true(weir_queue_is_closed(q));
    assert_int_equal(weir_queue_push(q, ITEM(9), WEIR_NOWAIT), WEIR_ECLOSED);
    assert_int_equal(weir_queue_push(q, ITEM(9), WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weir_queue_push_burst(q, items, 2, WEIR_FOREVER),
                     WEIR_ECLOSED);
    assert_int_equal(weir_queue_size(q), 5);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_FOREVER), 0);
    assert_ptr_equal(item, ITEM(0));
    assert_int_equal(weir_queue_pop_burst(q, items, 4, WEIR_FOREVER), 4);
    for (uintptr_t i = 0; i < 4; i++)
        assert_ptr_equal(items[i], ITEM(i + 1));
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), WEIR_ECLOSED);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weir_queue_pop_burst(q, items, 4, 10 * WEIR_MSEC),
                     WEIR_ECLOSED);
    weir_queue_destroy(q);
}

/* ---- close wakes sleepers ------------------------------------------------ */

typedef struct sleeper {
    weir_queue *q;
    int64_t timeout;
    int burst;
    int rc;
} sleeper;

static void *
sleep_in_pop(void *arg)
{
    sleeper *s = arg;
    void *items[2];
    s->rc = s->burst ? (int)weir_queue_pop_burst(s->q, items, 2, s->timeout)
                     : weir_queue_pop(s->q, items, s->timeout);
    return NULL;
}

static void *
sleep_in_push(void *arg)
{
    sleeper *s = arg;
    void *items[2] = { ITEM(5), ITEM(6) };
    s->rc = s->burst ? (int)weir_queue_push_burst(s->q, items, 2, s->timeout)
                     : weir_queue_push(s->q, ITEM(5), s->timeout);
    return NULL;
}

/*
 * Four threads block in the same call, some without limit and some with a
 * long timeout; close must wake every one of them with WEIR_ECLOSED.  The
 * 200 ms pause lets them get past spinning into the sleep.
 */
static void
close_wakes(weir_queue *q, void *(*fn)(void *))
{
    enum { N = 4 };
    pthread_t th[N];
    sleeper s[N];
    for (int i = 0; i < N; i++) {
        s[i] = (sleeper){ q, i % 2 ? WEIR_FOREVER : 60 * WEIR_SEC, i / 2, 1 };
        assert_int_equal(pthread_create(&th[i], NULL, fn, &s[i]), 0);
    }
    ts_sleep_ms(200);
    for (int i = 0; i < N; i++)
        assert_int_equal(s[i].rc, 1); /* still blocked */
    weir_queue_close(q);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(s[i].rc, WEIR_ECLOSED);
    }
}

static void
test_queue_close_wakes_sleeping_consumers(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_queue *q = make_queue(4);
    close_wakes(q, sleep_in_pop);
    weir_queue_destroy(q);
    ts_watchdog_disarm();
}

static void
test_queue_close_wakes_sleeping_producers(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_queue *q = make_queue(2);
    void *item;
    assert_int_equal(weir_queue_push(q, ITEM(1), WEIR_NOWAIT), 0);
    assert_int_equal(weir_queue_push(q, ITEM(2), WEIR_NOWAIT), 0);
    close_wakes(q, sleep_in_push);
    /* What was queued before the close is still delivered. */
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
    assert_ptr_equal(item, ITEM(1));
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
    assert_ptr_equal(item, ITEM(2));
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), WEIR_ECLOSED);
    weir_queue_destroy(q);
    ts_watchdog_disarm();
}

/* A sleeping consumer is woken by one push; a sleeping producer by one pop. */
static void
test_queue_sleepers_wake_on_change(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_queue *q = make_queue(1);
    pthread_t th;
    sleeper s = { q, WEIR_FOREVER, 0, 1 };
    assert_int_equal(pthread_create(&th, NULL, sleep_in_pop, &s), 0);
    ts_sleep_ms(100);
    assert_int_equal(weir_queue_push(q, ITEM(3), WEIR_FOREVER), 0);
    pthread_join(th, NULL);
    assert_int_equal(s.rc, 0);

    void *item;
    assert_int_equal(weir_queue_push(q, ITEM(4), WEIR_NOWAIT), 0);
    s = (sleeper){ q, WEIR_FOREVER, 0, 1 };
    assert_int_equal(pthread_create(&th, NULL, sleep_in_push, &s), 0);
    ts_sleep_ms(100);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_FOREVER), 0);
    assert_ptr_equal(item, ITEM(4));
    pthread_join(th, NULL);
    assert_int_equal(s.rc, 0);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
    assert_ptr_equal(item, ITEM(5));
    weir_queue_destroy(q);
    ts_watchdog_disarm();
}

/*
 * A burst gets all the room there is, even when producers' cached view of
 * the consumers' position is stale: one push and pop leave that view one
 * behind, so eight more items made it understate the room (issue 17).
 */
static void
test_queue_push_burst_fills_all_room(void **state)
{
    (void)state;
    weir_queue *q = make_queue(11);
    void *item, *in[41];
    for (uintptr_t i = 0; i < 41; i++)
        in[i] = ITEM(100 + i);
    assert_int_equal(weir_queue_push(q, ITEM(1), WEIR_NOWAIT), 0);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
    for (uintptr_t i = 0; i < 8; i++)
        assert_int_equal(weir_queue_push(q, ITEM(i), WEIR_NOWAIT), 0);
    assert_int_equal(weir_queue_size(q), 8);
    assert_int_equal(weir_queue_push_burst(q, in, 41, WEIR_NOWAIT), 3);
    assert_int_equal(weir_queue_size(q), 11);
    for (uintptr_t i = 0; i < 11; i++) {
        assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
        assert_ptr_equal(item, i < 8 ? ITEM(i) : ITEM(100 + i - 8));
    }
    weir_queue_destroy(q);
}

/* ---- NOWAIT calls are linearizable ------------------------------------- */

/*
 * crossbeam-channel's `linearizable` test and its mirror images.  Each
 * thread alternates a blocking call on one side with a WEIR_NOWAIT call
 * on the other, so that whenever a thread makes its NOWAIT call it has
 * itself pushed one more item than it popped (or popped one more than it
 * pushed): the queue is not empty (not full) at any instant of that call,
 * which must therefore succeed.  A pop that gives up on a place a
 * producer has claimed but not yet filled, or a push on a slot a consumer
 * has claimed but not yet emptied, breaks this within a few thousand
 * rounds.  The burst modes move two items a round and take what a burst
 * leaves with a second NOWAIT call, which must succeed as well.
 */
enum lin_mode { LIN_POP, LIN_PUSH, LIN_POP_BURST, LIN_PUSH_BURST };
enum { LIN_MAX_THREADS = 8 };

typedef struct lin_run {
    weir_queue *q;
    enum lin_mode mode;
    int64_t wait;               /* of the calls that must succeed: NOWAIT,
                                   or a timeout that must not run out */
    unsigned rounds;            /* per thread */
    _Atomic unsigned failures;  /* NOWAIT calls that failed, all threads */
    _Atomic int first_rc;       /* the first such call's result */
} lin_run;

static void
lin_fail(lin_run *l, long rc)
{
    int none = 1;
    atomic_compare_exchange_strong(&l->first_rc, &none, (int)rc);
    atomic_fetch_add(&l->failures, 1);
}

/*
 * Blocking: move exactly n items in or out, whatever the bursts return.
 * Returns 0, or -1 after a failure, when it closes the queue so that the
 * other threads stop too instead of waiting for items that never come.
 */
static int
lin_block(lin_run *l, int put, size_t n)
{
    void *items[2] = { ITEM(1), ITEM(2) };
    for (size_t done = 0; done < n;) {
        size_t m = n - done;
        long k = put ? weir_queue_push_burst(l->q, items, m, WEIR_FOREVER)
                     : weir_queue_pop_burst(l->q, items, m, WEIR_FOREVER);
        if (k <= 0) {
            if (k != WEIR_ECLOSED)
                lin_fail(l, k);
            weir_queue_close(l->q);
            return -1;
        }
        done += (size_t)k;
    }
    return 0;
}

/*
 * NOWAIT: move n items, each call of which must move at least one.  After
 * a failure the rest moves by blocking calls, which keeps every thread's
 * count of items in and out as the test needs it.
 */
static int
lin_nowait(lin_run *l, int put, size_t n)
{
    void *items[2] = { ITEM(3), ITEM(4) };
    for (size_t done = 0; done < n;) {
        long k;
        if (n - done == 1)
            k = put ? weir_queue_push(l->q, items[0], l->wait)
                    : weir_queue_pop(l->q, items, l->wait);
        else
            k = put ? weir_queue_push_burst(l->q, items, n - done, l->wait)
                    : weir_queue_pop_burst(l->q, items, n - done, l->wait);
        if (n - done == 1 && k == 0)
            k = 1;
        if (k <= 0) {
            lin_fail(l, k);
            return lin_block(l, put, n - done);
        }
        done += (size_t)k;
    }
    return 0;
}

static void *
lin_worker(void *arg)
{
    lin_run *l = arg;
    int burst = l->mode == LIN_POP_BURST || l->mode == LIN_PUSH_BURST;
    int pop_nowait = l->mode == LIN_POP || l->mode == LIN_POP_BURST;
    size_t n = burst ? 2 : 1;
    for (unsigned i = 0; i < l->rounds; i++)
        if (lin_block(l, pop_nowait, n) != 0 ||
            lin_nowait(l, !pop_nowait, n) != 0)
            break;
    return NULL;
}

static void
run_lin_waiting(size_t capacity, int threads, enum lin_mode mode,
                size_t rounds, int64_t wait)
{
    lin_run l = { .q = make_queue(capacity), .mode = mode, .wait = wait,
                  .rounds = (unsigned)rounds };
    atomic_init(&l.failures, 0);
    atomic_init(&l.first_rc, 1);
    /* The push modes start full, so that their pops find items. */
    if (mode == LIN_PUSH || mode == LIN_PUSH_BURST)
        for (size_t i = 0; i < capacity; i++)
            assert_int_equal(weir_queue_push(l.q, ITEM(9), WEIR_NOWAIT), 0);
    pthread_t th[LIN_MAX_THREADS];
    assert_true(threads <= LIN_MAX_THREADS);
    for (int i = 0; i < threads; i++)
        assert_int_equal(pthread_create(&th[i], NULL, lin_worker, &l), 0);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&l.failures) != 0)
        fail_msg("capacity %zu, %d threads, mode %d: %u calls that had to "
                 "succeed failed, "
                 "the first with %d", capacity, threads, (int)mode,
                 atomic_load(&l.failures), atomic_load(&l.first_rc));
    assert_int_equal(weir_queue_size(l.q),
                     mode == LIN_PUSH || mode == LIN_PUSH_BURST ? capacity : 0);
    weir_queue_destroy(l.q);
}

static void
run_lin(size_t capacity, int threads, enum lin_mode mode, size_t rounds)
{
    run_lin_waiting(capacity, threads, mode, rounds, WEIR_NOWAIT);
}

/*
 * The first run is crossbeam's test as it is: 4 threads, capacity 4,
 * 25,000 rounds.  The others use 8 threads, which on a machine of few
 * cores get preempted inside the windows more often, and a capacity that
 * is not a power of two as well, whose bound lies below the slot count.
 * How full the queue runs depends on what the threads hold, not on the
 * capacity; the burst modes need twice the threads to never deadlock
 * with every thread holding one item of its two.
 */
static void
test_queue_nowait_pop_is_linearizable(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_lin(4, 4, LIN_POP, 25000);
    run_lin(3, 8, LIN_POP, ts_scale(25000));
    ts_watchdog_disarm();
}

static void
test_queue_nowait_push_is_linearizable(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_lin(4, 8, LIN_PUSH, ts_scale(25000));
    run_lin(3, 8, LIN_PUSH, ts_scale(25000));
    ts_watchdog_disarm();
}

static void
test_queue_nowait_pop_burst_is_linearizable(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_lin(16, 8, LIN_POP_BURST, ts_scale(25000));
    run_lin(15, 8, LIN_POP_BURST, ts_scale(25000));
    ts_watchdog_disarm();
}

/*
 * The same with a 1 us timeout instead of WEIR_NOWAIT: a timed call that
 * finds a place busy when its deadline passes must not time out while
 * the queue is not at its bound (the bus's BLOCK publishes with a
 * timeout wait this way).
 */
static void
test_queue_timed_calls_time_out_only_at_the_bound(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_lin_waiting(4, 8, LIN_POP, ts_scale(25000), WEIR_USEC);
    run_lin_waiting(4, 8, LIN_PUSH, ts_scale(25000), WEIR_USEC);
    ts_watchdog_disarm();
}

static void
test_queue_nowait_push_burst_is_linearizable(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_lin(16, 8, LIN_PUSH_BURST, ts_scale(25000));
    run_lin(15, 8, LIN_PUSH_BURST, ts_scale(25000));
    ts_watchdog_disarm();
}

/* ---- 4 producers + 4 consumers, every kind of call -------------------- */

enum { NPROD = 4, NCONS = 4 };

typedef struct stress {
    weir_queue *q;
    size_t per_producer;
    _Atomic unsigned next_id;
    _Atomic unsigned char *seen;
    _Atomic int failures;
} stress;

static void *
stress_producer(void *arg)
{
    stress *s = arg;
    unsigned p = atomic_fetch_add(&s->next_id, 1);
    void *batch[8];
    size_t seq = 0;
    for (unsigned turn = 0; seq < s->per_producer; turn++) {
        size_t n = 1 + turn % 8;
        if (n > s->per_producer - seq)
            n = s->per_producer - seq;
        for (size_t i = 0; i < n; i++)
            batch[i] = ITEM((seq + i) * NPROD + p + 1);
        long done;
        switch (turn % 4) {
        case 0:
            done = weir_queue_push(s->q, batch[0], WEIR_FOREVER) == 0;
            break;
        case 1: /* timed: a timeout is a retry, not a loss */
            done = weir_queue_push(s->q, batch[0], 200 * WEIR_USEC) == 0;
            break;
        case 2:
            done = weir_queue_push_burst(s->q, batch, n, WEIR_FOREVER);
            break;
        default:
            done = weir_queue_push_burst(s->q, batch, n, WEIR_NOWAIT);
            break;
        }
        if (done < 0 && done != WEIR_EAGAIN && done != WEIR_ETIMEDOUT)
            atomic_fetch_add(&s->failures, 1);
        if (done > 0)
            seq += (size_t)done;
    }
    return NULL;
}

static void *
stress_consumer(void *arg)
{
    stress *s = arg;
    size_t total = s->per_producer * NPROD, last[NPROD];
    int have[NPROD] = { 0 };
    void *batch[8];
    for (unsigned turn = 0;; turn++) {
        long got;
        switch (turn % 3) {
        case 0:
            got = weir_queue_pop(s->q, batch, WEIR_FOREVER);
            got = got == 0 ? 1 : got;
            break;
        case 1:
            got = weir_queue_pop(s->q, batch, 300 * WEIR_USEC);
            got = got == 0 ? 1 : got;
            break;
        default:
            got = weir_queue_pop_burst(s->q, batch, 1 + turn % 8, WEIR_FOREVER);
            break;
        }
        if (got == WEIR_ECLOSED)
            return NULL;
        if (got == WEIR_ETIMEDOUT)
            continue;
        if (got < 0) {
            atomic_fetch_add(&s->failures, 1);
            return NULL;
        }
        for (long i = 0; i < got; i++) {
            size_t v = (uintptr_t)batch[i] - 1, p = v % NPROD, seq = v / NPROD;
            if (v >= total || (have[p] && seq <= last[p]))
                atomic_fetch_add(&s->failures, 1);
            else
                atomic_fetch_add_explicit(&s->seen[v], 1, memory_order_relaxed);
            have[p] = 1;
            last[p] = seq;
        }
    }
}

static void
run_stress(size_t capacity, size_t items)
{
    stress s;
    memset(&s, 0, sizeof(s));
    s.q = make_queue(capacity);
    s.per_producer = items / NPROD;
    size_t total = s.per_producer * NPROD;
    s.seen = calloc(total, 1);
    assert_non_null(s.seen);
    pthread_t prod[NPROD], cons[NCONS];
    for (int i = 0; i < NCONS; i++)
        assert_int_equal(pthread_create(&cons[i], NULL, stress_consumer, &s),
                         0);
    for (int i = 0; i < NPROD; i++)
        assert_int_equal(pthread_create(&prod[i], NULL, stress_producer, &s),
                         0);
    for (int i = 0; i < NPROD; i++)
        pthread_join(prod[i], NULL);
    /* Consumers stop on ECLOSED, which they may only see once all is popped. */
    weir_queue_close(s.q);
    for (int i = 0; i < NCONS; i++)
        pthread_join(cons[i], NULL);

    assert_int_equal(atomic_load(&s.failures), 0);
    for (size_t v = 0; v < total; v++)
        if (atomic_load_explicit(&s.seen[v], memory_order_relaxed) != 1)
            fail_msg("item %zu seen %d times", v, (int)s.seen[v]);
    assert_int_equal(weir_queue_size(s.q), 0);
    weir_queue_destroy(s.q);
    free((void *)s.seen);
}

static void
test_queue_4p4c_capacity_1(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_stress(1, ts_scale(400000));
    ts_watchdog_disarm();
}

static void
test_queue_4p4c_capacity_3(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_stress(3, ts_scale(1000000));
    ts_watchdog_disarm();
}

static void
test_queue_4p4c_capacity_64(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_stress(64, ts_scale(4000000));
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_create_rejects_bad_arguments),
        cmocka_unit_test(test_queue_calls_reject_bad_arguments),
        cmocka_unit_test(test_queue_nowait_on_full_and_empty),
        cmocka_unit_test(test_queue_burst_takes_what_fits),
        cmocka_unit_test(test_queue_timed_wait_honours_deadline),
        cmocka_unit_test(test_queue_close_drains_then_reports_closed),
        cmocka_unit_test(test_queue_close_wakes_sleeping_consumers),
        cmocka_unit_test(test_queue_close_wakes_sleeping_producers),
        cmocka_unit_test(test_queue_sleepers_wake_on_change),
        cmocka_unit_test(test_queue_push_burst_fills_all_room),
        cmocka_unit_test(test_queue_nowait_pop_is_linearizable),
        cmocka_unit_test(test_queue_nowait_push_is_linearizable),
        cmocka_unit_test(test_queue_nowait_pop_burst_is_linearizable),
        cmocka_unit_test(test_queue_nowait_push_burst_is_linearizable),
        cmocka_unit_test(test_queue_timed_calls_time_out_only_at_the_bound),
        cmocka_unit_test(test_queue_4p4c_capacity_1),
        cmocka_unit_test(test_queue_4p4c_capacity_3),
        cmocka_unit_test(test_queue_4p4c_capacity_64),
    };
    return cmocka_run_group_tests_name("queue", tests, ts_watchdog_group, NULL);
}
