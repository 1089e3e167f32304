/* SPDX-License-Identifier: MIT */
/*
 * place.c - a subscription's mailbox, whichever kind it has (an inbox or a
 * weir_queue: see weir_sub.inbox), chosen here: placing a message
 * by the overflow policy, waiting for room in a full BLOCK queue outside
 * the publisher's read section (pins), the rule that keeps a handler
 * from waiting for room in its own queue for ever, and the plain
 * operations workers and closers need (take, size, shut).
 *
 * sub.c runs the workers and calls in here; nothing here calls sub.c.
 */
#include "place_internal.h"
#include "topic_internal.h"
#include "clock_internal.h"
#include "queue_internal.h"

_Thread_local const weir_sub *weiri_current_sub;

bool
weiri_in_handler_of(const weir_bus *bus, const weir_sub *sub)
{
    const weir_sub *cur = weiri_current_sub;
    return cur != NULL && (cur == sub || (sub == NULL && cur->bus == bus));
}

bool
weiri_bus_refuses(weir_bus *bus)
{
    /* seq_cst: a publish reads it in its read section; see close_bus. */
    if (!atomic_load(&bus->closed))
        return false;
    return !weiri_in_handler_of(bus, NULL) || atomic_load(&bus->sealed);
}

int
weiri_sub_mailbox_open(weir_sub *s, size_t capacity, bool lone)
{
    /*
     * An inbox only for the first subscription of a topic: a message is
     * written in place only while it is the topic's one subscription, and
     * otherwise its wide slots cost more than a queue's (one line per
     * message, not a quarter): with 64 subscriptions, each with an inbox,
     * a publish cost 3-4x as much.  And only where one worker takes and
     * no publisher takes back (not careful, not DROP_OLDEST).
     */
    if (lone && !s->careful && s->nworkers == 1 &&
        s->overflow != WEIR_OVERFLOW_DROP_OLDEST &&
        capacity <= WEIRI_INBOX_MAX)
        return weiri_inbox_create(&s->inbox, capacity, s->topic->name);
    return weir_queue_create(&s->queue, capacity);
}

void
weiri_sub_mailbox_free(weir_sub *s)
{
    weiri_inbox_destroy(s->inbox);
    weir_queue_destroy(s->queue);
}

int
weiri_sub_claim(weir_sub *s, size_t *pos)
{
    return s->inbox != NULL ? weiri_inbox_claim(s->inbox, pos)
                            : weiri_queue_claim(s->queue, pos);
}

void
weiri_sub_fill(weir_sub *s, size_t pos, weiri_body *b)
{
    if (s->inbox != NULL)
        weiri_inbox_fill(s->inbox, pos, b);
    else
        weiri_queue_fill(s->queue, pos, b);
}

/* Place b, waiting as weir_queue_push does. */
static int
push(weir_sub *s, weiri_body *b, int64_t timeout_ns)
{
    return s->inbox != NULL ? weiri_inbox_push(s->inbox, b, timeout_ns)
                            : weir_queue_push(s->queue, b, timeout_ns);
}

int
weiri_sub_place(weir_sub *s, weiri_body *b)
{
    return push(s, b, WEIR_NOWAIT);
}

size_t
weiri_sub_waiting(const weir_sub *s)
{
    return s->inbox != NULL ? weiri_inbox_size(s->inbox)
                            : weir_queue_size(s->queue);
}

size_t
weiri_sub_capacity(const weir_sub *s)
{
    return s->inbox != NULL ? weiri_inbox_capacity(s->inbox)
                            : weir_queue_capacity(s->queue);
}

bool
weiri_sub_has_room(const weir_sub *s, size_t need)
{
    bool closed = s->inbox != NULL ? weiri_inbox_is_closed(s->inbox)
                                   : weir_queue_is_closed(s->queue);
    return closed || weiri_sub_waiting(s) + need <= weiri_sub_capacity(s);
}

void
weiri_sub_shut(weir_sub *s)
{
    if (s->inbox != NULL)
        weiri_inbox_close(s->inbox);
    else
        weir_queue_close(s->queue);
}

long
weiri_sub_take(weir_sub *s, void **batch, size_t n, int64_t timeout_ns)
{
    return s->inbox != NULL
               ? weiri_inbox_take(s->inbox, batch, n, timeout_ns)
               : weir_queue_pop_burst(s->queue, batch, n, timeout_ns);
}

/*
 * A message taken off the queue without a worker (dropped by DROP_OLDEST,
 * or left by a close): counted as dropped or left queued, unless its
 * batch was aborted (then the abort counted it voided).  Waits for a
 * batch still being committed: a try never waits, so it decides soon.
 */
void
weiri_sub_drop_queued(weir_sub *s, weiri_body *b, bool left)
{
    if (b->gate != NULL && !weiri_gate_wait(b->gate)) {
        weiri_body_release(b, 1);
        return;
    }
    if (!left)
        atomic_fetch_add_explicit(&s->dropped, 1, memory_order_release);
    weiri_body_release(b, 1);
}

bool
weiri_sub_wait_begin(const weir_bus *bus, weir_sub *s, bool unbounded)
{
    /* Not a worker of s: s is not touched (it may be gone). */
    if (!weiri_in_handler_of(bus, s))
        return true;
    /*
     * A bounded wait ends by itself, but still makes no room meanwhile.
     * seq_cst RMWs on one counter: of the workers that wait at once, the
     * last to count itself sees every other, whatever the order.
     */
    if (atomic_fetch_add(&s->self_waits, 1) + 1 < s->nworkers || !unbounded)
        return true;
    atomic_fetch_sub(&s->self_waits, 1);
    return false;
}

void
weiri_sub_wait_end(const weir_bus *bus, weir_sub *s)
{
    if (weiri_in_handler_of(bus, s))
        atomic_fetch_sub(&s->self_waits, 1);
}

/*
 * Wait for room in a full BLOCK queue: until the deadline, and, when stop
 * is not NULL, no longer than *stop stays false (checked before each wait
 * of at most 5 ms), so that the bus's own deliveries (dead letters,
 * delayed messages) never outlast a close.  Returns as weir_queue_push,
 * WEIR_ETIMEDOUT at the deadline, and WEIR_ECLOSED when *stop ended the
 * wait: the close gave up on the message, the subscription did not
 * refuse it.  Room there is still taken once *stop is true.
 */
static int
push_blocking(weir_sub *s, weiri_body *b, int64_t deadline,
              const _Atomic bool *stop)
{
    if (deadline == WEIRI_NOWAIT_DEADLINE)
        return push(s, b, WEIR_NOWAIT);
    for (;;) {
        /* seq_cst: see the store of the flag (close_bus, weiri_sub_drain). */
        bool stopping = stop != NULL && atomic_load(stop);
        /* No clock read without a deadline: the common publish has none. */
        int64_t wait = WEIR_FOREVER;
        if (stopping) {
            wait = WEIR_NOWAIT;
        } else if (deadline != WEIRI_NO_DEADLINE) {
            int64_t now = weiri_now_ns();
            wait = deadline > now ? deadline - now : WEIR_NOWAIT;
        }
        if (stop != NULL && (wait == WEIR_FOREVER || wait > 5 * WEIR_MSEC))
            wait = 5 * WEIR_MSEC;
        int rc = push(s, b, wait);
        if (rc != WEIR_EAGAIN && rc != WEIR_ETIMEDOUT)
            return rc;
        if (stopping)
            return WEIR_ECLOSED;
        if (stop == NULL || wait == WEIR_NOWAIT ||
            (deadline != WEIRI_NO_DEADLINE && weiri_now_ns() >= deadline))
            return WEIR_ETIMEDOUT;
    }
}

int
weiri_sub_refused(weir_sub *s, weiri_body *b, int rc)
{
    /*
     * A subscription closing on its own has left the topic; a queue the
     * bus's seal shut turned a publish away, as a full REJECT one does.
     */
    /* seq_cst: pairs with close_bus's store before it shuts the queues. */
    if (rc != WEIR_ECLOSED || atomic_load(&s->bus->sealed))
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    weiri_body_release(b, 1);
    return rc;
}

int
weiri_sub_offer(weir_sub *s, weiri_body *b)
{
    int rc;
    switch (s->overflow) {
    case WEIR_OVERFLOW_BLOCK:
        /* No need to tell busy from full: the wait sorts it out. */
        rc = s->inbox != NULL ? weiri_inbox_push(s->inbox, b, WEIR_NOWAIT)
                              : weiri_queue_try_push(s->queue, b);
        if (rc == WEIR_EAGAIN)
            return WEIRI_MUST_WAIT;
        break;
    case WEIR_OVERFLOW_DROP_OLDEST:
        while ((rc = weir_queue_push(s->queue, b, WEIR_NOWAIT)) ==
               WEIR_EAGAIN) {
            void *victim;
            if (weir_queue_pop(s->queue, &victim, WEIR_NOWAIT) == 0)
                weiri_sub_drop_queued(s, victim, false);
        }
        break;
    default: /* REJECT and DROP_NEWEST */
        rc = push(s, b, WEIR_NOWAIT);
        if (rc == WEIR_EAGAIN && s->overflow == WEIR_OVERFLOW_DROP_NEWEST) {
            /* Routed and dropped at once: count the drop first, see stats. */
            atomic_fetch_add_explicit(&s->dropped, 1, memory_order_release);
            atomic_fetch_add_explicit(&s->dropped_in, 1, memory_order_release);
            weiri_body_release(b, 1);
            return 0;
        }
        break;
    }
    return rc == 0 ? 0 : weiri_sub_refused(s, b, rc);
}

int
weiri_sub_wait(weir_sub *s, weiri_body *b, int64_t deadline,
               const _Atomic bool *stop)
{
    if (!weiri_sub_wait_begin(s->bus, s,
                              deadline == WEIRI_NO_DEADLINE && stop == NULL))
        return weiri_sub_refused(s, b, WEIR_EDEADLK);
    int rc = push_blocking(s, b, deadline, stop);
    weiri_sub_wait_end(s->bus, s);
    return rc == 0 ? 0 : weiri_sub_refused(s, b, rc);
}

void
weiri_sub_pin(weir_sub *s)
{
    /*
     * Relaxed: taken inside a read section, whose leave (a release)
     * publishes it to weir_sub_close, which reads pins only after its
     * weiri_topic_quiesce has seen that leave.  close_bus waits for
     * bus->waiters instead, which its holder drops after its unpins.
     */
    atomic_fetch_add_explicit(&s->pins, 1, memory_order_relaxed);
}

void
weiri_sub_unpin(weir_sub *s)
{
    /*
     * Release: every access of ours to s happens before a closer that
     * reads pins 0 (acquire, weiri_sub_drain) frees it.  Our last touch
     * of s: nothing may follow it.
     */
    atomic_fetch_sub_explicit(&s->pins, 1, memory_order_release);
}

uint64_t
weiri_sub_pushed(const weir_sub *s)
{
    return s->inbox != NULL ? weiri_inbox_pushed(s->inbox)
                            : weiri_queue_pushed(s->queue);
}
