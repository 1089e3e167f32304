/* SPDX-License-Identifier: MIT */
/*
 * bench/harness.h - what every ring benchmark program shares: the thread
 * bodies, the retry policy and the cases; threads, clocks and the command
 * line come from common.h.  Usable from C11 and C++ alike.
 *
 * Each program wraps every implementation in four tiny adapters (push,
 * pop and, where there is one, burst push and pop) and hands them to
 * bench_role below.  bench_role and the loops it calls are always inlined
 * into the one thread function an implementation gets, so the adapters
 * reach them as constants: gcc turns the indirect calls into direct ones
 * and inlines them, and every implementation runs the very same loop with
 * no call through a pointer per item.  A loop copied per implementation
 * would do the same, but could drift from the others unnoticed.
 *
 * Items are integers 1..n carried as void *, never dereferenced.
 */
#ifndef WEIR_BENCH_HARNESS_H
#define WEIR_BENCH_HARNESS_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BENCH_ALWAYS_INLINE static inline __attribute__((always_inline))

/*
 * For each thread function: inline everything it calls, the queue's own
 * code included.  Left to itself gcc inlines a small push or pop but keeps
 * a larger one (ReaderWriterQueue's, Boost's pop) out of line, because
 * bench_role calls it from several places; flattening gives every
 * implementation the code a hand-written loop with one call site gets.
 */
#define BENCH_THREAD __attribute__((flatten))

#if defined(__x86_64__) || defined(__i386__)
#define BENCH_PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define BENCH_PAUSE() __asm__ __volatile__("yield" ::: "memory")
#else
#define BENCH_PAUSE() ((void)0)
#endif

/*
 * The retry policy after a failed try in the throughput cases, the same
 * in C, C++ and Rust (bench/crossbeam/src/main.rs): 1, 2, 4, ... 64 pause
 * instructions on successive failures, then sched_yield() on every further
 * one; any success starts over.  The pauses cover the common case of the
 * other side being a few hundred ns behind, and the yield lets a
 * preempted peer run when four threads share two cores.
 */
#define BENCH_SPIN_STEPS 7 /* 1 << 6 == 64 pauses on the last step */

/* Bits in bench_impl.cases, one per enum bench_case. */
enum bench_case {
    BENCH_SPSC,  /* 1 producer, 1 consumer, one item per call, pinned */
    BENCH_BURST, /* the same with bursts of BENCH_BURST_N items per call */
    BENCH_MPMC1, /* MPMC ring, 1 producer and 1 consumer, pinned */
    BENCH_MPMC2, /* MPMC ring, 2 producers and 2 consumers, unpinned */
    BENCH_RTT,   /* ping-pong through two rings: ns per round trip */
    BENCH_NCASES
};
#define BENCH_CASE_BIT(c) (1u << (c))

#define BENCH_BURST_N 32

enum bench_role { BENCH_PRODUCE, BENCH_CONSUME, BENCH_PING, BENCH_PONG };

/* What one thread of a run does; filled by the harness. */
struct bench_worker {
    enum bench_role role;
    size_t burst;        /* items per call, or 0 for single-item calls */
    int cpu;             /* CPU to pin the thread to, or -1 */
    void *in;            /* ring this thread pops from (not a producer) */
    void *out;           /* ring this thread pushes to (not a consumer) */
    uint64_t first;      /* producer: first item it pushes */
    uint64_t stride;     /* producer: step between its items */
    uint64_t count;      /* items pushed or popped; ping: round trips */
    uint64_t warmup;     /* ping: untimed round trips before the count */
    uint64_t sum;        /* consumer: sum of the items it popped */
    uint64_t bad;        /* ping: replies that were not the item sent */
    uint64_t *samples;   /* ping: bench_ticks per timed round trip */
};

typedef int (*bench_push_fn)(void *ring, void *item);   /* nonzero: pushed */
typedef int (*bench_pop_fn)(void *ring, void **item);   /* nonzero: popped */
typedef size_t (*bench_push_burst_fn)(void *ring, void *const *items,
                                      size_t n);        /* how many pushed */
typedef size_t (*bench_pop_burst_fn)(void *ring, void **items, size_t n);

/* One implementation of one ring family, as a program offers it. */
struct bench_impl {
    const char *name;    /* as named on the command line */
    unsigned cases;      /* BENCH_CASE_BIT of every case it runs */
    /*
     * Makes a ring of the given capacity, NULL on failure.  peer is the
     * ring that the new one answers in the round trip, else NULL; only the
     * floor uses it, since both its directions share one cache line.
     */
    void *(*create)(size_t capacity, void *peer);
    void (*destroy)(void *ring);
    void *(*thread)(void *self); /* returns bench_role(self, ...) */
};

/*
 * Parses IMPL CASE COUNT, runs that case once with capacity 1024 and
 * prints one line: items per second, or for BENCH_RTT the median and the
 * 99th percentile in ns.  Returns the exit status.
 */
int bench_main(int argc, char **argv, const struct bench_impl *impls,
               size_t nimpls);

/* One more failed try: see BENCH_SPIN_STEPS.  *step is 0 after a success. */
BENCH_ALWAYS_INLINE void
bench_backoff(unsigned *step)
{
    if (*step < BENCH_SPIN_STEPS) {
        for (unsigned i = 0; i < 1u << *step; i++)
            BENCH_PAUSE();
        (*step)++;
    } else {
        sched_yield();
    }
}

BENCH_ALWAYS_INLINE void
bench_push_one(void *ring, void *item, bench_push_fn push)
{
    unsigned step = 0;
    while (!push(ring, item))
        bench_backoff(&step);
}

BENCH_ALWAYS_INLINE void *
bench_pop_one(void *ring, bench_pop_fn pop)
{
    unsigned step = 0;
    void *item;
    while (!pop(ring, &item))
        bench_backoff(&step);
    return item;
}

BENCH_ALWAYS_INLINE void
bench_produce(struct bench_worker *w, bench_push_fn push)
{
    uint64_t v = w->first;
    for (uint64_t i = 0; i < w->count; i++, v += w->stride)
        bench_push_one(w->out, (void *)(uintptr_t)v, push);
}

BENCH_ALWAYS_INLINE void
bench_consume(struct bench_worker *w, bench_pop_fn pop)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < w->count; i++)
        sum += (uintptr_t)bench_pop_one(w->in, pop);
    w->sum = sum;
}

/*
 * A burst producer refills its buffer with the next items once the ring
 * has taken all of it; a partial push leaves the rest for the next call.
 */
BENCH_ALWAYS_INLINE void
bench_produce_burst(struct bench_worker *w, bench_push_burst_fn push_burst)
{
    void *buf[BENCH_BURST_N];
    uint64_t v = w->first, left = w->count;
    size_t n = 0, done = 0;
    unsigned step = 0;
    while (left > 0 || done < n) {
        if (done == n) {
            n = left < w->burst ? (size_t)left : w->burst;
            for (size_t i = 0; i < n; i++, v += w->stride)
                buf[i] = (void *)(uintptr_t)v;
            left -= n;
            done = 0;
        }
        size_t k = push_burst(w->out, buf + done, n - done);
        if (k == 0) {
            bench_backoff(&step);
            continue;
        }
        done += k;
        step = 0;
    }
}

BENCH_ALWAYS_INLINE void
bench_consume_burst(struct bench_worker *w, bench_pop_burst_fn pop_burst)
{
    void *buf[BENCH_BURST_N];
    uint64_t sum = 0, left = w->count;
    unsigned step = 0;
    while (left > 0) {
        size_t want = left < w->burst ? (size_t)left : w->burst;
        size_t k = pop_burst(w->in, buf, want);
        if (k == 0) {
            bench_backoff(&step);
            continue;
        }
        for (size_t i = 0; i < k; i++)
            sum += (uintptr_t)buf[i];
        left -= k;
        step = 0;
    }
    w->sum = sum;
}

/*
 * The round trip is a latency test with each thread on its own core, so a
 * failed try is retried at once after one pause, for the floor and every
 * ring alike: any longer back-off would be measured as latency.
 */
BENCH_ALWAYS_INLINE void
bench_ping(struct bench_worker *w, bench_push_fn push, bench_pop_fn pop)
{
    uint64_t total = w->warmup + w->count, bad = 0;
    for (uint64_t i = 0; i < total; i++) {
        void *item = (void *)(uintptr_t)(i + 1), *reply;
        uint64_t t0 = bench_ticks();
        while (!push(w->out, item))
            BENCH_PAUSE();
        while (!pop(w->in, &reply))
            BENCH_PAUSE();
        uint64_t t1 = bench_ticks();
        bad += reply != item;
        if (i >= w->warmup)
            w->samples[i - w->warmup] = t1 - t0;
    }
    w->bad = bad;
}

BENCH_ALWAYS_INLINE void
bench_pong(struct bench_worker *w, bench_push_fn push, bench_pop_fn pop)
{
    uint64_t total = w->warmup + w->count;
    for (uint64_t i = 0; i < total; i++) {
        void *item;
        while (!pop(w->in, &item))
            BENCH_PAUSE();
        while (!push(w->out, item))
            BENCH_PAUSE();
    }
}

/*
 * The body of every benchmark thread: self is the struct bench_thread
 * whose arg is the thread's struct bench_worker.  push_burst and
 * pop_burst may be NULL for an implementation without bursts, which then
 * never gets a worker with a non-zero burst.
 */
BENCH_ALWAYS_INLINE void *
bench_role(void *self, bench_push_fn push, bench_pop_fn pop,
           bench_push_burst_fn push_burst, bench_pop_burst_fn pop_burst)
{
    struct bench_worker *w =
        (struct bench_worker *)bench_wait_go((struct bench_thread *)self);
    if (w == NULL)
        return NULL;
    switch (w->role) {
    case BENCH_PRODUCE:
        if (w->burst > 0 && push_burst != NULL)
            bench_produce_burst(w, push_burst);
        else
            bench_produce(w, push);
        break;
    case BENCH_CONSUME:
        if (w->burst > 0 && pop_burst != NULL)
            bench_consume_burst(w, pop_burst);
        else
            bench_consume(w, pop);
        break;
    case BENCH_PING:
        bench_ping(w, push, pop);
        break;
    case BENCH_PONG:
        bench_pong(w, push, pop);
        break;
    }
    return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* WEIR_BENCH_HARNESS_H */
