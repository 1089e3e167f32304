/* SPDX-License-Identifier: MIT */
/*
 * sub_internal.h - PRIVATE to lib/: subscriptions, their lives and their
 * worker threads (sub.c), as the bus makes, drains and frees them.
 */
#ifndef WEIR_SUB_INTERNAL_H
#define WEIR_SUB_INTERNAL_H

#include "bus_internal.h"

/*
 * weiri_sub_create - check opts and make a subscription of t, its
 * workers not started.  Under bus->mu.  0, WEIR_EINVAL or WEIR_ENOMEM.
 */
int weiri_sub_create(weir_bus *bus, weir_topic *t, weir_handler fn,
                     void *ctx, const weir_sub_opts *opts, weir_sub **out);
/* weiri_sub_start - start s's workers.  0, or WEIR_ENOMEM (none run). */
int weiri_sub_start(weir_sub *s);
/*
 * weiri_sub_quiet - whether s has nothing queued, in flight or pinned,
 * adding to *moves a sum of counters that only grow, so that two equal
 * sums over the same subscriptions mean none of them moved in between.
 */
bool weiri_sub_quiet(const weir_sub *s, uint64_t *moves);
/*
 * weiri_sub_drain - shut s, let its workers drain it until the deadline,
 * then stop and join them and release what is left (counted queued).
 * Returns 0, or WEIR_ETIMEDOUT if messages were left.
 */
int weiri_sub_drain(weir_sub *s, int64_t deadline);
/* weiri_sub_free - free a drained s. */
void weiri_sub_free(weir_sub *s);

#endif /* WEIR_SUB_INTERNAL_H */
