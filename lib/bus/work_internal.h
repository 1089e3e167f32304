/* SPDX-License-Identifier: MIT */
/*
 * work_internal.h - PRIVATE to lib/: what both worker loops share (sub.c's
 * batches, deliver.c's careful loop), and the books of a subscription:
 * every step a message's accounting takes is one function here, and the
 * identity the statistics keep is read in one place (weiri_work_counts).
 * Thread safety: every function may be called by any worker of s at
 * once; weiri_work_counts by anyone while s lives.
 */
#ifndef WEIR_WORK_INTERNAL_H
#define WEIR_WORK_INTERNAL_H

#include "bus_internal.h"

/*
 * weiri_work_permit - wait for a permit of s's limiter to start a
 * handler, on s->wake so that an aborting close cuts the wait short.
 * false: s aborts.
 */
bool weiri_work_permit(weir_sub *s);

/*
 * weiri_work_took - a worker of s took batch[0..n-1] off its queue,
 * asking for want: count started those of no batch, and note the depth
 * they show.
 */
void weiri_work_took(weir_sub *s, void *const *batch, size_t n, size_t want);

/*
 * weiri_work_admit - whether a message a worker took is to be handled:
 * one of a batch waits for its commit's decision and is counted started
 * if it committed, released if not (the abort counted it voided).
 * Inline: a worker asks for every message, and most have no batch.
 */
bool weiri_work_admit_gated(weir_sub *s, weiri_body *b);

static inline bool
weiri_work_admit(weir_sub *s, weiri_body *b)
{
    return b->gate == NULL || weiri_work_admit_gated(s, b);
}

/*
 * weiri_work_put_back - n messages started by a worker of s are let go
 * unhandled (s aborts, or destroy gave up their retries): they count as
 * queued again, and as left (see weiri_sub_quiet).  The caller releases
 * their bodies.
 */
void weiri_work_put_back(weir_sub *s, uint64_t n);

/*
 * weiri_work_done - a worker of s made calls handler calls, and finished
 * with acked, failed and dead_lettered messages (a message is finished
 * after its last attempt; its earlier calls count with calls alone).
 * Inline: the careful loop calls it for every message.
 */
static inline void
weiri_work_done(weir_sub *s, uint64_t calls, uint64_t acked,
                uint64_t failed, uint64_t dead_lettered)
{
    /*
     * Relaxed: a count of calls, read for itself.  The finishing counts
     * are release: each pairs with the acquire read in
     * weiri_work_counts, which then sees the message started.
     */
    if (calls != 0)
        atomic_fetch_add_explicit(&s->delivered, calls, memory_order_relaxed);
    if (acked != 0)
        atomic_fetch_add_explicit(&s->acked, acked, memory_order_release);
    if (failed != 0)
        atomic_fetch_add_explicit(&s->failed, failed, memory_order_release);
    if (dead_lettered != 0)
        atomic_fetch_add_explicit(&s->dead_lettered, dead_lettered,
                                  memory_order_release);
}

/*
 * weiri_work_settle - w is done with b at the time now: its latency goes
 * into w's histogram (w's alone, so no atomics), and its reference is
 * released.  Inline: a worker settles every message.
 */
static inline void
weiri_work_settle(weiri_worker *w, weiri_body *b, int64_t now)
{
    weiri_hist_record(&w->latency, now - b->timestamp_ns);
    weiri_body_release(b, 1);
}

/*
 * weiri_work_counts - every count of s's statistics but the latency
 * ones, into *out, the derived ones (queued, in_flight) from the
 * identity.
 */
void weiri_work_counts(const weir_sub *s, weir_sub_stats *out);

#endif /* WEIR_WORK_INTERNAL_H */
