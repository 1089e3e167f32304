/* SPDX-License-Identifier: MIT */
/*
 * support.h - helpers shared by the cmocka tests: a watchdog that turns a
 * hang into a failure, a polite back-off for spinning test threads, and
 * the size of a stress run.
 */
#ifndef WEIR_TEST_SUPPORT_H
#define WEIR_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ts_watchdog_arm - if ts_watchdog_disarm is not called within seconds,
 * print which test hung and end the process with status 3.  A lost
 * wake-up or a livelock then fails the run instead of stalling CI.
 * One watchdog per process; arming again replaces the previous one.
 */
void ts_watchdog_arm(const char *what, unsigned seconds);
void ts_watchdog_disarm(void);

/*
 * ts_watchdog_group - a cmocka group setup: arms a default watchdog of
 * TS_DEFAULT_WATCHDOG seconds that every test without its own runs under;
 * ts_watchdog_disarm re-arms it rather than leaving the process unguarded.
 */
#define TS_DEFAULT_WATCHDOG 120
int ts_watchdog_group(void **state);

/*
 * ts_backoff - what a test thread does after a failed try: spin briefly,
 * then yield.  *n counts consecutive failures; reset it to 0 on success.
 * With more threads than cores, yielding is what lets the thread holding
 * things up run.
 */
void ts_backoff(unsigned *n);

/*
 * ts_scale - n for a plain build, n / 10 (at least 1) under a sanitizer,
 * whose 5-20x slowdown would otherwise push the suite past its budget.
 * The interleavings a sanitizer needs to see occur in the first million
 * items as much as in the tenth.
 */
size_t ts_scale(size_t n);

/* ts_now_ns - CLOCK_MONOTONIC in nanoseconds. */
int64_t ts_now_ns(void);

/* ts_sleep_ms - sleep at least ms milliseconds. */
void ts_sleep_ms(unsigned ms);

/*
 * ts_remove_tree - remove dir and everything below it (rm -rf): 0, or
 * -1 if that failed.  For the journal tests' directories.
 */
int ts_remove_tree(const char *dir);

#ifndef __cplusplus
/*
 * A virtual clock for weir_clock hooks: time moves only when a test
 * advances it or a sleeper sleeps (which jumps it to the deadline), so
 * rate logic runs deterministically.  Safe from several threads.
 */
typedef struct ts_vclock {
    _Atomic int64_t now;
} ts_vclock;

int64_t ts_vclock_now(void *vclock);
void ts_vclock_sleep_until(void *vclock, int64_t deadline_ns);
void ts_vclock_advance(ts_vclock *c, int64_t ns);
#endif

#ifdef __cplusplus
}
#endif

#endif /* WEIR_TEST_SUPPORT_H */
