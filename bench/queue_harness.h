/* SPDX-License-Identifier: MIT */
/*
 * bench/queue_harness.h - what every blocking-queue benchmark program in C
 * or C++ shares: the thread bodies of the four cases and their clocks;
 * threads and the command line come from common.h.  The Go and Rust
 * peers (bench/queue_go/main.go, bench/channel/src/main.rs) repeat the
 * same steps in their own language.
 *
 * Unlike the ring harness there is no retry policy here: every push and
 * pop is the implementation's own blocking call, which waits as that
 * implementation chooses (spin, yield, sleep).  That waiting is what this
 * benchmark measures.
 *
 * Each program wraps an implementation in two adapters, a blocking push
 * and a blocking pop, and hands them to qbench_role below, which is
 * inlined with them into the implementation's one thread function
 * (QBENCH_THREAD), so no call goes through a pointer per item.
 *
 * Cases (the CASE argument):
 *   q1    1 producer, 1 consumer pinned to CPUs 0 and 1: items per second
 *   q2    2 producers, 2 consumers, unpinned: items per second
 *   wake  the consumer asleep in pop, the producer pushes one timestamp:
 *         ns from just before the push to the pop's return
 *   idle  the consumer asleep in pop on an empty queue: its CPU time
 * Items are integers 1..n (or timestamps) carried as void *, never
 * dereferenced and never NULL (GLib refuses NULL).
 */
#ifndef WEIR_BENCH_QUEUE_HARNESS_H
#define WEIR_BENCH_QUEUE_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QBENCH_INLINE static inline __attribute__((always_inline))
#define QBENCH_THREAD __attribute__((flatten))

#define QBENCH_CAPACITY 1024

/*
 * The wake-up case waits this long between items, in two halves: the
 * consumer's CPU clock is read after each half, and a sample whose
 * consumer used CPU during the second half was not asleep at the push
 * (it is counted and reported, see struct qbench_worker.awake).  Half a
 * millisecond is far beyond the spin phase of every implementation here
 * (tens of microseconds at most).  Build with -DQBENCH_WAKE_GAP_NS=...
 * to try another gap.
 */
#ifndef QBENCH_WAKE_GAP_NS
#define QBENCH_WAKE_GAP_NS 1000000
#endif

/* The idle case: CPU time before this is the spin before sleeping. */
#define QBENCH_IDLE_SETTLE_NS 20000000

enum qbench_role {
    QBENCH_PRODUCE,   /* pushes count items first, first+stride, ... */
    QBENCH_CONSUME,   /* pops count items and sums them */
    QBENCH_WAKE_SEND, /* waits, pushes a timestamp, count + warmup times */
    QBENCH_WAKE_RECV, /* pops them, storing the delay of each */
    QBENCH_IDLE_SEND, /* watches the receiver's CPU clock, then pushes one */
    QBENCH_IDLE_RECV  /* pops one item */
};

/* What one thread of a run does; filled by the harness. */
struct qbench_worker {
    enum qbench_role role;
    int cpu;                   /* CPU to pin the thread to, or -1 */
    void *queue;
    uint64_t first;            /* producer: its first item */
    uint64_t stride;           /* producer: step between its items */
    uint64_t count;            /* items; wake: timed samples; idle: ms */
    uint64_t warmup;           /* wake: untimed samples before count */
    uint64_t sum;              /* consumer: sum of the items it popped */
    uint64_t *samples;         /* wake receiver: ns per timed wake-up */
    uint64_t awake;            /* wake sender: samples whose receiver ran
                                  in the half gap before the push */
    clockid_t peer_clock;      /* sender: the receiver's CPU clock */
    uint64_t idle_cpu_ns;      /* idle sender: receiver CPU, settled span */
    uint64_t idle_wall_ns;     /* idle sender: length of that span */
    uint64_t spin_cpu_ns;      /* idle sender: receiver CPU before it */
    uint64_t cpu_before;       /* idle receiver: its CPU ns just before
                                  pop, never 0; __atomic, see below */
    struct qbench_worker *peer; /* idle sender: the receiver */
};

/* Blocking adapters; a failure ends the program (bench_fail). */
typedef void (*qbench_push_fn)(void *queue, void *item);
typedef void *(*qbench_pop_fn)(void *queue);

struct qbench_impl {
    const char *name;            /* as named on the command line */
    void *(*create)(size_t capacity); /* NULL on failure */
    void (*destroy)(void *queue);
    void *(*thread)(void *self); /* returns qbench_role(self, ...) */
};

uint64_t qbench_cpu_ns(clockid_t clock);   /* a thread's CPU clock */

/* Both halves of the idle case's hand-over, see qbench_role. */
void qbench_idle_send(struct qbench_worker *w, qbench_push_fn push);
void qbench_idle_mark(struct qbench_worker *w);
void qbench_wake_pause(struct qbench_worker *w, uint64_t *awake);

/*
 * Parses IMPL CASE COUNT, runs that case once at capacity 1024 and prints
 * one line: q1, q2: items per second; wake: median and 99th percentile ns
 * and the number of samples whose consumer was awake; idle: CPU us per
 * second asleep and CPU us before settling.  Returns the exit status.
 */
int qbench_main(int argc, char **argv, const struct qbench_impl *impls,
                size_t nimpls);

QBENCH_INLINE void
qbench_produce(struct qbench_worker *w, qbench_push_fn push)
{
    uint64_t v = w->first;
    for (uint64_t i = 0; i < w->count; i++, v += w->stride)
        push(w->queue, (void *)(uintptr_t)v);
}

QBENCH_INLINE void
qbench_consume(struct qbench_worker *w, qbench_pop_fn pop)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < w->count; i++)
        sum += (uintptr_t)pop(w->queue);
    w->sum = sum;
}

QBENCH_INLINE void
qbench_wake_send(struct qbench_worker *w, qbench_push_fn push)
{
    uint64_t awake = 0;
    for (uint64_t i = 0; i < w->warmup + w->count; i++) {
        qbench_wake_pause(w, i >= w->warmup ? &awake : NULL);
        push(w->queue, (void *)(uintptr_t)bench_now_ns());
    }
    w->awake = awake;
}

QBENCH_INLINE void
qbench_wake_recv(struct qbench_worker *w, qbench_pop_fn pop)
{
    for (uint64_t i = 0; i < w->warmup + w->count; i++) {
        uint64_t sent = (uintptr_t)pop(w->queue);
        uint64_t now = bench_now_ns();
        if (i >= w->warmup)
            w->samples[i - w->warmup] = now - sent;
    }
}

/*
 * The body of every benchmark thread: self is the struct bench_thread
 * whose arg is the thread's struct qbench_worker.
 */
QBENCH_INLINE void *
qbench_role(void *self, qbench_push_fn push, qbench_pop_fn pop)
{
    struct qbench_worker *w =
        (struct qbench_worker *)bench_wait_go((struct bench_thread *)self);
    if (w == NULL)
        return NULL;
    switch (w->role) {
    case QBENCH_PRODUCE:
        qbench_produce(w, push);
        break;
    case QBENCH_CONSUME:
        qbench_consume(w, pop);
        break;
    case QBENCH_WAKE_SEND:
        qbench_wake_send(w, push);
        break;
    case QBENCH_WAKE_RECV:
        qbench_wake_recv(w, pop);
        break;
    case QBENCH_IDLE_SEND:
        qbench_idle_send(w, push);
        break;
    case QBENCH_IDLE_RECV:
        qbench_idle_mark(w);
        (void)pop(w->queue);
        break;
    }
    return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* WEIR_BENCH_QUEUE_HARNESS_H */
