/* SPDX-License-Identifier: MIT */
/*
 * test_place.c - a subscription's queue as the bus uses it (lib/bus/place.c):
 * overflow policies with exact counts, waiting for room, a batch in a
 * worker's hand, and publishers waiting for room while subscriptions
 * come, go and close.
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

/* ---- overflow policies, exact counts ------------------------------------ */

static int
gy_done_2(void *arg)
{
    return atomic_load(&((gate *)arg)->done) >= 2;
}

/*
 * A subscription of "t" with capacity 1 whose handler g holds: message 0
 * in the handler, message 1 queued, so it is full.
 */
static weir_sub *
full_gated(weir_bus *bus, gate *g)
{
    weir_sub_opts one = { .capacity = 1 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", gated, g, &one, &s), 0);
    for (uint64_t seq = 0; seq < 2; seq++) {
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         0);
        if (seq == 0)
            wait_until(entered_one, g);
    }
    return s;
}

/*
 * Capacity 4, one worker held inside the handler with message 0: the
 * queue then takes exactly 4 more (1..4) before its policy applies to
 * messages 5..9.  Returns how many of 5..9 the publish refused.
 */
static void
overflow_case(weir_overflow policy, const int *want_rc, uint64_t want_dropped,
              uint64_t want_rejected, const uint64_t *want_order, int handled)
{
    weir_bus *bus = make_bus();
    static gate g;
    gate_init(&g);
    weir_sub_opts so = { .capacity = 4, .overflow = policy };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", gated, &g, &so, &s), 0);
    uint64_t seq = 0;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL), 0);
    wait_until(entered_one, &g);
    weir_pub_opts po = { .timeout_ns = 20 * WEIR_MSEC };
    for (seq = 1; seq < 10; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &po),
                         seq < 5 ? 0 : want_rc[seq - 5]);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.dropped, want_dropped);
    assert_int_equal(st.rejected, want_rejected);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.in_flight, 1);
    assert_int_equal(st.high_water, 1);
    assert_int_equal(st.routed, st.acked + st.failed + st.dropped + st.queued +
                                    st.in_flight);
    gate_open(&g);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&g.entered), handled);
    for (int i = 0; i < handled; i++)
        assert_int_equal(atomic_load(&g.got[i]), want_order[i]);
    assert_settled(s, st.routed);
    weir_bus_destroy(bus);
    gate_fini(&g);
}

static void
test_bus_overflow_policies_exact_counts(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    const int ok[5] = { 0, 0, 0, 0, 0 };
    const int again[5] = { WEIR_EAGAIN, WEIR_EAGAIN, WEIR_EAGAIN, WEIR_EAGAIN,
                           WEIR_EAGAIN };
    const int timedout[5] = { WEIR_ETIMEDOUT, WEIR_ETIMEDOUT, WEIR_ETIMEDOUT,
                              WEIR_ETIMEDOUT, WEIR_ETIMEDOUT };
    const uint64_t first[5] = { 0, 1, 2, 3, 4 };
    const uint64_t newest[5] = { 0, 6, 7, 8, 9 };
    overflow_case(WEIR_OVERFLOW_REJECT, again, 0, 5, first, 5);
    overflow_case(WEIR_OVERFLOW_DROP_NEWEST, ok, 5, 0, first, 5);
    overflow_case(WEIR_OVERFLOW_DROP_OLDEST, ok, 5, 0, newest, 5);
    overflow_case(WEIR_OVERFLOW_BLOCK, timedout, 0, 5, first, 5);
    ts_watchdog_disarm();
}

static void
test_bus_block_policy_waits_for_room(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    static gate g;
    gate_init(&g);
    weir_sub *s = full_gated(bus, &g);
    uint64_t seq;
    pthread_t th;
    /* Before the thread starts: its 50 ms then all fall after t0. */
    int64_t t0 = ts_now_ns();
    assert_int_equal(pthread_create(&th, NULL, open_later, &g), 0);
    seq = 2; /* default options: blocks without limit */
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL), 0);
    assert_true(ts_now_ns() - t0 >= 40 * WEIR_MSEC);
    pthread_join(th, NULL);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_settled(s, 3);
    weir_bus_destroy(bus);
    gate_fini(&g);
    ts_watchdog_disarm();
}

/* ---- more publishers inside a publish than the bus has read slots ------- */

enum { CROWD = 80 }; /* the bus keeps 64 slots; the rest count in shared */

typedef struct crowd {
    weir_bus *bus;
    weir_sub *victim;
    _Atomic int failures;
} crowd;

static void *
crowd_publisher(void *arg)
{
    crowd *c = arg;
    uint64_t seq = 7;
    if (weir_bus_publish(c->bus, "t", &seq, sizeof(seq), NULL) != 0)
        atomic_fetch_add(&c->failures, 1);
    return NULL;
}

static void *
crowd_closer(void *arg)
{
    crowd *c = arg;
    if (weir_sub_close(c->victim, WEIR_FOREVER) != 0)
        atomic_fetch_add(&c->failures, 1);
    return NULL;
}

static int
routed_all(void *arg)
{
    weir_sub_stats st;
    weir_sub_get_stats(((crowd *)arg)->victim, &st);
    return st.routed >= CROWD + 2;
}

/*
 * CROWD publishers blocked on a full queue, each inside its publish (64 in
 * the bus's read slots, the rest in the shared counters), while another
 * subscription of the topic closes: its close must wait for all of them
 * (sanitizers catch it if not), and everything completes once the queue
 * drains.
 */
static void
test_bus_crowded_publishers_and_close(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static gate g;
    gate_init(&g);
    crowd c = { .bus = make_bus() };
    _Atomic uint64_t victim_count = 0;
    weir_sub_opts big = { .capacity = 4 * CROWD };
    assert_int_equal(weir_bus_subscribe(c.bus, "t", count_any, &victim_count,
                                        &big, &c.victim), 0);
    weir_sub_opts one = { .capacity = 1 };
    weir_sub *held;
    assert_int_equal(weir_bus_subscribe(c.bus, "t", gated, &g, &one, &held), 0);
    uint64_t seq = 0;
    assert_int_equal(weir_bus_publish(c.bus, "t", &seq, sizeof(seq), NULL), 0);
    wait_until(entered_one, &g);
    assert_int_equal(weir_bus_publish(c.bus, "t", &seq, sizeof(seq), NULL), 0);
    pthread_t pub[CROWD], closer;
    for (int i = 0; i < CROWD; i++)
        assert_int_equal(pthread_create(&pub[i], NULL, crowd_publisher, &c), 0);
    /* The victim comes first in the topic: each publisher has passed it. */
    wait_until(routed_all, &c);
    assert_int_equal(pthread_create(&closer, NULL, crowd_closer, &c), 0);
    ts_sleep_ms(20);
    gate_open(&g);
    for (int i = 0; i < CROWD; i++)
        pthread_join(pub[i], NULL);
    pthread_join(closer, NULL);
    assert_int_equal(atomic_load(&c.failures), 0);
    assert_int_equal(atomic_load(&victim_count), CROWD + 2);
    assert_int_equal(weir_bus_close(c.bus, 10 * WEIR_SEC), 0);
    assert_settled(held, CROWD + 2);
    weir_bus_destroy(c.bus);
    gate_fini(&g);
    ts_watchdog_disarm();
}

/* ---- a publish blocked on one subscription holds up no other ------------- */

static int
three_counted(void *arg)
{
    return atomic_load((_Atomic uint64_t *)arg) >= 3;
}

/*
 * A publish waiting for room in a full BLOCK queue has already placed its
 * message with the topic's other subscriptions, whose workers handle it
 * meanwhile (the watchdog fails the case if they cannot).
 */
static void
test_bus_blocked_publish_holds_up_no_other_sub(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static gate g;
    gate_init(&g);
    crowd p = { .bus = make_bus() };
    weir_sub_opts one = { .capacity = 1 };
    weir_sub *full, *other;
    assert_int_equal(weir_bus_subscribe(p.bus, "t", gated, &g, &one, &full), 0);
    _Atomic uint64_t counted = 0;
    assert_int_equal(weir_bus_subscribe(p.bus, "t", count_any, &counted, NULL,
                                        &other), 0);
    for (uint64_t seq = 0; seq < 2; seq++) {
        assert_int_equal(weir_bus_publish(p.bus, "t", &seq, sizeof(seq), NULL),
                         0);
        if (seq == 0)
            wait_until(entered_one, &g); /* the first is held, the second
                                            queued */
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, crowd_publisher, &p), 0);
    wait_until(three_counted, &counted);
    gate_open(&g);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&p.failures), 0);
    assert_int_equal(weir_bus_close(p.bus, 10 * WEIR_SEC), 0);
    assert_settled(full, 3);
    assert_settled(other, 3);
    weir_bus_destroy(p.bus);
    gate_fini(&g);
    ts_watchdog_disarm();
}

/* ---- capacity while a worker holds a batch ------------------------------- */

static int
entered_two(void *arg)
{
    return atomic_load(&((gate *)arg)->entered) >= 2;
}

/*
 * REJECT, capacity 64.  The worker is held at message 0 while 1..64 fill
 * the queue, then takes all 64 at once and is held at 1: the 64 it holds
 * are in flight, not queued, so 65..128 fit and only 129 is refused.
 * Every message then arrives whole and in order.  The subscription is its
 * topic's only one (ALONE: messages written into its inbox), the first
 * of two (FIRST: its inbox carries shared messages), or the second (SECOND:
 * a plain queue).
 */
enum held_sub { ALONE, FIRST, SECOND };

static void
capacity_with_batch_in_hand(enum held_sub how)
{
    weir_bus *bus = make_bus();
    static gate g;
    gate_init(&g);
    _Atomic uint64_t counted = 0;
    weir_sub *other = NULL, *s;
    weir_sub_opts so = { .capacity = 64, .overflow = WEIR_OVERFLOW_REJECT };
    if (how == SECOND)
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &counted, NULL,
                                            &other), 0);
    assert_int_equal(weir_bus_subscribe(bus, "t", gated, &g, &so, &s), 0);
    if (how == FIRST)
        assert_int_equal(weir_bus_subscribe(bus, "t", count_any, &counted, NULL,
                                            &other), 0);
    uint64_t seq = 0;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL), 0);
    wait_until(entered_one, &g);
    for (seq = 1; seq <= 65; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         seq <= 64 ? 0 : WEIR_EAGAIN);
    gate_pass(&g, 1);
    wait_until(entered_two, &g);
    for (seq = 65; seq <= 129; seq++)
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), NULL),
                         seq <= 128 ? 0 : WEIR_EAGAIN);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.routed, 129);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.in_flight, 64);
    assert_int_equal(st.queued, 64);
    assert_true(st.high_water >= 64);
    gate_open(&g);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&g.entered), 129);
    for (int i = 0; i < 129; i++)
        assert_int_equal(atomic_load(&g.got[i]), (uint64_t)i);
    assert_settled(s, 129);
    if (how != ALONE)
        assert_settled(other, 131);
    weir_bus_destroy(bus);
    gate_fini(&g);
}

static void
test_bus_capacity_with_a_batch_in_hand(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    capacity_with_batch_in_hand(ALONE);
    capacity_with_batch_in_hand(FIRST);
    capacity_with_batch_in_hand(SECOND);
    ts_watchdog_disarm();
}

/* ---- publishers waiting for room hold up no subscribe or close ----------- */

typedef struct holder {
    weir_bus *bus;
    weir_sub *idle;            /* another subscription of t, closed by act */
    bool in_handler;           /* act from the held handler, else the test */
    _Atomic int entered, go, acted, sub_rc, close_rc;
    _Atomic uint64_t count, sink;
} holder;

/* Subscribe to t, and close another subscription of it. */
static void
act(holder *h)
{
    weir_sub *x;
    atomic_store(&h->sub_rc, weir_bus_subscribe(h->bus, "t", count_any,
                                                &h->sink, NULL, &x));
    atomic_store(&h->close_rc, weir_sub_close(h->idle, WEIR_NOWAIT));
    atomic_store(&h->acted, 1);
}

/* The first message is held until go (then acts, if in_handler). */
static int
holding(const weir_msg *m, void *ctx)
{
    (void)m;
    holder *h = ctx;
    if (atomic_fetch_add(&h->count, 1) == 0) {
        atomic_store(&h->entered, 1);
        int64_t until = ts_now_ns() + 30 * WEIR_SEC;
        while (!atomic_load(&h->go) && ts_now_ns() < until)
            ts_sleep_ms(1);
        if (h->in_handler)
            act(h);
    }
    return 0;
}

static int
fail_always(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return -1;
}

static void *
publish_blocking(void *arg)
{
    holder *h = arg;
    uint64_t seq = 2;
    atomic_store(&h->sub_rc, weir_bus_publish(h->bus, "t", &seq, sizeof(seq),
                                              NULL));
    return NULL;
}

static int
holder_entered(void *arg)
{
    return atomic_load(&((holder *)arg)->entered);
}

static int
holder_acted(void *arg)
{
    return atomic_load(&((holder *)arg)->acted);
}

static int
holder_handled_3(void *arg)
{
    return atomic_load(&((holder *)arg)->count) >= 3;
}

/*
 * A's queue (capacity 1, BLOCK) is full and its handler held; a third
 * message waits for room in it, sent by a thread (how 0), the bus's
 * delay thread (1) or a dead-letter relay (2).  Subscribing to A's topic
 * and closing another subscription of it must not wait for that
 * publisher, from a plain thread while A is held, and from A's own
 * handler, which is what would make room.
 */
static void
test_bus_waiting_publisher_holds_up_no_subscribe_or_close(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    for (int in_handler = 0; in_handler < 2; in_handler++) {
        for (int how = 0; how < 3; how++) {
            static holder h;
            memset(&h, 0, sizeof(h));
            h.bus = make_bus();
            h.in_handler = in_handler;
            weir_sub *a, *d;
            weir_sub_opts one = { .capacity = 1 };
            assert_int_equal(weir_bus_subscribe(h.bus, "t", holding, &h, &one,
                                                &a), 0);
            assert_int_equal(weir_bus_subscribe(h.bus, "t", count_any, &h.sink,
                                                NULL, &h.idle), 0);
            for (uint64_t seq = 0; seq < 2; seq++) {
                assert_int_equal(weir_bus_publish(h.bus, "t", &seq, sizeof(seq),
                                                  NULL), 0);
                wait_until(holder_entered, &h);
            }
            pthread_t th;
            if (how == 0) {
                assert_int_equal(pthread_create(&th, NULL, publish_blocking,
                                                &h), 0);
            } else if (how == 1) {
                weir_pub_opts later = { .delay_ns = WEIR_MSEC };
                assert_int_equal(weir_bus_publish(h.bus, "t", "d", 1, &later),
                                 0);
            } else {
                weir_sub_opts dl = { .dead_letter_topic = "t" };
                assert_int_equal(weir_bus_subscribe(h.bus, "src", fail_always,
                                                    NULL, &dl, &d), 0);
                assert_int_equal(weir_bus_publish(h.bus, "src", "x", 1, NULL),
                                 0);
            }
            ts_sleep_ms(20); /* let the third one reach the full queue */
            if (!in_handler) {
                act(&h); /* returns while A is still held */
                assert_int_equal(atomic_load(&h.count), 1);
                atomic_store(&h.go, 1);
            } else {
                atomic_store(&h.go, 1);
                wait_until(holder_acted, &h);
            }
            assert_int_equal(atomic_load(&h.sub_rc), 0);
            assert_int_equal(atomic_load(&h.close_rc), 0);
            if (how == 0) {
                pthread_join(th, NULL);
                assert_int_equal(atomic_load(&h.sub_rc), 0); /* the publish */
            }
            wait_until(holder_handled_3, &h);
            assert_int_equal(weir_bus_close(h.bus, 10 * WEIR_SEC), 0);
            assert_settled(a, 3);
            weir_bus_destroy(h.bus);
        }
    }
    ts_watchdog_disarm();
}

/* ---- a publish waiting for room when its subscription goes --------------- */

typedef struct late {
    weir_bus *bus;
    gate *g;
    weir_sub *aborting;            /* if set, also wait for its drain to
                                      give up */
    _Atomic int rc, done;
} late;

static void *
publish_third(void *arg)
{
    late *l = arg;
    uint64_t seq = 2;
    atomic_store(&l->rc, weir_bus_publish(l->bus, "t", &seq, sizeof(seq),
                                          NULL));
    atomic_store(&l->done, 1);
    return NULL;
}

/*
 * Open the gate once the waiting publish has returned and, if set, the
 * close of l->aborting has given up draining (or after 10 s).
 */
static void *
open_after_third(void *arg)
{
    late *l = arg;
    int64_t until = ts_now_ns() + 10 * WEIR_SEC;
    while ((!atomic_load(&l->done) ||
            (l->aborting != NULL && !atomic_load(&l->aborting->abort))) &&
           ts_now_ns() < until)
        ts_sleep_ms(1);
    gate_open(l->g);
    return NULL;
}

/*
 * Capacity 1, its handler held: one message handled, one queued, a third
 * waiting for room.  When the bus (or the subscription) is closed with
 * 20 ms to drain, the third reached nobody: its publish returns
 * WEIR_ECLOSED and it is not counted published.
 */
static void
test_bus_publish_waiting_at_close_returns_eclosed(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (int whole_bus = 0; whole_bus < 2; whole_bus++) {
        static gate g;
        static late l;
        gate_init(&g);
        memset(&l, 0, sizeof(l));
        l.bus = make_bus();
        l.g = &g;
        weir_sub *s = full_gated(l.bus, &g);
        /*
         * Held until the close has given up draining (white-box: s->abort):
         * let go as soon as the publish returned, the worker could empty
         * the queue before a descheduled close got to its drain, which
         * then had nothing left to time out on.
         */
        l.aborting = s;
        pthread_t p, opener;
        assert_int_equal(pthread_create(&p, NULL, publish_third, &l), 0);
        ts_sleep_ms(20);
        assert_int_equal(pthread_create(&opener, NULL, open_after_third, &l),
                         0);
        weir_sub_stats st;
        if (whole_bus) {
            assert_int_equal(weir_bus_close(l.bus, 20 * WEIR_MSEC),
                             WEIR_ETIMEDOUT);
            assert_int_equal(weir_sub_get_stats(s, &st), 0);
        } else {
            int rc = weir_sub_close_stats(s, 20 * WEIR_MSEC, &st);
            assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
        }
        pthread_join(p, NULL);
        pthread_join(opener, NULL);
        assert_int_equal(atomic_load(&l.rc), WEIR_ECLOSED);
        assert_int_equal(st.routed, 2);
        assert_int_equal(st.routed, st.acked + st.queued);
        assert_int_equal(st.in_flight, 0);
        weir_bus_stats bs;
        assert_int_equal(weir_bus_get_stats(l.bus, &bs), 0);
        assert_int_equal(bs.published, 2);
        weir_bus_destroy(l.bus);
        gate_fini(&g);
    }
    ts_watchdog_disarm();
}

/*
 * A publish that must wait for room in two full queues (A, then Y) waits
 * on one at a time and holds on to neither meanwhile: once Y empties,
 * closing it, from a plain thread or from A's handler (which is what
 * would let the publish go on), returns at once.
 */
static void
test_bus_close_of_a_sub_a_publish_will_wait_on_later(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (int in_handler = 0; in_handler < 2; in_handler++) {
        static holder h;
        static gate gy;
        memset(&h, 0, sizeof(h));
        gate_init(&gy);
        h.bus = make_bus();
        h.in_handler = in_handler;
        weir_sub *a;
        weir_sub_opts one = { .capacity = 1 };
        assert_int_equal(weir_bus_subscribe(h.bus, "t", holding, &h, &one, &a),
                         0);
        assert_int_equal(weir_bus_subscribe(h.bus, "t", gated, &gy, &one,
                                            &h.idle), 0);
        for (uint64_t seq = 0; seq < 2; seq++) {
            assert_int_equal(weir_bus_publish(h.bus, "t", &seq, sizeof(seq),
                                              NULL), 0);
            wait_until(holder_entered, &h);
            wait_until(entered_one, &gy);
        }
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, publish_blocking, &h), 0);
        ts_sleep_ms(20); /* the publish now waits on A, Y still full */
        gate_open(&gy);  /* Y empties and goes idle */
        wait_until(gy_done_2, &gy);
        if (!in_handler) {
            act(&h);
            assert_int_equal(atomic_load(&h.count), 1); /* A still held */
            atomic_store(&h.go, 1);
        } else {
            atomic_store(&h.go, 1);
            wait_until(holder_acted, &h);
        }
        assert_int_equal(atomic_load(&h.close_rc), 0);
        pthread_join(th, NULL);
        /* the publish: A took it */
        assert_int_equal(atomic_load(&h.sub_rc), 0);
        wait_until(holder_handled_3, &h);
        assert_int_equal(weir_bus_close(h.bus, 10 * WEIR_SEC), 0);
        assert_settled(a, 3);
        weir_bus_destroy(h.bus);
        gate_fini(&gy);
    }
    ts_watchdog_disarm();
}

/*
 * A publish that one subscription rejects by its policy (REJECT, full)
 * and another refuses because it closed while the publish waited for
 * room reached nobody, but not for a close alone: WEIR_EAGAIN, and it
 * counts as published, as R counts it rejected.
 */
static void
test_bus_publish_refused_by_policy_and_close_is_eagain(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static gate gr, gy;
    static late l;
    gate_init(&gr);
    gate_init(&gy);
    memset(&l, 0, sizeof(l));
    l.bus = make_bus();
    l.g = &gy;
    weir_sub_opts rej = { .capacity = 1, .overflow = WEIR_OVERFLOW_REJECT };
    weir_sub_opts one = { .capacity = 1 };
    weir_sub *r, *y;
    assert_int_equal(weir_bus_subscribe(l.bus, "t", gated, &gr, &rej, &r), 0);
    assert_int_equal(weir_bus_subscribe(l.bus, "t", gated, &gy, &one, &y), 0);
    for (uint64_t seq = 0; seq < 2; seq++) {
        assert_int_equal(weir_bus_publish(l.bus, "t", &seq, sizeof(seq), NULL),
                         0);
        wait_until(entered_one, &gr);
        wait_until(entered_one, &gy);
    }
    pthread_t p, opener;
    assert_int_equal(pthread_create(&p, NULL, publish_third, &l), 0);
    ts_sleep_ms(20);
    assert_int_equal(pthread_create(&opener, NULL, open_after_third, &l), 0);
    int rc = weir_sub_close(y, 10 * WEIR_SEC);
    assert_true(rc == 0);
    pthread_join(p, NULL);
    pthread_join(opener, NULL);
    assert_int_equal(atomic_load(&l.rc), WEIR_EAGAIN);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(l.bus, &bs), 0);
    assert_int_equal(bs.published, 3);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(r, &st), 0);
    assert_int_equal(st.rejected, 1);
    gate_open(&gr);
    assert_int_equal(weir_bus_close(l.bus, 10 * WEIR_SEC), 0);
    weir_bus_destroy(l.bus);
    gate_fini(&gr);
    gate_fini(&gy);
    ts_watchdog_disarm();
}

/* ---- one meaning for each time value ------------------------------------- */

/*
 * A full BLOCK subscription: a publish with .timeout_ns = WEIR_NOWAIT is
 * refused at once (WEIR_EAGAIN, counted rejected); with WEIR_FOREVER,
 * and with zeroed options (the default), it waits for room.
 */
static void
test_bus_publish_timeout_sentinels(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    static gate g;
    gate_init(&g);
    weir_sub *s = full_gated(bus, &g);
    weir_pub_opts nowait = { .timeout_ns = WEIR_NOWAIT };
    uint64_t seq = 2;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &nowait),
                     WEIR_EAGAIN);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.rejected, 1);
    /* A bad value stays bad. */
    weir_pub_opts bad = { .timeout_ns = WEIR_NOWAIT - 1 };
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &bad),
                     WEIR_EINVAL);
    /* FOREVER and the zeroed default wait until the handler makes room. */
    weir_pub_opts forever = { .timeout_ns = WEIR_FOREVER };
    weir_pub_opts zeroed = { 0 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, open_later, &g), 0);
    seq = 2;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &forever),
                     0);
    seq = 3;
    assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &zeroed), 0);
    pthread_join(th, NULL);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_settled(s, 4);
    weir_bus_destroy(bus);
    gate_fini(&g);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_overflow_policies_exact_counts),
        cmocka_unit_test(test_bus_block_policy_waits_for_room),
        cmocka_unit_test(test_bus_crowded_publishers_and_close),
        cmocka_unit_test(test_bus_blocked_publish_holds_up_no_other_sub),
        cmocka_unit_test(test_bus_capacity_with_a_batch_in_hand),
        cmocka_unit_test(
            test_bus_waiting_publisher_holds_up_no_subscribe_or_close),
        cmocka_unit_test(test_bus_publish_waiting_at_close_returns_eclosed),
        cmocka_unit_test(test_bus_close_of_a_sub_a_publish_will_wait_on_later),
        cmocka_unit_test(
            test_bus_publish_refused_by_policy_and_close_is_eagain),
        cmocka_unit_test(test_bus_publish_timeout_sentinels),
    };
    return cmocka_run_group_tests_name("place", tests, ts_watchdog_group, NULL);
}
