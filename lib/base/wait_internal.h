/* SPDX-License-Identifier: MIT */
/*
 * wait_internal.h - PRIVATE to lib/: an event count, the one way weir puts
 * a thread to sleep until another thread changes something.
 *
 * A waiter announces itself, re-checks its condition, and sleeps only if
 * the event's epoch has not moved since it announced:
 *
 *     uint32_t e = weiri_event_prepare(ev);      // now counted as waiting
 *     if (condition holds) { weiri_event_cancel(ev); ... }
 *     else rc = weiri_event_wait(ev, e, deadline); // uncounts itself
 *
 * A thread that makes the condition true calls weiri_event_notify after
 * doing so.  The change must be a seq_cst atomic operation (or be followed
 * by a seq_cst fence), and the waiter's re-check must read it with a
 * seq_cst load; prepare and notify use seq_cst on waiters.  In the single
 * total order of those four operations either the notifier sees the
 * waiter counted (and moves the epoch, which stops or wakes the sleep) or
 * the waiter's re-check sees the change: a wake-up cannot be lost.  This
 * is Dekker's pattern without fences: the claims of weir's MPMC ring are
 * seq_cst CAS, a locked instruction on x86 either way, so notify costs
 * one plain load when nobody waits and a system call only when someone
 * does.
 *
 * On Linux the sleep is a futex on the epoch.  Building with
 * WEIR_PORTABLE_WAIT=1 uses a mutex and a condition variable on
 * CLOCK_MONOTONIC instead, for other systems.  The epoch is 32 bits; a
 * waiter could only miss a change if exactly 2^32 notifications happened
 * between its prepare and its sleep.
 */
#ifndef WEIR_WAIT_INTERNAL_H
#define WEIR_WAIT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * WEIRI_RELAX - tell the core we are spinning, so a sibling hyperthread
 * gets the pipeline.  Internal: no installed header needs it.
 */
#if defined(__x86_64__) || defined(__i386__)
#define WEIRI_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define WEIRI_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define WEIRI_RELAX() ((void)0)
#endif

/* Futex where there is one; the portable fallback everywhere else. */
#ifndef WEIR_PORTABLE_WAIT
#ifdef __linux__
#define WEIR_PORTABLE_WAIT 0
#else
#define WEIR_PORTABLE_WAIT 1
#endif
#endif

#if WEIR_PORTABLE_WAIT
#include <pthread.h>
#endif

typedef struct weiri_event {
    _Atomic uint32_t epoch;    /* moved by every notify that found waiters */
    _Atomic uint32_t waiters;  /* threads between prepare and the end of wait */
#if WEIR_PORTABLE_WAIT
    pthread_mutex_t mu;        /* guards sleeping on cv against epoch moves */
    pthread_cond_t cv;
#endif
} weiri_event;

/* weiri_event_init - 0 or WEIR_ENOMEM; weiri_event_destroy undoes it. */
int weiri_event_init(weiri_event *ev);
void weiri_event_destroy(weiri_event *ev);

uint32_t weiri_event_prepare(weiri_event *ev);
void weiri_event_cancel(weiri_event *ev);

/*
 * weiri_event_wait - sleep until the epoch differs from e or the absolute
 * CLOCK_MONOTONIC deadline (WEIRI_NO_DEADLINE: none) passes, then uncount
 * the waiter.  Returns 0, or WEIR_ETIMEDOUT if the deadline passed.  May
 * also return 0 spuriously; callers re-check their condition anyway.
 */
int weiri_event_wait(weiri_event *ev, uint32_t e, int64_t deadline);

/*
 * weiri_event_wake - move the epoch and wake up to n waiters (UINT32_MAX:
 * all).
 */
void weiri_event_wake(weiri_event *ev, uint32_t n);

/*
 * weiri_event_notify - wake up to n waiters (UINT32_MAX: all) if any wait.
 * Inline: a plain load on x86 is all it costs while nobody waits.
 */
static inline void
weiri_event_notify(weiri_event *ev, uint32_t n)
{
    if (atomic_load_explicit(&ev->waiters, memory_order_seq_cst) != 0)
        weiri_event_wake(ev, n);
}

/* weiri_yield - let another runnable thread have this CPU. */
void weiri_yield(void);

/*
 * weiri_pause - the n-th pause (from 0) of a thread waiting for another
 * to finish something short that needs no wake-up: a yield for the first
 * 16, then sleeps of 100 us, so that a thread the scheduler would not
 * run after a mere yield (one of lower priority, or under valgrind) gets
 * the CPU too.
 */
void weiri_pause(unsigned n);

/*
 * weiri_poll_until - call ready(arg) until it returns true (then true)
 * or the deadline passes (false), sleeping between calls: 20 us at first,
 * doubling up to 1 ms.  For waits that nothing wakes (a close watching
 * the bus go quiet, a batch watching for room) and that may be long, so
 * they must not keep a CPU busy.
 */
bool weiri_poll_until(bool (*ready)(void *), void *arg, int64_t deadline);

/*
 * weiri_await - the shape of every blocking transfer in weir (weir_queue,
 * a subscription's inbox): try, back off, then sleep on ev, the event the
 * other side notifies after each transfer.
 *
 * try(ctx) makes one attempt: a non-zero return ends the call with that
 * value, 0 means not yet.  A try must read the other side's counters with
 * seq_cst loads when it fails (see above).  idle(ctx), asked after a
 * failed try while announced on ev, says whether the counters show
 * nothing to take (or no room): then the caller sleeps; otherwise the
 * try met the other side in the middle of an operation, which will not
 * notify again, and the caller yields instead.
 *
 * timeout_ns: WEIR_NOWAIT (one try, then WEIR_EAGAIN), WEIR_FOREVER or a
 * number of ns (then WEIR_ETIMEDOUT).  patient: no back-off, sleep
 * after the first failed try, for a side whose partner comes seldom and
 * whose yields would only take a CPU from a thread about to wake.
 */
long weiri_await(weiri_event *ev, int64_t timeout_ns, long (*try)(void *ctx),
                 bool (*idle)(void *ctx), void *ctx, bool patient);

#endif /* WEIR_WAIT_INTERNAL_H */
