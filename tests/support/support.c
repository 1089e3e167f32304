/* SPDX-License-Identifier: MIT */
/*
 * support.c - see support.h.
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static const char *volatile watchdog_what = "?";

static void
watchdog_fire(int sig)
{
    (void)sig;
    /* Only async-signal-safe calls here. */
    static const char head[] = "\nwatchdog: hung in ";
    const char *what = watchdog_what;
    ssize_t rc = write(2, head, sizeof(head) - 1);
    rc = write(2, what, strlen(what));
    rc = write(2, "\n", 1);
    (void)rc;
    _exit(3);
}

void
ts_watchdog_arm(const char *what, unsigned seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fire;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    watchdog_what = what;
    alarm(seconds);
}

static int default_armed;

void
ts_watchdog_disarm(void)
{
    if (default_armed)
        ts_watchdog_arm("a test without a watchdog of its own",
                        TS_DEFAULT_WATCHDOG);
    else
        alarm(0);
}

int
ts_watchdog_group(void **state)
{
    (void)state;
    default_armed = 1;
    ts_watchdog_disarm();
    return 0;
}

void
ts_backoff(unsigned *n)
{
    if (*n < 6) {
        for (unsigned i = 0; i < (1u << *n); i++) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        (*n)++;
        return;
    }
    sched_yield();
}

size_t
ts_scale(size_t n)
{
#ifdef WEIR_TEST_SANITIZED
    n /= 10;
#endif
    return n ? n : 1;
}

int64_t
ts_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
ts_sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int64_t
ts_vclock_now(void *vclock)
{
    return atomic_load(&((ts_vclock *)vclock)->now);
}

void
ts_vclock_sleep_until(void *vclock, int64_t deadline_ns)
{
    ts_vclock *c = vclock;
    int64_t now = atomic_load(&c->now);
    while (now < deadline_ns &&
           !atomic_compare_exchange_weak(&c->now, &now, deadline_ns))
        ;
}

void
ts_vclock_advance(ts_vclock *c, int64_t ns)
{
    atomic_fetch_add(&c->now, ns);
}

int
ts_remove_tree(const char *dir)
{
    char cmd[4200];
    if (strlen(dir) > 4096 || strchr(dir, '\'') != NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}
