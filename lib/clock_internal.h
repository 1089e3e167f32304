/*
 * clock_internal.h - PRIVATE to lib/: the monotonic clock and deadlines.
 * The only place weir reads the time; see lib/clock.c.
 */
#ifndef WEIR_CLOCK_INTERNAL_H
#define WEIR_CLOCK_INTERNAL_H

#include <stdint.h>

/* Sentinel deadline: never. */
#define WEIRI_NO_DEADLINE INT64_MAX

/* weiri_now_ns - CLOCK_MONOTONIC in nanoseconds. */
int64_t weiri_now_ns(void);

/*
 * weiri_stamp_ns - CLOCK_MONOTONIC in nanoseconds, cheaply, for message
 * timestamps and latencies: where the TSC keeps the kernel's time, read
 * from it, never earlier than weiri_now_ns would say and at most a few
 * tens of ns later; else weiri_now_ns itself (see lib/clock.c).  Never
 * for deadlines.  Any thread.
 */
int64_t weiri_stamp_ns(void);

/*
 * weiri_deadline - turn a relative timeout (WEIR_FOREVER or > 0 ns) into
 * an absolute CLOCK_MONOTONIC deadline, once, so that retries after a
 * spurious wake-up never extend the total wait.  Saturates instead of
 * overflowing.
 */
int64_t weiri_deadline(int64_t timeout_ns);

/*
 * weiri_sleep_until - sleep until CLOCK_MONOTONIC reaches deadline_ns;
 * never returns early: interrupted sleeps are resumed.
 */
void weiri_sleep_until(int64_t deadline_ns);

#endif /* WEIR_CLOCK_INTERNAL_H */
