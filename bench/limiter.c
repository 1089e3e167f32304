/* SPDX-License-Identifier: MIT */
/*
 * bench/limiter.c - the cost of weir_limiter_acquire(l, 1, WEIR_NOWAIT)
 * when it always succeeds, on one thread and on two threads sharing one
 * limiter, next to two references: one atomic fetch-and-add on one shared
 * word per call, the least a shared counter of permits can cost, and one
 * clock_gettime(CLOCK_MONOTONIC) per call, the clock read every acquire
 * makes (weir_limiter_init's clock).
 *
 * Usage: limiter IMPL CASE COUNT, IMPL weir, atomic or clock, CASE one (one
 * thread, pinned to CPU 0) or two (two threads pinned to CPUs 0 and 1),
 * COUNT calls per thread.  Prints ns per call per thread (the span from
 * go to the last join over COUNT) and how many calls were refused.
 *
 * The limiter runs at 1e9 permits a second with a burst of 1e9: no run
 * here asks for more than a few hundred million permits in its first
 * second, so every call is due and takes the lock-free fast path.
 */
#include <inttypes.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <weir/limiter.h>

#include "common.h"

struct shared {
    weir_limiter limiter;
    alignas(64) atomic_uint_fast64_t word; /* the reference's counter */
};

struct worker {
    struct shared *shared;
    uint64_t count;
    uint64_t refused; /* out */
};

struct impl {
    const char *name;
    void *(*thread)(void *self); /* self: its struct bench_thread */
};

static void *
weir_thread(void *self)
{
    struct worker *w = bench_wait_go(self);
    if (w == NULL)
        return NULL;
    weir_limiter *l = &w->shared->limiter;
    uint64_t refused = 0;
    for (uint64_t i = 0; i < w->count; i++)
        refused += weir_limiter_acquire(l, 1, WEIR_NOWAIT) != 0;
    w->refused = refused;
    return NULL;
}

static void *
atomic_thread(void *self)
{
    struct worker *w = bench_wait_go(self);
    if (w == NULL)
        return NULL;
    atomic_uint_fast64_t *word = &w->shared->word;
    /*
     * Relaxed: only the cost of owning the line is wanted, and an x86
     * fetch-and-add is a full barrier whatever order is asked for.
     */
    for (uint64_t i = 0; i < w->count; i++)
        atomic_fetch_add_explicit(word, 1, memory_order_relaxed);
    return NULL;
}

/* A second reference: the clock read every acquire makes, and nothing. */
static void *
clock_thread(void *self)
{
    struct worker *w = bench_wait_go(self);
    if (w == NULL)
        return NULL;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < w->count; i++)
        sum += bench_now_ns();
    w->refused = sum == 0; /* keeps the reads; never true */
    return NULL;
}

static const struct impl impls[] = {
    { "weir", weir_thread },
    { "atomic", atomic_thread },
    { "clock", clock_thread },
};

static const char *const case_names[] = { "one", "two", NULL };

int
main(int argc, char **argv)
{
    struct bench_cli cli = { .impls = impls,
        .nimpls = sizeof(impls) / sizeof(impls[0]),
        .impl_size = sizeof(impls[0]), .cases = case_names,
        .case_help = "one two (COUNT: calls per thread)" };
    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    int nthreads = cli.kase + 1;

    struct shared *s = aligned_alloc(64, sizeof(*s));
    struct worker w[2];
    struct bench_thread t[2];
    struct bench_span span;
    int rc;

    if (s == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    if ((rc = weir_limiter_init(&s->limiter, 1e9, 1e9)) != 0) {
        fprintf(stderr, "bench: weir_limiter_init: %d\n", rc);
        return 1;
    }
    atomic_init(&s->word, 0);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){ .shared = s, .count = cli.count };
        t[i] = (struct bench_thread){ .fn = impls[cli.impl].thread,
                                      .arg = &w[i], .cpu = i };
    }
    if ((rc = bench_run_threads(t, nthreads, NULL, NULL, &span)) != 0) {
        fprintf(stderr, "bench: pthread_create: %d\n", rc);
        return 1;
    }
    uint64_t refused = 0;
    for (int i = 0; i < nthreads; i++)
        refused += w[i].refused;
    printf("%.2f %" PRIu64 "\n", (double)span.ns / (double)cli.count,
           refused);
    free(s);
    return 0;
}
