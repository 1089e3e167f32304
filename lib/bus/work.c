/* SPDX-License-Identifier: MIT */
/*
 * work.c - the halves both worker loops share, and a subscription's
 * books (work_internal.h).
 *
 * Accounting.  Each counter moves at one point, and only up but for the
 * take-backs said below:
 * routed is the queue's (inbox's) own count of pushes plus the messages
 * dropped on the way in (DROP_NEWEST), so a publish pays no extra atomic
 * for it;
 * started moves when a worker takes messages off the queue
 * (weiri_work_took), acked, failed or dead_lettered when a message is
 * finished with (weiri_work_done; deliver.c: after its last attempt),
 * dropped when an overflow policy discards one (place.c), retried just
 * before a retry is scheduled (deliver.c; taken back if the timer
 * refuses it), so that a finished message's retries all show.
 * A message of a batch is started only once its commit succeeded
 * (weiri_work_admit); until then it counts as queued, and the messages an
 * aborted batch placed are taken back out of routed (voided) by the
 * abort at once, so the identity below holds right after a failed
 * commit too, wherever the messages are.  A started message let go
 * unhandled is un-started (weiri_work_put_back).
 * queued and in_flight are derived:
 *     queued    = routed - started - dropped
 *     in_flight = started - acked - failed - dead_lettered
 * so routed = acked + failed + dead_lettered + dropped + queued +
 * in_flight by construction, and what the tests check is that the derived
 * values match reality (the queue is empty after a drain, nothing is in
 * flight).  A snapshot reads the counters in the reverse of the order a
 * message moves through them, so it never shows more finished than
 * started: each finishing count is written with release and read with
 * acquire before started is.
 */
#include <string.h>

#include "clock_internal.h"
#include "place_internal.h"
#include "work_internal.h"

bool
weiri_work_permit(weir_sub *s)
{
    while (weir_limiter_acquire(&s->limiter, 1, WEIR_NOWAIT) != 0) {
        int64_t wait = weir_limiter_wait_ns(&s->limiter, 1);
        uint32_t e = weiri_event_prepare(&s->wake);
        /* seq_cst: pairs with the abort's store before its notify. */
        if (atomic_load(&s->abort)) {
            weiri_event_cancel(&s->wake);
            return false;
        }
        weiri_event_wait(&s->wake, e, weiri_deadline(wait > 0 ? wait : 1));
    }
    return true;
}

static void
note_high_water(weir_sub *s, uint64_t depth)
{
    uint64_t hw = atomic_load_explicit(&s->high_water, memory_order_relaxed);
    while (depth > hw &&
           !atomic_compare_exchange_weak_explicit(&s->high_water, &hw, depth,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void
weiri_work_took(weir_sub *s, void *const *batch, size_t n, size_t want)
{
    /*
     * Relaxed: the commit set gated before placing the message the take
     * just acquired, so a take that holds one sees it.  Without batches,
     * no message need be looked at.
     */
    uint64_t plain = n;
    if (atomic_load_explicit(&s->gated, memory_order_relaxed))
        for (size_t i = 0; i < n; i++)
            plain -= ((const weiri_body *)batch[i])->gate != NULL;
    /* Release: pairs with the acquire read of started in the stats. */
    atomic_fetch_add_explicit(&s->started, plain, memory_order_release);
    /*
     * A short batch took everything there was, so n was the depth; only
     * a full one needs the queue's size, which reads the producers' line:
     * one cache miss per batch saved while the worker keeps up.  What is
     * waiting was read after the take, so it may count places filled
     * since: never more than the queue could have held.
     */
    uint64_t depth = n;
    if (n == want) {
        uint64_t cap = weiri_sub_capacity(s);
        depth += weiri_sub_waiting(s);
        depth = depth < cap ? depth : cap;
    }
    note_high_water(s, depth);
}

bool
weiri_work_admit_gated(weir_sub *s, weiri_body *b)
{
    if (!weiri_gate_wait(b->gate)) {
        weiri_body_release(b, 1);
        return false;
    }
    /* Release: pairs with the acquire read of started in the stats. */
    atomic_fetch_add_explicit(&s->started, 1, memory_order_release);
    return true;
}

void
weiri_work_put_back(weir_sub *s, uint64_t n)
{
    if (n == 0)
        return;
    /*
     * left before started, both seq_cst: weiri_sub_quiet reads started
     * (in the counts) before left, so it never sees a message un-started
     * and not yet left, which would look like one still queued.
     */
    atomic_fetch_add(&s->left, n);
    atomic_fetch_sub(&s->started, n);
}

void
weiri_work_counts(const weir_sub *sub, weir_sub_stats *out)
{
    weir_sub *s = (weir_sub *)sub; /* atomics are read-only here */
    memset(out, 0, sizeof(*out));
    /* Reverse of the path a message takes; see the top of this file. */
    out->acked = atomic_load_explicit(&s->acked, memory_order_acquire);
    out->failed = atomic_load_explicit(&s->failed, memory_order_acquire);
    out->dead_lettered = atomic_load_explicit(&s->dead_lettered,
                                              memory_order_acquire);
    out->delivered = atomic_load_explicit(&s->delivered, memory_order_relaxed);
    out->retried = atomic_load_explicit(&s->retried, memory_order_relaxed);
    out->duplicates = atomic_load_explicit(&s->duplicates,
                                           memory_order_relaxed);
    /* voided before started: a voided message is never started. */
    uint64_t voided = atomic_load_explicit(&s->voided, memory_order_acquire);
    uint64_t started = atomic_load_explicit(&s->started, memory_order_acquire);
    out->dropped = atomic_load_explicit(&s->dropped, memory_order_acquire);
    out->routed = weiri_sub_pushed(s) +
                  atomic_load_explicit(&s->dropped_in, memory_order_acquire);
    out->routed = out->routed > voided ? out->routed - voided : 0;
    out->rejected = atomic_load_explicit(&s->rejected, memory_order_relaxed);
    out->high_water = atomic_load_explicit(&s->high_water,
                                           memory_order_relaxed);
    uint64_t done = out->acked + out->failed + out->dead_lettered;
    out->in_flight = started > done ? started - done : 0;
    uint64_t gone = started + out->dropped;
    out->queued = out->routed > gone ? out->routed - gone : 0;
}
