/* SPDX-License-Identifier: MIT */
/*
 * wait.c - the event count of wait_internal.h: futex on Linux, or a mutex
 * and condition variable with WEIR_PORTABLE_WAIT=1.  The only file in
 * weir that puts a thread to sleep.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <sched.h>
#include <time.h>

#include "weir/common.h"
#include "weir/ring.h"

#include "clock_internal.h"
#include "wait_internal.h"

#if !WEIR_PORTABLE_WAIT
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

void
weiri_yield(void)
{
    sched_yield();
}

void
weiri_pause(unsigned n)
{
    if (n < 16)
        weiri_yield();
    else
        weiri_sleep_until(weiri_now_ns() + 100 * WEIR_USEC);
}

bool
weiri_poll_until(bool (*ready)(void *), void *arg, int64_t deadline)
{
    int64_t pause = 20 * WEIR_USEC;
    while (!ready(arg)) {
        int64_t now = weiri_now_ns();
        if (now >= deadline)
            return false;
        weiri_sleep_until(deadline - now < pause ? deadline : now + pause);
        if (pause < WEIR_MSEC)
            pause *= 2;
    }
    return true;
}

/*
 * Before sleeping, a waiter pauses once, then yields the CPU up to 16
 * times, retrying in between.  Yielding rather than spinning is what
 * pays on a machine with more runnable threads than cores (the common
 * case under a bus: a publisher and a worker per subscription): the CPU
 * goes to the thread that will fill or drain the queue, and when nobody
 * else wants it a yield returns at once; spinning longer per try instead
 * cost the bus much of its throughput on two cores and gained a blocking
 * queue nothing (bench/NOTES.md).  A waiter whose other side is idle is
 * asleep after some microseconds and uses no CPU from then on.
 */
enum { SPIN_STEPS = 1, YIELD_STEPS = 16 };

/* The CPU-friendly part of waiting: see SPIN_STEPS. */
static void
back_off(unsigned step)
{
    if (step < SPIN_STEPS) {
        for (unsigned i = 0; i < 1u << step; i++)
            WEIRI_RELAX();
    } else {
        weiri_yield();
    }
}

long
weiri_await(weiri_event *ev, int64_t timeout_ns, long (*try)(void *ctx),
            bool (*idle)(void *ctx), void *ctx, bool patient)
{
    int64_t deadline = 0;
    for (unsigned step = 0;; step++) {
        long rc = try(ctx);
        if (rc != 0)
            return rc;
        if (weiri_try_once(timeout_ns))
            return WEIR_EAGAIN;
        if (step == 0)
            deadline = weiri_deadline(timeout_ns);
        if (!patient && step < SPIN_STEPS + YIELD_STEPS) {
            back_off(step);
            continue;
        }
        /* Announce ourselves, then try once more before sleeping. */
        uint32_t e = weiri_event_prepare(ev);
        if ((rc = try(ctx)) != 0) {
            weiri_event_cancel(ev);
            return rc;
        }
        if (!idle(ctx)) {
            weiri_event_cancel(ev);
            if (weiri_now_ns() >= deadline)
                return WEIR_ETIMEDOUT;
            weiri_yield();
            continue;
        }
        if (weiri_event_wait(ev, e, deadline) == WEIR_ETIMEDOUT) {
            /* The deadline passed; one last look decides. */
            rc = try(ctx);
            return rc != 0 ? rc : WEIR_ETIMEDOUT;
        }
    }
}

uint32_t
weiri_event_prepare(weiri_event *ev)
{
    /*
     * seq_cst, pairing with the notifier's seq_cst change and load of
     * waiters: in their single total order either our increment comes
     * first, and the notifier sees a waiter, or its change does, and our
     * re-check (a seq_cst load) sees the change.
     */
    atomic_fetch_add_explicit(&ev->waiters, 1, memory_order_seq_cst);
    return atomic_load_explicit(&ev->epoch, memory_order_acquire);
}

void
weiri_event_cancel(weiri_event *ev)
{
    atomic_fetch_sub_explicit(&ev->waiters, 1, memory_order_relaxed);
}

void
weiri_event_wake(weiri_event *ev, uint32_t n)
{
#if WEIR_PORTABLE_WAIT
    pthread_mutex_lock(&ev->mu);
    atomic_fetch_add_explicit(&ev->epoch, 1, memory_order_release);
    if (n == 1)
        pthread_cond_signal(&ev->cv);
    else
        pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
#else
    atomic_fetch_add_explicit(&ev->epoch, 1, memory_order_release);
    syscall(SYS_futex, (void *)&ev->epoch, FUTEX_WAKE_PRIVATE,
            n > INT32_MAX ? INT32_MAX : (int)n, NULL, NULL, 0);
#endif
}

#if WEIR_PORTABLE_WAIT

int
weiri_event_init(weiri_event *ev)
{
    atomic_init(&ev->epoch, 0);
    atomic_init(&ev->waiters, 0);
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return WEIR_ENOMEM;
    /* Monotonic, like every deadline weir computes. */
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&ev->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return WEIR_ENOMEM;
    if (pthread_mutex_init(&ev->mu, NULL) != 0) {
        pthread_cond_destroy(&ev->cv);
        return WEIR_ENOMEM;
    }
    return 0;
}

void
weiri_event_destroy(weiri_event *ev)
{
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
}

int
weiri_event_wait(weiri_event *ev, uint32_t e, int64_t deadline)
{
    int rc = 0;
    struct timespec ts = weiri_timespec(deadline);
    pthread_mutex_lock(&ev->mu);
    /* Notify moves the epoch under mu, so this check cannot miss it. */
    while (atomic_load_explicit(&ev->epoch, memory_order_acquire) == e) {
        if (deadline == WEIRI_NO_DEADLINE) {
            pthread_cond_wait(&ev->cv, &ev->mu);
        } else if (pthread_cond_timedwait(&ev->cv, &ev->mu, &ts) == ETIMEDOUT) {
            rc = WEIR_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&ev->mu);
    weiri_event_cancel(ev);
    return rc;
}

#else /* futex */

int
weiri_event_init(weiri_event *ev)
{
    atomic_init(&ev->epoch, 0);
    atomic_init(&ev->waiters, 0);
    return 0;
}

void
weiri_event_destroy(weiri_event *ev)
{
    (void)ev;
}

int
weiri_event_wait(weiri_event *ev, uint32_t e, int64_t deadline)
{
    int rc = 0;
    struct timespec ts, *tsp = NULL;
    if (deadline != WEIRI_NO_DEADLINE) {
        ts = weiri_timespec(deadline);
        tsp = &ts;
    }
    /*
     * FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (plain
     * FUTEX_WAIT takes a relative one), so a retry never extends the wait.
     * The kernel sleeps only if the epoch still equals e.  EINTR and
     * EAGAIN (the epoch moved) both mean: go and re-check.
     */
    if (syscall(SYS_futex, (void *)&ev->epoch,
                FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, e, tsp, NULL,
                FUTEX_BITSET_MATCH_ANY) == -1 && errno == ETIMEDOUT)
        rc = WEIR_ETIMEDOUT;
    weiri_event_cancel(ev);
    return rc;
}

#endif
