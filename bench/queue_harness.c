/*
 * bench/queue_harness.c - the parts of the blocking-queue harness that are
 * not on the per-item path: command line, thread setup, the start line,
 * timing and the printed result.  See queue_harness.h.
 */
#include "queue_harness.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#define QBENCH_MAX_THREADS 4

/*
 * As in the ring harness: threads check in, then yield until the main
 * thread, having read the clock, lets them go.
 */
struct qbench_gate {
    atomic_uint arrived;
    atomic_bool go;
};

void
qbench_gate_wait(struct qbench_gate *gate)
{
    atomic_fetch_add(&gate->arrived, 1);
    while (!atomic_load(&gate->go))
        sched_yield();
}

void
qbench_fail(const char *what, long code)
{
    fprintf(stderr, "bench: %s failed: %ld\n", what, code);
    fflush(stderr);
    _Exit(1);
}

static uint64_t
read_clock(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        qbench_fail("clock_gettime", errno);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
qbench_now_ns(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

uint64_t
qbench_cpu_ns(clockid_t clock)
{
    return read_clock(clock);
}

void
qbench_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u),
                           (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        continue;
}

/*
 * The gap before each wake-up item, in two halves; a change of the
 * receiver's CPU clock during the second half means it was not asleep
 * when the item went in (awake is NULL for warm-up items).
 */
void
qbench_wake_pause(struct qbench_worker *w, uint64_t *awake)
{
    qbench_sleep_ns(QBENCH_WAKE_GAP_NS / 2);
    uint64_t c1 = qbench_cpu_ns(w->peer_clock);
    qbench_sleep_ns(QBENCH_WAKE_GAP_NS / 2);
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
    qbench_sleep_ns(QBENCH_IDLE_SETTLE_NS);
    uint64_t c1 = qbench_cpu_ns(w->peer_clock), t1 = qbench_now_ns();
    qbench_sleep_ns(w->count * 1000000u);
    uint64_t c2 = qbench_cpu_ns(w->peer_clock), t2 = qbench_now_ns();
    w->spin_cpu_ns = c1 - c0;
    w->idle_cpu_ns = c2 - c1;
    w->idle_wall_ns = t2 - t1;
    push(w->queue, (void *)(uintptr_t)1);
}

static const char *const case_names[] = { "q1", "q2", "wake", "idle" };
enum { CASE_Q1, CASE_Q2, CASE_WAKE, CASE_IDLE, NCASES };

/* Starts a thread, pinned to w->cpu unless -1 (unpinned if refused). */
static int
start_thread(pthread_t *t, const struct qbench_impl *impl,
             struct qbench_worker *w)
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

/*
 * Runs the n workers from one go to the last join; returns the ns taken.
 * A sender's peer_clock is the CPU clock of the worker after it, read
 * here before the go.  A thread that cannot start ends the program.
 */
static uint64_t
run_workers(const struct qbench_impl *impl, struct qbench_worker *w, int n)
{
    struct qbench_gate gate;
    pthread_t t[QBENCH_MAX_THREADS];

    atomic_init(&gate.arrived, 0);
    atomic_init(&gate.go, false);
    for (int i = 0; i < n; i++) {
        w[i].gate = &gate;
        int err = start_thread(&t[i], impl, &w[i]);
        if (err != 0)
            qbench_fail("pthread_create", err);
    }
    for (int i = 0; i + 1 < n; i++) {
        if (w[i].role != QBENCH_WAKE_SEND && w[i].role != QBENCH_IDLE_SEND)
            continue;
        int err = pthread_getcpuclockid(t[i + 1], &w[i].peer_clock);
        if (err != 0)
            qbench_fail("pthread_getcpuclockid", err);
    }
    while (atomic_load(&gate.arrived) < (unsigned)n)
        sched_yield();
    uint64_t t0 = qbench_now_ns();
    atomic_store(&gate.go, true);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    return qbench_now_ns() - t0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int
throughput(const struct qbench_impl *impl, void *q, int pairs,
           uint64_t count)
{
    struct qbench_worker w[QBENCH_MAX_THREADS];
    uint64_t sum = 0, want = count * (count + 1) / 2;

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
    if (sum != want) {
        fprintf(stderr, "bench: items lost or duplicated: sum %" PRIu64
                " instead of %" PRIu64 "\n", sum, want);
        return 1;
    }
    printf("%.0f\n", (double)count * 1e9 / (double)ns);
    return 0;
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
    qsort(samples, count, sizeof(uint64_t), cmp_u64);
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

static int
usage(const struct qbench_impl *impls, size_t nimpls)
{
    fprintf(stderr, "usage: IMPL CASE COUNT\n  IMPL:");
    for (size_t i = 0; i < nimpls; i++)
        fprintf(stderr, " %s", impls[i].name);
    fprintf(stderr, "\n  CASE: q1 q2 wake idle (COUNT: items, items, "
            "samples, ms)\n");
    return 2;
}

int
qbench_main(int argc, char **argv, const struct qbench_impl *impls,
            size_t nimpls)
{
    const struct qbench_impl *impl = NULL;
    int c = 0;

    if (argc != 4)
        return usage(impls, nimpls);
    for (size_t i = 0; i < nimpls; i++)
        if (strcmp(argv[1], impls[i].name) == 0)
            impl = &impls[i];
    while (c < NCASES && strcmp(argv[2], case_names[c]) != 0)
        c++;
    uint64_t count = strtoull(argv[3], NULL, 10) & ~(uint64_t)1;
    if (impl == NULL || c == NCASES || count == 0)
        return usage(impls, nimpls);

    void *q = impl->create(QBENCH_CAPACITY);
    int rc;
    if (q == NULL) {
        fprintf(stderr, "bench: cannot create the queue\n");
        return 1;
    }
    switch (c) {
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
