/* SPDX-License-Identifier: MIT */
/*
 * timer_internal.h - PRIVATE to lib/: the bus's timers, each one thread
 * and one min-heap for the messages that must wait: the bus has one for
 * delayed publishes and one for retries after a backoff.  A waiting
 * message costs a heap entry, O(log n) to add and to take, never a thread
 * or a sleeping worker.
 *
 * Lock order: a timer's mutex may be taken while holding nothing or
 * bus->mu; while holding it, the timer takes a subscription's mu only
 * (weiri_sub_retry_due), never the other way round.
 */
#ifndef WEIR_TIMER_INTERNAL_H
#define WEIR_TIMER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wait_internal.h"

/* What a timer holds; each timer holds one kind. */
typedef enum {
    WEIRI_TIMED_DELAYED, /* target: weir_topic *, item: weiri_body * */
    WEIRI_TIMED_RETRY    /* target: weir_sub *, item: weiri_delivery * */
} weiri_timed_kind;

typedef struct weiri_timed {
    int64_t due;         /* CLOCK_MONOTONIC ns */
    uint64_t seq;        /* order of adding: breaks ties between equal dues */
    void *target, *item;
    int64_t timeout_ns;  /* DELAYED: the publish's BLOCK timeout */
} weiri_timed;

typedef struct weiri_timer {
    weiri_timed_kind kind;   /* of every entry; fixed at init */
    pthread_mutex_t mu;      /* guards everything below */
    weiri_timed *heap;       /* min-heap on (due, seq) */
    size_t n, cap;
    uint64_t seq;
    size_t delayed;          /* DELAYED: entries in the heap or being delivered */
    bool running, stop;      /* the thread was started; it must exit */
    bool sealed;             /* adds are refused (weiri_timer_seal) */
    pthread_t thread;
    weiri_event changed;     /* the thread sleeps here; so does a close
                                waiting for delayed deliveries */
    void *bus;               /* weir_bus *, handed to the callbacks */
} weiri_timer;

/* weiri_timer_init - 0 or WEIR_ENOMEM.  No thread until the first add. */
int weiri_timer_init(weiri_timer *t, weiri_timed_kind kind, void *bus);

/*
 * weiri_timer_stop - join the thread and free the heap; entries still in
 * it are the caller's to have taken out first.  Once, with no other call
 * running.
 */
void weiri_timer_stop(weiri_timer *t);

/*
 * weiri_timer_add - queue e (its seq is assigned).  0, WEIR_ENOMEM, or
 * WEIR_ECLOSED once sealed.
 */
int weiri_timer_add(weiri_timer *t, weiri_timed e);

/* weiri_timer_seal - refuse every later add; what is queued stays. */
void weiri_timer_seal(weiri_timer *t);

/*
 * weiri_timer_take - remove every entry for which keep(entry, arg) is
 * false (every entry if keep is NULL) and hand each to drop(entry, arg),
 * under the timer's lock, so no removed entry can be firing meanwhile.
 * Returns how many were removed.
 */
size_t weiri_timer_take(weiri_timer *t,
                        bool (*keep)(const weiri_timed *, void *),
                        void (*drop)(weiri_timed *, void *), void *arg);

/*
 * weiri_timer_await_delayed - wait until no DELAYED entry is left or the
 * deadline passes.  true if none is left.
 */
bool weiri_timer_await_delayed(weiri_timer *t, int64_t deadline);

/* weiri_timer_delayed - how many DELAYED entries are waiting or being delivered. */
size_t weiri_timer_delayed(weiri_timer *t);

/*
 * Callbacks, defined by the bus.  weiri_sub_retry_due runs under the
 * timer's lock (so a subscription that takes its entries out with
 * weiri_timer_take never has one firing); a worker also calls it, with
 * no lock, to put a key's next message behind a ready retry.
 * weiri_bus_deliver_delayed runs without it, since a BLOCK queue may
 * make it wait.
 */
void weiri_sub_retry_due(void *sub, void *delivery);
void weiri_bus_deliver_delayed(void *bus, void *topic, void *body,
                               int64_t timeout_ns);

#endif /* WEIR_TIMER_INTERNAL_H */
