/*
 * clock.c - the monotonic clock.  CLOCK_MONOTONIC rather than the wall
 * clock, so a timeout is unaffected by the system time being set.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <time.h>

#include "weir/common.h"

#include "clock_internal.h"

int64_t
weiri_now_ns(void)
{
    struct timespec ts;
    /* Cannot fail for CLOCK_MONOTONIC with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * WEIR_SEC + ts.tv_nsec;
}

int64_t
weiri_deadline(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return WEIRI_NO_DEADLINE;
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
