/* SPDX-License-Identifier: MIT */
/*
 * queue_internal.h - PRIVATE to lib/: what the bus needs from weir_queue
 * beyond its public API.
 */
#ifndef WEIR_QUEUE_INTERNAL_H
#define WEIR_QUEUE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/queue.h"

/*
 * weiri_queue_pushed - how many pushes have ever claimed a place in q
 * (completed or in progress).  Never decreases.  Any thread.
 */
uint64_t weiri_queue_pushed(const weir_queue *q);

/*
 * weiri_queue_patient - from now on q's pops sleep as soon as it is
 * empty, without spinning or yielding first (weiri_await's patient):
 * for a queue filled at the pace of something slow, such as a durable
 * subscription's, fed at the pace of the journal's syncs.  Before any
 * other thread uses q.
 */
void weiri_queue_patient(weir_queue *q);

/*
 * weiri_queue_pop_kickable - as weir_queue_pop_burst with WEIR_FOREVER,
 * except that it returns 0 once *kick differs from seen: the caller has
 * other work, and whoever moves *kick calls weiri_queue_wake_consumers
 * after.  A sleeper checks *kick after announcing itself, so the wake
 * cannot be missed.
 */
long weiri_queue_pop_kickable(weir_queue *q, void **items, size_t n,
                              const _Atomic uint32_t *kick, uint32_t seen);

/*
 * weiri_queue_claim / weiri_queue_fill - a push in two steps that never
 * waits: claim a place (0, WEIR_EAGAIN, WEIR_ECLOSED), then, always and
 * soon, fill it, which wakes a consumer as a push does.  Unlike
 * weir_queue_push with WEIR_NOWAIT, a claim fails at once on a place a
 * pop is still copying the last item out of (the ring's own rule), so
 * its WEIR_EAGAIN may not mean full: the bus then offers the message
 * the exact way.  Pops wait at a claimed place until it is filled
 * (spinning, yielding, then sleeping 100 us at a time), so nothing that
 * may block belongs between the two.
 */
int weiri_queue_claim(weir_queue *q, size_t *pos);
/*
 * weiri_queue_try_push - one try, as the ring makes it: WEIR_EAGAIN may
 * mean a busy place rather than full.  For a caller that waits for room
 * when it fails (the bus's BLOCK offer), so need not settle a busy place
 * here: its wait yields to the busy place's thread, or sleeps until a
 * pop wakes it if full, and settles before it times out.
 */
int weiri_queue_try_push(weir_queue *q, void *item);
void weiri_queue_fill(weir_queue *q, size_t pos, void *item);

/* weiri_queue_wake_consumers - wake every consumer asleep in q. */
void weiri_queue_wake_consumers(weir_queue *q);

#endif /* WEIR_QUEUE_INTERNAL_H */
