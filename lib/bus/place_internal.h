/* SPDX-License-Identifier: MIT */
/*
 * place_internal.h - PRIVATE to lib/: a subscription's mailbox (its inbox
 * or its queue) as publishers and workers use it (place.c), whichever
 * kind it is.
 */
#ifndef WEIR_PLACE_INTERNAL_H
#define WEIR_PLACE_INTERNAL_H

#include "bus_internal.h"

/*
 * A publish's deadline when its timeout was WEIR_NOWAIT: a full BLOCK
 * queue refuses it at once (WEIR_EAGAIN), as a full REJECT one does.
 */
#define WEIRI_NOWAIT_DEADLINE INT64_MIN

/* The subscription whose worker this thread is, if any (set by sub.c). */
extern _Thread_local const weir_sub *weiri_current_sub;
bool weiri_in_handler_of(const weir_bus *bus, const weir_sub *sub);
/*
 * weiri_bus_refuses - whether a publish by the calling thread is refused
 * for the bus's close: from outside once it is closed, from its own
 * workers once it is sealed.
 */
bool weiri_bus_refuses(weir_bus *bus);
/*
 * weiri_sub_offer - place b (one reference for s) by s's policy without
 * waiting.  Returns 0 (placed, or dropped by a DROP policy), WEIR_EAGAIN
 * (REJECT, full; counted rejected), WEIR_ECLOSED (s is shut; counted
 * only if the bus's seal shut it), the reference then released; or
 * WEIRI_MUST_WAIT: s is a full BLOCK queue and the reference is still
 * the caller's, to pass to weiri_sub_wait outside the read section, s
 * pinned for that wait.
 */
#define WEIRI_MUST_WAIT 1
int weiri_sub_offer(weir_sub *s, weiri_body *b);
/*
 * weiri_sub_refused - s did not take b (one reference for s), for rc:
 * count it rejected (but a close: WEIR_ECLOSED, unless the bus's seal
 * shut s) and release the reference.  Returns rc.  The one writer of
 * rejected.
 */
int weiri_sub_refused(weir_sub *s, weiri_body *b, int rc);
/*
 * weiri_sub_wait - place b in s's BLOCK queue, waiting for room until
 * the deadline, and while *stop (if not NULL) is false.  Returns 0;
 * WEIR_ETIMEDOUT (counted rejected); WEIR_EDEADLK (counted rejected): the
 * caller is a worker of s and every other one is waiting the same way,
 * so no one would make room; WEIR_ECLOSED (s shut, or *stop ended the
 * wait; counted only if the bus's seal shut s).  The reference is
 * released on every non-zero return.
 */
int weiri_sub_wait(weir_sub *s, weiri_body *b, int64_t deadline,
                   const _Atomic bool *stop);
/*
 * weiri_sub_wait_begin - before the calling thread waits for room in s,
 * without limit if unbounded: false when that wait is unbounded, the
 * caller is a worker of s and every other worker of s waits so too, for
 * then nobody is left to make room (WEIR_EDEADLK).  On true, call
 * weiri_sub_wait_end after the wait.  s is touched only if the caller
 * is its worker.
 */
bool weiri_sub_wait_begin(const weir_bus *bus, weir_sub *s, bool unbounded);
void weiri_sub_wait_end(const weir_bus *bus, weir_sub *s);
/* Pin s while waiting outside a read section (see weir_sub.pins). */
void weiri_sub_pin(weir_sub *s);
void weiri_sub_unpin(weir_sub *s);
/*
 * The rest, on whichever kind of queue s has:
 * weiri_sub_claim / weiri_sub_fill: as weiri_queue_claim / fill.
 * weiri_sub_place: push without waiting (0, WEIR_EAGAIN, WEIR_ECLOSED).
 * weiri_sub_has_room: closed, or room for need more now.
 * weiri_sub_shut: refuse every later message.
 * weiri_sub_take: take up to n, as weir_queue_pop_burst.
 * weiri_sub_waiting: placed and not yet taken, now.
 * weiri_sub_pushed: ever placed (only grows).
 * weiri_sub_drop_queued: let go of one taken off the queue without a
 * worker: counted dropped (left false) or, left by a close, queued.
 */
int weiri_sub_claim(weir_sub *s, size_t *pos);
void weiri_sub_fill(weir_sub *s, size_t pos, weiri_body *b);
int weiri_sub_place(weir_sub *s, weiri_body *b);
size_t weiri_sub_capacity(const weir_sub *s);
bool weiri_sub_has_room(const weir_sub *s, size_t need);
void weiri_sub_shut(weir_sub *s);
long weiri_sub_take(weir_sub *s, void **batch, size_t n, int64_t timeout_ns);
size_t weiri_sub_waiting(const weir_sub *s);
uint64_t weiri_sub_pushed(const weir_sub *s);
void weiri_sub_drop_queued(weir_sub *s, weiri_body *b, bool left);

/*
 * weiri_sub_mailbox_open - give s (its options set: careful, nworkers,
 * overflow) a mailbox of capacity places: an inbox if it may have one
 * and is its topic's first subscription (lone), else a weir_queue.
 * 0, WEIR_EINVAL or WEIR_ENOMEM.  weiri_sub_mailbox_free frees it.
 */
int weiri_sub_mailbox_open(weir_sub *s, size_t capacity, bool lone);
void weiri_sub_mailbox_free(weir_sub *s);

/*
 * A small message written whole into s's mailbox, no body made: only an
 * inbox takes one (weiri_sub_takes_copy, for extra bytes of payload and
 * key).  weiri_sub_claim_copy claims a place (0, or non-zero: none free,
 * or shut); weiri_sub_fill_copy writes the message there.  Inline: the
 * publish path of a topic with one subscription.
 */
static inline bool
weiri_sub_takes_copy(const weir_sub *s, size_t extra)
{
    return s->inbox != NULL && extra <= WEIRI_INBOX_INLINE;
}

static inline int
weiri_sub_claim_copy(weir_sub *s, size_t *pos)
{
    return weiri_inbox_claim(s->inbox, pos);
}

static inline void
weiri_sub_fill_copy(weir_sub *s, size_t pos, uint64_t id, int64_t stamp,
                    const void *data, size_t size, const char *key,
                    size_t key_len)
{
    /*
     * The next place's line, on its way while this one is written (see
     * weiri_body_ahead): a publisher mostly claims places in a row.
     */
    weiri_inbox_prefetch(s->inbox, pos + 1);
    weiri_inbox_fill_copy(s->inbox, pos, id, stamp, data, size, key,
                          key_len);
}

#endif /* WEIR_PLACE_INTERNAL_H */
