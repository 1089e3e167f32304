/* SPDX-License-Identifier: MIT */
/*
 * bench/bus.c - weir's bus and the textbook fan-out it is measured
 * against.  Usage: bus IMPL CASE COUNT (see bus_harness.h); bench/run
 * drives it.
 *
 * weir: weir_bus_create with default options; SUBS subscriptions of one
 * topic, each with default options (one worker, capacity 1024, BLOCK);
 * the publisher publishes through a weir_bus_topic handle with
 * weir_topic_publish (NULL options: no key, no timeout).  After the run
 * the bus is closed and every subscription's statistics are checked:
 * routed == acked == COUNT, nothing failed or dropped.
 *
 * textbook: what one writes first.  The publisher copies the payload into
 * one malloc'd message with an atomic reference count equal to the
 * number of subscriptions and pushes its pointer into every
 * subscription's queue: a ring of 1024 pointers under one mutex, with
 * not_full and not_empty condition variables signalled after every item.
 * One consumer thread per queue handles the message and drops its
 * reference; the last one frees it.
 */
#include <inttypes.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <weir/bus.h>

#include "bus_harness.h"
#include "textbook.h"

#define TOPIC "bench.orders"

/* The payload the publisher sends: stamped, the rest a fixed pattern. */
static unsigned char *
make_payload(size_t bytes)
{
    unsigned char *p = malloc(bytes);
    if (p != NULL)
        for (size_t i = 0; i < bytes; i++)
            p[i] = (unsigned char)(i * 7 + 1);
    return p;
}

/* --- weir ----------------------------------------------------------------- */

static int
weir_handler_fn(const weir_msg *m, void *ctx)
{
    bus_handle(ctx, weir_msg_data(m));
    return 0;
}

static int
weir_check(weir_sub *const *sub, unsigned n, uint64_t count, double own[2])
{
    int rc = 0;
    for (unsigned i = 0; i < n; i++) {
        weir_sub_stats st;
        if (weir_sub_get_stats(sub[i], &st) != 0) {
            fprintf(stderr, "bench: weir_sub_get_stats failed\n");
            return 1;
        }
        if (st.routed != count || st.acked != count || st.failed != 0 ||
            st.dropped != 0 || st.queued != 0 || st.in_flight != 0) {
            fprintf(stderr, "bench: weir subscription %u: routed %" PRIu64
                    " acked %" PRIu64 " failed %" PRIu64 " dropped %" PRIu64
                    " queued %" PRIu64 " in flight %" PRIu64 ", expected %"
                    PRIu64 " acked\n", i, st.routed, st.acked, st.failed,
                    st.dropped, st.queued, st.in_flight, count);
            rc = 1;
        }
        if ((double)st.latency_p50_ns > own[0])
            own[0] = (double)st.latency_p50_ns;
        if ((double)st.latency_p99_ns > own[1])
            own[1] = (double)st.latency_p99_ns;
    }
    return rc;
}

static int
weir_run(const struct bus_case *c, struct bus_sub_state *subs,
         struct bus_done *done, uint64_t *span_ns, double own[2])
{
    weir_bus *bus;
    weir_topic *topic;
    weir_sub *sub[BUS_MAX_SUBS];
    unsigned char *payload = make_payload(c->bytes);
    int err;

    if (payload == NULL || (err = weir_bus_create(&bus, NULL)) != 0) {
        fprintf(stderr, "bench: cannot create the bus\n");
        free(payload);
        return 1;
    }
    for (unsigned i = 0; i < c->subs; i++) {
        err = weir_bus_subscribe(bus, TOPIC, weir_handler_fn, &subs[i],
                                 NULL, &sub[i]);
        if (err != 0) {
            fprintf(stderr, "bench: weir_bus_subscribe: %s\n",
                    weir_strerror(err));
            weir_bus_destroy(bus);
            free(payload);
            return 1;
        }
    }
    if ((err = weir_bus_topic(bus, TOPIC, &topic)) != 0) {
        fprintf(stderr, "bench: weir_bus_topic: %s\n", weir_strerror(err));
        weir_bus_destroy(bus);
        free(payload);
        return 1;
    }

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < c->count; i++) {
        if (c->kind == BUS_PACED)
            bus_pace(t0 + i * BUS_PACE_NS);
        bus_stamp(payload);
        err = weir_topic_publish(topic, payload, c->bytes, NULL);
        if (err != 0) {
            /* The handlers will never reach their targets: stop here. */
            fprintf(stderr, "bench: weir_topic_publish: %s after %" PRIu64
                    " messages\n", weir_strerror(err), i);
            exit(1);
        }
    }
    *span_ns = bus_done_wait(done) - t0;

    int rc = 0;
    if ((err = weir_bus_close(bus, WEIR_FOREVER)) != 0) {
        fprintf(stderr, "bench: weir_bus_close: %s\n", weir_strerror(err));
        rc = 1;
    }
    own[0] = own[1] = 0;
    rc |= weir_check(sub, c->subs, c->count, own);
    weir_bus_destroy(bus);
    free(payload);
    return rc;
}

/* --- the textbook fan-out ------------------------------------------------ */

struct tb_msg {
    atomic_uint refs;        /* subscriptions yet to handle it */
    size_t len;
    alignas(16) unsigned char data[];
};

/* A subscription: its queue (bench/textbook.h) and its consumer. */
struct tb_queue {
    alignas(64) struct textbook ring;
    struct bus_sub_state *state;
    pthread_t thread;
};

static void *
tb_consumer(void *arg)
{
    struct tb_queue *q = arg;
    for (uint64_t i = 0; i < q->state->target; i++) {
        struct tb_msg *m = textbook_pop(&q->ring);
        bus_handle(q->state, m->data);
        /* acq_rel: the last one's free must follow every other reader. */
        if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
            free(m);
    }
    return NULL;
}

static int
textbook_run(const struct bus_case *c, struct bus_sub_state *subs,
             struct bus_done *done, uint64_t *span_ns, double own[2])
{
    size_t size = (sizeof(struct tb_queue) + 63) / 64 * 64;
    struct tb_queue *qs = aligned_alloc(64, size * c->subs);
    unsigned char *payload = make_payload(c->bytes);
    unsigned started = 0;
    (void)own;

    if (qs == NULL || payload == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        free(qs);
        free(payload);
        return 1;
    }
    for (unsigned i = 0; i < c->subs; i++) {
        struct tb_queue *q = &qs[i];
        if (textbook_init(&q->ring, BUS_CAPACITY) != 0) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        q->state = &subs[i];
        if (pthread_create(&q->thread, NULL, tb_consumer, q) != 0) {
            fprintf(stderr, "bench: cannot start threads\n");
            exit(1);
        }
        started++;
    }

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < c->count; i++) {
        if (c->kind == BUS_PACED)
            bus_pace(t0 + i * BUS_PACE_NS);
        bus_stamp(payload);
        struct tb_msg *m = malloc(sizeof(*m) + c->bytes);
        if (m == NULL) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        atomic_init(&m->refs, c->subs);
        m->len = c->bytes;
        memcpy(m->data, payload, c->bytes);
        for (unsigned s = 0; s < c->subs; s++)
            textbook_push(&qs[s].ring, m);
    }
    *span_ns = bus_done_wait(done) - t0;

    for (unsigned i = 0; i < started; i++) {
        pthread_join(qs[i].thread, NULL);
        textbook_destroy(&qs[i].ring);
    }
    free(qs);
    free(payload);
    return 0;
}

static const struct bus_impl impls[] = {
    { "weir", weir_run },
    { "textbook", textbook_run },
};

int
main(int argc, char **argv)
{
    return bus_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]));
}
