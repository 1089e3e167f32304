/* SPDX-License-Identifier: MIT */
/*
 * limiter.c - the GCRA rate limiter of weir/limiter.h.
 *
 * The whole state that requests contend on is one int64_t, the
 * theoretical arrival time (TAT); a request is a read, some arithmetic and
 * one compare-and-swap.  Rate and burst live in two more atomics that only
 * weir_limiter_set_rate writes.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "weir/limiter.h"

#include "clock_internal.h"

/*
 * Durations are clamped here before any addition, so that sums of a few
 * of them cannot overflow int64_t.  2^61 ns is 73 years: a request that
 * needs longer than that is, for every practical purpose, never due.
 */
#define FAR_NS ((int64_t)1 << 61)

static int64_t
mono_now(void *ctx)
{
    (void)ctx;
    return weiri_now_ns();
}

static void
mono_sleep_until(void *ctx, int64_t deadline_ns)
{
    (void)ctx;
    weiri_sleep_until(deadline_ns);
}

static bool
valid_rate(double rate_per_sec, double burst)
{
    /* isfinite is a macro: no libm needed at link time. */
    return isfinite(rate_per_sec) && rate_per_sec > 0 && rate_per_sec <= 1e9 &&
           isfinite(burst) && burst >= 1;
}

/*
 * now plus a duration d >= 0, at most INT64_MAX: a clock may have any
 * origin, and one read near the top of its range must not wrap.
 */
static int64_t
later_by(int64_t now, int64_t d)
{
    return now > INT64_MAX - d ? INT64_MAX : now + d;
}

/* Round a non-negative duration in ns to the nearest whole ns, clamped. */
static int64_t
to_ns(double ns)
{
    return ns >= (double)FAR_NS ? FAR_NS : (int64_t)(ns + 0.5);
}

int
weir_limiter_init_clock(weir_limiter *l, double rate_per_sec, double burst,
                        const weir_clock *clock)
{
    if (l == NULL || !valid_rate(rate_per_sec, burst))
        return WEIR_EINVAL;
    if (clock != NULL &&
        (clock->now_ns == NULL || clock->sleep_until_ns == NULL))
        return WEIR_EINVAL;
    if (clock != NULL)
        l->clock = *clock;
    else
        l->clock = (weir_clock){ mono_now, mono_sleep_until, NULL };
    atomic_init(&l->interval_ns, 1e9 / rate_per_sec);
    atomic_init(&l->burst, burst);
    /* TAT at now: idle, so a full burst is available at once. */
    atomic_init(&l->tat, l->clock.now_ns(l->clock.ctx));
    return 0;
}

int
weir_limiter_init(weir_limiter *l, double rate_per_sec, double burst)
{
    return weir_limiter_init_clock(l, rate_per_sec, burst, NULL);
}

int
weir_limiter_set_rate(weir_limiter *l, double rate_per_sec, double burst)
{
    if (l == NULL || !valid_rate(rate_per_sec, burst))
        return WEIR_EINVAL;
    /* Relaxed: each value is usable alone; see the header on mixing. */
    atomic_store_explicit(&l->interval_ns, 1e9 / rate_per_sec,
                          memory_order_relaxed);
    atomic_store_explicit(&l->burst, burst, memory_order_relaxed);
    return 0;
}

/*
 * For a request of n permits seen at time now with TAT tat: the TAT after
 * granting it, and how long past now it must wait (<= 0: due now).
 */
static int64_t
plan(const weir_limiter *l, unsigned n, int64_t now, int64_t tat,
     int64_t *wait)
{
    double interval = atomic_load_explicit(&l->interval_ns,
                                           memory_order_relaxed);
    double burst = atomic_load_explicit(&l->burst, memory_order_relaxed);
    int64_t base = tat > now ? tat : now;
    /* Clamp base - now first, so adding two clamped durations stays small. */
    int64_t ahead = base - now > FAR_NS ? FAR_NS : base - now;
    int64_t after = ahead + to_ns(interval * n);
    *wait = after - to_ns(interval * burst);
    return later_by(now, after);
}

int64_t
weir_limiter_wait_ns(weir_limiter *l, unsigned n)
{
    if (l == NULL || n == 0)
        return WEIR_EINVAL;
    int64_t wait, now = l->clock.now_ns(l->clock.ctx);
    plan(l, n, now, atomic_load_explicit(&l->tat, memory_order_relaxed), &wait);
    return wait > 0 ? wait : 0;
}

int
weir_limiter_acquire(weir_limiter *l, unsigned n, int64_t timeout_ns)
{
    if (l == NULL || n == 0 || weiri_bad_timeout(timeout_ns))
        return WEIR_EINVAL;
    /*
     * Relaxed throughout: TAT is a counter of time handed out, not a
     * publication of other data, and the CAS makes every grant see the
     * grants before it.
     */
    for (;;) {
        /*
         * Clock first, TAT second: the clock read is the slowest step
         * (tens of ns), and keeping it out of the window between loading
         * TAT and the CAS makes a lost race much rarer when threads
         * contend.
         */
        int64_t wait, now = l->clock.now_ns(l->clock.ctx);
        int64_t tat = atomic_load_explicit(&l->tat, memory_order_relaxed);
        int64_t next = plan(l, n, now, tat, &wait);
        if (wait > 0) {
            if (weiri_try_once(timeout_ns))
                return WEIR_EAGAIN;
            if (timeout_ns != WEIR_FOREVER && wait > timeout_ns)
                return WEIR_ETIMEDOUT;
        }
        if (atomic_compare_exchange_weak_explicit(&l->tat, &tat, next,
                memory_order_relaxed, memory_order_relaxed)) {
            if (wait > 0)
                l->clock.sleep_until_ns(l->clock.ctx, later_by(now, wait));
            return 0;
        }
        /* Another request moved TAT: plan again, at the current time. */
    }
}
