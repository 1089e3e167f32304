/* SPDX-License-Identifier: MIT */
/*
 * weir/limiter.h - a lock-free rate limiter, for consuming a burst at the
 * pace the downstream can take (peak shaving).
 *
 * The Generic Cell Rate Algorithm: the limiter keeps one number, the
 * theoretical arrival time (TAT) at which the permits handed out so far
 * would have been spent at exactly the configured rate.  A request for n
 * permits moves TAT n intervals later (starting from now if TAT is in the
 * past) and is granted at once if the new TAT is at most burst intervals
 * ahead of now; otherwise it is granted after the excess.  Taking permits
 * is one compare-and-swap on that number, so any number of threads may
 * acquire at once without a lock.
 *
 * After an idle period, burst permits pass at once; from then on permits
 * pass at rate_per_sec.  Over any window of length t starting idle, at
 * most burst + t * rate_per_sec permits are granted.
 *
 * Time comes from CLOCK_MONOTONIC unless a clock is injected with
 * weir_limiter_init_clock (tests run on virtual time that way).  Times are
 * kept in whole nanoseconds, so each acquire is rounded to within half a
 * nanosecond of its exact share; rates above 1e9 per second are refused.
 */
#ifndef WEIR_LIMITER_H
#define WEIR_LIMITER_H

#include <stdint.h>

#include "common.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * weir_clock - a time source.  now_ns returns the current time in
 * nanoseconds (any origin, never decreasing); sleep_until_ns returns no
 * earlier than now_ns() >= deadline_ns.  Both may be called from every
 * thread that uses the limiter at once.  ctx is passed to both.
 */
typedef struct weir_clock {
    int64_t (*now_ns)(void *ctx);
    void (*sleep_until_ns)(void *ctx, int64_t deadline_ns);
    void *ctx;
} weir_clock;

/*
 * struct weir_limiter - PRIVATE: declared so callers can embed it; use the
 * functions below.
 */
typedef struct weir_limiter {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(int64_t) tat;        /* theoretical arrival time, ns;
                                        the one CAS'd word */
    WEIR_ATOMIC(double) interval_ns; /* ns per permit: 1e9 / rate */
    WEIR_ATOMIC(double) burst;       /* permits that may pass at once */
    weir_clock clock;                /* copied at init; read-only after */
} weir_limiter;

/*
 * weir_limiter_init - start a limiter at rate_per_sec permits a second
 * (fractional rates such as 0.5 allowed), with burst >= 1 permits
 * available at once after idling; it starts idle (burst available).  Uses
 * CLOCK_MONOTONIC.  Returns 0, or WEIR_EINVAL if l is NULL, the rate is
 * not finite, <= 0 or above 1e9, or burst is not finite or below 1 (then
 * *l is untouched).  Holds no resources: there is no destroy.
 */
int weir_limiter_init(weir_limiter *l, double rate_per_sec, double burst);

/*
 * weir_limiter_init_clock - as weir_limiter_init, on the given clock (its
 * three fields are copied).  A NULL clock means CLOCK_MONOTONIC; a clock
 * with a NULL function is WEIR_EINVAL.
 */
int weir_limiter_init_clock(weir_limiter *l, double rate_per_sec,
                            double burst, const weir_clock *clock);

/*
 * weir_limiter_acquire - take n permits, sleeping until they are due.
 * n may exceed burst: the call then waits (n - burst) intervals after an
 * idle period.  timeout_ns is WEIR_NOWAIT (take them only if due now),
 * WEIR_FOREVER or a number of nanoseconds.  When the wait needed already
 * exceeds the timeout, returns at once instead of sleeping and failing.
 * Returns 0 (taken); WEIR_EAGAIN (WEIR_NOWAIT or 0, not due);
 * WEIR_ETIMEDOUT; WEIR_EINVAL (NULL l, n == 0, or a negative timeout
 * other than WEIR_NOWAIT and WEIR_FOREVER).  A failed call takes nothing.
 * Any thread, any number at once.  A call that sleeps has already
 * reserved its permits: they count against the rate even though they are
 * handed out at the end of the sleep.
 */
int weir_limiter_acquire(weir_limiter *l, unsigned n, int64_t timeout_ns);

/*
 * weir_limiter_wait_ns - how long weir_limiter_acquire(l, n, ...) would
 * wait if called now: 0 if the permits are due.  Takes nothing.  Returns
 * WEIR_EINVAL (negative) for NULL l or n == 0.  Any thread.
 */
int64_t weir_limiter_wait_ns(weir_limiter *l, unsigned n);

/*
 * weir_limiter_set_rate - change rate and burst (validated as at init;
 * WEIR_EINVAL leaves them unchanged).  Permits already reserved stay
 * reserved; later requests are paced at the new rate.  Safe while other
 * threads acquire: a call running alongside may still use the old rate,
 * or the new rate with the old burst, once.
 */
int weir_limiter_set_rate(weir_limiter *l, double rate_per_sec, double burst);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_LIMITER_H */
