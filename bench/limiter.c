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
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weir/limiter.h>

struct gate {
    atomic_uint arrived;
    atomic_bool go;
};

struct shared {
    weir_limiter limiter;
    alignas(64) atomic_uint_fast64_t word; /* the reference's counter */
};

struct worker {
    const struct impl *impl;
    struct shared *shared;
    struct gate *gate;
    int cpu;
    uint64_t count;
    uint64_t refused; /* out */
};

struct impl {
    const char *name;
    void *(*thread)(void *worker);
};

static void
gate_wait(struct gate *g)
{
    atomic_fetch_add(&g->arrived, 1);
    while (!atomic_load(&g->go))
        sched_yield();
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *
weir_thread(void *arg)
{
    struct worker *w = arg;
    weir_limiter *l = &w->shared->limiter;
    uint64_t refused = 0;
    gate_wait(w->gate);
    for (uint64_t i = 0; i < w->count; i++)
        refused += weir_limiter_acquire(l, 1, WEIR_NOWAIT) != 0;
    w->refused = refused;
    return NULL;
}

static void *
atomic_thread(void *arg)
{
    struct worker *w = arg;
    atomic_uint_fast64_t *word = &w->shared->word;
    gate_wait(w->gate);
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
clock_thread(void *arg)
{
    struct worker *w = arg;
    uint64_t sum = 0;
    gate_wait(w->gate);
    for (uint64_t i = 0; i < w->count; i++)
        sum += now_ns();
    w->refused = sum == 0; /* keeps the reads; never true */
    return NULL;
}

static const struct impl impls[] = {
    { "weir", weir_thread },
    { "atomic", atomic_thread },
    { "clock", clock_thread },
};

static int
start_pinned(pthread_t *t, struct worker *w)
{
    pthread_attr_t attr;
    cpu_set_t set;
    int err;

    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    err = pthread_create(t, &attr, w->impl->thread, w);
    pthread_attr_destroy(&attr);
    if (err == EINVAL) {
        fprintf(stderr, "bench: cannot pin to CPU %d; running unpinned\n",
                w->cpu);
        err = pthread_create(t, NULL, w->impl->thread, w);
    }
    return err;
}

int
main(int argc, char **argv)
{
    const struct impl *impl = NULL;
    int nthreads = 0;

    if (argc == 4) {
        for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++)
            if (strcmp(argv[1], impls[i].name) == 0)
                impl = &impls[i];
        nthreads = strcmp(argv[2], "one") == 0   ? 1
                   : strcmp(argv[2], "two") == 0 ? 2
                                                 : 0;
    }
    uint64_t count = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;
    if (impl == NULL || nthreads == 0 || count == 0) {
        fprintf(stderr, "usage: weir|atomic|clock one|two COUNT\n");
        return 2;
    }

    struct shared *s = aligned_alloc(64, sizeof(*s));
    struct gate gate;
    struct worker w[2];
    pthread_t t[2];
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
    atomic_init(&gate.arrived, 0);
    atomic_init(&gate.go, false);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){ .impl = impl, .shared = s, .gate = &gate,
                                .cpu = i, .count = count };
        if ((rc = start_pinned(&t[i], &w[i])) != 0) {
            fprintf(stderr, "bench: pthread_create: %d\n", rc);
            return 1;
        }
    }
    while (atomic_load(&gate.arrived) < (unsigned)nthreads)
        sched_yield();
    uint64_t t0 = now_ns();
    atomic_store(&gate.go, true);
    uint64_t refused = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
        refused += w[i].refused;
    }
    uint64_t ns = now_ns() - t0;
    printf("%.2f %" PRIu64 "\n", (double)ns / (double)count, refused);
    free(s);
    return 0;
}
