/*
 * inbox_internal.h - PRIVATE to lib/: the inbox, the queue of a
 * subscription whose one worker takes its messages in place (sub.c).
 *
 * A bounded MPSC ring of messages, closable like weir_queue.  Each slot
 * has room for a whole small message: a publish whose message nobody else
 * reads (its topic has this one subscription) writes it straight into the
 * slot, so it takes no body from the pool, counts no references and
 * leaves nothing for the worker to give back.  Otherwise a slot carries a
 * pointer to a shared body, as a weir_queue place does.
 *
 * The worker never writes a slot.  It takes messages where they lie and
 * handles them there; producers learn how far it has taken from one
 * counter, written once per take.  A message stays in its slot until the
 * worker's next take, so the ring has WEIRI_INBOX_HOLD slots more than
 * its capacity, and a producer waits only for capacity.
 */
#ifndef WEIR_INBOX_INTERNAL_H
#define WEIR_INBOX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "msg_internal.h"

typedef struct weiri_inbox weiri_inbox;

/* The most messages one take returns. */
#define WEIRI_INBOX_HOLD 64

/*
 * The largest capacity an inbox is made for: its slots cost 128 bytes
 * each, where a weir_queue place costs 16 (sub.c uses a weir_queue above
 * it).
 */
#define WEIRI_INBOX_MAX ((size_t)1 << 16)

/* Payload and key bytes (weiri_body_extra) a slot holds in place. */
#define WEIRI_INBOX_INLINE ((size_t)128 - 16 - sizeof(weiri_body))

/* weiri_inbox_create - 0, WEIR_EINVAL (capacity 0 or over the max) or WEIR_ENOMEM. */
int weiri_inbox_create(weiri_inbox **out, size_t capacity);
/* weiri_inbox_destroy - free it; the messages still inside are the caller's. */
void weiri_inbox_destroy(weiri_inbox *in);

/*
 * Producers, any number of threads.
 *
 * weiri_inbox_claim / weiri_inbox_fill - a push in two steps that never
 * waits: claim a place (0, WEIR_EAGAIN when full, WEIR_ECLOSED), then,
 * always and soon, fill it with b, which wakes the worker.  The worker
 * stops at a claimed place until it is filled.  b is a body the caller
 * hands over, or the place's own (weiri_inbox_place) written in place.
 */
int weiri_inbox_claim(weiri_inbox *in, size_t *pos);
void weiri_inbox_fill(weiri_inbox *in, size_t pos, weiri_body *b);
/*
 * weiri_inbox_place - the body inside claimed place pos, with room for
 * WEIRI_INBOX_INLINE bytes of payload and key.  Its writer marks it
 * in_slot, so that releasing it does nothing.
 */
weiri_body *weiri_inbox_place(weiri_inbox *in, size_t pos);
/*
 * weiri_inbox_push - claim and fill with b, waiting for room as
 * weir_queue_push does: 0, WEIR_EAGAIN (WEIR_NOWAIT and full),
 * WEIR_ETIMEDOUT or WEIR_ECLOSED.
 */
int weiri_inbox_push(weiri_inbox *in, weiri_body *b, int64_t timeout_ns);

/*
 * The worker, one thread at a time.
 *
 * weiri_inbox_take - up to n (at most WEIRI_INBOX_HOLD) messages, oldest
 * first, waiting as weir_queue_pop_burst does: how many, WEIR_EAGAIN,
 * WEIR_ETIMEDOUT, or WEIR_ECLOSED once closed and empty.  A take ends the
 * caller's use of what the take before it returned: a message in place
 * may be written over from then on.
 */
long weiri_inbox_take(weiri_inbox *in, void **out, size_t n, int64_t timeout_ns);

/* Any thread. */
void weiri_inbox_close(weiri_inbox *in);  /* idempotent; wakes everyone */
bool weiri_inbox_is_closed(const weiri_inbox *in);
size_t weiri_inbox_size(const weiri_inbox *in);   /* claimed, not yet taken */
size_t weiri_inbox_capacity(const weiri_inbox *in);
uint64_t weiri_inbox_pushed(const weiri_inbox *in); /* claims ever made */

#endif /* WEIR_INBOX_INTERNAL_H */
