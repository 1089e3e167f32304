/* SPDX-License-Identifier: MIT */
/*
 * order_pipeline.c - an order service hands its follow-up work to a bus.
 *
 * Placing an order used to mean calling coupons, points, stock and SMS one
 * after the other: the customer waited for all four.  Here the order path
 * publishes "order.created" and returns; each follow-up subscribes on its
 * own worker thread, and the SMS gateway (200 messages a second) sits
 * behind a large queue and a rate limiter.  Half way through, an
 * analytics handler subscribes without any change to the order code.
 *
 * The program prints the order path's response time both ways, then what
 * each handler processed, and checks that every count reconciles: it
 * exits non-zero if anything was lost or counted twice.
 *
 * Build:  cc -std=c11 -O2 order_pipeline.c $(pkg-config --cflags --libs weir)
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weir.h>

enum { ORDERS = 600, SYNC_ORDERS = 50 };

typedef struct order {
    uint64_t id;
    uint32_t customer;
    uint32_t cents;
} order;

/* A follow-up step: what it costs, and what it has done. */
typedef struct step {
    const char *name;
    long work_us;              /* simulated time per order */
    _Atomic uint64_t done;     /* orders it finished */
    _Atomic uint64_t cents;    /* sum of their amounts, to reconcile */
    weir_sub *sub;
} step;

static step coupon = { "coupon", 200, 0, 0, NULL };
static step points = { "points", 100, 0, 0, NULL };
static step stock = { "stock", 300, 0, 0, NULL };
static step sms = { "sms", 50, 0, 0, NULL };
static step analytics = { "analytics", 20, 0, 0, NULL };

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
work(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

static void
run_step(step *s, const order *o)
{
    work(s->work_us);
    atomic_fetch_add(&s->done, 1);
    atomic_fetch_add(&s->cents, o->cents);
}

/* The bus calls this on the step's own worker thread. */
static int
on_order(const weir_msg *m, void *ctx)
{
    order o;
    memcpy(&o, weir_msg_data(m), sizeof(o));
    run_step(ctx, &o);
    return 0;
}

static order
make_order(uint64_t id)
{
    order o = { id, (uint32_t)(id * 7919 % 1000), (uint32_t)(500 + id % 9500) };
    return o;
}

/* Before: every step inline, the customer waits for all of them. */
static int64_t
place_order_sync(uint64_t id)
{
    int64_t t0 = now_ns();
    order o = make_order(id);
    run_step(&coupon, &o);
    run_step(&points, &o);
    run_step(&stock, &o);
    run_step(&sms, &o);
    return now_ns() - t0;
}

/* After: publish and return; the order code knows no subscriber. */
static int64_t
place_order(weir_topic *created, uint64_t id)
{
    int64_t t0 = now_ns();
    order o = make_order(id);
    int rc = weir_topic_publish(created, &o, sizeof(o), NULL);
    if (rc != 0) {
        fprintf(stderr, "publish: %s\n", weir_strerror(rc));
        return -1;
    }
    return now_ns() - t0;
}

static int
by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Median of n response times, in microseconds (sorts t). */
static double
median_us(int64_t *t, size_t n)
{
    qsort(t, n, sizeof(*t), by_value);
    return t[n / 2] / 1e3;
}

static int
subscribe(weir_bus *bus, step *s, const weir_sub_opts *opts)
{
    int rc = weir_bus_subscribe(bus, "order.created", on_order, s, opts,
                                &s->sub);
    if (rc != 0)
        fprintf(stderr, "subscribe %s: %s\n", s->name, weir_strerror(rc));
    return rc;
}

int
main(void)
{
    static int64_t sync_t[SYNC_ORDERS], async_t[ORDERS];
    uint64_t sync_cents = 0;
    for (uint64_t id = 1; id <= SYNC_ORDERS; id++) {
        sync_t[id - 1] = place_order_sync(id);
        sync_cents += make_order(id).cents;
    }
    /* Start the books afresh for the asynchronous run. */
    step *steps[] = { &coupon, &points, &stock, &sms, &analytics };
    for (int i = 0; i < 5; i++) {
        atomic_store(&steps[i]->done, 0);
        atomic_store(&steps[i]->cents, 0);
    }

    weir_bus *bus;
    weir_topic *created;
    int rc = weir_bus_create(&bus, NULL);
    if (rc == 0)
        rc = weir_bus_topic(bus, "order.created", &created);
    /* SMS: a queue big enough for the whole rush, drained at 200/s. */
    weir_sub_opts sms_opts = { .capacity = 10000, .rate_per_sec = 200,
                               .burst = 50 };
    weir_sub_opts two = { .workers = 2 };
    if (rc != 0 || subscribe(bus, &coupon, &two) ||
        subscribe(bus, &points, NULL) || subscribe(bus, &stock, &two) ||
        subscribe(bus, &sms, &sms_opts)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }

    uint64_t cents = 0, analytics_cents = 0;
    for (uint64_t id = 1; id <= ORDERS; id++) {
        if (id == ORDERS / 2 + 1 && subscribe(bus, &analytics, NULL) != 0)
            return 1;
        if ((async_t[id - 1] = place_order(created, id)) < 0)
            return 1;
        cents += make_order(id).cents;
        if (id > ORDERS / 2)
            analytics_cents += make_order(id).cents;
        work(500); /* orders arrive about 2,000 a second */
    }

    printf("order path response time, median per order:\n");
    printf("  calling coupon, points, stock, sms in turn: "
           "%8.1f us (%d orders)\n", median_us(sync_t, SYNC_ORDERS),
           SYNC_ORDERS);
    printf("  publishing order.created instead:           "
           "%8.1f us (%d orders)\n\n", median_us(async_t, ORDERS), ORDERS);

    printf("waiting for the handlers (sms drains at 200/s)...\n\n");
    rc = weir_bus_close(bus, 30 * WEIR_SEC);
    if (rc != 0)
        fprintf(stderr, "close: %s\n", weir_strerror(rc));

    printf("%-10s %9s %7s %6s %7s %7s %10s %10s\n", "handler", "processed",
           "acked", "failed", "dropped", "queued", "p50 ms", "max ms");
    int ok = rc == 0 && sync_cents > 0;
    for (int i = 0; i < 5; i++) {
        step *s = steps[i];
        weir_sub_stats st;
        weir_sub_get_stats(s->sub, &st);
        uint64_t want = s == &analytics ? ORDERS - ORDERS / 2 : ORDERS;
        uint64_t want_cents = s == &analytics ? analytics_cents : cents;
        int good = atomic_load(&s->done) == want &&
                   atomic_load(&s->cents) == want_cents && st.routed == want &&
                   st.acked == want && st.failed + st.dropped + st.queued +
                   st.in_flight == 0;
        ok = ok && good;
        printf("%-10s %9" PRIu64 " %7" PRIu64 " %6" PRIu64 " %7" PRIu64
               " %7" PRIu64 " %10.2f %10.2f %s\n", s->name,
               atomic_load(&s->done), st.acked, st.failed, st.dropped,
               st.queued, st.latency_p50_ns / 1e6, st.latency_max_ns / 1e6,
               good ? "" : "<- MISMATCH");
    }
    weir_bus_stats bs;
    weir_bus_get_stats(bus, &bs);
    ok = ok && bs.published == ORDERS && bs.unrouted == 0;
    printf("\npublished %" PRIu64 " orders; analytics joined at order %d and"
           " saw the %d after it\n", bs.published, ORDERS / 2 + 1,
           ORDERS - ORDERS / 2);
    printf("%s\n", ok ? "order_pipeline: OK, every count reconciles"
                      : "order_pipeline: MISMATCH");
    weir_bus_destroy(bus);
    return ok ? 0 : 1;
}
