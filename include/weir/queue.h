/* SPDX-License-Identifier: MIT */
/*
 * weir/queue.h - a bounded blocking MPMC queue of void * items.
 *
 * Any number of threads may push and pop at once.  A push or pop that can
 * complete at once is lock-free (an MPMC ring underneath) and makes no
 * system call unless a thread of the other side is asleep; a call that
 * must wait pauses, yields the CPU a few times (microseconds in all) and
 * then sleeps (futex on Linux, a condition variable elsewhere) without
 * using CPU, until the queue changes, the queue is closed or its timeout
 * expires.
 *
 * Timeouts are nanoseconds on CLOCK_MONOTONIC: WEIR_NOWAIT (or 0) tries
 * once, a positive value waits at most that long, WEIR_FOREVER waits without
 * limit; any other negative value is WEIR_EINVAL.  The deadline is fixed
 * when the call starts, so wake-ups that find nothing never extend it.
 *
 * Order: FIFO in the order pushes claimed their place, so one producer's
 * items leave in the order it pushed them and every consumer sees them in
 * that order.  What a producer wrote before pushing an item is visible to
 * the consumer that pops it.
 *
 * Closing: after weir_queue_close, pushes fail with WEIR_ECLOSED at once,
 * pops return what is still queued and then WEIR_ECLOSED, and every
 * thread asleep in either wakes promptly.  An item is either refused with
 * WEIR_ECLOSED or will be returned by a pop: close loses nothing.
 *
 * The queue never dereferences or frees items; they belong to the caller.
 */
#ifndef WEIR_QUEUE_H
#define WEIR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_queue weir_queue;

/*
 * weir_queue_create - allocate a queue that holds at most capacity items
 * (exactly that bound: any capacity >= 1, not rounded), and store it in *q.
 * Returns 0; WEIR_EINVAL if q is NULL or capacity is 0 or absurdly large
 * (above SIZE_MAX / 8); WEIR_ENOMEM if memory runs out.  On failure *q is
 * set to NULL (when q is not NULL) and nothing is allocated.
 */
int weir_queue_create(weir_queue **q, size_t capacity);

/*
 * weir_queue_destroy - free q.  Items still queued are forgotten, not
 * freed.  No thread may be inside another call on q, or call one after;
 * close and join your threads first.  Accepts NULL.
 */
void weir_queue_destroy(weir_queue *q);

/*
 * weir_queue_push - append item (any value, NULL included), waiting up to
 * timeout_ns for room.  Returns 0; WEIR_EAGAIN if timeout_ns is
 * WEIR_NOWAIT and the queue was full at some instant during the call;
 * WEIR_ETIMEDOUT if it stayed full until the timeout; WEIR_ECLOSED if the
 * queue is or becomes closed before the item could be placed; WEIR_EINVAL
 * for a NULL q or a bad timeout.  On any failure the item was not queued.
 * Any thread.
 *
 * "Full" counts places: a pop that has taken its place but not yet copied
 * its item out has made room, and a push that finds that place next waits
 * for the copy (nanoseconds, unless that thread is preempted) rather than
 * report a full queue; likewise a pop waits for a push in progress.  So
 * a thread that pushed and then pops with WEIR_NOWAIT always gets an item.
 */
int weir_queue_push(weir_queue *q, void *item, int64_t timeout_ns);

/*
 * weir_queue_pop - remove the oldest item into *item, waiting up to
 * timeout_ns for one.  Returns 0; WEIR_EAGAIN (WEIR_NOWAIT, and the queue
 * was empty at some instant during the call; see weir_queue_push);
 * WEIR_ETIMEDOUT; WEIR_ECLOSED once the queue is closed and empty;
 * WEIR_EINVAL for NULL q or item, or a bad timeout.  *item is written only
 * on success.  Any thread.
 */
int weir_queue_pop(weir_queue *q, void **item, int64_t timeout_ns);

/*
 * weir_queue_push_burst - append items[0..n-1] in order, as many as there
 * is room for, waiting up to timeout_ns for room for at least one.
 * Returns how many were queued (1..n), or a negative code as for
 * weir_queue_push (then none were, and WEIR_EAGAIN means full at some
 * instant during the call); n == 0 returns 0 at once (a NULL q or items
 * is WEIR_EINVAL even then).  The items queued
 * are consecutive: none of another producer's land between them.  Room
 * that a pop in progress is still emptying is not waited for unless it is
 * all there is: a burst stops before such a place, so it may take fewer
 * than the room only while another thread is in the middle of a pop.
 */
long weir_queue_push_burst(weir_queue *q, void *const *items, size_t n,
                           int64_t timeout_ns);

/*
 * weir_queue_pop_burst - wait up to timeout_ns for at least one item, then
 * take up to n of the oldest that are there without waiting more.  Returns
 * how many (1..n), or a negative code as for weir_queue_pop (WEIR_EAGAIN:
 * empty at some instant during the call); n == 0 returns 0 at once (a
 * NULL q or items is WEIR_EINVAL even then).  It
 * stops before an item whose push is still in progress, and waits for
 * that push (as weir_queue_pop does) only when that item is the oldest.
 */
long weir_queue_pop_burst(weir_queue *q, void **items, size_t n,
                          int64_t timeout_ns);

/*
 * weir_queue_close - refuse further pushes and wake every sleeper (see the
 * top of this file).  Idempotent; any thread, while others push and pop.
 * Accepts NULL.
 */
void weir_queue_close(weir_queue *q);

/* weir_queue_is_closed - whether close was called; false for NULL. */
bool weir_queue_is_closed(const weir_queue *q);

/*
 * weir_queue_size - items queued (including pushes and pops in progress),
 * a snapshot between 0 and the capacity; 0 for NULL.  Any thread.
 */
size_t weir_queue_size(const weir_queue *q);

/* weir_queue_capacity - the bound given at create; 0 for NULL. */
size_t weir_queue_capacity(const weir_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_QUEUE_H */
