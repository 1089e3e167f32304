/* SPDX-License-Identifier: MIT */
/*
 * bench/bus_harness.h - what the C programs of the bus suite share
 * (bench/bus.c: weir and the textbook fan-out; bench/bus_zmq.c: ZeroMQ).
 * The Java program (bench/bus_disruptor/BusDisruptor.java) repeats the
 * same steps, the histogram included, in its own language.
 *
 * Command line: PROGRAM IMPL CASE COUNT, CASE being KIND SUBS x BYTES:
 *   tSxB  throughput: one publisher, S subscriptions of one handler
 *         thread each, COUNT messages of B bytes published back to back;
 *         the span runs from the first publish until every subscription
 *         has handled every message.  Prints messages published per
 *         second, then the p50 and p99 publish-to-handler latency in ns.
 *   sSxB  the same run, printed as a cost: ns per publish (span / COUNT)
 *         and ns per publish per subscription; no latency is recorded.
 *   lSxB  latency at a steady pace: one message every BUS_PACE_NS, the
 *         publisher waiting (spinning on the clock) between them.  Prints
 *         p50 and p99 in ns.
 * weir appends its own statistics (weir_sub_get_stats): the p50 and p99
 * of publish to handler return, the largest over its subscriptions.
 *
 * Latency: the publisher writes CLOCK_MONOTONIC ns into the first 8 bytes
 * of every payload just before it publishes; each handler reads the clock
 * when it starts on the message and adds the difference to its own
 * histogram (bus_hist_add), merged once every subscription is done.
 */
#ifndef WEIR_BENCH_BUS_HARNESS_H
#define WEIR_BENCH_BUS_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

#define BUS_MAX_SUBS 64
#define BUS_MAX_BYTES 4096
#define BUS_CAPACITY 1024
#define BUS_PACE_NS 20000 /* lSxB: one message per 20 us, 50,000 a second */

/*
 * A latency histogram: values below 32 ns exactly, larger ones in 32
 * buckets per power of two (about 3 % wide), up to 2^40 ns.  Bucket of
 * v >= 32: ((msb - 5 + 1) << 5) + the 5 bits below the most significant.
 */
#define BUS_HIST_SUB 5
#define BUS_HIST_BUCKETS ((40 - BUS_HIST_SUB + 1) << BUS_HIST_SUB)

struct bus_hist {
    uint64_t n;
    uint32_t bucket[BUS_HIST_BUCKETS];
};

enum bus_kind { BUS_RATE, BUS_COST, BUS_PACED };

/* One run, as the command line gives it. */
struct bus_case {
    enum bus_kind kind;
    unsigned subs;      /* 1 .. BUS_MAX_SUBS */
    size_t bytes;       /* 8 .. BUS_MAX_BYTES */
    uint64_t count;     /* messages published, timed */
    bool latency;       /* handlers record latency (not for sSxB) */
};

/*
 * What every subscription's handler updates: only its own thread writes
 * it, and bus_done_mark hands it to the main thread under the done lock.
 */
struct bus_sub_state {
    uint64_t handled;
    uint64_t target;     /* handled at which the subscription is done */
    struct bus_done *done;
    bool latency;
    struct bus_hist hist;
    char pad[64];
};

/*
 * Completion: the handler that brings its subscription to its target
 * reads the clock, so the span ends at the last message's handling and
 * not when the main thread happens to wake up.
 */
struct bus_done {
    pthread_mutex_t lock;
    pthread_cond_t all_done;
    unsigned left;      /* subscriptions not done; guarded by lock */
    uint64_t last_ns;   /* latest finish; guarded by lock */
};

static inline unsigned
bus_hist_index(uint64_t v)
{
    if (v < (1u << BUS_HIST_SUB))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb > 39)
        return BUS_HIST_BUCKETS - 1;
    return ((msb - BUS_HIST_SUB + 1) << BUS_HIST_SUB) +
           (unsigned)((v >> (msb - BUS_HIST_SUB)) & ((1u << BUS_HIST_SUB) - 1));
}

static inline void
bus_hist_add(struct bus_hist *h, uint64_t v)
{
    h->bucket[bus_hist_index(v)]++;
    h->n++;
}

/*
 * The handler's common part: the latency of a payload stamped by the
 * publisher, the count, and the completion mark.  Called from the
 * subscription's one handler thread.
 */
void bus_done_mark(struct bus_sub_state *s);

static inline void
bus_handle(struct bus_sub_state *s, const void *payload)
{
    if (s->latency) {
        uint64_t sent;
        memcpy(&sent, payload, sizeof(sent));
        bus_hist_add(&s->hist, bench_now_ns() - sent);
    }
    if (++s->handled == s->target)
        bus_done_mark(s);
}

/* The publisher's side: stamps the clock into the payload. */
static inline void
bus_stamp(unsigned char *payload)
{
    uint64_t now = bench_now_ns();
    memcpy(payload, &now, sizeof(now));
}

/* lSxB: waits until the next slot of the pace; returns its start. */
uint64_t bus_pace(uint64_t next_ns);

/* An implementation: runs one case, fills *span_ns, returns 0 or 1. */
struct bus_impl {
    const char *name;
    int (*run)(const struct bus_case *c, struct bus_sub_state *subs,
               struct bus_done *done, uint64_t *span_ns,
               double own[2]);   /* own p50, p99 ns, or negative: none */
};

/* Waits for every subscription to reach its target; returns last_ns. */
uint64_t bus_done_wait(struct bus_done *done);

/* Parses IMPL CASE COUNT, runs it once, prints its line; exit status. */
int bus_main(int argc, char **argv, const struct bus_impl *impls,
             size_t nimpls);

#endif /* WEIR_BENCH_BUS_HARNESS_H */
