/* SPDX-License-Identifier: MIT */
/*
 * bench/common.c - the command line, threads and start line, sleeping,
 * sorting and the throughput check of every C and C++ benchmark program.
 * See common.h.
 */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The name at the start of entry i of a bench_cli impls table. */
static const char *
impl_name(const struct bench_cli *cli, size_t i)
{
    const char *entry = (const char *)cli->impls + i * cli->impl_size;
    const char *name;
    memcpy(&name, entry, sizeof(name));
    return name;
}

int
bench_cli_usage(const struct bench_cli *cli)
{
    fprintf(stderr, "usage: IMPL CASE COUNT\n  IMPL:");
    for (size_t i = 0; i < cli->nimpls; i++)
        fprintf(stderr, " %s", impl_name(cli, i));
    fprintf(stderr, "\n  CASE:");
    if (cli->case_help != NULL)
        fprintf(stderr, " %s", cli->case_help);
    else
        for (size_t c = 0; cli->cases[c] != NULL; c++)
            fprintf(stderr, " %s", cli->cases[c]);
    fprintf(stderr, "\n");
    return 2;
}

int
bench_cli_parse(struct bench_cli *cli, int argc, char **argv)
{
    if (argc != 4)
        return bench_cli_usage(cli);
    cli->impl = -1;
    for (size_t i = 0; i < cli->nimpls; i++)
        if (strcmp(argv[1], impl_name(cli, i)) == 0)
            cli->impl = (int)i;
    cli->kase = 0;
    if (cli->cases != NULL) {
        while (cli->cases[cli->kase] != NULL &&
               strcmp(argv[2], cli->cases[cli->kase]) != 0)
            cli->kase++;
        if (cli->cases[cli->kase] == NULL)
            return bench_cli_usage(cli);
    }
    cli->count = strtoull(argv[3], NULL, 10);
    if (cli->impl < 0 || cli->count == 0)
        return bench_cli_usage(cli);
    return 0;
}

void
bench_fail(const char *what, long code)
{
    fprintf(stderr, "bench: %s failed: %ld\n", what, code);
    fflush(stderr);
    _Exit(1);
}

void
bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u),
                           (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/*
 * Threads check in at the gate and then wait for go, which the main
 * thread sets only after it has read the clocks, so the timed span holds
 * every item and no thread start-up.  Waiters yield rather than spin: the
 * main thread needs a core to set go, and pinned waiters hold all of them
 * on a small machine.  abandon, set before go, sends them home instead.
 */
struct bench_gate {
    atomic_uint arrived;
    atomic_bool go;
    atomic_bool abandon;
};

void *
bench_wait_go(struct bench_thread *self)
{
    struct bench_gate *gate = self->gate;
    atomic_fetch_add(&gate->arrived, 1);
    while (!atomic_load(&gate->go))
        sched_yield();
    return atomic_load(&gate->abandon) ? NULL : self->arg;
}

/*
 * Starts one thread, pinned to t->cpu if that is not -1.  A machine with
 * fewer CPUs refuses the pin; the run then goes on unpinned and says so,
 * rather than measuring nothing.
 */
static int
start_thread(struct bench_thread *t)
{
    pthread_attr_t attr;
    int err;

    pthread_attr_init(&attr);
    if (t->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(t->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    err = pthread_create(&t->id, &attr, t->fn, t);
    pthread_attr_destroy(&attr);
    if (err == EINVAL && t->cpu >= 0) {
        fprintf(stderr, "bench: cannot pin to CPU %d; running unpinned\n",
                t->cpu);
        err = pthread_create(&t->id, NULL, t->fn, t);
    }
    return err;
}

int
bench_run_threads(struct bench_thread *t, int n,
                  void (*ready)(struct bench_thread *t, int n, void *ctx),
                  void *ctx, struct bench_span *span)
{
    struct bench_gate gate;
    int started = 0, err = n > BENCH_MAX_THREADS ? EINVAL : 0;

    atomic_init(&gate.arrived, 0);
    atomic_init(&gate.go, false);
    atomic_init(&gate.abandon, false);
    for (; err == 0 && started < n; started++) {
        t[started].gate = &gate;
        err = start_thread(&t[started]);
        if (err != 0)
            break;
    }
    if (err == 0 && ready != NULL)
        ready(t, n, ctx);
    while (atomic_load(&gate.arrived) < (unsigned)started)
        sched_yield();
    uint64_t ns0 = bench_now_ns(), ticks0 = bench_ticks();
    atomic_store(&gate.abandon, err != 0);
    atomic_store(&gate.go, true);
    for (int i = 0; i < started; i++)
        pthread_join(t[i].id, NULL);
    span->ns = bench_now_ns() - ns0;
    span->ticks = bench_ticks() - ticks0;
    return err;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void
bench_sort_u64(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
}

int
bench_check_rate(uint64_t sum, uint64_t count, uint64_t span_ns)
{
    uint64_t want = count * (count + 1) / 2;
    if (sum != want) {
        fprintf(stderr, "bench: items lost or duplicated: sum %" PRIu64
                " instead of %" PRIu64 "\n", sum, want);
        return 1;
    }
    printf("%.0f\n", (double)count * 1e9 / (double)span_ns);
    return 0;
}
