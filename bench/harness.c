/* SPDX-License-Identifier: MIT */
/*
 * bench/harness.c - the parts of the ring benchmark harness that are not
 * on the per-item path: the cases' workers, the run and the printed
 * result.  See harness.h; threads, clocks and the command line are
 * common.c's.
 */
#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_CAPACITY 1024

static const char *const case_names[BENCH_NCASES + 1] = {
    "spsc", "burst", "mpmc1", "mpmc2", "rtt", NULL,
};

/* Runs the n workers from one go to the last join.  Returns 0 or errno. */
static int
run_workers(const struct bench_impl *impl, struct bench_worker *w, int n,
            struct bench_span *span)
{
    struct bench_thread t[BENCH_MAX_THREADS];
    for (int i = 0; i < n; i++)
        t[i] = (struct bench_thread){ .fn = impl->thread, .arg = &w[i],
                                      .cpu = w[i].cpu };
    return bench_run_threads(t, n, NULL, NULL, span);
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
    return bench_check_rate(sum, count, span->ns);
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
    bench_sort_u64(ping->samples, n);
    double ns_per_tick = (double)span->ns / (double)span->ticks;
    printf("%.1f %.1f\n", (double)ping->samples[n / 2] * ns_per_tick,
           (double)ping->samples[n * 99 / 100] * ns_per_tick);
    return 0;
}

int
bench_main(int argc, char **argv, const struct bench_impl *impls,
           size_t nimpls)
{
    struct bench_cli cli = { .impls = impls, .nimpls = nimpls,
                             .impl_size = sizeof(*impls),
                             .cases = case_names };
    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    const struct bench_impl *impl = &impls[cli.impl];
    int c = cli.kase;
    uint64_t count = cli.count & ~(uint64_t)1;
    if (count == 0)
        return bench_cli_usage(&cli);
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
