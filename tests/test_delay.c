/* SPDX-License-Identifier: MIT */
/*
 * test_delay.c - delayed messages: never early, in order for one delay,
 * many pending at close, publishes racing close, and a due one stuck on
 * a full queue.
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

/* ---- delayed delivery ---------------------------------------------------- */

typedef struct delayed {
    _Atomic uint64_t count, early, disorder;
    _Atomic int64_t last; /* sequence of the last message, for order */
} delayed;

static int
delayed_handler(const weir_msg *m, void *ctx)
{
    delayed *d = ctx;
    int64_t v[2]; /* sequence, delay in ns */
    memcpy(v, weir_msg_data(m), sizeof(v));
    if (ts_now_ns() < weir_msg_timestamp_ns(m) + v[1])
        atomic_fetch_add(&d->early, 1);
    if (v[0] <= atomic_load(&d->last))
        atomic_fetch_add(&d->disorder, 1);
    atomic_store(&d->last, v[0]);
    atomic_fetch_add(&d->count, 1);
    return 0;
}

static void
test_delays_never_early_and_keep_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    delayed never_early = { .last = -1 }, same_due = { .last = -1 };
    weir_sub *s1, *s2;
    assert_int_equal(weir_bus_subscribe(bus, "random", delayed_handler,
                                        &never_early, NULL, &s1), 0);
    assert_int_equal(weir_bus_subscribe(bus, "same", delayed_handler,
                                        &same_due, NULL, &s2), 0);
    srand(11);
    /* Random delays: order is not promised, only never early. */
    for (int64_t i = 0; i < 1000; i++) {
        int64_t v[2] = { 0, (rand() % 20000) * WEIR_USEC };
        weir_pub_opts po = { .delay_ns = v[1] };
        assert_int_equal(weir_bus_publish(bus, "random", v, sizeof(v), &po), 0);
    }
    /* One delay for all: due times in publish order, many of them equal. */
    weir_topic *t;
    assert_int_equal(weir_bus_topic(bus, "same", &t), 0);
    for (int64_t i = 0; i < 1000; i++) {
        int64_t v[2] = { i, 15 * WEIR_MSEC };
        weir_pub_opts po = { .delay_ns = v[1] };
        assert_int_equal(weir_topic_publish(t, v, sizeof(v), &po), 0);
    }
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&never_early.count), 1000);
    assert_int_equal(atomic_load(&never_early.early), 0);
    assert_int_equal(atomic_load(&same_due.count), 1000);
    assert_int_equal(atomic_load(&same_due.early), 0);
    assert_int_equal(atomic_load(&same_due.disorder), 0);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 2000);
    assert_int_equal(bs.delayed, 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

static void
test_many_pending_delays_and_close(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    delayed d = { .last = -1 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "later", delayed_handler, &d,
                                        NULL, &s), 0);
    size_t n = ts_scale(100000);
    for (size_t i = 0; i < n; i++) {
        int64_t v[2] = { (int64_t)i, WEIR_SEC * 3600 };
        weir_pub_opts po = { .delay_ns = v[1] };
        assert_int_equal(weir_bus_publish(bus, "later", v, sizeof(v), &po), 0);
    }
    for (int64_t i = 0; i < 10; i++) {
        int64_t v[2] = { (int64_t)n + i, 5 * WEIR_MSEC };
        weir_pub_opts po = { .delay_ns = v[1] };
        assert_int_equal(weir_bus_publish(bus, "later", v, sizeof(v), &po), 0);
    }
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_true(bs.delayed >= n && bs.delayed <= n + 10);
    /* The soon-due ones are delivered within the drain; the rest are left. */
    assert_int_equal(weir_bus_close(bus, 300 * WEIR_MSEC), WEIR_ETIMEDOUT);
    assert_int_equal(atomic_load(&d.count), 10);
    assert_int_equal(atomic_load(&d.early), 0);
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.delayed, 0);
    assert_int_equal(bs.delayed_left, n);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* A publisher that delays messages until the bus refuses them, or cap. */
typedef struct late_pub {
    weir_bus *bus;
    _Atomic bool *go;
    uint64_t cap;
    uint64_t accepted;
    int bad;              /* a return other than 0 and WEIR_ECLOSED */
} late_pub;

static void *
publish_late_until_closed(void *arg)
{
    late_pub *p = arg;
    weir_pub_opts po = { .delay_ns = 200 * WEIR_USEC };
    unsigned waits = 0;
    while (!atomic_load(p->go))
        ts_backoff(&waits);
    while (p->accepted < p->cap) {
        int rc = weir_bus_publish(p->bus, "late", "x", 1, &po);
        if (rc == WEIR_ECLOSED)
            return NULL;
        if (rc != 0) {
            p->bad = rc;
            return NULL;
        }
        p->accepted++;
    }
    return NULL;
}

/*
 * Delayed publishes racing with close: each one accepted is delivered or
 * counted left by the time close returns, none is waiting any longer, and
 * every later one is refused.  Half the rounds subscribe with a capacity of
 * 4 and REJECT, so that due messages are refused while close begins: one
 * refused is counted rejected and published, never left as well.
 */
static void
test_delayed_publishes_racing_close_are_all_accounted(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (int round = 0; round < 24; round++) {
        weir_bus *bus = make_bus();
        _Atomic int handled = 0;
        _Atomic bool go = false;
        weir_sub *s;
        weir_sub_opts so = { .capacity = 1u << 20 };
        if (round % 4 >= 2)
            so = (weir_sub_opts){ .capacity = 4,
                                  .overflow = WEIR_OVERFLOW_REJECT };
        assert_int_equal(weir_bus_subscribe(bus, "late", count_handler,
                                            &handled, &so, &s), 0);
        late_pub pubs[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            pubs[i] = (late_pub){ .bus = bus, .go = &go,
                                  .cap = ts_scale(50000) };
            assert_int_equal(pthread_create(&t[i], NULL,
                                            publish_late_until_closed,
                                            &pubs[i]), 0);
        }
        atomic_store(&go, true);
        ts_sleep_ms(2);
        /* A drain of 0 gives up whatever is not due at once. */
        int rc = weir_bus_close(bus, round % 2 == 0 ? 0 : 50 * WEIR_MSEC);
        assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
        uint64_t accepted = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(pubs[i].bad, 0);
            accepted += pubs[i].accepted;
        }
        weir_bus_stats bs;
        assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
        weir_sub_stats st = stats_of(s);
        assert_int_equal(bs.delayed, 0);
        assert_int_equal(st.routed + st.rejected + bs.delayed_left, accepted);
        assert_int_equal(bs.published, st.routed + st.rejected);
        assert_balanced(&st);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

/* ---- found in review: close races, stalls, overflows --------------------- */

/* Release a held handler once the bus's close has given up a delayed one. */
typedef struct release_at_give_up {
    weir_bus *bus;
    gate_handler *held;
} release_at_give_up;

static void *
release_once_given_up(void *arg)
{
    release_at_give_up *r = arg;
    int64_t until = ts_now_ns() + 10 * WEIR_SEC;
    weir_bus_stats bs;
    while (weir_bus_get_stats(r->bus, &bs) == 0 && bs.delayed_left == 0 &&
           ts_now_ns() < until)
        ts_sleep_ms(1);
    atomic_store(&r->held->release, 1);
    return NULL;
}

/*
 * A due delayed message waiting for room when close gives up is counted
 * left.
 */
static void
test_close_counts_a_delayed_message_stuck_on_a_full_queue(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    gate_handler held = { 0 };
    weir_sub *s = full_held_sub(bus, "x", &held, 1, WEIR_OVERFLOW_BLOCK);
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    assert_int_equal(weir_bus_publish(bus, "x", "3", 1, &later), 0);
    ts_sleep_ms(10); /* due, and waiting for room */
    /*
     * The held handler lets go only after close has given up (not after a
     * fixed time, which a loaded machine can overrun before the close's
     * 30 ms are out).  Close then waits for it in its drain.
     */
    release_at_give_up r = { bus, &held };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_once_given_up, &r), 0);
    assert_int_equal(weir_bus_close(bus, 30 * WEIR_MSEC), WEIR_ETIMEDOUT);
    pthread_join(t, NULL);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(bs.delayed_left, 1);
    assert_int_equal(bs.published, 2);
    assert_int_equal(st.routed, 2);
    /* The close gave up on it; the subscription did not refuse it. */
    assert_int_equal(st.rejected, 0);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_never_early_and_keep_order),
        cmocka_unit_test(test_many_pending_delays_and_close),
        cmocka_unit_test(test_delayed_publishes_racing_close_are_all_accounted),
        cmocka_unit_test(
            test_close_counts_a_delayed_message_stuck_on_a_full_queue),
    };
    return cmocka_run_group_tests_name("delay", tests, ts_watchdog_group, NULL);
}
