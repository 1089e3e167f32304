/* SPDX-License-Identifier: MIT */
/*
 * timer_internal.h - PRIVATE to lib/: a timer, one thread and one
 * min-heap of entries, each with its own callback and arguments (as the
 * timers of libuv or Redis are).  A waiting entry costs a heap slot,
 * O(log n) to add and to take, never a thread or a sleeping caller.
 * The timer knows nothing of what its entries stand for; the bus keeps
 * two, one for delayed publishes and one for retries (see weir_bus).
 *
 * Lock order: a timer's mutex is taken while holding nothing, or the
 * locks its user holds around its calls (bus->mu); a timer that fires
 * under its lock holds it while its callbacks take theirs, so those must
 * never call this timer.
 */
#ifndef WEIR_TIMER_INTERNAL_H
#define WEIR_TIMER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wait_internal.h"

typedef struct weiri_timed weiri_timed;

/* Called by the timer's thread with (a copy of) an entry come due. */
typedef void (*weiri_timer_fn)(const weiri_timed *e);

struct weiri_timed {
    int64_t due;         /* CLOCK_MONOTONIC ns */
    uint64_t seq;        /* order of adding: breaks ties between equal dues */
    weiri_timer_fn fire;
    void *target, *item; /* the callback's; the timer never reads them */
    int64_t value;       /* the callback's too */
};

typedef struct weiri_timer {
    pthread_mutex_t mu;      /* guards everything below */
    weiri_timed *heap;       /* min-heap on (due, seq) */
    size_t n, cap;
    uint64_t seq;
    size_t busy;             /* entries in the heap or being fired */
    bool locked;             /* callbacks run under mu; fixed at init */
    bool running, stop;      /* the thread was started; it must exit */
    bool sealed;             /* adds are refused (weiri_timer_seal) */
    pthread_t thread;
    weiri_event changed;     /* the thread sleeps here; so does
                                weiri_timer_await_idle */
} weiri_timer;

/*
 * weiri_timer_init - 0 or WEIR_ENOMEM.  No thread until the first add.
 * locked: every callback runs under the timer's lock, so that an entry
 * taken out by weiri_timer_take is never firing meanwhile; for short
 * callbacks only, since adds wait for them.  Otherwise callbacks run
 * without it and may wait (weiri_timer_await_idle waits for them).
 */
int weiri_timer_init(weiri_timer *t, bool locked);

/*
 * weiri_timer_stop - join the thread and free the heap; entries still in
 * it are the caller's to have taken out first.  Once, with no other call
 * running.
 */
void weiri_timer_stop(weiri_timer *t);

/*
 * weiri_timer_add - queue e (its seq is assigned) to fire when due.  0,
 * WEIR_ENOMEM, or WEIR_ECLOSED once sealed.  Thread-safe.
 */
int weiri_timer_add(weiri_timer *t, weiri_timed e);

/* weiri_timer_seal - refuse every later add; what is queued stays. */
void weiri_timer_seal(weiri_timer *t);

/*
 * weiri_timer_take - remove every entry for which keep(entry, arg) is
 * false (every entry if keep is NULL) and hand each to drop(entry, arg),
 * under the timer's lock.  Returns how many were removed.
 */
size_t weiri_timer_take(weiri_timer *t,
                        bool (*keep)(const weiri_timed *, void *),
                        void (*drop)(weiri_timed *, void *), void *arg);

/*
 * weiri_timer_await_idle - wait until no entry is queued or firing, or
 * the deadline passes.  true if none is.
 */
bool weiri_timer_await_idle(weiri_timer *t, int64_t deadline);

/* weiri_timer_busy - how many entries are queued or firing now. */
size_t weiri_timer_busy(weiri_timer *t);

#endif /* WEIR_TIMER_INTERNAL_H */
