/* SPDX-License-Identifier: MIT */
/*
 * bus.c - see bus.h.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bus.h"
#include "support.h"

weir_bus *
make_bus(void)
{
    weir_bus *bus = NULL;
    assert_int_equal(weir_bus_create(&bus, NULL), 0);
    return bus;
}

void
wait_until(int (*cond)(void *), void *arg)
{
    while (!cond(arg))
        ts_sleep_ms(1);
}

void
assert_settled(const weir_sub *s, uint64_t routed)
{
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    assert_int_equal(st.routed, routed);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.routed, st.acked + st.failed + st.dropped + st.queued +
                                    st.in_flight);
    assert_int_equal(st.delivered, st.acked + st.failed);
}

int
record(const weir_msg *m, void *ctx)
{
    recorder *r = ctx;
    uint64_t seq;
    /* No cmocka asserts here: a failed one cannot unwind a worker thread. */
    if (weir_msg_size(m) != sizeof(seq)) {
        atomic_fetch_add(&r->disorder, 1);
        return -1;
    }
    memcpy(&seq, weir_msg_data(m), sizeof(seq));
    uint64_t n = atomic_load(&r->count);
    if (seq != n || (n > 0 && weir_msg_id(m) <= atomic_load(&r->last_id)))
        atomic_fetch_add(&r->disorder, 1);
    atomic_store(&r->last_seq, seq);
    atomic_store(&r->last_id, weir_msg_id(m));
    atomic_fetch_add(&r->count, 1);
    return atomic_load(&r->fail_odd) && (seq & 1) ? -1 : 0;
}

static int
reached(void *arg)
{
    void **a = arg;
    return atomic_load((_Atomic uint64_t *)a[0]) >= (uint64_t)(uintptr_t)a[1];
}

void
wait_counter(_Atomic uint64_t *count, uint64_t n)
{
    void *a[2] = { count, (void *)(uintptr_t)n };
    wait_until(reached, a);
}

void
wait_count(recorder *r, uint64_t n)
{
    wait_counter(&r->count, n);
}

int
gated(const weir_msg *m, void *ctx)
{
    gate *g = ctx;
    uint64_t seq;
    memcpy(&seq, weir_msg_data(m), sizeof(seq));
    int i = atomic_fetch_add(&g->entered, 1);
    if (i < 160)
        atomic_store(&g->got[i], seq);
    pthread_mutex_lock(&g->mu);
    while (i >= g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    atomic_fetch_add(&g->done, 1);
    return 0;
}

int
entered_one(void *arg)
{
    return atomic_load(&((gate *)arg)->entered) >= 1;
}

void
gate_init(gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

void
gate_fini(gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

void
gate_pass(gate *g, int n)
{
    pthread_mutex_lock(&g->mu);
    g->open = n;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void
gate_open(gate *g)
{
    gate_pass(g, INT_MAX);
}

void *
open_later(void *arg)
{
    ts_sleep_ms(50);
    gate_open(arg);
    return NULL;
}

int
count_any(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
    return 0;
}

weir_sub_stats
stats_of(const weir_sub *s)
{
    weir_sub_stats st;
    assert_int_equal(weir_sub_get_stats(s, &st), 0);
    return st;
}

void
assert_balanced(const weir_sub_stats *st)
{
    assert_int_equal(st->routed, st->acked + st->failed + st->dead_lettered +
                                     st->dropped + st->queued + st->in_flight);
}

bool
flaky(uint64_t seq, unsigned attempt)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15u ^
                 attempt * 0xC2B2AE3D27D4EB4Fu;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9u;
    x ^= x >> 32;
    return x % 10 < 3;
}

int
all_finished(const weir_sub *s, uint64_t n)
{
    weir_sub_stats st = stats_of(s);
    return st.acked + st.failed + st.dead_lettered == n;
}

int
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

int
always_fail(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)ctx, 1);
    return -42;
}

weir_sub_stats
fail_all(weir_bus *bus, const weir_sub_opts *o, int n, _Atomic int *calls)
{
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "x", always_fail, calls, o, &s),
                     0);
    for (int i = 0; i < n; i++)
        assert_int_equal(weir_bus_publish(bus, "x", &i, sizeof(i), NULL), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.in_flight, 0);
    assert_balanced(&st);
    return st;
}

int
count_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic int *)ctx, 1);
    return 0;
}

int
held_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    gate_handler *g = ctx;
    while (!atomic_load(&g->release))
        ts_sleep_ms(1);
    atomic_fetch_add(&g->count, 1);
    return 0;
}

weir_sub *
full_held_sub(weir_bus *bus, const char *topic, gate_handler *held,
              size_t capacity, weir_overflow overflow)
{
    weir_sub *s;
    weir_sub_opts o = { .capacity = capacity, .overflow = overflow };
    assert_int_equal(weir_bus_subscribe(bus, topic, held_handler, held, &o, &s),
                     0);
    assert_int_equal(weir_bus_publish(bus, topic, "h", 1, NULL), 0);
    while (stats_of(s).in_flight != 1)
        ts_sleep_ms(1);
    for (size_t i = 0; i < capacity; i++)
        assert_int_equal(weir_bus_publish(bus, topic, "q", 1, NULL), 0);
    return s;
}

void *
release_later(void *arg)
{
    ts_sleep_ms(80);
    atomic_store(&((gate_handler *)arg)->release, 1);
    return NULL;
}

void *
publish_until_closed(void *arg)
{
    closing_race *c = arg;
    uint64_t seq = 0;
    for (;;) {
        int rc = weir_bus_publish(c->bus, "t", &seq, sizeof(seq), NULL);
        if (rc == WEIR_ECLOSED)
            return NULL;
        if (rc != 0)
            atomic_fetch_add(&c->failures, 1);
        atomic_fetch_add(&c->published, 1);
        seq++;
    }
}

int
published_some(void *arg)
{
    return atomic_load(&((closing_race *)arg)->published) >= 2000;
}
