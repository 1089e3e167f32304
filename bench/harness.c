/*
 * bench/harness.c - the parts of the benchmark harness that are not on
 * the per-item path: command line, ring and thread setup, the start line,
 * timing and the printed result.  See harness.h.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_CAPACITY 1024
#define BENCH_MAX_THREADS 4

/*
 * Threads check in at the gate and then wait for go, which the main
 * thread sets only after it has read the clock, so the timed span holds
 * every item and no thread start-up.  Waiters yield rather than spin: the
 * main thread needs a core to set go, and pinned waiters hold both.
 */
struct bench_gate {
    atomic_uint arrived;
    atomic_bool go;
};

void
bench_gate_wait(struct bench_gate *gate)
{
    atomic_fetch_add(&gate->arrived, 1);
    while (!atomic_load(&gate->go))
        sched_yield();
}

static const char *const case_names[BENCH_NCASES] = {
    "spsc", "burst", "mpmc1", "mpmc2", "rtt",
};

static uint64_t
clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Starts a thread, pinned to w->cpu if that is not -1.  A machine with
 * fewer CPUs refuses the pin; the run then goes on unpinned and says so,
 * rather than measuring nothing.
 */
static int
start_thread(pthread_t *t, const struct bench_impl *impl,
             struct bench_worker *w)
{
    pthread_attr_t attr;
    int err;

    pthread_attr_init(&attr);
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    err = pthread_create(t, &attr, impl->thread, w);
    pthread_attr_destroy(&attr);
    if (err == EINVAL && w->cpu >= 0) {
        fprintf(stderr, "bench: cannot pin to CPU %d; running unpinned\n",
                w->cpu);
        err = pthread_create(t, NULL, impl->thread, w);
    }
    return err;
}

struct bench_span {
    uint64_t ns;
    uint64_t ticks;
};

/* Runs the n workers from one go to the last join.  Returns 0 or errno. */
static int
run_workers(const struct bench_impl *impl, struct bench_worker *w, int n,
            struct bench_span *span)
{
    struct bench_gate gate;
    pthread_t t[BENCH_MAX_THREADS];
    int started, err = 0;

    atomic_init(&gate.arrived, 0);
    atomic_init(&gate.go, false);
    for (started = 0; started < n; started++) {
        w[started].gate = &gate;
        err = start_thread(&t[started], impl, &w[started]);
        if (err != 0)
            break;
    }
    while (atomic_load(&gate.arrived) < (unsigned)started)
        sched_yield();
    uint64_t ns0 = clock_ns(), ticks0 = bench_ticks();
    /*
     * A failed start leaves fewer threads than the case needs, which
     * could wait forever on each other; they are released with nothing
     * to do instead.
     */
    if (err != 0)
        for (int i = 0; i < started; i++)
            w[i].count = w[i].warmup = 0;
    atomic_store(&gate.go, true);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    span->ns = clock_ns() - ns0;
    span->ticks = bench_ticks() - ticks0;
    return err;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The producers and consumers of a throughput case, items 1..count. */
static int
set_throughput(struct bench_worker *w, enum bench_case c, void *ring,
               uint64_t count)
{
    int pairs = c == BENCH_MPMC2 ? 2 : 1;
    for (int i = 0; i < pairs; i++) {
        struct bench_worker *p = &w[2 * i], *q = &w[2 * i + 1];
        p->role = BENCH_PRODUCE;
        p->out = ring;
        p->first = (uint64_t)i + 1;
        p->stride = (uint64_t)pairs;
        p->count = count / (uint64_t)pairs;
        q->role = BENCH_CONSUME;
        q->in = ring;
        q->count = count / (uint64_t)pairs;
        /* The 2P2C case is oversubscribed on purpose, so nobody is pinned. */
        p->cpu = pairs == 1 ? 0 : -1;
        q->cpu = pairs == 1 ? 1 : -1;
        p->burst = q->burst = c == BENCH_BURST ? BENCH_BURST_N : 0;
    }
    return 2 * pairs;
}

static int
report_throughput(const struct bench_worker *w, int n, uint64_t count,
                  const struct bench_span *span)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += w[i].sum;
    if (sum != count * (count + 1) / 2) {
        fprintf(stderr, "bench: items lost or duplicated: sum %" PRIu64
                " instead of %" PRIu64 "\n", sum, count * (count + 1) / 2);
        return 1;
    }
    printf("%.0f\n", (double)count * 1e9 / (double)span->ns);
    return 0;
}

/*
 * The samples are in ticks; the run's own span converts them to ns, which
 * needs no separate calibration as long as the tick rate is constant.
 */
static int
report_rtt(const struct bench_worker *ping, const struct bench_span *span)
{
    uint64_t n = ping->count;
    if (ping->bad != 0) {
        fprintf(stderr, "bench: %" PRIu64 " wrong replies\n", ping->bad);
        return 1;
    }
    qsort(ping->samples, n, sizeof(uint64_t), cmp_u64);
    double ns_per_tick = (double)span->ns / (double)span->ticks;
    printf("%.1f %.1f\n", (double)ping->samples[n / 2] * ns_per_tick,
           (double)ping->samples[n * 99 / 100] * ns_per_tick);
    return 0;
}

static int
usage(const struct bench_impl *impls, size_t nimpls)
{
    fprintf(stderr, "usage: IMPL CASE COUNT\n  IMPL:");
    for (size_t i = 0; i < nimpls; i++)
        fprintf(stderr, " %s", impls[i].name);
    fprintf(stderr, "\n  CASE:");
    for (int c = 0; c < BENCH_NCASES; c++)
        fprintf(stderr, " %s", case_names[c]);
    fprintf(stderr, "\n");
    return 2;
}

int
bench_main(int argc, char **argv, const struct bench_impl *impls,
           size_t nimpls)
{
    const struct bench_impl *impl = NULL;
    int c = 0;

    if (argc != 4)
        return usage(impls, nimpls);
    for (size_t i = 0; i < nimpls; i++)
        if (strcmp(argv[1], impls[i].name) == 0)
            impl = &impls[i];
    while (c < BENCH_NCASES && strcmp(argv[2], case_names[c]) != 0)
        c++;
    uint64_t count = strtoull(argv[3], NULL, 10) & ~(uint64_t)1;
    if (impl == NULL || c == BENCH_NCASES || count == 0)
        return usage(impls, nimpls);
    if (!(impl->cases & BENCH_CASE_BIT(c))) {
        fprintf(stderr, "bench: %s does not run %s\n", argv[1], argv[2]);
        return 2;
    }

    struct bench_worker w[BENCH_MAX_THREADS];
    struct bench_span span;
    void *r1 = impl->create(BENCH_CAPACITY, NULL), *r2 = NULL;
    uint64_t *samples = NULL;
    int n, rc = 1;

    memset(w, 0, sizeof(w));
    if (c == BENCH_RTT) {
        r2 = r1 != NULL ? impl->create(BENCH_CAPACITY, r1) : NULL;
        samples = malloc(count * sizeof(uint64_t));
        w[0] = (struct bench_worker){ .role = BENCH_PING, .cpu = 0,
            .out = r1, .in = r2, .count = count, .warmup = count / 10,
            .samples = samples };
        w[1] = (struct bench_worker){ .role = BENCH_PONG, .cpu = 1,
            .in = r1, .out = r2, .count = count, .warmup = count / 10 };
        n = 2;
    } else {
        n = set_throughput(w, (enum bench_case)c, r1, count);
    }
    if (r1 == NULL || (c == BENCH_RTT && (r2 == NULL || samples == NULL)))
        fprintf(stderr, "bench: out of memory\n");
    else if (run_workers(impl, w, n, &span) != 0)
        fprintf(stderr, "bench: cannot start threads\n");
    else if (c == BENCH_RTT)
        rc = report_rtt(&w[0], &span);
    else
        rc = report_throughput(w, n, count, &span);
    free(samples);
    if (r2 != NULL)
        impl->destroy(r2);
    if (r1 != NULL)
        impl->destroy(r1);
    return rc;
}
