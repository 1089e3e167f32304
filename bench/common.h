/* SPDX-License-Identifier: MIT */
/*
 * bench/common.h - what every C and C++ benchmark program shares, whatever
 * it measures: the command line, the clocks, threads started together at
 * one start line (pinned where asked), sorted samples and the throughput
 * check.  The ring, queue and bus harnesses (harness.h, queue_harness.h,
 * bus_harness.h) and bench/limiter.c build on it; the Rust peers repeat
 * the same steps in bench/common.rs.  Usable from C11 and C++ alike.
 */
#ifndef WEIR_BENCH_COMMON_H
#define WEIR_BENCH_COMMON_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The command line of every program: PROGRAM IMPL CASE COUNT.  The caller
 * fills the first four fields; bench_cli_parse fills the rest.
 */
struct bench_cli {
    const void *impls;        /* the program's table of implementations: */
    size_t nimpls;            /* nimpls entries of impl_size bytes, each */
    size_t impl_size;         /* starting with its name (const char *) */
    const char *const *cases; /* case names, NULL-terminated; NULL when the
                                 program parses CASE itself (cli.kase 0) */
    const char *case_help;    /* usage's words on CASE; NULL: the names */
    int impl;                 /* out: IMPL's index in impls */
    int kase;                 /* out: CASE's index in cases */
    uint64_t count;           /* out: COUNT, never 0 */
};

/*
 * bench_cli_parse - reads argv into cli.  Returns 0, or prints the usage
 * (bench_cli_usage) and returns 2, the exit status for a wrong command
 * line, when there are not three arguments, IMPL or CASE is unknown or
 * COUNT is 0.
 */
int bench_cli_parse(struct bench_cli *cli, int argc, char **argv);

/* bench_cli_usage - prints the usage to stderr; returns 2. */
int bench_cli_usage(const struct bench_cli *cli);

/*
 * bench_fail - reports a failed call and exits 1: a run with a broken
 * queue or clock has no figure to give, and its other threads may be
 * blocked for ever.
 */
void bench_fail(const char *what, long code);

/* CLOCK_MONOTONIC in ns.  Inline: some loops time nothing but this. */
static inline uint64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A fast clock: TSC ticks on x86, else ns; a bench_span converts them. */
static inline uint64_t
bench_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return bench_now_ns();
#endif
}

void bench_sleep_ns(uint64_t ns); /* the whole of ns, despite signals */

#define BENCH_MAX_THREADS 4 /* in one bench_run_threads */

struct bench_gate; /* the start line of a run */

/* One thread of a run, filled by the caller but for id and gate. */
struct bench_thread {
    void *(*fn)(void *self); /* the thread: gets this struct, sets up,
                                then calls bench_wait_go(self) */
    void *arg;               /* what it works on, for fn */
    int cpu;                 /* CPU to pin the thread to, or -1 */
    pthread_t id;            /* set by bench_run_threads */
    struct bench_gate *gate; /* set by bench_run_threads */
};

/*
 * bench_wait_go - waits at the start line of self's run until every
 * thread of the run is there and the clocks are read, so the timed span
 * holds no thread start-up and no set-up done before the call.  Returns
 * self->arg, or NULL if the run was abandoned (a thread did not start):
 * the caller then returns at once.
 */
void *bench_wait_go(struct bench_thread *self);

/* A run from the start line to the last join, on both clocks. */
struct bench_span {
    uint64_t ns;
    uint64_t ticks;
};

/*
 * bench_run_threads - starts the n threads of t (n at most
 * BENCH_MAX_THREADS), each pinned to its cpu (unpinned, with a line on
 * stderr, where the machine refuses the pin), waits until every one is at
 * the start line (bench_wait_go), reads both clocks, lets them all go at
 * once and joins them: *span runs from the go to the last join.  If ready
 * is not NULL it is called with t, n and ctx once every thread is started
 * and before the go (the threads' ids are set by then).
 *
 * Returns 0, or the error of a thread that did not start (EINVAL for too
 * many): the threads already started are then sent home from the start
 * line, for a run short of threads could wait for ever, and ready is not
 * called.
 */
int bench_run_threads(struct bench_thread *t, int n,
                      void (*ready)(struct bench_thread *t, int n,
                                    void *ctx),
                      void *ctx, struct bench_span *span);

/* bench_sort_u64 - sorts v[0..n) in ascending order. */
void bench_sort_u64(uint64_t *v, size_t n);

/*
 * bench_check_rate - the check and figure of every throughput case: items
 * 1..count went through once each iff the consumers' sums add up to
 * count * (count + 1) / 2.  Prints items per second over span_ns and
 * returns 0, or says what was lost and returns 1.
 */
int bench_check_rate(uint64_t sum, uint64_t count, uint64_t span_ns);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_BENCH_COMMON_H */
