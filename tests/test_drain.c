/* SPDX-License-Identifier: MIT */
/*
 * test_drain.c - weir_bus_close draining a bus whose handlers publish:
 * pipelines of any depth (plain, delayed and batch forwards), a fan-out,
 * a close out of time, closes beside a subscription closing on its own,
 * one racing publishers and forwards, and a forward the seal cuts short.
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

/* ---- draining a bus whose handlers publish ------------------------------- */

enum { STAGES_MAX = 6 };

/* One stage of a pipeline: handles a message, then forwards it on. */
typedef struct stage {
    weir_bus *bus;
    const char *next;          /* topic to forward to; NULL: the last stage */
    unsigned work_us;          /* simulated work per message */
    int how;                   /* forward by a publish (0), a delayed one
                                  (1, 1 ms) or a batch of one (2) */
    _Atomic uint64_t handled;
    _Atomic uint64_t forwarded; /* forwards the bus took */
    _Atomic uint64_t refused;   /* forwards it returned WEIR_ECLOSED for */
    _Atomic uint64_t other;     /* any other result: must stay 0 */
    _Atomic int *hold;          /* if set, the first message waits for it */
    _Atomic int held_once;
    _Atomic int drain_rc;       /* that message's forward, made during close */
    _Atomic int64_t drain_done; /* when that forward returned */
} stage;

static int
forward(const weir_msg *m, void *ctx)
{
    stage *st = ctx;
    bool held = st->hold != NULL && atomic_exchange(&st->held_once, 1) == 0;
    if (held) {
        int64_t until = ts_now_ns() + 10 * WEIR_SEC;
        while (!atomic_load(st->hold) && ts_now_ns() < until)
            ts_sleep_ms(1);
    }
    if (st->work_us > 0) {
        struct timespec ts = { 0, (long)st->work_us * 1000 };
        nanosleep(&ts, NULL);
    }
    if (st->next != NULL) {
        weir_pub_opts later = { .delay_ns = WEIR_MSEC };
        weir_batch *b;
        int rc = st->how == 2 ? weir_batch_begin(st->bus, &b) : 0;
        if (rc == 0 && st->how == 2) {
            rc = weir_batch_publish(b, st->next, weir_msg_data(m),
                                    weir_msg_size(m), NULL);
            if (rc == 0)
                rc = weir_batch_commit(b, WEIR_FOREVER);
            else
                weir_batch_abort(b);
        } else if (rc == 0) {
            rc = weir_bus_publish(st->bus, st->next, weir_msg_data(m),
                                  weir_msg_size(m), st->how ? &later : NULL);
        }
        atomic_fetch_add(rc == 0 ? &st->forwarded
                         : rc == WEIR_ECLOSED ? &st->refused : &st->other, 1);
        if (held) {
            atomic_store(&st->drain_done, ts_now_ns());
            atomic_store(&st->drain_rc, rc);
        }
    }
    atomic_fetch_add(&st->handled, 1);
    return 0;
}

/* Set closing once the bus refuses a caller from outside: its close began. */
typedef struct close_watch {
    weir_bus *bus;
    _Atomic int closing;
} close_watch;

static void *
watch_close(void *arg)
{
    close_watch *cw = arg;
    weir_topic *t;
    int64_t until = ts_now_ns() + 10 * WEIR_SEC;
    while (weir_bus_topic(cw->bus, "probe", &t) != WEIR_ECLOSED &&
           ts_now_ns() < until) {
        struct timespec ts = { 0, 100 * 1000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&cw->closing, 1);
    return NULL;
}

/*
 * A pipeline p.0 -> p.1 -> ... -> p.depth, one forwarding subscription
 * per stage, plus a second, last-stage subscription on p.1 (fan-out).
 * n messages go to p.0, then the bus closes with timeout.  Whatever the
 * timeout, every count must add up exactly: what each stage forwarded is
 * what the next one was routed, what the bus refused is counted in
 * forwards_refused, and each subscription's books balance with nothing
 * in flight.  With time enough, every stage handles all n.
 */
static void
pipeline_case(int depth, uint64_t n, unsigned work_us, int how,
              int64_t timeout, int want_rc)
{
    weir_bus *bus = make_bus();
    static stage st[STAGES_MAX + 1], fan;
    static char names[STAGES_MAX + 1][16];
    weir_sub *s[STAGES_MAX + 1], *fan_sub;
    for (int k = 0; k <= depth; k++)
        snprintf(names[k], sizeof(names[k]), "p.%d", k);
    for (int k = 0; k <= depth; k++) {
        memset(&st[k], 0, sizeof(st[k]));
        st[k].bus = bus;
        st[k].next = k < depth ? names[k + 1] : NULL;
        st[k].work_us = work_us;
        st[k].how = how;
        assert_int_equal(weir_bus_subscribe(bus, names[k], forward, &st[k],
                                            NULL, &s[k]), 0);
    }
    /*
     * p.0's first message is held until the close has begun; its forward,
     * made while the close drains (before the timeout), must be taken.
     */
    static close_watch cw;
    memset(&cw, 0, sizeof(cw));
    cw.bus = bus;
    st[0].hold = &cw.closing;
    st[0].drain_rc = 1;
    memset(&fan, 0, sizeof(fan));
    fan.bus = bus;
    assert_int_equal(weir_bus_subscribe(bus, names[1], forward, &fan, NULL,
                                        &fan_sub), 0);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(weir_bus_publish(bus, names[0], &i, sizeof(i), NULL),
                         0);
    pthread_t watcher;
    assert_int_equal(pthread_create(&watcher, NULL, watch_close, &cw), 0);
    int64_t t_close = ts_now_ns(); /* the close's deadline is later */
    int rc = weir_bus_close(bus, timeout);
    pthread_join(watcher, NULL);
    assert_int_equal(rc, want_rc);
    /*
     * A forward made while the bus drains is taken, not refused: certainly
     * so if it returned before the drain could have run out of time.  One
     * that a loaded machine let start only later may have been refused.
     */
    if (atomic_load(&st[0].drain_done) < t_close + timeout)
        assert_int_equal(atomic_load(&st[0].drain_rc), 0);
    else
        assert_true(atomic_load(&st[0].drain_rc) == 0 ||
                    atomic_load(&st[0].drain_rc) == WEIR_ECLOSED);
    /* From outside, a closed bus refuses. */
    assert_int_equal(weir_bus_publish(bus, names[0], "x", 1, NULL),
                     WEIR_ECLOSED);

    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    uint64_t refused = 0, forwards = 0, left = 0, lost = 0, routed_in = n;
    uint64_t routed_1 = 0;
    for (int k = 0; k <= depth + 1; k++) {
        /* k == depth + 1 is the fan-out subscription on p.1. */
        bool is_fan = k == depth + 1;
        stage *sk = is_fan ? &fan : &st[k];
        weir_sub_stats ss;
        assert_int_equal(weir_sub_get_stats(is_fan ? fan_sub : s[k], &ss), 0);
        if (is_fan) {
            /* Placed by the same forwards as p.1's, or given up with them. */
            assert_int_equal(ss.routed, routed_1);
        } else if (how == 1) {
            /* A delayed forward not due by the deadline is given up. */
            assert_true(ss.routed <= routed_in);
            lost += routed_in - ss.routed;
        } else {
            assert_int_equal(ss.routed, routed_in);
        }
        if (k == 1)
            routed_1 = ss.routed;
        assert_int_equal(ss.in_flight, 0);
        assert_int_equal(ss.routed, ss.acked + ss.queued);
        assert_int_equal(ss.acked, atomic_load(&sk->handled));
        assert_int_equal(atomic_load(&sk->other), 0);
        if (sk->next != NULL)
            assert_int_equal(ss.acked, atomic_load(&sk->forwarded) +
                                           atomic_load(&sk->refused));
        left += ss.queued;
        refused += atomic_load(&sk->refused);
        forwards += atomic_load(&sk->forwarded);
        routed_in = atomic_load(&sk->forwarded);
    }
    /*
     * Each forward the bus took is a publish (a delayed one once routed);
     * each it refused is counted, and each delayed one given up.
     */
    assert_int_equal(lost, bs.delayed_left);
    assert_int_equal(bs.published, n + forwards - lost);
    assert_int_equal(bs.forwards_refused, refused);
    if (rc == 0) {
        /* Drained: every stage handled every message, nothing refused. */
        for (int k = 0; k <= depth; k++)
            assert_int_equal(atomic_load(&st[k].handled), n);
        assert_int_equal(atomic_load(&fan.handled), n);
        assert_int_equal(refused + left + lost, 0);
    } else {
        assert_int_equal(rc, WEIR_ETIMEDOUT);
        assert_true(left + refused + lost > 0);
    }
    weir_bus_destroy(bus);
}

static void
test_bus_close_drains_pipelines_of_any_depth(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const int depths[] = { 1, 2, 5 };
    for (int i = 0; i < 3; i++)
        pipeline_case(depths[i], ts_scale(1000), 0, 0, 10 * WEIR_SEC, 0);
    /* Stages that forward by a delayed publish, or by an atomic batch. */
    pipeline_case(2, ts_scale(200), 0, 1, 10 * WEIR_SEC, 0);
    pipeline_case(2, ts_scale(200), 0, 2, 10 * WEIR_SEC, 0);
    ts_watchdog_disarm();
}

/*
 * The same pipelines, each stage slow (1 ms a message), closed with 100 ms
 * to drain: the work alone takes longer, so the close times out, and
 * every message must still be accounted for, handled, left queued or
 * counted as a refused forward; a forward made before the time ran out
 * was taken.
 */
static void
test_bus_close_out_of_time_counts_pipeline_leftovers(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const int depths[] = { 1, 2, 5 };
    for (int i = 0; i < 3; i++)
        pipeline_case(depths[i], 200, 1000, 0, 100 * WEIR_MSEC, WEIR_ETIMEDOUT);
    pipeline_case(2, 200, 1000, 1, 100 * WEIR_MSEC, WEIR_ETIMEDOUT);
    pipeline_case(2, 200, 1000, 2, 100 * WEIR_MSEC, WEIR_ETIMEDOUT);
    ts_watchdog_disarm();
}

/* ---- a close beside a subscription closing on its own -------------------- */

typedef struct sub_closer {
    weir_sub *sub;
    _Atomic int rc;
} sub_closer;

/*
 * Publish probes to topic, every millisecond, until one finds nobody:
 * its one subscription's weir_sub_close has taken it off the topic.
 * Returns how many probes that subscription still got.
 */
static uint64_t
probe_until_unsubscribed(weir_bus *bus, const char *topic)
{
    for (uint64_t routed = 0;; routed++) {
        weir_bus_stats before, after;
        uint64_t probe = UINT64_MAX;
        assert_int_equal(weir_bus_get_stats(bus, &before), 0);
        int rc = weir_bus_publish(bus, topic, &probe, sizeof(probe), NULL);
        assert_true(rc == 0 || rc == WEIR_ECLOSED); /* shut under the probe */
        assert_int_equal(weir_bus_get_stats(bus, &after), 0);
        if (rc == WEIR_ECLOSED || after.unrouted > before.unrouted)
            return routed;
        ts_sleep_ms(1);
    }
}

static void *
close_sub_thread(void *arg)
{
    sub_closer *c = arg;
    atomic_store(&c->rc, weir_sub_close(c->sub, 10 * WEIR_SEC));
    return NULL;
}

/*
 * A subscription drains in its own weir_sub_close while the bus closes
 * on another thread: its handlers' forwards are still taken, so both
 * closes return 0 and the next stage handles every message.
 */
static void
test_bus_close_waits_for_a_sub_closing_on_its_own(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (int round = 0; round < (int)ts_scale(20); round++) {
        weir_bus *bus = make_bus();
        static stage a, b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        a.bus = b.bus = bus;
        a.next = "b";
        a.work_us = 50;
        sub_closer c = { 0 };
        weir_sub *sb;
        assert_int_equal(weir_bus_subscribe(bus, "a", forward, &a, NULL,
                                            &c.sub), 0);
        assert_int_equal(weir_bus_subscribe(bus, "b", forward, &b, NULL, &sb),
                         0);
        for (uint64_t i = 0; i < 200; i++)
            assert_int_equal(weir_bus_publish(bus, "a", &i, sizeof(i), NULL),
                             0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, close_sub_thread, &c), 0);
        uint64_t n = 200 + probe_until_unsubscribed(bus, "a");
        int rc = weir_bus_close(bus, 10 * WEIR_SEC);
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&c.rc), 0);
        assert_int_equal(rc, 0);
        assert_int_equal(atomic_load(&a.handled), n);
        assert_int_equal(atomic_load(&a.forwarded), n);
        assert_int_equal(atomic_load(&b.handled), n);
        weir_bus_stats bs;
        assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
        assert_int_equal(bs.forwards_refused, 0);
        weir_bus_destroy(bus);
    }
    ts_watchdog_disarm();
}

/* ---- closes side by side, and what a sealed bus counts ------------------- */

static int
slow_count(const weir_msg *m, void *ctx)
{
    (void)m;
    ts_sleep_ms(5);
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
    return 0;
}

/*
 * A slow subscription closing on its own (WEIR_FOREVER) beside a bus
 * close with 20 ms: the bus close runs out of time waiting for it, but
 * nothing of the bus's was left, so it returns 0; the subscription's
 * close drains everything.
 */
static void
test_bus_close_beside_a_slow_sub_close_left_nothing(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    static _Atomic uint64_t done;
    atomic_store(&done, 0);
    sub_closer c = { 0 };
    assert_int_equal(weir_bus_subscribe(bus, "x", slow_count, &done, NULL,
                                        &c.sub), 0);
    for (uint64_t i = 0; i < 10; i++)
        assert_int_equal(weir_bus_publish(bus, "x", &i, sizeof(i), NULL), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, close_sub_thread, &c), 0);
    uint64_t n = 10 + probe_until_unsubscribed(bus, "x");
    int rc = weir_bus_close(bus, 20 * WEIR_MSEC);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&c.rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&done), n);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- a close racing publishers and forwards ------------------------------ */

/*
 * Three threads publish to t, whose handler forwards each message to u,
 * while the bus closes: more threads than cores, the close racing both
 * the publishers and the forwards.  Every publish was refused
 * (WEIR_ECLOSED) or is in the books of both stages; with time to drain,
 * both stages handled all of them; with none, what is left is counted.
 */
static void
test_bus_close_under_publishers_and_forwards(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    for (int round = 0; round < 2 * (int)ts_scale(10); round++) {
        bool quick = round % 2;
        static closing_race c;
        static stage a, b;
        memset(&c, 0, sizeof(c));
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        c.bus = a.bus = b.bus = make_bus();
        a.next = "u";
        weir_sub *sa, *sb;
        assert_int_equal(weir_bus_subscribe(c.bus, "t", forward, &a, NULL, &sa),
                         0);
        assert_int_equal(weir_bus_subscribe(c.bus, "u", forward, &b, NULL, &sb),
                         0);
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, publish_until_closed,
                                            &c), 0);
        wait_until(published_some, &c);
        int rc = weir_bus_close(c.bus, quick ? WEIR_NOWAIT : 10 * WEIR_SEC);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&c.failures), 0);
        uint64_t in = atomic_load(&c.published);
        weir_sub_stats st, su;
        weir_bus_stats bs;
        assert_int_equal(weir_sub_get_stats(sa, &st), 0);
        assert_int_equal(weir_sub_get_stats(sb, &su), 0);
        assert_int_equal(weir_bus_get_stats(c.bus, &bs), 0);
        assert_int_equal(st.routed, in);
        assert_int_equal(st.in_flight + su.in_flight, 0);
        assert_int_equal(st.routed, st.acked + st.queued);
        assert_int_equal(st.acked, atomic_load(&a.handled));
        assert_int_equal(st.acked, atomic_load(&a.forwarded) +
                                       atomic_load(&a.refused));
        assert_int_equal(atomic_load(&a.other), 0);
        assert_int_equal(su.routed, atomic_load(&a.forwarded));
        assert_int_equal(su.routed, su.acked + su.queued);
        assert_int_equal(bs.forwards_refused, atomic_load(&a.refused));
        assert_int_equal(bs.published, in + atomic_load(&a.forwarded));
        if (!quick) {
            assert_int_equal(rc, 0);
            assert_int_equal(atomic_load(&b.handled), in);
        }
        weir_bus_destroy(c.bus);
    }
    ts_watchdog_disarm();
}

/* ---- a forward the seal cuts short --------------------------------------- */

typedef struct fwd2 {
    weir_bus *bus;
    _Atomic uint64_t ok, refused, other;
} fwd2;

static int
forward_to_b(const weir_msg *m, void *ctx)
{
    fwd2 *f = ctx;
    int rc = weir_bus_publish(f->bus, "b", weir_msg_data(m), weir_msg_size(m),
                              NULL);
    atomic_fetch_add(rc == 0 ? &f->ok
                     : rc == WEIR_ECLOSED ? &f->refused : &f->other, 1);
    return 0;
}

/*
 * Two workers of "a" forward to "b", which has two subscriptions, while
 * the bus is closed with 0 to 2 ms to drain.  Every forward that returned
 * 0 is in each subscription's books, routed or (refused by the seal)
 * rejected; one that only some of them took counts in forwards_refused
 * and makes the close say it ran out of time.  Before the fix, the seal
 * could shut one queue while a forward was being placed: routed by one
 * subscription, in no book of the other, and close returned 0.
 */
static void
test_bus_close_never_half_places_a_forward(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    uint64_t n = ts_scale(20000);
    for (int round = 0; round < 20; round++) {
        static fwd2 f;
        static _Atomic uint64_t sink;
        memset(&f, 0, sizeof(f));
        f.bus = make_bus();
        weir_sub *a, *b1, *b2;
        weir_sub_opts two = { .workers = 2 };
        assert_int_equal(weir_bus_subscribe(f.bus, "b", count_any, &sink, NULL,
                                            &b1), 0);
        assert_int_equal(weir_bus_subscribe(f.bus, "b", count_any, &sink, NULL,
                                            &b2), 0);
        assert_int_equal(weir_bus_subscribe(f.bus, "a", forward_to_b, &f,
                                            &two, &a), 0);
        for (uint64_t i = 0; i < n; i++)
            assert_int_equal(weir_bus_publish(f.bus, "a", &i, sizeof(i),
                                              NULL), 0);
        int rc = weir_bus_close(f.bus, (round % 5) * WEIR_MSEC / 2);
        assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
        weir_sub_stats x = stats_of(b1), y = stats_of(b2);
        weir_bus_stats bs;
        assert_int_equal(weir_bus_get_stats(f.bus, &bs), 0);
        uint64_t ok = atomic_load(&f.ok), refused = atomic_load(&f.refused);
        assert_int_equal(atomic_load(&f.other), 0);
        /*
         * Each forward that returned 0 is routed or rejected by each;
         * one refused by every subscription (WEIR_ECLOSED) is routed by
         * none, and rejected by those it waited for.
         */
        const weir_sub_stats *b[] = { &x, &y };
        for (int k = 0; k < 2; k++) {
            assert_true(b[k]->routed <= ok);
            assert_true(b[k]->routed + b[k]->rejected >= ok);
            assert_true(b[k]->routed + b[k]->rejected <= ok + refused);
        }
        assert_true(bs.forwards_refused >= refused);
        if (x.routed != ok || y.routed != ok) {
            assert_true(bs.forwards_refused > refused);
            assert_int_equal(rc, WEIR_ETIMEDOUT);
        }
        weir_bus_destroy(f.bus);
    }
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_close_drains_pipelines_of_any_depth),
        cmocka_unit_test(test_bus_close_out_of_time_counts_pipeline_leftovers),
        cmocka_unit_test(test_bus_close_waits_for_a_sub_closing_on_its_own),
        cmocka_unit_test(test_bus_close_beside_a_slow_sub_close_left_nothing),
        cmocka_unit_test(test_bus_close_under_publishers_and_forwards),
        cmocka_unit_test(test_bus_close_never_half_places_a_forward),
    };
    return cmocka_run_group_tests_name("drain", tests, ts_watchdog_group,
                                       NULL);
}
