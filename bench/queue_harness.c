/* SPDX-License-Identifier: MIT */
/*
 * bench/queue_harness.c - the parts of the blocking-queue harness that are
 * not on the per-item path: the cases' workers and clocks, the run and
 * the printed result.  See queue_harness.h; threads and the command line
 * are common.c's.
 */
#include "queue_harness.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

uint64_t
qbench_cpu_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        bench_fail("clock_gettime", errno);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The gap before each wake-up item, in two halves; a change of the
 * receiver's CPU clock during the second half means it was not asleep
 * when the item went in (awake is NULL for warm-up items).
 */
void
qbench_wake_pause(struct qbench_worker *w, uint64_t *awake)
{
    bench_sleep_ns(QBENCH_WAKE_GAP_NS / 2);
    uint64_t c1 = qbench_cpu_ns(w->peer_clock);
    bench_sleep_ns(QBENCH_WAKE_GAP_NS / 2);
    uint64_t c2 = qbench_cpu_ns(w->peer_clock);
    if (awake != NULL && c2 != c1)
        ++*awake;
}

/*
 * The idle receiver notes its own CPU time just before it calls pop, for
 * the sender to wait for.  Release pairs with the sender's acquire, though
 * the value is all that is passed.
 */
void
qbench_idle_mark(struct qbench_worker *w)
{
    uint64_t now = qbench_cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    __atomic_store_n(&w->cpu_before, now > 0 ? now : 1, __ATOMIC_RELEASE);
}

/*
 * The receiver is in pop on an empty queue.  The CPU it uses from the
 * call to QBENCH_IDLE_SETTLE_NS later is what it takes to fall asleep
 * (its spin); what it uses in the count milliseconds after that is the
 * cost of being asleep.
 */
void
qbench_idle_send(struct qbench_worker *w, qbench_push_fn push)
{
    uint64_t c0;
    while ((c0 = __atomic_load_n(&w->peer->cpu_before, __ATOMIC_ACQUIRE))
           == 0)
        sched_yield();
    bench_sleep_ns(QBENCH_IDLE_SETTLE_NS);
    uint64_t c1 = qbench_cpu_ns(w->peer_clock), t1 = bench_now_ns();
    bench_sleep_ns(w->count * 1000000u);
    uint64_t c2 = qbench_cpu_ns(w->peer_clock), t2 = bench_now_ns();
    w->spin_cpu_ns = c1 - c0;
    w->idle_cpu_ns = c2 - c1;
    w->idle_wall_ns = t2 - t1;
    push(w->queue, (void *)(uintptr_t)1);
}

static const char *const case_names[] = { "q1", "q2", "wake", "idle", NULL };
enum { CASE_Q1, CASE_Q2, CASE_WAKE, CASE_IDLE };

/*
 * Before the go: a sender's peer_clock is the CPU clock of the thread of
 * the worker after it.
 */
static void
find_peer_clocks(struct bench_thread *t, int n, void *ctx)
{
    struct qbench_worker *w = ctx;
    for (int i = 0; i + 1 < n; i++) {
        if (w[i].role != QBENCH_WAKE_SEND && w[i].role != QBENCH_IDLE_SEND)
            continue;
        int err = pthread_getcpuclockid(t[i + 1].id, &w[i].peer_clock);
        if (err != 0)
            bench_fail("pthread_getcpuclockid", err);
    }
}

/*
 * Runs the n workers from one go to the last join; returns the ns taken.
 * A thread that cannot start ends the program.
 */
static uint64_t
run_workers(const struct qbench_impl *impl, struct qbench_worker *w, int n)
{
    struct bench_thread t[BENCH_MAX_THREADS];
    struct bench_span span;

    for (int i = 0; i < n; i++)
        t[i] = (struct bench_thread){ .fn = impl->thread, .arg = &w[i],
                                      .cpu = w[i].cpu };
    int err = bench_run_threads(t, n, find_peer_clocks, w, &span);
    if (err != 0)
        bench_fail("pthread_create", err);
    return span.ns;
}

static int
throughput(const struct qbench_impl *impl, void *q, int pairs,
           uint64_t count)
{
    struct qbench_worker w[BENCH_MAX_THREADS];
    uint64_t sum = 0;

    memset(w, 0, sizeof(w));
    for (int i = 0; i < pairs; i++) {
        struct qbench_worker *p = &w[2 * i], *c = &w[2 * i + 1];
        p->role = QBENCH_PRODUCE;
        c->role = QBENCH_CONSUME;
        p->queue = c->queue = q;
        p->first = (uint64_t)i + 1;
        p->stride = (uint64_t)pairs;
        p->count = c->count = count / (uint64_t)pairs;
        /* 2P2C is four threads on two cores: nobody is pinned. */
        p->cpu = pairs == 1 ? 0 : -1;
        c->cpu = pairs == 1 ? 1 : -1;
    }
    uint64_t ns = run_workers(impl, w, 2 * pairs);
    for (int i = 0; i < 2 * pairs; i++)
        sum += w[i].sum;
    return bench_check_rate(sum, count, ns);
}

static int
wake(const struct qbench_impl *impl, void *q, uint64_t count)
{
    struct qbench_worker w[2];
    uint64_t *samples = malloc(count * sizeof(uint64_t));

    if (samples == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    memset(w, 0, sizeof(w));
    w[0] = (struct qbench_worker){ .role = QBENCH_WAKE_SEND, .cpu = 0,
        .queue = q, .count = count, .warmup = count / 10 + 1 };
    w[1] = (struct qbench_worker){ .role = QBENCH_WAKE_RECV, .cpu = 1,
        .queue = q, .count = count, .warmup = count / 10 + 1,
        .samples = samples };
    run_workers(impl, w, 2);
    bench_sort_u64(samples, count);
    printf("%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", samples[count / 2],
           samples[count * 99 / 100], w[0].awake);
    free(samples);
    return 0;
}

static int
idle(const struct qbench_impl *impl, void *q, uint64_t ms)
{
    struct qbench_worker w[2];

    memset(w, 0, sizeof(w));
    w[0] = (struct qbench_worker){ .role = QBENCH_IDLE_SEND, .cpu = 0,
        .queue = q, .count = ms };
    w[1] = (struct qbench_worker){ .role = QBENCH_IDLE_RECV, .cpu = 1,
        .queue = q };
    w[0].peer = &w[1];
    run_workers(impl, w, 2);
    printf("%.1f %.1f\n",
           (double)w[0].idle_cpu_ns * 1e6 / (double)w[0].idle_wall_ns,
           (double)w[0].spin_cpu_ns / 1e3);
    return 0;
}

int
qbench_main(int argc, char **argv, const struct qbench_impl *impls,
            size_t nimpls)
{
    struct bench_cli cli = { .impls = impls, .nimpls = nimpls,
        .impl_size = sizeof(*impls), .cases = case_names,
        .case_help = "q1 q2 wake idle (COUNT: items, items, samples, ms)" };
    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    const struct qbench_impl *impl = &impls[cli.impl];
    uint64_t count = cli.count & ~(uint64_t)1;
    if (count == 0)
        return bench_cli_usage(&cli);

    void *q = impl->create(QBENCH_CAPACITY);
    int rc;
    if (q == NULL) {
        fprintf(stderr, "bench: cannot create the queue\n");
        return 1;
    }
    switch (cli.kase) {
    case CASE_Q1:
        rc = throughput(impl, q, 1, count);
        break;
    case CASE_Q2:
        rc = throughput(impl, q, 2, count);
        break;
    case CASE_WAKE:
        rc = wake(impl, q, count);
        break;
    default:
        rc = idle(impl, q, count);
        break;
    }
    impl->destroy(q);
    return rc;
}
