/* SPDX-License-Identifier: MIT */
/*
 * test_sub.c - subscriptions: handler errors, several workers, rate
 * limiting, subscribing and unsubscribing under publishing, latency
 * statistics, names, final statistics and high water.
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

#include "bus_internal.h" /* one test waits for a sub's abort flag */
#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

/* ---- failures, workers, rate --------------------------------------------- */

static void
test_bus_handler_errors_are_counted(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    recorder r;
    memset(&r, 0, sizeof(r));
    atomic_store(&r.fail_odd, 1);
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", record, &r, NULL, &s), 0);
    for (uint64_t seq = 0; seq < 1000; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.acked, 500);
    assert_int_equal(st.failed, 500);
    assert_settled(s, 1000);
    assert_true(st.latency_p50_ns > 0);
    assert_true(st.latency_p50_ns <= st.latency_p99_ns);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

typedef struct tally {
    uint64_t n;
    _Atomic unsigned char *seen;
    _Atomic int dup;
} tally;

static int
count_once(const weir_msg *m, void *ctx)
{
    tally *t = ctx;
    uint64_t seq;
    memcpy(&seq, weir_msg_data(m), sizeof(seq));
    if (seq >= t->n || atomic_fetch_add(&t->seen[seq], 1) != 0)
        atomic_fetch_add(&t->dup, 1);
    return 0;
}

static void
test_bus_several_workers_handle_each_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    tally t = { ts_scale(200000), NULL, 0 };
    t.seen = calloc(t.n, 1);
    assert_non_null(t.seen);
    weir_sub_opts so = { .workers = 4, .capacity = 64 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", count_once, &t, &so, &s), 0);
    for (uint64_t seq = 0; seq < t.n; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         0);
    assert_int_equal(weir_bus_close(bus, 30 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&t.dup), 0);
    for (uint64_t i = 0; i < t.n; i++)
        assert_int_equal(atomic_load(&t.seen[i]), 1);
    assert_settled(s, t.n);
    weir_bus_destroy(bus);
    free((void *)t.seen);
    ts_watchdog_disarm();
}

/*
 * Rate 200/s with burst 10, two workers: 110 messages cannot all start
 * in less than (110 - 10) / 200 = 0.5 s.
 */
static void
test_bus_rate_limits_handler_starts(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    recorder r;
    memset(&r, 0, sizeof(r));
    weir_sub_opts so = { .workers = 2, .rate_per_sec = 200, .burst = 10 };
    weir_sub *s;
    int64_t t0 = ts_now_ns();
    assert_int_equal(weir_bus_subscribe(bus, "sms", record, &r, &so, &s), 0);
    for (uint64_t seq = 0; seq < 110; seq++)
        assert_int_equal(weir_bus_publish(bus, "sms", &seq, sizeof(seq), NULL),
                         0);
    wait_count(&r, 110);
    /*
     * Never faster than the rate; and not wildly slower, a bound loose
     * enough for a loaded CI machine that still catches a limiter stuck
     * at a fraction of its rate.
     */
    int64_t took = ts_now_ns() - t0;
    assert_true(took >= 495 * WEIR_MSEC);
    assert_true(took < 5 * WEIR_SEC);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_settled(s, 110);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- subscribe and unsubscribe while others publish ---------------------- */

typedef struct churn {
    weir_bus *bus;
    _Atomic int stop;
    _Atomic uint64_t published[2];
} churn;

/* What a churn publisher sends: who it is and its own count. */
typedef struct churn_msg {
    uint64_t from, seq;
} churn_msg;

static void *
churn_publisher(void *arg)
{
    churn *c = arg;
    static _Atomic int ids;
    churn_msg cm = { (uint64_t)(atomic_fetch_add(&ids, 1) % 2), 0 };
    while (!atomic_load(&c->stop)) {
        /* EAGAIN: a REJECT subscription was full; the others still got it. */
        int rc = weir_bus_publish(c->bus, "busy", &cm, sizeof(cm), NULL);
        if (rc != 0 && rc != WEIR_EAGAIN)
            atomic_fetch_add(&c->published[cm.from], 1000000000); /* poison */
        atomic_fetch_add(&c->published[cm.from], 1);
        cm.seq++;
    }
    return NULL;
}

/* Every message of each churn publisher, once, in its publish order. */
typedef struct per_publisher {
    _Atomic uint64_t count;
    _Atomic int disorder;
    uint64_t next[2];              /* the worker's alone */
} per_publisher;

static int
in_publish_order(const weir_msg *m, void *ctx)
{
    per_publisher *p = ctx;
    churn_msg cm;
    if (weir_msg_size(m) != sizeof(cm)) {
        atomic_fetch_add(&p->disorder, 1);
        return -1;
    }
    memcpy(&cm, weir_msg_data(m), sizeof(cm));
    if (cm.from > 1 || cm.seq != p->next[cm.from])
        atomic_fetch_add(&p->disorder, 1);
    else
        p->next[cm.from]++;
    atomic_fetch_add(&p->count, 1);
    return 0;
}

static void
test_bus_subscribe_unsubscribe_under_publishing(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 90);
    churn c;
    memset(&c, 0, sizeof(c));
    c.bus = make_bus();
    /*
     * keep is the topic's first subscription: its messages are written
     * in place while it is alone and shared while a temporary one is
     * there, and it must see each publisher's in order across the changes.
     */
    static per_publisher steady;
    memset(&steady, 0, sizeof(steady));
    _Atomic uint64_t temp = 0;
    weir_sub *keep;
    assert_int_equal(weir_bus_subscribe(c.bus, "busy", in_publish_order,
                                        &steady, NULL, &keep), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn_publisher, &c), 0);
    for (int round = 0; round < (int)ts_scale(200); round++) {
        weir_sub *s;
        weir_sub_opts so = { .workers = 1 + round % 3,
                             .overflow = (weir_overflow)(round % 4) };
        assert_int_equal(weir_bus_subscribe(c.bus, "busy", count_any, &temp,
                                            &so, &s), 0);
        ts_sleep_ms(1);
        int rc = weir_sub_close(s, round % 2 ? WEIR_FOREVER : WEIR_NOWAIT);
        assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
    }
    atomic_store(&c.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    uint64_t total = atomic_load(&c.published[0]) +
                     atomic_load(&c.published[1]);
    assert_true(total < 1000000000); /* no publish failed otherwise */
    assert_int_equal(weir_bus_close(c.bus, 30 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&steady.count), total);
    assert_int_equal(atomic_load(&steady.disorder), 0);
    assert_settled(keep, total);
    weir_bus_destroy(c.bus);
    ts_watchdog_disarm();
}

/* ---- latency statistics -------------------------------------------------- */

static int
sleep_2ms(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    ts_sleep_ms(2);
    return 0;
}

/*
 * Handlers that take at least 2 ms each: every latency is at least that,
 * whatever the number of workers (each keeps its own histogram, and all
 * of them are read), and p50 <= p99 <= max.
 */
static void
test_bus_latency_percentiles_with_several_workers(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const unsigned workers[] = { 1, 2, 4, 8 };
    for (int i = 0; i < 4; i++) {
        weir_bus *bus = make_bus();
        weir_sub_opts so = { .workers = workers[i] };
        weir_sub *s;
        assert_int_equal(weir_bus_subscribe(bus, "t", sleep_2ms, NULL, &so, &s),
                         0);
        for (unsigned k = 0; k < 4 * workers[i]; k++)
            assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        weir_sub_stats st;
        assert_int_equal(weir_sub_get_stats(s, &st), 0);
        assert_int_equal(st.acked, 4 * workers[i]);
        assert_true(st.latency_p50_ns >= 2 * WEIR_MSEC);
        assert_true(st.latency_p99_ns >= st.latency_p50_ns);
        assert_true(st.latency_max_ns >= st.latency_p99_ns);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

/* ---- names, final statistics, idle closes, high water -------------------- */

/*
 * Open g once s's close has run out of time and told its workers to stop
 * (white-box: s->abort), not after a fixed time, which a loaded machine
 * can overrun before the close has even begun.
 */
typedef struct held_gate {
    weir_sub *s;
    gate *g;
} held_gate;

static void *
open_once_aborting(void *arg)
{
    held_gate *h = arg;
    int64_t until = ts_now_ns() + 10 * WEIR_SEC;
    while (!atomic_load(&h->s->abort) && ts_now_ns() < until)
        ts_sleep_ms(1);
    gate_open(h->g);
    return NULL;
}

static void
test_bus_sub_name_and_final_stats(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    static gate g;
    gate_init(&g);
    weir_sub *named, *plain, *held;
    static _Atomic uint64_t sink;
    weir_sub_opts no = { .name = "sms-sender" };
    assert_int_equal(weir_bus_subscribe(bus, "sms", count_any, &sink, &no,
                                        &named), 0);
    assert_int_equal(weir_bus_subscribe(bus, "order.created", count_any, &sink,
                                        NULL, &plain), 0);
    assert_string_equal(weir_sub_name(named), "sms-sender");
    assert_string_equal(weir_sub_name(plain), "order.created");
    assert_null(weir_sub_name(NULL));

    /* One message held in the handler, three queued: a close with no
       time leaves the three, and says so in the final statistics. */
    assert_int_equal(weir_bus_subscribe(bus, "t", gated, &g, NULL, &held), 0);
    for (uint64_t seq = 0; seq < 4; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         0);
    wait_until(entered_one, &g);
    pthread_t th;
    held_gate hg = { held, &g };
    assert_int_equal(pthread_create(&th, NULL, open_once_aborting, &hg), 0);
    weir_sub_stats fin;
    memset(&fin, 0xff, sizeof(fin));
    assert_int_equal(weir_sub_close_stats(held, WEIR_NOWAIT, &fin),
                     WEIR_ETIMEDOUT);
    pthread_join(th, NULL);
    assert_int_equal(fin.routed, 4);
    assert_int_equal(fin.acked, 1);
    assert_int_equal(fin.queued, 3);
    assert_int_equal(fin.in_flight, 0);
    assert_int_equal(weir_sub_close_stats(named, WEIR_FOREVER, &fin), 0);
    assert_int_equal(fin.routed, 0);
    assert_int_equal(weir_sub_close_stats(NULL, 0, &fin), WEIR_EINVAL);
    assert_int_equal(weir_sub_close_stats(plain, 0, NULL), 0);
    weir_bus_destroy(bus);
    gate_fini(&g);
    ts_watchdog_disarm();
}

/*
 * Closing idle subscriptions with no time to drain left nothing
 * unhandled, so it is no time-out, even while a worker is still on its
 * way out.
 */
static void
test_bus_nowait_close_of_idle_subs_is_no_timeout(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (int round = 0; round < (int)ts_scale(200); round++) {
        weir_bus *bus = make_bus();
        weir_sub *a, *b;
        static _Atomic uint64_t sink;
        weir_sub_opts four = { .workers = 4 };
        assert_int_equal(weir_bus_subscribe(bus, "a", count_any, &sink, &four,
                                            &a), 0);
        assert_int_equal(weir_bus_subscribe(bus, "b", count_any, &sink, NULL,
                                            &b), 0);
        assert_int_equal(weir_sub_close(a, WEIR_NOWAIT), 0);
        assert_int_equal(weir_bus_close(bus, WEIR_NOWAIT), 0);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

/*
 * high_water never exceeds the capacity, with one worker or several.  A
 * lone worker takes up to 64 at once, so only a capacity of 64 or more
 * lets its full batch meet a queue refilled behind it; several workers
 * take one at a time, and a full queue refilled behind that one shows as
 * capacity + 1.  The overshoot is a race with the publisher, so each case
 * runs a few rounds.
 */
static void
test_bus_high_water_within_capacity(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const struct {
        unsigned workers;
        size_t capacity;
    } cases[] = { { 1, 8 }, { 1, 64 }, { 4, 8 } };
    for (int i = 0; i < 15; i++) {
        weir_bus *bus = make_bus();
        weir_sub_opts so = { .workers = cases[i % 3].workers,
                             .capacity = cases[i % 3].capacity };
        weir_sub *s;
        static _Atomic uint64_t sink;
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &sink, &so,
                                            &s), 0);
        for (int k = 0; k < (int)ts_scale(20000); k++)
            assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        weir_sub_stats st;
        assert_int_equal(weir_sub_get_stats(s, &st), 0);
        assert_true(st.high_water >= 1);
        assert_true(st.high_water <= cases[i % 3].capacity);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_handler_errors_are_counted),
        cmocka_unit_test(test_bus_several_workers_handle_each_once),
        cmocka_unit_test(test_bus_rate_limits_handler_starts),
        cmocka_unit_test(test_bus_subscribe_unsubscribe_under_publishing),
        cmocka_unit_test(test_bus_latency_percentiles_with_several_workers),
        cmocka_unit_test(test_bus_sub_name_and_final_stats),
        cmocka_unit_test(test_bus_nowait_close_of_idle_subs_is_no_timeout),
        cmocka_unit_test(test_bus_high_water_within_capacity),
    };
    return cmocka_run_group_tests_name("sub", tests, ts_watchdog_group, NULL);
}
