/* SPDX-License-Identifier: MIT */
/*
 * queue.c - the bounded blocking queue of weir/queue.h.
 *
 * A bounded, closable MPMC ring carries the items; two event counts
 * (wait_internal.h) let the two sides sleep: consumers on not_empty,
 * producers on not_full.  Every successful operation notifies the other
 * side's event, which costs one load of a line nobody writes while
 * nobody sleeps, so the fast path stays free of system calls and fences
 * (the ring's seq_cst claims do the ordering; see wait_internal.h).
 *
 * Close sets a bit in the ring's claim counter, so a push is refused or
 * placed by one atomic operation and no push can slip in after pops have
 * concluded the queue is drained (see ring_internal.h).
 *
 * The ring fails a call at once when the slot it needs is busy: a thread
 * of the other side has claimed it and not yet copied its item in or
 * out.  The queue counts that slot as an item (as room), so it never
 * reports empty (full) on such a failure: a WEIR_NOWAIT call then waits
 * for that thread (settle), and a blocking one yields to it instead of
 * sleeping (transfer_idle).  The ring's counters, read only after a
 * failure, tell the two cases apart, so a call that succeeds pays nothing.
 *
 * No locks are held anywhere here (the portable event count takes its
 * mutex only around the sleep itself).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "weir/queue.h"
#include "weir/ring.h"

#include "alloc_internal.h"
#include "clock_internal.h"
#include "queue_internal.h"
#include "ring_internal.h"
#include "wait_internal.h"

_Static_assert(SIZE_MAX > 0xffffffffu,
               "weir_queue needs 64-bit positions: see WEIRI_MPMC_CLOSED");

struct weir_queue {
    weir_mpmc ring;            /* the items; closed through its tail bit */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_empty;     /* consumers sleep here; producers notify */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_full;      /* producers sleep here; consumers notify */
    bool patient;              /* pops sleep at once: weiri_queue_patient */
};

int
weir_queue_create(weir_queue **q, size_t capacity)
{
    if (q == NULL)
        return WEIR_EINVAL;
    *q = NULL;
    if (capacity == 0 || capacity > SIZE_MAX / 8)
        return WEIR_EINVAL;
    weir_queue *nq = weiri_alloc_array(1, sizeof(*nq));
    if (nq == NULL)
        return WEIR_ENOMEM;
    int rc = weiri_mpmc_init_bounded(&nq->ring, capacity);
    if (rc != 0)
        goto fail_ring;
    if ((rc = weiri_event_init(&nq->not_empty)) != 0)
        goto fail_empty;
    if ((rc = weiri_event_init(&nq->not_full)) != 0)
        goto fail_full;
    *q = nq;
    return 0;
fail_full:
    weiri_event_destroy(&nq->not_empty);
fail_empty:
    weir_mpmc_destroy(&nq->ring);
fail_ring:
    weiri_free(nq);
    return rc;
}

void
weir_queue_destroy(weir_queue *q)
{
    if (q == NULL)
        return;
    weiri_event_destroy(&q->not_full);
    weiri_event_destroy(&q->not_empty);
    weir_mpmc_destroy(&q->ring);
    weiri_free(q);
}

/*
 * One try in either direction: a push of in[0..n-1] when in is not NULL,
 * else a pop into out[0..n-1].  Returns how many items moved, 0 if none.
 */
static size_t
try_once(weir_queue *q, void *const *in, void **out, size_t n)
{
    if (in != NULL)
        return n == 1 ? weir_mpmc_push(&q->ring, in[0]) == 0
                      : weir_mpmc_push_burst(&q->ring, in, n);
    return n == 1 ? weir_mpmc_pop(&q->ring, out) == 0
                  : weir_mpmc_pop_burst(&q->ring, out, n);
}

/* Whether the close decides the call: pushes at once, pops once drained. */
static bool
closed_for(const weir_queue *q, bool put)
{
    return put ? weiri_mpmc_is_closed(&q->ring) : weiri_mpmc_drained(&q->ring);
}

/*
 * One try and what follows from it: how many items moved (the other side
 * notified), WEIR_ECLOSED if the close decides the call, else 0.
 */
static long
attempt(weir_queue *q, void *const *in, void **out, size_t n)
{
    size_t k = try_once(q, in, out, n);
    if (k > 0) {
        weiri_event_notify(in != NULL ? &q->not_empty : &q->not_full,
                           (uint32_t)k);
        return (long)k;
    }
    return closed_for(q, in != NULL) ? WEIR_ECLOSED : 0;
}

/* Whether the counters say full (put) or empty: no slot is busy. */
static bool
at_bound(const weir_queue *q, bool put)
{
    return put ? weiri_mpmc_full(&q->ring) : weiri_mpmc_empty(&q->ring);
}

/*
 * The n-th wait (from 0) of a call for a thread of the other side to
 * finish with a busy slot: nanoseconds unless that thread was preempted,
 * so a few short spins first, then weiri_pause (yields, then sleeps of
 * 100 us, so that a thread of lower priority gets the CPU too).
 */
enum { SETTLE_SPINS = 4 };

static void
settle_pause(unsigned n)
{
    if (n < SETTLE_SPINS) {
        for (unsigned i = 0; i < 1u << n; i++)
            WEIRI_RELAX();
    } else {
        weiri_pause(n - SETTLE_SPINS);
    }
}

/* A blocking call in progress: see transfer. */
typedef struct transfer_ctx {
    weir_queue *q;
    void *const *in;
    void **out;
    size_t n;
    const _Atomic uint32_t *kick;
    uint32_t seen;
    bool settle;   /* fail only at the bound: wait out a busy slot */
} transfer_ctx;

/* What transfer returns when *kick moved; never a count or a code. */
#define KICKED LONG_MIN

/*
 * One try; with settle (a WEIR_NOWAIT call, which gets no other) a try
 * that failed on a busy slot is repeated until it succeeds or the queue
 * is full (empty) or closed.  The counters are read with seq_cst loads
 * after the try, one after the other in the order each question needs
 * (lib/core/ring.c), so a failure is reported only if the queue was at its
 * bound at the instant of the second load: a call that pushed and then
 * pops with WEIR_NOWAIT always gets an item (crossbeam's `linearizable`
 * test).
 * Blocking calls need no settling here: weiri_await asks transfer_idle
 * before it sleeps, and yields to a busy slot's thread.
 */
static long
transfer_try(void *arg)
{
    transfer_ctx *c = arg;
    for (unsigned n = 0;; n++) {
        long rc = attempt(c->q, c->in, c->out, c->n);
        if (rc == 0 && c->kick != NULL && atomic_load(c->kick) != c->seen)
            return KICKED;
        if (rc != 0 || !c->settle || at_bound(c->q, c->in != NULL))
            return rc;
        settle_pause(n);
    }
}

/* Sleep only if the counters say full (empty): see weiri_await. */
static bool
transfer_idle(void *arg)
{
    transfer_ctx *c = arg;
    return at_bound(c->q, c->in != NULL);
}

/*
 * Every blocking call: pushes pass in, pops pass out (see try_once), and
 * sleep on the event of the side that can make the try succeed.  Returns
 * how many items moved or a negative code; 0 only if kick is not NULL
 * and *kick moved from seen (see weiri_queue_pop_kickable).
 */
static long
transfer(weir_queue *q, void *const *in, void **out, size_t n,
         int64_t timeout_ns, const _Atomic uint32_t *kick, uint32_t seen)
{
    transfer_ctx c = { q, in, out, n, kick, seen, weiri_try_once(timeout_ns) };
    long rc = weiri_await(in != NULL ? &q->not_full : &q->not_empty,
                          timeout_ns, transfer_try, transfer_idle, &c,
                          in == NULL && q->patient);
    /*
     * A wait whose deadline passed while a place was busy (the queue not
     * full, not empty) ends with one settling try: it times out only if
     * the queue is at its bound then.
     */
    if (rc == WEIR_ETIMEDOUT) {
        c.settle = true;
        rc = transfer_try(&c);
        if (rc == 0)
            rc = WEIR_ETIMEDOUT;
    }
    return rc == KICKED ? 0 : rc;
}

static bool
bad_timeout(int64_t timeout_ns)
{
    return weiri_bad_timeout(timeout_ns);
}

int
weir_queue_push(weir_queue *q, void *item, int64_t timeout_ns)
{
    if (q == NULL || bad_timeout(timeout_ns))
        return WEIR_EINVAL;
    /* The common case, inlined: room at once (transfer would try the same). */
    if (weir_mpmc_push(&q->ring, item) == 0) {
        weiri_event_notify(&q->not_empty, 1);
        return 0;
    }
    long rc = transfer(q, &item, NULL, 1, timeout_ns, NULL, 0);
    return rc < 0 ? (int)rc : 0;
}

int
weir_queue_pop(weir_queue *q, void **item, int64_t timeout_ns)
{
    if (q == NULL || item == NULL || bad_timeout(timeout_ns))
        return WEIR_EINVAL;
    if (weir_mpmc_pop(&q->ring, item) == 0) {
        weiri_event_notify(&q->not_full, 1);
        return 0;
    }
    long rc = transfer(q, NULL, item, 1, timeout_ns, NULL, 0);
    return rc < 0 ? (int)rc : 0;
}

/* The checks both burst calls share, then the transfer. */
static long
burst(weir_queue *q, void *const *in, void **out, size_t n, int64_t timeout_ns)
{
    if (q == NULL || (in == NULL && out == NULL) || bad_timeout(timeout_ns))
        return WEIR_EINVAL;
    if (n == 0)
        return 0;
    return transfer(q, in, out, n > LONG_MAX ? LONG_MAX : n, timeout_ns,
                    NULL, 0);
}

long
weir_queue_push_burst(weir_queue *q, void *const *items, size_t n,
                      int64_t timeout_ns)
{
    return burst(q, items, NULL, n, timeout_ns);
}

long
weir_queue_pop_burst(weir_queue *q, void **items, size_t n,
                     int64_t timeout_ns)
{
    return burst(q, NULL, items, n, timeout_ns);
}

void
weir_queue_close(weir_queue *q)
{
    if (q == NULL)
        return;
    weiri_mpmc_close(&q->ring);
    /* Everyone asleep must re-check and see the close. */
    weiri_event_notify(&q->not_full, UINT32_MAX);
    weiri_event_notify(&q->not_empty, UINT32_MAX);
}

bool
weir_queue_is_closed(const weir_queue *q)
{
    return q != NULL && weiri_mpmc_is_closed(&q->ring);
}

size_t
weir_queue_size(const weir_queue *q)
{
    return q == NULL ? 0 : weir_mpmc_size(&q->ring);
}

size_t
weir_queue_capacity(const weir_queue *q)
{
    return q == NULL ? 0 : weir_mpmc_capacity(&q->ring);
}

uint64_t
weiri_queue_pushed(const weir_queue *q)
{
    /* Acquire: a stats reader sees what led to the pushes it counts. */
    return atomic_load_explicit(&q->ring.tail, memory_order_acquire) &
           ~WEIRI_MPMC_CLOSED;
}

void
weiri_queue_patient(weir_queue *q)
{
    q->patient = true;
}

long
weiri_queue_pop_kickable(weir_queue *q, void **items, size_t n,
                         const _Atomic uint32_t *kick, uint32_t seen)
{
    return transfer(q, NULL, items, n, WEIR_FOREVER, kick, seen);
}

int
weiri_queue_claim(weir_queue *q, size_t *pos)
{
    /*
     * No settling: waiting out a busy place here, with a publisher's
     * other places claimed and unfilled, cost a fifth of the bus's
     * throughput at 4 subscriptions (bench/NOTES.md).
     */
    return weiri_mpmc_claim(&q->ring, pos);
}

int
weiri_queue_try_push(weir_queue *q, void *item)
{
    long rc = attempt(q, &item, NULL, 1);
    return rc == 1 ? 0 : rc == 0 ? WEIR_EAGAIN : (int)rc;
}

void
weiri_queue_fill(weir_queue *q, size_t pos, void *item)
{
    weiri_mpmc_fill(&q->ring, pos, item);
    weiri_event_notify(&q->not_empty, 1);
}

void
weiri_queue_wake_consumers(weir_queue *q)
{
    weiri_event_notify(&q->not_empty, UINT32_MAX);
}
