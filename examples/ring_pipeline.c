/* SPDX-License-Identifier: MIT */
/*
 * ring_pipeline.c - a three-stage thread pipeline over weir's lock-free
 * rings, checking its own results.
 *
 *   source --SPSC ring--> transform --MPMC ring--> 3 sinks
 *
 * The source numbers its orders 1..N; the transform computes each order's
 * price; the sinks add up what they receive.  At the end every order must
 * have reached exactly one sink and the totals must match what the source
 * expects, or the program exits non-zero.
 *
 * Build:  cc -std=c11 -O2 ring_pipeline.c $(pkg-config --cflags --libs weir)
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weir.h>

enum { ORDERS = 2000000, SINKS = 3 };

/*
 * The rings carry void *; small integers travel in the pointer itself, so
 * nothing is allocated per item.  Order 0 is the "no more orders" marker.
 */
#define AS_PTR(x) ((void *)(uintptr_t)(x))
#define AS_NUM(p) ((uint64_t)(uintptr_t)(p))

static weir_spsc orders;       /* source -> transform */
static weir_mpmc priced;       /* transform -> sinks */

typedef struct sink {
    pthread_t thread;
    uint64_t count;            /* orders this sink handled */
    uint64_t total;            /* sum of their prices */
} sink;

static uint64_t
price_of(uint64_t order)
{
    return order % 97 + 1;
}

/* Rings never block: on full or empty, step aside and try again. */
static void
wait_a_little(void)
{
    sched_yield();
}

static void *
source(void *arg)
{
    (void)arg;
    for (uint64_t n = 1; n <= ORDERS; n++)
        while (weir_spsc_push(&orders, AS_PTR(n)) == WEIR_EAGAIN)
            wait_a_little();
    while (weir_spsc_push(&orders, AS_PTR(0)) == WEIR_EAGAIN)
        wait_a_little();
    return NULL;
}

static void *
transform(void *arg)
{
    (void)arg;
    void *batch[32];
    for (;;) {
        size_t got = weir_spsc_pop_burst(&orders, batch, 32);
        if (got == 0) {
            wait_a_little();
            continue;
        }
        for (size_t i = 0; i < got; i++) {
            uint64_t order = AS_NUM(batch[i]);
            if (order == 0) {
                /* One end marker per sink, so each of them stops. */
                for (int s = 0; s < SINKS; s++)
                    while (weir_mpmc_push(&priced, AS_PTR(0)) == WEIR_EAGAIN)
                        wait_a_little();
                return NULL;
            }
            /* Pack order and price into one word: price in the low byte. */
            void *item = AS_PTR(order << 8 | price_of(order));
            while (weir_mpmc_push(&priced, item) == WEIR_EAGAIN)
                wait_a_little();
        }
    }
}

static void *
sink_main(void *arg)
{
    sink *me = arg;
    void *item;
    for (;;) {
        int rc = weir_mpmc_pop(&priced, &item);
        if (rc == WEIR_EAGAIN) {
            wait_a_little();
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "pop: %s\n", weir_strerror(rc));
            exit(1);
        }
        uint64_t v = AS_NUM(item);
        if (v == 0)
            return NULL;
        if ((v & 0xff) != price_of(v >> 8)) {
            fprintf(stderr, "order %" PRIu64 " arrived with a wrong price\n",
                    v >> 8);
            exit(1);
        }
        me->count++;
        me->total += v & 0xff;
    }
}

static void
start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (pthread_create(t, NULL, fn, arg) != 0) {
        fprintf(stderr, "cannot start a thread\n");
        exit(1);
    }
}

int
main(void)
{
    int rc;
    if ((rc = weir_spsc_init(&orders, 1024)) != 0 ||
        (rc = weir_mpmc_init(&priced, 1024)) != 0) {
        fprintf(stderr, "ring init: %s\n", weir_strerror(rc));
        return 1;
    }

    pthread_t src, mid;
    sink sinks[SINKS] = { 0 };
    start(&src, source, NULL);
    start(&mid, transform, NULL);
    for (int s = 0; s < SINKS; s++)
        start(&sinks[s].thread, sink_main, &sinks[s]);

    pthread_join(src, NULL);
    pthread_join(mid, NULL);
    uint64_t count = 0, total = 0, expected = 0;
    for (int s = 0; s < SINKS; s++) {
        pthread_join(sinks[s].thread, NULL);
        printf("sink %d handled %8" PRIu64 " orders worth %10" PRIu64 "\n",
               s, sinks[s].count, sinks[s].total);
        count += sinks[s].count;
        total += sinks[s].total;
    }
    for (uint64_t n = 1; n <= ORDERS; n++)
        expected += price_of(n);

    printf("orders placed %d, delivered %" PRIu64 ", worth %" PRIu64
           " (expected %" PRIu64 ")\n", ORDERS, count, total, expected);
    int ok = count == ORDERS && total == expected &&
             weir_spsc_size(&orders) == 0 && weir_mpmc_size(&priced) == 0;
    printf("%s\n", ok ? "ring_pipeline: OK" : "ring_pipeline: MISMATCH");
    weir_spsc_destroy(&orders);
    weir_mpmc_destroy(&priced);
    return ok ? 0 : 1;
}
