/* SPDX-License-Identifier: MIT */
/*
 * test_deliver.c - delivery guarantees on the bus: retries with backoff,
 * dead letters, per-key order, delayed messages, duplicate suppression
 * and atomic batches, with exact accounting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bus_internal.h" /* one test reads a sub's ready list */
#include "support/support.h"
#include "weir.h"

static weir_bus *
make_bus(void)
{
    weir_bus *bus = NULL;
    assert_int_equal(weir_bus_create(&bus, NULL), 0);
    return bus;
}

static weir_sub_stats
stats_of(const weir_sub *s)
{
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    return st;
}

/* The books of a subscription balance. */
static void
assert_balanced(const weir_sub_stats *st)
{
    assert_int_equal(st->routed, st->acked + st->failed + st->dead_lettered +
                                     st->dropped + st->queued + st->in_flight);
}

static int count_handler(const weir_msg *m, void *ctx);

/* Whether delivery `attempt` of message seq fails: about 3 in 10, fixed. */
static bool
flaky(uint64_t seq, unsigned attempt)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15u ^ attempt * 0xC2B2AE3D27D4EB4Fu;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 32;
    return x % 10 < 3;
}

static uint64_t
seq_of(const weir_msg *m)
{
    uint64_t seq = UINT64_MAX;
    if (weir_msg_size(m) >= sizeof(seq))
        memcpy(&seq, weir_msg_data(m), sizeof(seq));
    return seq;
}

/* ---- retries and dead letters under random failures ---------------------- */

typedef struct ledger {
    size_t n;
    _Atomic uint32_t *attempts;   /* deliveries per message */
    _Atomic uint32_t *acked;      /* 1 once acked */
    _Atomic uint32_t *dead;       /* dead letters received per message */
    _Atomic uint64_t *id;         /* id seen on the first delivery */
    _Atomic int bad;              /* anything a handler found wrong */
} ledger;

static int
flaky_handler(const weir_msg *m, void *ctx)
{
    ledger *l = ctx;
    uint64_t seq = seq_of(m);
    if (seq >= l->n) {
        atomic_fetch_add(&l->bad, 1);
        return 0;
    }
    unsigned attempt = weir_msg_attempt(m);
    uint32_t before = atomic_fetch_add(&l->attempts[seq], 1);
    if (before + 1 != attempt || atomic_load(&l->acked[seq]) != 0)
        atomic_fetch_add(&l->bad, 1);
    if (attempt == 1)
        atomic_store(&l->id[seq], weir_msg_id(m));
    else if (weir_msg_last_error(m) != -(int)(attempt - 1) ||
             weir_msg_id(m) != atomic_load(&l->id[seq]))
        atomic_fetch_add(&l->bad, 1);
    if (flaky(seq, attempt))
        return -(int)attempt;
    atomic_store(&l->acked[seq], 1);
    return 0;
}

static int
dead_handler(const weir_msg *m, void *ctx)
{
    ledger *l = ctx;
    uint64_t seq = seq_of(m);
    if (seq >= l->n || weir_msg_origin_topic(m) == NULL ||
        strcmp(weir_msg_origin_topic(m), "orders") != 0 ||
        strcmp(weir_msg_topic(m), "orders.dead") != 0 ||
        weir_msg_attempt(m) != 5 || weir_msg_last_error(m) != -5 ||
        weir_msg_id(m) != atomic_load(&l->id[seq])) {
        atomic_fetch_add(&l->bad, 1);
        return 0;
    }
    atomic_fetch_add(&l->dead[seq], 1);
    return 0;
}

static int
all_finished(const weir_sub *s, uint64_t n)
{
    weir_sub_stats st = stats_of(s);
    return st.acked + st.failed + st.dead_lettered == n;
}

static void
test_retries_and_dead_letters_account_exactly(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 90);
    size_t n = ts_scale(100000);
    ledger l = { .n = n };
    l.attempts = calloc(n, sizeof(*l.attempts));
    l.acked = calloc(n, sizeof(*l.acked));
    l.dead = calloc(n, sizeof(*l.dead));
    l.id = calloc(n, sizeof(*l.id));
    assert_non_null(l.attempts);
    assert_non_null(l.acked);
    assert_non_null(l.dead);
    assert_non_null(l.id);

    weir_bus *bus = make_bus();
    weir_sub *main_sub, *dead_sub;
    weir_sub_opts o = { .workers = 8, .capacity = 4096, .max_attempts = 5,
                        .retry_backoff_ns = 20 * WEIR_USEC,
                        .retry_backoff_max_ns = 200 * WEIR_USEC,
                        .retry_jitter = true,
                        .dead_letter_topic = "orders.dead" };
    assert_int_equal(weir_bus_subscribe(bus, "orders", flaky_handler, &l, &o,
                                        &main_sub), 0);
    weir_sub_opts d = { .workers = 2 };
    assert_int_equal(weir_bus_subscribe(bus, "orders.dead", dead_handler, &l,
                                        &d, &dead_sub), 0);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(weir_bus_publish(bus, "orders", &i, sizeof(i), NULL), 0);
    while (!all_finished(main_sub, n))
        ts_sleep_ms(1);
    while (stats_of(dead_sub).acked != stats_of(main_sub).dead_lettered)
        ts_sleep_ms(1);

    uint64_t acked = 0, dead = 0, deliveries = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = atomic_load(&l.acked[i]), dl = atomic_load(&l.dead[i]);
        assert_int_equal(a + dl, 1); /* acked once or dead-lettered once */
        if (dl)
            assert_int_equal(atomic_load(&l.attempts[i]), 5);
        acked += a;
        dead += dl;
        deliveries += atomic_load(&l.attempts[i]);
    }
    assert_int_equal(atomic_load(&l.bad), 0);
    weir_sub_stats st = stats_of(main_sub);
    assert_int_equal(st.routed, n);
    assert_int_equal(st.acked, acked);
    assert_int_equal(st.dead_lettered, dead);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.delivered, deliveries);
    assert_int_equal(st.retried, deliveries - n);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.in_flight, 0);
    assert_balanced(&st);
    assert_true(dead > 0 && st.retried > 0); /* the test exercised both */
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, n); /* dead letters are not publishes */
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_bus_destroy(bus);
    free(l.attempts);
    free(l.acked);
    free(l.dead);
    free(l.id);
    ts_watchdog_disarm();
}

/* ---- backoff timing, attempt fields, the worker is not held -------------- */

typedef struct trace {
    pthread_mutex_t mu;
    char order[16];               /* "A1 B1 A2 ..." compressed: one letter per delivery */
    size_t len;
    int64_t at[8];                /* delivery times of A */
    int last_error[8];
    size_t na;
} trace;

static int
trace_handler(const weir_msg *m, void *ctx)
{
    trace *t = ctx;
    pthread_mutex_lock(&t->mu);
    const char *name = weir_msg_data(m);
    if (t->len < sizeof(t->order) - 1)
        t->order[t->len++] = name[0];
    int rc = 0;
    if (name[0] == 'A' && t->na < 8) {
        t->at[t->na] = ts_now_ns();
        t->last_error[t->na] = weir_msg_last_error(m);
        t->na++;
        rc = weir_msg_attempt(m) < 3 ? -6 - (int)weir_msg_attempt(m) : 0;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

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
    assert_int_equal(weir_bus_subscribe(bus, "t", trace_handler, &t, &o, &s), 0);
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

static int
always_fail(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)ctx, 1);
    return -42;
}

/*
 * Publish n messages to "x" on bus, handled by always_fail under o, close
 * the bus and return the subscription's statistics; *calls counts the
 * handler calls.
 */
static weir_sub_stats
fail_all(weir_bus *bus, const weir_sub_opts *o, int n, _Atomic int *calls)
{
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, calls, o, &s), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(weir_bus_publish(bus, "x", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.in_flight, 0);
    assert_balanced(&st);
    return st;
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

/*
 * A dead letter to a topic nobody subscribes to (a misspelt name, say)
 * reached nobody: it counts as failed, and the bus counts it in
 * dead_letters_unrouted so the mistake shows; it is neither a publish
 * nor an unrouted one (it was published once already).
 */
static void
test_dead_letter_to_an_empty_topic(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    weir_sub_opts o = { .max_attempts = 1, .dead_letter_topic = "nobody.listens" };
    weir_sub_stats st = fail_all(bus, &o, 5, &calls);
    assert_int_equal(atomic_load(&calls), 5);
    assert_int_equal(st.dead_lettered, 0);
    assert_int_equal(st.failed, 5);
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 5);
    assert_int_equal(bs.unrouted, 0);
    assert_int_equal(bs.dead_letters_unrouted, 5);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* A close drains retries first, then the dead letters they end in. */
static void
test_close_delivers_last_dead_letters(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0, dead = 0;
    weir_sub *s, *d;
    weir_sub_opts o = { .workers = 2, .max_attempts = 2,
                        .retry_backoff_ns = 2 * WEIR_MSEC,
                        .dead_letter_topic = "x.dead" };
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, &calls, &o, &s), 0);
    assert_int_equal(weir_bus_subscribe(bus, "x.dead", count_handler, &dead,
                                        NULL, &d), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(weir_bus_publish(bus, "x", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&calls), 40);
    assert_int_equal(atomic_load(&dead), 20);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.dead_lettered, 20);
    assert_int_equal(st.failed, 0);
    assert_balanced(&st);
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
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, &calls, &o, &s), 0);
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

/* ---- per-key order ------------------------------------------------------- */

#define NKEYS 1000

typedef struct keyed {
    _Atomic int busy[NKEYS];
    _Atomic int64_t last[NKEYS];  /* last sequence handled per key, -1 none */
    _Atomic int overlap, disorder;
} keyed;

static int
keyed_handler(const weir_msg *m, void *ctx)
{
    keyed *k = ctx;
    uint32_t v[2]; /* key, sequence within the key */
    memcpy(v, weir_msg_data(m), sizeof(v));
    if (atomic_exchange(&k->busy[v[0]], 1) != 0)
        atomic_fetch_add(&k->overlap, 1);
    int64_t last = atomic_load(&k->last[v[0]]);
    bool retry = weir_msg_attempt(m) > 1;
    if (retry ? v[1] != last : v[1] != last + 1)
        atomic_fetch_add(&k->disorder, 1);
    atomic_store(&k->last[v[0]], v[1]);
    int rc = flaky(v[0] * 100000u + v[1], weir_msg_attempt(m)) ? -1 : 0;
    atomic_store(&k->busy[v[0]], 0);
    return rc;
}

static void
test_per_key_order_with_retries(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 90);
    keyed *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    for (int i = 0; i < NKEYS; i++)
        atomic_store(&k->last[i], -1);
    weir_bus *bus = make_bus();
    weir_sub *s;
    weir_sub_opts o = { .workers = 8, .capacity = 4096, .ordered_by_key = true,
                        .max_attempts = 4, .retry_backoff_ns = 20 * WEIR_USEC,
                        .retry_backoff_max_ns = 100 * WEIR_USEC };
    assert_int_equal(weir_bus_subscribe(bus, "acct", keyed_handler, k, &o, &s), 0);
    size_t n = ts_scale(50000);
    uint32_t next[NKEYS] = { 0 };
    srand(7);
    for (size_t i = 0; i < n; i++) {
        uint32_t v[2];
        v[0] = (uint32_t)rand() % NKEYS;
        v[1] = next[v[0]]++;
        char key[16];
        snprintf(key, sizeof(key), "k%u", v[0]);
        weir_pub_opts po = { .key = key };
        assert_int_equal(weir_bus_publish(bus, "acct", v, sizeof(v), &po), 0);
    }
    while (!all_finished(s, n))
        ts_sleep_ms(1);
    assert_int_equal(atomic_load(&k->overlap), 0);
    assert_int_equal(atomic_load(&k->disorder), 0);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(atomic_load(&k->last[i]), (int64_t)next[i] - 1);
    weir_sub_stats st = stats_of(s);
    assert_true(st.retried > 0);
    assert_int_equal(st.acked + st.failed, n);
    assert_balanced(&st);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_bus_destroy(bus);
    free(k);
    ts_watchdog_disarm();
}

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
            so = (weir_sub_opts){ .capacity = 4, .overflow = WEIR_OVERFLOW_REJECT };
        assert_int_equal(weir_bus_subscribe(bus, "late", count_handler, &handled,
                                            &so, &s), 0);
        late_pub pubs[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            pubs[i] = (late_pub){ .bus = bus, .go = &go, .cap = ts_scale(50000) };
            assert_int_equal(pthread_create(&t[i], NULL, publish_late_until_closed,
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

/* ---- duplicate suppression ----------------------------------------------- */

static void
test_dedup_table_bound_window_and_errors(void **state)
{
    (void)state;
    weir_dedup *d;
    assert_int_equal(weir_dedup_create(&d, 4, WEIR_SEC * 60), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "ab", 2), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "", 0), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "", 0), 0);
    assert_int_equal(weir_dedup_size(d), 4);
    assert_int_equal(weir_dedup_check_and_insert(d, "c", 1), 1); /* evicts "a" */
    assert_int_equal(weir_dedup_size(d), 4);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1); /* forgotten; evicts "b" */
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 1);
    weir_dedup_destroy(d);

    assert_int_equal(weir_dedup_create(&d, 0, 20 * WEIR_MSEC), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 0);
    ts_sleep_ms(30);
    assert_int_equal(weir_dedup_check_and_insert(d, "x", 1), 1); /* window over */
    assert_int_equal(weir_dedup_check_and_insert(NULL, "x", 1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_check_and_insert(d, NULL, 1), WEIR_EINVAL);
    weir_dedup_destroy(d);
    weir_dedup_destroy(NULL);

    assert_int_equal(weir_dedup_create(NULL, 1, 1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_create(&d, 1, 0), WEIR_EINVAL);
    assert_null(d);
    assert_int_equal(weir_dedup_create(&d, 1, -1), WEIR_EINVAL);
    assert_int_equal(weir_dedup_create(&d, WEIR_DEDUP_MAX_KEYS + 1, 1), WEIR_EINVAL);
}

typedef struct dedup_run {
    weir_dedup *d;
    int keys;
    _Atomic int fresh;
} dedup_run;

static void *
dedup_worker(void *arg)
{
    dedup_run *r = arg;
    for (int i = 0; i < r->keys; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "key-%d", i);
        if (weir_dedup_check_and_insert(r->d, key, (size_t)len) == 1)
            atomic_fetch_add(&r->fresh, 1);
    }
    return NULL;
}

static void
test_dedup_concurrent_inserts_count_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    dedup_run r = { .keys = (int)ts_scale(20000) };
    assert_int_equal(weir_dedup_create(&r.d, 1 << 20, WEIR_SEC * 60), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, dedup_worker, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&r.fresh), r.keys);
    assert_int_equal(weir_dedup_size(r.d), (size_t)r.keys);
    weir_dedup_destroy(r.d);
    ts_watchdog_disarm();
}

static int
count_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)ctx, 1);
    return 0;
}

static void
test_dedup_subscription_skips_repeated_keys(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    weir_sub *s;
    weir_sub_opts o = { .workers = 4, .dedup_window_ns = WEIR_SEC * 60 };
    assert_int_equal(weir_bus_subscribe(bus, "pay", count_handler, &calls, &o, &s), 0);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 50; i++) {
            char key[16];
            snprintf(key, sizeof(key), "req-%d", i);
            weir_pub_opts po = { .key = key };
            assert_int_equal(weir_bus_publish(bus, "pay", &i, sizeof(i), &po), 0);
        }
    }
    for (int i = 0; i < 5; i++) /* no key: never suppressed */
        assert_int_equal(weir_bus_publish(bus, "pay", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(atomic_load(&calls), 55);
    assert_int_equal(st.duplicates, 50);
    assert_int_equal(st.acked, 105);
    assert_int_equal(st.delivered, 55);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- atomic batches ------------------------------------------------------ */

typedef struct seer {
    weir_sub *other;       /* the other topic's subscription */
    uint64_t expect_other; /* what it must have been routed when we see ours */
    _Atomic int count, early;
} seer;

static int
seer_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    seer *s = ctx;
    weir_sub_stats st;
    /* The whole batch is placed before any of it is handled. */
    if (weir_sub_get_stats(s->other, &st) != 0 || st.routed < s->expect_other)
        atomic_fetch_add(&s->early, 1);
    atomic_fetch_add(&s->count, 1);
    return 0;
}

typedef struct gate_handler {
    _Atomic int release, count;
} gate_handler;

/* Holds its worker until told, so its queue fills. */
static int
held_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    gate_handler *g = ctx;
    while (!atomic_load(&g->release))
        ts_sleep_ms(1);
    atomic_fetch_add(&g->count, 1);
    return 0;
}

/*
 * Subscribe a held_handler to topic with a queue of capacity, the given
 * policy, then fill it: one message in the held handler, capacity queued.
 */
static weir_sub *
full_held_sub(weir_bus *bus, const char *topic, gate_handler *held,
              size_t capacity, weir_overflow overflow)
{
    weir_sub *s;
    weir_sub_opts o = { .capacity = capacity, .overflow = overflow };
    assert_int_equal(weir_bus_subscribe(bus, topic, held_handler, held, &o, &s), 0);
    assert_int_equal(weir_bus_publish(bus, topic, "h", 1, NULL), 0);
    while (stats_of(s).in_flight != 1)
        ts_sleep_ms(1);
    for (size_t i = 0; i < capacity; i++)
        assert_int_equal(weir_bus_publish(bus, topic, "q", 1, NULL), 0);
    return s;
}

static void
test_batch_all_at_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    seer a = { 0 };
    gate_handler slow = { 0 };
    weir_sub *sa, *sb;
    assert_int_equal(weir_bus_subscribe(bus, "a", seer_handler, &a, NULL, &sa), 0);
    /* b: BLOCK, capacity 2, full: one held by its worker, two queued. */
    sb = full_held_sub(bus, "b", &slow, 2, WEIR_OVERFLOW_BLOCK);
    a.other = sb;
    a.expect_other = 5;

    weir_batch *batch;
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "3", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "4", 1, NULL), 0);
    /* Nothing visible before the commit. */
    assert_int_equal(stats_of(sa).routed, 0);
    /* b is full: a NOWAIT commit places nothing. */
    assert_int_equal(weir_batch_commit(batch, WEIR_NOWAIT), WEIR_ETIMEDOUT);
    assert_int_equal(stats_of(sa).routed, 0);
    assert_int_equal(atomic_load(&a.count), 0);

    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "3", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "4", 1, NULL), 0);
    atomic_store(&slow.release, 1); /* b drains: room comes */
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&a.count), 2);
    assert_int_equal(atomic_load(&a.early), 0);
    assert_int_equal(atomic_load(&slow.count), 5);
    weir_sub_stats st = stats_of(sa);
    assert_int_equal(st.routed, 2);
    assert_balanced(&st);
    st = stats_of(sb);
    assert_int_equal(st.routed, 5);
    assert_int_equal(st.acked, 5);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

static void
test_batch_reject_full_fails_whole_and_abort_leaves_no_trace(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int seen = 0;
    gate_handler held = { 0 };
    weir_sub *sa, *sr;
    assert_int_equal(weir_bus_subscribe(bus, "a", count_handler, &seen, NULL, &sa), 0);
    sr = full_held_sub(bus, "r", &held, 1, WEIR_OVERFLOW_REJECT);

    weir_batch *batch;
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weir_batch_publish(batch, "a", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "z", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* A share larger than a queue could never fit. */
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* A message to a topic nobody listens to is part of the batch too. */
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "nobody", "0", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "z", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* Abort: no trace. */
    weir_bus_stats before, after;
    assert_int_equal(weir_bus_get_stats(bus, &before), 0);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    weir_batch_abort(batch);
    weir_batch_abort(NULL);

    assert_int_equal(weir_bus_get_stats(bus, &after), 0);
    assert_int_equal(after.published, before.published);
    assert_int_equal(after.published, 2);
    assert_int_equal(atomic_load(&seen), 0);
    assert_int_equal(stats_of(sa).routed, 0);

    /* Committed: one message routed, one unrouted, both published. */
    atomic_store(&held.release, 1);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "nobody", "0", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&seen), 1);
    assert_int_equal(weir_bus_get_stats(bus, &after), 0);
    assert_int_equal(after.published, 4);
    assert_int_equal(after.unrouted, before.unrouted + 1);
    weir_sub_stats st = stats_of(sa);
    assert_int_equal(st.routed, 1);
    assert_balanced(&st);
    st = stats_of(sr);
    assert_int_equal(st.routed, 2);
    assert_int_equal(st.acked, 2);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* Concurrent batches and publishers: each batch is seen whole or not at all. */
typedef struct batcher {
    weir_bus *bus;
    int id, batches;
} batcher;

static void *
batch_thread(void *arg)
{
    batcher *b = arg;
    for (int i = 0; i < b->batches; i++) {
        weir_batch *batch;
        if (weir_batch_begin(b->bus, &batch) != 0)
            return NULL;
        for (int j = 0; j < 4; j++) {
            int v[2] = { b->id, i };
            weir_batch_publish(batch, j % 2 ? "left" : "right", v, sizeof(v), NULL);
        }
        weir_batch_commit(batch, WEIR_FOREVER);
    }
    return NULL;
}

static void
test_batch_concurrent_commits(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    _Atomic int left = 0, right = 0;
    weir_sub *sl, *sr;
    weir_sub_opts o = { .workers = 3, .capacity = 16 };
    assert_int_equal(weir_bus_subscribe(bus, "left", count_handler, &left, &o, &sl), 0);
    assert_int_equal(weir_bus_subscribe(bus, "right", count_handler, &right, &o, &sr), 0);
    batcher b[4];
    pthread_t t[4];
    int per = (int)ts_scale(2000);
    for (int i = 0; i < 4; i++) {
        b[i] = (batcher){ bus, i, per };
        assert_int_equal(pthread_create(&t[i], NULL, batch_thread, &b[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&left), 4 * per * 2);
    assert_int_equal(atomic_load(&right), 4 * per * 2);
    weir_sub_stats st = stats_of(sl);
    assert_int_equal(st.routed, (uint64_t)(4 * per * 2));
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- found in review: close races, stalls, overflows ---------------------- */

typedef struct closer {
    weir_bus *bus;
    int rc;
} closer;

static void *
commit_thread(void *arg)
{
    closer *c = arg;
    weir_batch *batch;
    c->rc = weir_batch_begin(c->bus, &batch);
    if (c->rc == 0 && (c->rc = weir_batch_publish(batch, "full", "1", 1, NULL)) == 0)
        c->rc = weir_batch_commit(batch, 5 * WEIR_SEC);
    return NULL;
}

/*
 * A commit waiting for room survives the full subscription's close, and
 * a subscription of the same topic that stays open gets the batch's
 * message once, after the two published before it.
 */
static void
test_batch_waiting_for_room_survives_close(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    trace stays = { .mu = PTHREAD_MUTEX_INITIALIZER };
    assert_int_equal(weir_bus_subscribe(bus, "full", trace_handler, &stays, NULL, NULL), 0);
    gate_handler held = { 0 };
    weir_sub *s = full_held_sub(bus, "full", &held, 1, WEIR_OVERFLOW_BLOCK);
    closer c = { bus, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, commit_thread, &c), 0);
    ts_sleep_ms(20); /* the commit is waiting for room */
    atomic_store(&held.release, 1);
    int rc = weir_sub_close(s, WEIR_NOWAIT);
    assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0); /* placed, or the topic lost its subscription */
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_string_equal(stays.order, "hq1");
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 3);
    assert_int_equal(bs.unrouted, 0);
    weir_bus_destroy(bus);
    pthread_mutex_destroy(&stays.mu);
    ts_watchdog_disarm();
}

/* A worker blocked on a full dead-letter queue lets a close time out. */
static void
test_close_not_held_by_a_full_dead_letter_queue(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int calls = 0;
    gate_handler held = { 0 };
    weir_sub *src, *dead;
    weir_sub_opts od = { .capacity = 1 };
    assert_int_equal(weir_bus_subscribe(bus, "d", held_handler, &held, &od, &dead), 0);
    weir_sub_opts os = { .dead_letter_topic = "d" };
    assert_int_equal(weir_bus_subscribe(bus, "src", always_fail, &calls, &os, &src), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(weir_bus_publish(bus, "src", &i, sizeof(i), NULL), 0);
    /* One dead letter held, one queued, the third blocks src's worker. */
    while (atomic_load(&calls) < 3)
        ts_sleep_ms(1);
    assert_int_equal(weir_sub_close(src, 20 * WEIR_MSEC), WEIR_ETIMEDOUT);
    atomic_store(&held.release, 1);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

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
    assert_int_equal(weir_bus_subscribe(bus, "z", always_fail, &calls, &oz, &z), 0);
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
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, &calls, &o, &s), 0);
    assert_int_equal(weir_bus_subscribe(bus, "y", count_handler, &seen, NULL, &d), 0);
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
    weir_sub_opts o = { .max_attempts = 3, .retry_backoff_ns = 1200 * WEIR_MSEC };
    assert_int_equal(weir_bus_subscribe(bus, "t", trace_handler, &t, &o, &s), 0);
    assert_int_equal(weir_bus_publish(bus, "t", "A", 2, NULL), 0);
    while (stats_of(s).delivered < 2)
        ts_sleep_ms(5);
    pthread_mutex_lock(&t.mu);
    assert_true(t.at[1] - t.at[0] >= 1200 * WEIR_MSEC);
    pthread_mutex_unlock(&t.mu);
    assert_int_equal(weir_bus_close(bus, 0), WEIR_ETIMEDOUT); /* third pending */
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

typedef struct keyed_once {
    _Atomic int k, j;
} keyed_once;

/* Key "k"'s first message fails once; everything else succeeds. */
static int
keyed_once_handler(const weir_msg *m, void *ctx)
{
    keyed_once *c = ctx;
    if (strcmp(weir_msg_key(m), "k") == 0)
        return atomic_fetch_add(&c->k, 1) == 0 ? -1 : 0;
    atomic_fetch_add(&c->j, 1);
    return 0;
}

/* destroy drops a retry not yet due, not the later messages of its key. */
static void
test_destroy_hands_a_dropped_retrys_key_on(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    keyed_once c = { 0 };
    weir_sub *s;
    weir_sub_opts o = { .workers = 2, .max_attempts = 3, .ordered_by_key = true,
                        .retry_backoff_ns = 10 * WEIR_SEC };
    assert_int_equal(weir_bus_subscribe(bus, "t", keyed_once_handler, &c, &o, &s), 0);
    weir_pub_opts k = { .key = "k" }, j = { .key = "j" };
    assert_int_equal(weir_bus_publish(bus, "t", "a", 1, &k), 0);
    while (stats_of(s).retried == 0)
        ts_sleep_ms(1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(weir_bus_publish(bus, "t", "b", 1, &k), 0);
        assert_int_equal(weir_bus_publish(bus, "t", "c", 1, &j), 0);
    }
    while (stats_of(s).acked < 5) /* j's; k's five wait behind the retry */
        ts_sleep_ms(1);
    weir_bus_destroy(bus);
    assert_int_equal(atomic_load(&c.k), 6); /* the first try, then the five */
    assert_int_equal(atomic_load(&c.j), 5);
    ts_watchdog_disarm();
}

static void *
release_later(void *arg)
{
    ts_sleep_ms(80);
    atomic_store(&((gate_handler *)arg)->release, 1);
    return NULL;
}

/* A due delayed message waiting for room when close gives up is counted left. */
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
    /* The held handler lets go only after close has given up. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, &held), 0);
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
        { .retry_backoff_ns = 10 * WEIR_MSEC, .retry_backoff_max_ns = WEIR_MSEC },
        { .dead_letter_topic = "bad topic" },
        { .dead_letter_topic = "t" }, /* its own topic */
        { .dedup_window_ns = -1 },
        { .dedup_window_ns = 1, .dedup_max_keys = WEIR_DEDUP_MAX_KEYS + 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(weir_bus_subscribe(bus, "t", count_handler, &n, &bad[i], NULL),
                         WEIR_EINVAL);
    weir_pub_opts neg = { .delay_ns = -1 };
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &neg), WEIR_EINVAL);
    weir_batch *batch;
    assert_int_equal(weir_batch_begin(NULL, &batch), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(bus, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    assert_int_equal(weir_batch_publish(batch, "t", "x", 1, &later), WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(batch, "bad topic", "x", 1, NULL), WEIR_EINVAL);
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

/* ---- books right after a failed or retried commit -------------------------- */

/*
 * A batch for a, r and c, with r a full REJECT queue: the commit fails.
 * a's and c's workers may already hold their message, waiting for the
 * decision; the books must balance the moment the commit returns, every
 * time.  Then commits that succeed only on a second try (a full BLOCK
 * queue that empties meanwhile) must leave them balanced too.
 */
static void
test_batch_books_balance_right_after_commit(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    weir_bus *bus = make_bus();
    _Atomic int seen = 0;
    gate_handler held = { 0 };
    weir_sub *sa, *sc;
    assert_int_equal(weir_bus_subscribe(bus, "a", count_handler, &seen, NULL, &sa), 0);
    assert_int_equal(weir_bus_subscribe(bus, "c", count_handler, &seen, NULL, &sc), 0);
    weir_sub *sr = full_held_sub(bus, "r", &held, 1, WEIR_OVERFLOW_REJECT);
    for (int round = 0; round < (int)ts_scale(1000); round++) {
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "c", "3", 1, NULL), 0);
        assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);
        weir_sub_stats st = stats_of(sa);
        assert_balanced(&st);
        assert_int_equal(st.routed, 0);
        st = stats_of(sc);
        assert_balanced(&st);
        assert_int_equal(st.routed, 0);
    }
    /*
     * The same, without a race: a paced worker (2 a second) that takes a
     * message of a failed commit keeps it while it waits for its next
     * permit, up to half a second; its books must balance all that time.
     */
    weir_sub *sp;
    weir_sub_opts paced = { .rate_per_sec = 2, .burst = 1 };
    assert_int_equal(weir_bus_subscribe(bus, "p", count_handler, &seen, &paced,
                                        &sp), 0);
    for (int round = 0; round < 3; round++) {
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "p", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
        assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);
        for (int look = 0; look < 20; look++) {
            weir_sub_stats st = stats_of(sp);
            assert_balanced(&st);
            assert_int_equal(st.routed, 0);
            ts_sleep_ms(1);
        }
    }
    atomic_store(&held.release, 1);
    assert_int_equal(weir_sub_close(sr, WEIR_FOREVER), 0);

    for (int round = 0; round < (int)ts_scale(50); round++) {
        gate_handler slow = { 0 };
        char topic[16];
        snprintf(topic, sizeof(topic), "b%d", round);
        weir_sub *sb = full_held_sub(bus, topic, &slow, 1, WEIR_OVERFLOW_BLOCK);
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, topic, "2", 1, NULL), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, release_later, &slow), 0);
        assert_int_equal(weir_batch_commit(batch, 10 * WEIR_SEC), 0);
        weir_sub_stats st = stats_of(sa);
        assert_balanced(&st);
        st = stats_of(sb);
        assert_balanced(&st);
        pthread_join(th, NULL);
        assert_int_equal(weir_sub_close(sb, WEIR_FOREVER), 0);
    }
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st = stats_of(sa);
    assert_balanced(&st);
    assert_int_equal(st.routed, ts_scale(50));
    assert_int_equal(st.acked, ts_scale(50));
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- a due retry does not wait behind its worker's batch ------------------- */

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
    assert_int_equal(weir_bus_subscribe(bus, "t", retry_order_handler, &r, &o, &s), 0);
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

/* ---- a handler committing to its own full queue ---------------------------- */

typedef struct self_batch {
    weir_bus *bus;
    _Atomic int ok, deadlk, other, children;
} self_batch;

/* A seed ('s') commits three one-message batches to its own topic. */
static int
self_batcher(const weir_msg *m, void *ctx)
{
    self_batch *p = ctx;
    if (*(const char *)weir_msg_data(m) == 'c') {
        atomic_fetch_add(&p->children, 1);
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        weir_batch *b;
        int rc = weir_batch_begin(p->bus, &b);
        if (rc == 0 && (rc = weir_batch_publish(b, "own", "c", 1, NULL)) == 0)
            rc = weir_batch_commit(b, WEIR_FOREVER);
        else if (rc != 0 && b != NULL)
            weir_batch_abort(b);
        atomic_fetch_add(rc == 0 ? &p->ok : rc == WEIR_EDEADLK ? &p->deadlk
                                                               : &p->other, 1);
    }
    return 0;
}

/*
 * One worker, capacity 2: its handler's third commit to its own topic
 * would wait for room only it could make.  It gets WEIR_EDEADLK, as a
 * publish would, instead of waiting for ever.
 */
static void
test_batch_commit_to_own_full_queue_is_edeadlk(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static self_batch p;
    memset(&p, 0, sizeof(p));
    p.bus = make_bus();
    weir_sub_opts two = { .capacity = 2 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(p.bus, "own", self_batcher, &p, &two, &s), 0);
    assert_int_equal(weir_bus_publish(p.bus, "own", "s", 1, NULL), 0);
    assert_int_equal(weir_bus_close(p.bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&p.ok), 2);
    assert_int_equal(atomic_load(&p.deadlk), 1);
    assert_int_equal(atomic_load(&p.other), 0);
    assert_int_equal(atomic_load(&p.children), 2);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.routed, 3);
    assert_int_equal(st.acked, 3);
    assert_balanced(&st);
    weir_bus_destroy(p.bus);
    ts_watchdog_disarm();
}

/* ---- a due retry does not wait behind a key's parked messages -------------- */

typedef struct chain_log {
    weir_sub *sub;
    _Atomic int go, entered, calls, j_failed, inconclusive;
    _Atomic int j_retry_at;      /* the call that was J's retry */
    _Atomic int k_at[24];        /* the call that handled K message i */
} chain_log;

/*
 * Payload: 'H' holds the worker until go; "Ki" is key K's i-th message
 * (K0 fails once); "J" fails once.  K0's retry returns only once J's
 * retry is on the ready list (white-box: the timer thread's delay is
 * the scheduler's, so waiting for the list, not for a time, is what
 * makes the order below certain).  If K0's retry came before J's first
 * try (the worker was slower than the backoff), the run proves nothing
 * and says so.
 */
static int
chain_handler(const weir_msg *m, void *ctx)
{
    chain_log *l = ctx;
    const char *p = weir_msg_data(m);
    int call = atomic_fetch_add(&l->calls, 1);
    if (p[0] == 'H') {
        atomic_store(&l->entered, 1);
        while (!atomic_load(&l->go))
            ts_sleep_ms(1);
        return 0;
    }
    if (p[0] == 'J') {
        if (weir_msg_attempt(m) == 1) {
            atomic_store(&l->j_failed, 1);
            return -1;
        }
        atomic_store(&l->j_retry_at, call);
        return 0;
    }
    int i = atoi(p + 1);
    if (i == 0 && weir_msg_attempt(m) == 1)
        return -1;
    if (i == 0) {
        if (!atomic_load(&l->j_failed))
            atomic_store(&l->inconclusive, 1);
        else
            while (atomic_load(&l->sub->ready_n) == 0)
                ts_sleep_ms(1);
    }
    atomic_store(&l->k_at[i], call);
    return 0;
}

/*
 * K0 fails, and K1..K20 park behind its retry; then J fails.  When K0's
 * retry is done, J's retry (due) goes before the chain of K's parked
 * messages, not after all twenty; K's messages keep their order.  The
 * backoff is long enough that the worker nearly always takes J before
 * K0's retry is due; a run where it did not is tried again.
 */
static void
test_due_retry_goes_before_a_parked_chain(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    int conclusive = 0;
    for (int run = 0; run < 10 && !conclusive; run++) {
        weir_bus *bus = make_bus();
        static chain_log l;
        memset(&l, 0, sizeof(l));
        weir_sub_opts o = { .max_attempts = 2,
                            .retry_backoff_ns = 20 * WEIR_MSEC,
                            .ordered_by_key = true };
        assert_int_equal(weir_bus_subscribe(bus, "t", chain_handler, &l, &o,
                                            &l.sub), 0);
        assert_int_equal(weir_bus_publish(bus, "t", "H", 2, NULL), 0);
        while (!atomic_load(&l.entered))
            ts_sleep_ms(1);
        weir_pub_opts k = { .key = "K" }, j = { .key = "J" };
        for (int i = 0; i <= 20; i++) {
            char p[16];
            snprintf(p, sizeof(p), "K%d", i);
            assert_int_equal(weir_bus_publish(bus, "t", p, strlen(p) + 1, &k),
                             0);
        }
        assert_int_equal(weir_bus_publish(bus, "t", "J", 2, &j), 0);
        atomic_store(&l.go, 1);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        weir_sub_stats st = stats_of(l.sub);
        assert_int_equal(st.acked, 23);
        assert_int_equal(st.retried, 2);
        for (int i = 1; i <= 20; i++)
            assert_true(atomic_load(&l.k_at[i]) > atomic_load(&l.k_at[i - 1]));
        if (!atomic_load(&l.inconclusive)) {
            conclusive = 1;
            assert_int_equal(atomic_load(&l.j_retry_at),
                             atomic_load(&l.k_at[0]) + 1);
        }
        weir_bus_destroy(bus);
    }
    assert_true(conclusive);
    ts_watchdog_disarm();
}

/* ---- a handler's batch whose first try failed elsewhere -------------------- */

typedef struct own_first {
    weir_bus *bus;
    gate_handler f;             /* holds "f" full until released */
    _Atomic int started, done, rc;
} own_first;

static int
own_first_handler(const weir_msg *m, void *ctx)
{
    own_first *o = ctx;
    if (*(const char *)weir_msg_data(m) != 'g')
        return 0;
    atomic_store(&o->started, 1);
    ts_sleep_ms(20); /* let 'q' be queued behind us */
    weir_batch *b;
    int rc = weir_batch_begin(o->bus, &b);
    if (rc == 0 && (rc = weir_batch_publish(b, "s", "x", 1, NULL)) == 0 &&
        (rc = weir_batch_publish(b, "f", "y", 1, NULL)) == 0)
        rc = weir_batch_commit(b, WEIR_FOREVER);
    else if (b != NULL)
        weir_batch_abort(b);
    atomic_store(&o->rc, rc);
    atomic_store(&o->done, 1);
    return 0;
}

/*
 * A handler of s (capacity 2, one worker, one message queued behind it)
 * commits a batch for s and for f, which is full.  The try that fails on
 * f must not leave its message in s, where only this worker could take
 * it: the commit then found s full and gave WEIR_EDEADLK although s had
 * room.  It waits for f, then commits.
 */
static void
test_batch_own_queue_is_placed_last(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static own_first o;
    memset(&o, 0, sizeof(o));
    o.bus = make_bus();
    weir_sub *s;
    weir_sub_opts so = { .capacity = 2 };
    (void)full_held_sub(o.bus, "f", &o.f, 1, WEIR_OVERFLOW_BLOCK);
    assert_int_equal(weir_bus_subscribe(o.bus, "s", own_first_handler, &o, &so,
                                        &s), 0);
    assert_int_equal(weir_bus_publish(o.bus, "s", "g", 1, NULL), 0);
    while (!atomic_load(&o.started))
        ts_sleep_ms(1);
    assert_int_equal(weir_bus_publish(o.bus, "s", "q", 1, NULL), 0);
    ts_sleep_ms(50); /* the commit's first try fails on f */
    atomic_store(&o.f.release, 1);
    while (!atomic_load(&o.done))
        ts_sleep_ms(1);
    assert_int_equal(atomic_load(&o.rc), 0);
    assert_int_equal(weir_bus_close(o.bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.routed, 3);
    assert_int_equal(st.acked, 3);
    assert_balanced(&st);
    weir_bus_destroy(o.bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries_and_dead_letters_account_exactly),
        cmocka_unit_test(test_backoff_grows_and_frees_the_worker),
        cmocka_unit_test(test_given_up_without_dead_letter_is_failed),
        cmocka_unit_test(test_dead_letter_to_an_empty_topic),
        cmocka_unit_test(test_close_delivers_last_dead_letters),
        cmocka_unit_test(test_close_with_pending_retries_reports_them),
        cmocka_unit_test(test_per_key_order_with_retries),
        cmocka_unit_test(test_delays_never_early_and_keep_order),
        cmocka_unit_test(test_many_pending_delays_and_close),
        cmocka_unit_test(test_delayed_publishes_racing_close_are_all_accounted),
        cmocka_unit_test(test_dedup_table_bound_window_and_errors),
        cmocka_unit_test(test_dedup_concurrent_inserts_count_once),
        cmocka_unit_test(test_dedup_subscription_skips_repeated_keys),
        cmocka_unit_test(test_batch_all_at_once),
        cmocka_unit_test(test_batch_reject_full_fails_whole_and_abort_leaves_no_trace),
        cmocka_unit_test(test_batch_concurrent_commits),
        cmocka_unit_test(test_batch_waiting_for_room_survives_close),
        cmocka_unit_test(test_close_not_held_by_a_full_dead_letter_queue),
        cmocka_unit_test(test_retries_not_held_by_a_blocked_delayed_message),
        cmocka_unit_test(test_huge_backoff_and_delay),
        cmocka_unit_test(test_default_cap_keeps_a_longer_first_backoff),
        cmocka_unit_test(test_destroy_hands_a_dropped_retrys_key_on),
        cmocka_unit_test(test_close_counts_a_delayed_message_stuck_on_a_full_queue),
        cmocka_unit_test(test_delivery_options_reject_bad_input),
        cmocka_unit_test(test_batch_books_balance_right_after_commit),
        cmocka_unit_test(test_due_retry_goes_before_the_rest_of_the_batch),
        cmocka_unit_test(test_batch_commit_to_own_full_queue_is_edeadlk),
        cmocka_unit_test(test_due_retry_goes_before_a_parked_chain),
        cmocka_unit_test(test_batch_own_queue_is_placed_last),
    };
    return cmocka_run_group_tests_name("deliver", tests, ts_watchdog_group, NULL);
}
