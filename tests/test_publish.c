/* SPDX-License-Identifier: MIT */
/*
 * test_publish.c - publishing: fan-out, what a message carries (copies, key,
 * stamp), messages written in place or shared, racing publishers, and
 * handlers publishing to their own full queue.
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

/* ---- fan-out ------------------------------------------------------------- */

static void
fan_out(unsigned subs, uint64_t messages)
{
    weir_bus *bus = make_bus();
    recorder *r = calloc(subs, sizeof(*r));
    weir_sub **s = calloc(subs, sizeof(*s));
    assert_non_null(r);
    assert_non_null(s);
    for (unsigned i = 0; i < subs; i++)
        assert_int_equal(weir_bus_subscribe(bus, "orders.created", record,
                                            &r[i], NULL, &s[i]), 0);
    for (uint64_t seq = 0; seq < messages; seq++)
        assert_int_equal(weir_bus_publish(bus, "orders.created", &seq,
                                          sizeof(seq), NULL), 0);
    for (unsigned i = 0; i < subs; i++) {
        wait_count(&r[i], messages);
        assert_int_equal(atomic_load(&r[i].disorder), 0);
    }
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    for (unsigned i = 0; i < subs; i++) {
        assert_int_equal(atomic_load(&r[i].count), messages);
        assert_settled(s[i], messages);
    }
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, messages);
    assert_int_equal(bs.unrouted, 0);
    weir_bus_destroy(bus);
    free(r);
    free(s);
}

static void
test_bus_fan_out_1_2_16(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    fan_out(1, ts_scale(100000));
    fan_out(2, ts_scale(50000));
    fan_out(16, ts_scale(10000));
    ts_watchdog_disarm();
}

/* ---- message contents ---------------------------------------------------- */

typedef struct seen {
    char topic[64], key[64], data[64];
    int has_key;
    size_t size;
    unsigned attempt;
    int aligned;
    int64_t ts;
    _Atomic int done;
} seen;

static int
inspect(const weir_msg *m, void *ctx)
{
    seen *s = ctx;
    snprintf(s->topic, sizeof(s->topic), "%s", weir_msg_topic(m));
    s->has_key = weir_msg_key(m) != NULL;
    if (s->has_key)
        snprintf(s->key, sizeof(s->key), "%s", weir_msg_key(m));
    s->size = weir_msg_size(m);
    memcpy(s->data, weir_msg_data(m), s->size < 64 ? s->size : 64);
    s->attempt = weir_msg_attempt(m);
    s->aligned = (uintptr_t)weir_msg_data(m) % _Alignof(max_align_t) == 0;
    s->ts = weir_msg_timestamp_ns(m);
    atomic_fetch_add(&s->done, 1);
    return 0;
}

static int
seen_one(void *arg)
{
    return atomic_load(&((seen *)arg)->done) > 0;
}

static void
test_bus_message_carries_copies(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    seen s;
    memset(&s, 0, sizeof(s));
    weir_topic *t;
    assert_int_equal(weir_bus_topic(bus, "stock/reserved", &t), 0);
    assert_int_equal(weir_bus_subscribe(bus, "stock/reserved", inspect, &s,
                                        NULL, NULL), 0);
    char key[16] = "sku-42", data[16] = "payload";
    weir_pub_opts po = { .key = key };
    int64_t before = ts_now_ns();
    assert_int_equal(weir_topic_publish(t, data, 8, &po), 0);
    memset(key, 'x', sizeof(key) - 1); /* the bus kept its own copies */
    memset(data, 'y', sizeof(data));
    wait_until(seen_one, &s);
    assert_string_equal(s.topic, "stock/reserved");
    assert_true(s.has_key);
    assert_string_equal(s.key, "sku-42");
    assert_int_equal(s.size, 8);
    assert_string_equal(s.data, "payload");
    assert_int_equal(s.attempt, 1);
    assert_true(s.aligned);
    assert_true(s.ts >= before && s.ts <= ts_now_ns());

    /* No key, no bytes. */
    atomic_store(&s.done, 0);
    assert_int_equal(weir_bus_publish(bus, "stock/reserved", NULL, 0, NULL), 0);
    wait_until(seen_one, &s);
    assert_false(s.has_key);
    assert_int_equal(s.size, 0);
    assert_null(weir_msg_data(NULL));
    assert_int_equal(weir_msg_attempt(NULL), 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/*
 * A message's timestamp is never before a clock reading taken just before
 * its publish, and no later than one taken as it returns but for the few
 * tens of ns a TSC-based stamp may run late (lib/base/clock.c; a microsecond
 * allowed here).  The publishes are spread over ~100 ms, long enough for
 * the stamps to have measured the TSC's rate and serve from it where they
 * can.
 */
#define STAMPS 2000

typedef struct stamps {
    int64_t ts[STAMPS];
    _Atomic unsigned done;
} stamps;

static int
stamp_handler(const weir_msg *m, void *ctx)
{
    stamps *s = ctx;
    unsigned i;
    memcpy(&i, weir_msg_data(m), sizeof(i));
    if (i < STAMPS)
        s->ts[i] = weir_msg_timestamp_ns(m);
    atomic_fetch_add(&s->done, 1);
    return 0;
}

static int
stamps_done(void *arg)
{
    return atomic_load(&((stamps *)arg)->done) == STAMPS;
}

static void
test_bus_timestamps_within_publish(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    static stamps s;
    static int64_t before[STAMPS], after[STAMPS];
    memset(&s, 0, sizeof(s));
    weir_topic *t;
    assert_int_equal(weir_bus_topic(bus, "orders/stamped", &t), 0);
    weir_sub_opts so = { .capacity = STAMPS };
    assert_int_equal(weir_bus_subscribe(bus, "orders/stamped", stamp_handler,
                                        &s, &so, NULL), 0);
    for (unsigned i = 0; i < STAMPS; i++) {
        if (i % 20 == 0)
            ts_sleep_ms(1);
        before[i] = ts_now_ns();
        assert_int_equal(weir_topic_publish(t, &i, sizeof(i), NULL), 0);
        after[i] = ts_now_ns();
    }
    wait_until(stamps_done, &s);
    unsigned outside = 0;
    for (unsigned i = 0; i < STAMPS; i++)
        outside += s.ts[i] < before[i] || s.ts[i] > after[i] + WEIR_USEC;
    assert_int_equal(outside, 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- a lone subscription's messages: written in place or shared -------- */

/*
 * The key message seq carries: none, one short enough to be written in
 * place with the message, or one too long for that.
 */
static const char *
key_for(uint64_t seq, char *buf, size_t cap)
{
    if (seq % 3 == 0)
        return NULL;
    if (seq % 3 == 1)
        snprintf(buf, cap, "k%u", (unsigned)(seq % 10));
    else
        snprintf(buf, cap, "a key too long to sit in a slot %llu",
                 (unsigned long long)seq);
    return buf;
}

typedef struct keyed_log {
    _Atomic uint64_t count;
    _Atomic uint64_t first;        /* the first sequence number seen */
    _Atomic int bad;               /* messages out of order or not as sent */
    uint64_t last_seq, last_id;    /* the worker's alone */
} keyed_log;

static int
check_keyed(const weir_msg *m, void *ctx)
{
    keyed_log *l = ctx;
    uint64_t seq;
    char buf[64];
    if (weir_msg_size(m) != sizeof(seq) ||
        strcmp(weir_msg_topic(m), "t") != 0 || weir_msg_attempt(m) != 1 ||
        weir_msg_timestamp_ns(m) <= 0 ||
        weir_msg_timestamp_ns(m) > ts_now_ns()) {
        atomic_fetch_add(&l->bad, 1);
        return -1;
    }
    memcpy(&seq, weir_msg_data(m), sizeof(seq));
    const char *want = key_for(seq, buf, sizeof(buf));
    const char *got = weir_msg_key(m);
    if ((want == NULL) != (got == NULL) ||
        (want != NULL && strcmp(want, got) != 0))
        atomic_fetch_add(&l->bad, 1);
    if (atomic_load(&l->count) == 0)
        atomic_store(&l->first, seq);
    else if (seq != l->last_seq + 1 || weir_msg_id(m) <= l->last_id)
        atomic_fetch_add(&l->bad, 1);
    l->last_seq = seq;
    l->last_id = weir_msg_id(m);
    atomic_fetch_add(&l->count, 1);
    return 0;
}

static void
publish_keyed(weir_bus *bus, uint64_t from, uint64_t to)
{
    char buf[64];
    for (uint64_t seq = from; seq < to; seq++) {
        weir_pub_opts po = { .key = key_for(seq, buf, sizeof(buf)) };
        assert_int_equal(weir_bus_publish(bus, "t", &seq, sizeof(seq), &po), 0);
    }
}

/*
 * While a subscription is its topic's only one, a small message is
 * written straight into its queue (a); once another subscribes, messages
 * are shared (b); when that one leaves, written in place again.  A
 * subscription that arrives second (c) gets a plain queue, and stays on
 * it when a leaves; and one that subscribes to the topic once it is
 * empty again (d) gets messages written in place.  Each sees every
 * message published while it was subscribed, in order, with its key, id
 * and stamp, whichever way the message came.
 */
static void
test_bus_lone_and_shared_messages_keep_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    static keyed_log a, b, c, d;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    memset(&d, 0, sizeof(d));
    weir_sub *sa, *sb, *sc, *sd;
    weir_sub_stats st;
    assert_int_equal(weir_bus_subscribe(bus, "t", check_keyed, &a, NULL, &sa),
                     0);
    publish_keyed(bus, 0, 100);
    assert_int_equal(weir_bus_subscribe(bus, "t", check_keyed, &b, NULL, &sb),
                     0);
    publish_keyed(bus, 100, 200);
    wait_counter(&b.count, 100);
    assert_int_equal(weir_sub_close(sb, 10 * WEIR_SEC), 0);
    publish_keyed(bus, 200, 300);
    assert_int_equal(weir_bus_subscribe(bus, "t", check_keyed, &c, NULL, &sc),
                     0);
    publish_keyed(bus, 300, 350);
    wait_counter(&a.count, 350);
    assert_int_equal(weir_sub_get_stats(sa, &st), 0);
    assert_int_equal(st.routed, 350);
    assert_int_equal(st.acked, 350);
    assert_int_equal(weir_sub_close(sa, 10 * WEIR_SEC), 0);
    publish_keyed(bus, 350, 400);
    wait_counter(&c.count, 100);
    assert_int_equal(weir_sub_get_stats(sc, &st), 0);
    assert_int_equal(st.routed, 100);
    assert_int_equal(st.acked, 100);
    assert_int_equal(weir_sub_close(sc, 10 * WEIR_SEC), 0);
    publish_keyed(bus, 400, 410); /* nobody: unrouted */
    assert_int_equal(weir_bus_subscribe(bus, "t", check_keyed, &d, NULL, &sd),
                     0);
    publish_keyed(bus, 410, 500);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&a.count), 350);
    assert_int_equal(atomic_load(&a.first), 0);
    assert_int_equal(atomic_load(&b.count), 100);
    assert_int_equal(atomic_load(&b.first), 100);
    assert_int_equal(atomic_load(&c.count), 100);
    assert_int_equal(atomic_load(&c.first), 300);
    assert_int_equal(atomic_load(&d.count), 90);
    assert_int_equal(atomic_load(&d.first), 410);
    assert_int_equal(atomic_load(&a.bad) + atomic_load(&b.bad) +
                         atomic_load(&c.bad) + atomic_load(&d.bad), 0);
    assert_settled(sd, 90);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 500);
    assert_int_equal(bs.unrouted, 10);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- no false "full" when publishers race -------------------------------- */

enum { RACERS = 7, RACE_BYTES = 600 };

typedef struct race {
    weir_bus *bus;
    _Atomic uint64_t handled[RACERS];
    _Atomic int refused;           /* publishes that failed */
    size_t each;
} race;

static int
count_racer(const weir_msg *m, void *ctx)
{
    race *r = ctx;
    unsigned char who = ((const unsigned char *)weir_msg_data(m))[0];
    if (who < RACERS)
        atomic_fetch_add(&r->handled[who], 1);
    return 0;
}

/* Publish one message at a time, each only once the one before is handled. */
static void *
racer(void *arg)
{
    race *r = arg;
    static _Atomic unsigned ids;
    unsigned char msg[RACE_BYTES] = { 0 };
    msg[0] = (unsigned char)(atomic_fetch_add(&ids, 1) % RACERS);
    for (size_t i = 0; i < r->each; i++) {
        if (weir_bus_publish(r->bus, "race", msg, sizeof(msg), NULL) != 0)
            atomic_fetch_add(&r->refused, 1);
        unsigned n = 0;
        while (atomic_load(&r->handled[msg[0]]) <= i &&
               atomic_load(&r->refused) == 0)
            ts_backoff(&n);
    }
    return NULL;
}

/*
 * RACERS publishers, each with at most one message in a REJECT queue with
 * room for one more: the queue is never full, so no publish may be
 * refused.  A
 * publisher that read the queue's claim counter, then lost the CPU while
 * the others claimed and the worker took past that reading, once took
 * the difference for a full queue.
 */
static void
test_bus_racing_publishers_never_see_room_as_full(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    static race r;
    memset(&r, 0, sizeof(r));
    r.bus = make_bus();
    r.each = ts_scale(100000);
    weir_sub_opts so = { .capacity = RACERS + 1,
                         .overflow = WEIR_OVERFLOW_REJECT };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(r.bus, "race", count_racer, &r, &so,
                                        &s), 0);
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &r), 0);
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&r.refused), 0);
    assert_int_equal(weir_bus_close(r.bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.rejected, 0);
    assert_settled(s, RACERS * r.each);
    weir_bus_destroy(r.bus);
    ts_watchdog_disarm();
}

/* ---- a handler publishing to its own full queue -------------------------- */

typedef struct self_pub {
    weir_bus *bus;
    unsigned workers;
    int children_each;          /* children a seed publishes */
    int64_t timeout;            /* of those publishes; 0 = none */
    int refusal;                /* the code a refused one must get */
    _Atomic unsigned seeds_in;  /* seed handlers running */
    _Atomic uint64_t ok, refused, other, children;
} self_pub;

/*
 * A seed message (payload 's') publishes children to its own topic; a
 * child ('c') just counts.  Seeds wait (bounded) until every worker
 * holds one, so that all of them publish into the full queue at once.
 */
static int
self_publisher(const weir_msg *m, void *ctx)
{
    self_pub *p = ctx;
    if (*(const char *)weir_msg_data(m) == 'c') {
        atomic_fetch_add(&p->children, 1);
        return 0;
    }
    atomic_fetch_add(&p->seeds_in, 1);
    int64_t until = ts_now_ns() + 5 * WEIR_SEC;
    while (atomic_load(&p->seeds_in) < p->workers && ts_now_ns() < until)
        ts_sleep_ms(1);
    weir_pub_opts po = { .timeout_ns = p->timeout };
    for (int i = 0; i < p->children_each; i++) {
        int rc = weir_bus_publish(p->bus, "loop", "c", 1, &po);
        atomic_fetch_add(rc == 0 ? &p->ok : rc == p->refusal ? &p->refused
                                                             : &p->other, 1);
    }
    return 0;
}

/*
 * Capacity 2, BLOCK: each seed's handler publishes four children to its
 * own topic.  With one worker its third publish would wait for room only
 * it could make; with four, all four would wait so.  The one that would
 * complete the deadlock gets WEIR_EDEADLK at once instead (counted
 * rejected), and everything else goes through.
 */
static void
test_bus_handler_publishing_to_its_own_full_queue(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const unsigned workers[] = { 1, 4 };
    for (int i = 0; i < 2; i++) {
        static self_pub p;
        memset(&p, 0, sizeof(p));
        p.bus = make_bus();
        p.workers = workers[i];
        p.children_each = 4;
        p.refusal = WEIR_EDEADLK;
        weir_sub_opts so = { .capacity = 2, .workers = workers[i] };
        weir_sub *s;
        assert_int_equal(weir_bus_subscribe(p.bus, "loop", self_publisher, &p,
                                            &so, &s), 0);
        for (unsigned k = 0; k < workers[i]; k++)
            assert_int_equal(weir_bus_publish(p.bus, "loop", "s", 1, NULL), 0);
        assert_int_equal(weir_bus_close(p.bus, 10 * WEIR_SEC), 0);
        uint64_t tries = 4 * (uint64_t)workers[i];
        assert_int_equal(atomic_load(&p.other), 0);
        assert_int_equal(atomic_load(&p.ok) + atomic_load(&p.refused), tries);
        assert_true(atomic_load(&p.refused) >= 1);
        if (workers[i] == 1)
            assert_int_equal(atomic_load(&p.refused), 2);
        assert_int_equal(atomic_load(&p.children), atomic_load(&p.ok));
        weir_sub_stats st;
        assert_int_equal(weir_sub_get_stats(s, &st), 0);
        assert_int_equal(st.rejected, atomic_load(&p.refused));
        assert_int_equal(st.routed, workers[i] + atomic_load(&p.ok));
        assert_settled(s, st.routed);
        weir_bus_destroy(p.bus);
    }
    ts_watchdog_disarm();
}

/*
 * One worker, capacity 2, its handler publishing three to its own topic
 * with a 1 ms timeout: the third waits that long and times out; only an
 * unbounded wait gets WEIR_EDEADLK.
 */
static void
test_bus_bounded_publish_to_own_full_queue_times_out(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static self_pub p;
    memset(&p, 0, sizeof(p));
    p.bus = make_bus();
    p.workers = 1;
    p.children_each = 3;
    p.timeout = WEIR_MSEC;
    p.refusal = WEIR_ETIMEDOUT;
    weir_sub_opts so = { .capacity = 2 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(p.bus, "loop", self_publisher, &p, &so,
                                        &s), 0);
    assert_int_equal(weir_bus_publish(p.bus, "loop", "s", 1, NULL), 0);
    assert_int_equal(weir_bus_close(p.bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&p.ok), 2);
    assert_int_equal(atomic_load(&p.refused), 1);
    assert_int_equal(atomic_load(&p.other), 0);
    weir_bus_destroy(p.bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_fan_out_1_2_16),
        cmocka_unit_test(test_bus_message_carries_copies),
        cmocka_unit_test(test_bus_timestamps_within_publish),
        cmocka_unit_test(test_bus_lone_and_shared_messages_keep_order),
        cmocka_unit_test(test_bus_racing_publishers_never_see_room_as_full),
        cmocka_unit_test(test_bus_handler_publishing_to_its_own_full_queue),
        cmocka_unit_test(test_bus_bounded_publish_to_own_full_queue_times_out),
    };
    return cmocka_run_group_tests_name("publish", tests, ts_watchdog_group,
                                       NULL);
}
