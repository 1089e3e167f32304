/* SPDX-License-Identifier: MIT */
/*
 * clock.c - the monotonic clock.  CLOCK_MONOTONIC rather than the wall
 * clock, so a timeout is unaffected by the system time being set.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "weir/common.h"

#include "clock_internal.h"

/* Read clock c in nanoseconds into *ns; false if the kernel lacks it. */
static bool
read_ns(clockid_t c, int64_t *ns)
{
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0)
        return false;
    *ns = (int64_t)ts.tv_sec * WEIR_SEC + ts.tv_nsec;
    return true;
}

int64_t
weiri_now_ns(void)
{
    int64_t ns = 0;
    /* Cannot fail for CLOCK_MONOTONIC. */
    (void)read_ns(CLOCK_MONOTONIC, &ns);
    return ns;
}

int64_t
weiri_wall_ns(void)
{
    int64_t ns = 0;
    (void)read_ns(CLOCK_REALTIME, &ns); /* cannot fail either */
    return ns;
}

int64_t
weiri_deadline(int64_t timeout_ns)
{
    if (timeout_ns == WEIR_FOREVER)
        return WEIRI_NO_DEADLINE;
    if (timeout_ns < 0) /* WEIR_NOWAIT */
        timeout_ns = 0;
    int64_t now = weiri_now_ns();
    if (timeout_ns > WEIRI_NO_DEADLINE - now)
        return WEIRI_NO_DEADLINE;
    return now + timeout_ns;
}

void
weiri_sleep_until(int64_t deadline_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ns / WEIR_SEC);
    ts.tv_nsec = (long)(deadline_ns % WEIR_SEC);
    /* Absolute, so resuming after a signal does not extend the sleep. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/*
 * Timestamps.  clock_gettime costs ~30 ns here, most of it an ordered
 * read of the time-stamp counter (an lfence that also waits for every
 * load in flight), and a publish would pay it on every message.  Where
 * the kernel itself keeps CLOCK_MONOTONIC with the TSC, which it does only
 * once it has found the TSC invariant and synchronised across CPUs,
 * weiri_stamp_ns reads the TSC directly (~12 ns, no fence) and converts
 * it with a base (a TSC reading and the clock at that moment) and a rate,
 * both taken from clock_gettime: the base again whenever it is
 * STAMP_WINDOW_NS old, the rate over about a second, so that it follows
 * the kernel's own adjustments.
 *
 * Stamps must never be early.  A pairing reads the TSC, the clock, the
 * TSC, and keeps the first TSC reading: the clock read its own TSC a
 * little later, so a base errs late by part of the pairing's width; only
 * pairings about as narrow as the narrowest seen are used (~30 ns here).
 * Within a window a stamp also runs STAMP_SLEW_PPM fast, so the kernel
 * may speed its clock up by that much against the measured rate (ntpd
 * and adjtime slew at 500 ppm) and stamps stay late: by at most ~40 ns
 * in all.  Each new base checks the old one's prediction; one that was
 * early after all, or far late (the clock slewed faster, or the TSC
 * misbehaved), sends every stamp back to the clock until a new rate has
 * been measured.  A rate is measured only across a span without a
 * suspend (CLOCK_BOOTTIME moving apart from CLOCK_MONOTONIC), which the
 * TSC may count and the clock does not.  Stamps are clock readings, too,
 * on other CPUs and until a rate is known (two spans of STAMP_FIRST_RATE_NS
 * after the first stamp).
 */
#ifdef WEIRI_STAMP_TSC
#include <cpuid.h>
#include <stdio.h>
#include <string.h>

#define STAMP_WINDOW_NS 20000LL        /* a base serves 20 us */
/*
 * A first rate over 2 ms: pairings ~30 ns wide make it good to ~30 ppm,
 * well inside the 500 ppm stamps run fast, and until it is known every
 * stamp is a clock call (two spans, so 4 ms after the first stamp).
 */
#define STAMP_FIRST_RATE_NS 2000000LL
#define STAMP_RATE_NS 1000000000LL     /* then re-measured over ~1 s */
#define STAMP_SLEW_PPM 500.0           /* stamps run this much fast */
#define STAMP_RATE_PPM 1000.0          /* a re-measured rate moving more is
                                          refused */
#define STAMP_LATE_NS 200              /* a base predicted later than this:
                                          re-measure */
#define STAMP_ONE 4294967296.0         /* 1.0 in the rate's 32.32 format */

/* Read by every stamp (clock_internal.h); written by stamp_publish. */
struct weiri_stamp_base weiri_stamp_base;

/* Short for it here. */
static struct weiri_stamp_base *const base = &weiri_stamp_base;

/* The refresher's state, on a line of its own: stamps never read it. */
static struct {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    atomic_flag busy;          /* one refresher at a time; guards the rest */
    _Atomic int usable;        /* 0 not checked yet, 1 yes, -1 no */
    uint64_t best;             /* narrowest pairing ever, ticks */
    uint64_t bar;              /* widest pairing used now, ticks */
    double rate;               /* measured ns per tick, 32.32; 0: none */
    double candidate;          /* a first rate awaiting confirmation; 0: none */
    uint64_t anchor_tsc;       /* the pairing the rate is measured from */
    int64_t anchor_ns;         /* 0: none yet */
    int64_t anchor_boot;       /* CLOCK_BOOTTIME - CLOCK_MONOTONIC then */
} refresh = { .busy = ATOMIC_FLAG_INIT };

static bool
tsc_trusted(void)
{
    unsigned a, b, c, d; /* CPUID 0x80000007 EDX bit 8: invariant TSC */
    if (!__get_cpuid(0x80000007u, &a, &b, &c, &d) || !(d & (1u << 8)))
        return false;
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/"
                    "current_clocksource", "r");
    if (f == NULL)
        return false;
    char name[16] = "";
    bool tsc = fgets(name, sizeof(name), f) != NULL &&
               strcmp(name, "tsc\n") == 0;
    fclose(f);
    return tsc;
}

/*
 * How far CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC: it grows by
 * suspends.
 */
static int64_t
boot_offset(int64_t mono_ns)
{
    /* Stays so without CLOCK_BOOTTIME: no suspend seen. */
    int64_t boot = mono_ns;
#ifdef CLOCK_BOOTTIME
    (void)read_ns(CLOCK_BOOTTIME, &boot);
#endif
    return boot - mono_ns;
}

/* Publish a base; rate 0 sends every stamp to the clock. */
static void
stamp_publish(uint64_t tsc, int64_t ns, double rate)
{
    uint64_t mult = 0, window = 0;
    if (rate > 0) {
        double fast = rate * (1.0 + STAMP_SLEW_PPM * 1e-6);
        mult = (uint64_t)fast;
        window = (uint64_t)(STAMP_WINDOW_NS * STAMP_ONE / fast);
    }
    /*
     * A seqlock without fences (ThreadSanitizer does not model them):
     * each field's release store keeps the odd seq before it, and a
     * reader's acquire loads of the fields keep its second look at seq
     * after them, so a reader that saw any new field sees seq moved.
     */
    uint64_t s = atomic_load_explicit(&base->seq, memory_order_relaxed);
    atomic_store_explicit(&base->seq, s + 1, memory_order_relaxed);
    atomic_store_explicit(&base->base_tsc, tsc, memory_order_release);
    atomic_store_explicit(&base->base_ns, ns, memory_order_release);
    atomic_store_explicit(&base->mult, mult, memory_order_release);
    atomic_store_explicit(&base->window, window, memory_order_release);
    atomic_store_explicit(&base->seq, s + 2, memory_order_release);
}

/*
 * Pair the clock with the TSC: *ns, and *tsc just before it; *width the
 * ticks between the TSC readings around it.  Returns whether the pairing
 * is narrow enough to use.  The first pairing takes the narrowest of
 * three, as the clock's first use may fault a page in.  A refused pairing
 * raises the bar a little, up to 4 times the narrowest ever, so that a
 * machine whose clock calls got slower for good is not refused forever.
 */
static bool
stamp_pair(uint64_t *tsc, int64_t *ns, uint64_t *width)
{
    *width = UINT64_MAX;
    for (int i = refresh.best == 0 ? 0 : 2; i < 3; i++) {
        uint64_t t0 = __builtin_ia32_rdtsc();
        int64_t n = weiri_now_ns();
        uint64_t t1 = __builtin_ia32_rdtsc();
        if (t1 >= t0 && t1 - t0 < *width) {
            *width = t1 - t0;
            *tsc = t0;
            *ns = n;
        }
    }
    if (*width == UINT64_MAX)
        return false; /* the TSC went backwards: another CPU's, or reset */
    if (refresh.best == 0 || *width < refresh.best)
        refresh.best = refresh.bar = *width;
    if (*width <= refresh.bar + refresh.bar / 4 + 2) {
        /* The bar comes back down with narrow pairings. */
        if (*width < refresh.bar)
            refresh.bar = *width;
        return true;
    }
    if (refresh.bar < 4 * refresh.best)
        refresh.bar += refresh.bar / 16 + 1;
    return false;
}

/* Whether rate a lies within STAMP_RATE_PPM of rate b. */
static bool
rate_near(double a, double b)
{
    return a >= b * (1.0 - STAMP_RATE_PPM * 1e-6) &&
           a <= b * (1.0 + STAMP_RATE_PPM * 1e-6);
}

/*
 * Move the rate's anchor to a pairing, first measuring the rate from the
 * old anchor if they lie far enough apart, not too far, and no suspend
 * came between.  A measured rate must be that of a TSC between 1 MHz and
 * 1 THz; it replaces a known rate only if near it, and becomes the first
 * rate only once a second measurement agrees with it: a span whose
 * suspend went unnoticed (no CLOCK_BOOTTIME) would otherwise make stamps
 * early by as long as the suspend.
 */
static void
stamp_rate(uint64_t tsc, int64_t ns)
{
    int64_t span = ns - refresh.anchor_ns;
    if (refresh.anchor_ns != 0 &&
        span < (refresh.rate == 0 ? STAMP_FIRST_RATE_NS : STAMP_RATE_NS))
        return;
    int64_t boot = boot_offset(ns);
    if (refresh.anchor_ns != 0 && span <= 2 * STAMP_RATE_NS &&
        boot - refresh.anchor_boot < WEIR_MSEC && tsc > refresh.anchor_tsc) {
        double m = (double)span * STAMP_ONE /
                   (double)(tsc - refresh.anchor_tsc);
        if (m < STAMP_ONE / 1000.0 || m > STAMP_ONE * 1000.0)
            refresh.candidate = 0;
        else if (refresh.rate > 0 ? rate_near(m, refresh.rate)
                                  : refresh.candidate > 0 &&
                                    rate_near(m, refresh.candidate))
            refresh.rate = m;
        else if (refresh.rate == 0)
            refresh.candidate = m;
    }
    refresh.anchor_tsc = tsc;
    refresh.anchor_ns = ns;
    refresh.anchor_boot = boot;
}

/*
 * A stamp the base cannot serve: the clock, after moving the base (and
 * the rate) if no other thread is doing so.
 */
int64_t
weiri_stamp_slow(void)
{
    if (atomic_load_explicit(&refresh.usable, memory_order_acquire) < 0 ||
        atomic_flag_test_and_set_explicit(&refresh.busy, memory_order_acquire))
        return weiri_now_ns();
    int usable = atomic_load_explicit(&refresh.usable, memory_order_relaxed);
    if (usable == 0) {
        usable = tsc_trusted() ? 1 : -1;
        atomic_store_explicit(&refresh.usable, usable, memory_order_release);
    }
    int64_t ns = 0;
    uint64_t tsc = 0, width = 0;
    uint64_t mult = atomic_load_explicit(&base->mult, memory_order_relaxed);
    uint64_t base_tsc = atomic_load_explicit(&base->base_tsc,
                                             memory_order_relaxed);
    int64_t base_ns = atomic_load_explicit(&base->base_ns,
                                           memory_order_relaxed);
    uint64_t window = atomic_load_explicit(&base->window,
                                           memory_order_relaxed);
    if (usable < 0) {
        ns = weiri_now_ns();
    } else if (refresh.rate == 0 && refresh.anchor_ns != 0 &&
               (ns = weiri_now_ns()) - refresh.anchor_ns <
                   STAMP_FIRST_RATE_NS) {
        /* No rate yet, and none measurable: no use pairing. */
    } else if (!stamp_pair(&tsc, &ns, &width)) {
        ns = weiri_now_ns();
    } else {
        /*
         * Check a recent base: had its stamps come out earlier than the
         * clock at tsc (which lies within width ticks before ns), or far
         * later, the rate no longer holds.  Stamps go to the clock until
         * one is measured afresh.
         */
        if (mult != 0 && tsc - base_tsc < 10 * window) {
            int64_t pred = base_ns +
                           (int64_t)(((tsc - base_tsc) * mult) >> 32);
            int64_t slack = (int64_t)(((double)width * (double)mult) /
                                      STAMP_ONE);
            if (pred < ns - slack || pred > ns + STAMP_LATE_NS) {
                refresh.rate = refresh.candidate = 0;
                refresh.anchor_ns = 0;
            }
        }
        stamp_rate(tsc, ns);
        stamp_publish(tsc, ns, refresh.rate);
    }
    atomic_flag_clear_explicit(&refresh.busy, memory_order_release);
    return ns;
}
#endif

