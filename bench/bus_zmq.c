/* SPDX-License-Identifier: MIT */
/*
 * bench/bus_zmq.c - ZeroMQ inproc PUB/SUB as a publish/subscribe bus.
 * Usage: bus_zmq zmq CASE COUNT (see bus_harness.h); bench/run drives it.
 *
 * One PUB socket bound to inproc://weir-bench on the publishing thread;
 * one thread per subscription, each with its own SUB socket connected to
 * it and subscribed to everything.  The high-water marks of both sides
 * are 0 (no limit), so PUB never drops: every subscriber must count
 * COUNT messages, or the run fails.  zmq_send copies the payload into a
 * message that PUB shares among its subscribers.
 *
 * Slow joiners: a subscription reaches PUB some time after zmq_connect
 * returns, and PUB drops what it publishes before.  So before the timed
 * span the publisher sends warm-up messages (stamp 0) every 100 us until
 * every subscriber has received one; subscribers skip them.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <zmq.h>

#include "bus_harness.h"

#define ENDPOINT "inproc://weir-bench"

struct zsub {
    void *ctx;
    struct bus_sub_state *state;
    atomic_uint *connected;  /* subscribers with a connected socket */
    atomic_uint *joined;     /* subscribers that saw a warm-up message */
    size_t bytes;
    pthread_t thread;
};

static void
fail(const char *what)
{
    fprintf(stderr, "bench: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void *
zsub_thread(void *arg)
{
    struct zsub *z = arg;
    int zero = 0;
    bool seen = false;
    void *s = zmq_socket(z->ctx, ZMQ_SUB);
    if (s == NULL ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero)) != 0 ||
        zmq_connect(s, ENDPOINT) != 0 ||
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) != 0)
        fail("SUB socket");
    atomic_fetch_add(z->connected, 1);

    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (z->state->handled < z->state->target) {
        if (zmq_msg_recv(&msg, s, 0) < 0)
            fail("zmq_msg_recv");
        const unsigned char *data = zmq_msg_data(&msg);
        uint64_t stamp;
        if (zmq_msg_size(&msg) != z->bytes) {
            fprintf(stderr, "bench: message of %zu bytes\n",
                    zmq_msg_size(&msg));
            exit(1);
        }
        memcpy(&stamp, data, sizeof(stamp));
        if (stamp == 0) {
            if (!seen)
                atomic_fetch_add(z->joined, 1);
            seen = true;
            continue;
        }
        bus_handle(z->state, data);
    }
    zmq_msg_close(&msg);
    zmq_close(s);
    return NULL;
}

static int
zmq_run(const struct bus_case *c, struct bus_sub_state *subs,
        struct bus_done *done, uint64_t *span_ns, double own[2])
{
    struct zsub z[BUS_MAX_SUBS];
    atomic_uint connected, joined;
    int zero = 0;
    unsigned char *payload = calloc(1, c->bytes);
    (void)own;

    void *ctx = zmq_ctx_new();
    void *pub = ctx != NULL ? zmq_socket(ctx, ZMQ_PUB) : NULL;
    if (payload == NULL || pub == NULL ||
        zmq_setsockopt(pub, ZMQ_SNDHWM, &zero, sizeof(zero)) != 0 ||
        zmq_bind(pub, ENDPOINT) != 0)
        fail("PUB socket");
    atomic_init(&connected, 0);
    atomic_init(&joined, 0);
    for (unsigned i = 0; i < c->subs; i++) {
        z[i] = (struct zsub){ .ctx = ctx, .state = &subs[i],
            .connected = &connected, .joined = &joined, .bytes = c->bytes };
        if (pthread_create(&z[i].thread, NULL, zsub_thread, &z[i]) != 0)
            fail("pthread_create");
    }
    while (atomic_load(&connected) < c->subs)
        sched_yield();
    /* Warm-up messages carry stamp 0 (calloc) until everyone has one. */
    while (atomic_load(&joined) < c->subs) {
        if (zmq_send(pub, payload, c->bytes, 0) < 0)
            fail("zmq_send");
        bench_sleep_ns(100000);
    }
    for (size_t i = 8; i < c->bytes; i++)
        payload[i] = (unsigned char)(i * 7 + 1);

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < c->count; i++) {
        if (c->kind == BUS_PACED)
            bus_pace(t0 + i * BUS_PACE_NS);
        bus_stamp(payload);
        if (zmq_send(pub, payload, c->bytes, 0) < 0)
            fail("zmq_send");
    }
    *span_ns = bus_done_wait(done) - t0;

    for (unsigned i = 0; i < c->subs; i++)
        pthread_join(z[i].thread, NULL);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    free(payload);
    return 0;
}

static const struct bus_impl impls[] = {
    { "zmq", zmq_run },
};

int
main(int argc, char **argv)
{
    return bus_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]));
}
