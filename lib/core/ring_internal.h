/* SPDX-License-Identifier: MIT */
/*
 * ring_internal.h - PRIVATE to lib/: what the queue layer needs from the
 * MPMC ring beyond its public API.  The close bit (WEIRI_MPMC_CLOSED), the
 * bound and the claim / fill split are in weir/ring_inline.h instead: the
 * inline pushes the queue calls are made of them.
 */
#ifndef WEIR_RING_INTERNAL_H
#define WEIR_RING_INTERNAL_H

#include <stdbool.h>

#include "weir/ring.h"

/*
 * weiri_mpmc_init_bounded - like weir_mpmc_init, but the ring holds at
 * most capacity items exactly (the slots are still rounded up to a power
 * of two) and can be closed.  Pushes into a closed ring return
 * WEIR_ECLOSED (bursts return 0).
 */
int weiri_mpmc_init_bounded(weir_mpmc *r, size_t capacity);

/* weiri_mpmc_close - refuse every later push; idempotent, any thread. */
void weiri_mpmc_close(weir_mpmc *r);

bool weiri_mpmc_is_closed(const weir_mpmc *r);

/*
 * weiri_mpmc_empty / weiri_mpmc_full - by the claim counters: no claimed
 * push left to pop / as many claimed pushes unpopped as the bound.  A
 * failed pop on a ring that is not empty (or push, not full) met a thread
 * of the other side in the middle of its operation.
 */
bool weiri_mpmc_empty(const weir_mpmc *r);
bool weiri_mpmc_full(const weir_mpmc *r);

/*
 * weiri_mpmc_drained - closed, and every push that claimed a position has
 * been popped: no pop can ever succeed again.
 */
bool weiri_mpmc_drained(const weir_mpmc *r);

#endif /* WEIR_RING_INTERNAL_H */
