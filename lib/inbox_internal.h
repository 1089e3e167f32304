/*
 * inbox_internal.h - PRIVATE to lib/: the inbox, the queue of a
 * subscription whose one worker takes its messages (sub.c).
 *
 * A bounded MPSC ring of messages, closable like weir_queue.  Each slot,
 * one cache line, has room for a whole small message: a publish whose
 * message nobody else reads (its topic has this one subscription) writes
 * it straight into the slot, so it takes no body from the pool, counts
 * no references and leaves nothing for the worker to give back.
 * Otherwise a slot carries a pointer to a shared body, as a weir_queue
 * place does.
 *
 * The worker never writes a slot.  Producers learn how far it has taken
 * from one counter, written once per take.
 */
#ifndef WEIR_INBOX_INTERNAL_H
#define WEIR_INBOX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "msg_internal.h"

typedef struct weiri_inbox weiri_inbox;

/* The most messages one take returns. */
#define WEIRI_INBOX_HOLD 64

/* The largest capacity an inbox is made for (sub.c uses a weir_queue above it). */
#define WEIRI_INBOX_MAX ((size_t)1 << 16)

/*
 * Payload and key bytes (weiri_body_extra: the key's NUL included) a slot
 * holds in place.
 */
#define WEIRI_INBOX_INLINE 23

/*
 * weiri_inbox_create - 0, WEIR_EINVAL (capacity 0 or over the max) or
 * WEIR_ENOMEM.  topic: the name messages written in place carry; it must
 * outlive the inbox.
 */
int weiri_inbox_create(weiri_inbox **out, size_t capacity, const char *topic);
/* weiri_inbox_destroy - free it; the shared bodies still inside are the caller's. */
void weiri_inbox_destroy(weiri_inbox *in);

/*
 * Producers, any number of threads.
 *
 * weiri_inbox_claim / weiri_inbox_fill - a push in two steps that never
 * waits: claim a place (0, WEIR_EAGAIN when full, WEIR_ECLOSED), then,
 * always and soon, fill it with b, a body whose reference the caller
 * hands over, which wakes the worker.  The worker stops at a claimed
 * place until it is filled.
 */
int weiri_inbox_claim(weiri_inbox *in, size_t *pos);
void weiri_inbox_fill(weiri_inbox *in, size_t pos, weiri_body *b);
/*
 * weiri_inbox_fill_copy - fill claimed place pos with a message written
 * there, of weiri_body_extra(size, key_len, key != NULL) bytes at most
 * WEIRI_INBOX_INLINE.  The key is copied; key NULL: none.
 */
void weiri_inbox_fill_copy(weiri_inbox *in, size_t pos, uint64_t id,
                           int64_t timestamp_ns, const void *data, size_t size,
                           const char *key, size_t key_len);
/*
 * weiri_inbox_prefetch - ask for place pos's line in a writable state,
 * for a producer about to claim it: see weiri_body_ahead.
 */
void weiri_inbox_prefetch(weiri_inbox *in, size_t pos);
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
 * WEIR_ETIMEDOUT, or WEIR_ECLOSED once closed and empty.  A message
 * written in place comes as a copy in the inbox's own scratch body (in_slot
 * set: releasing it does nothing), which the next take writes over: a
 * take ends the caller's use of what the take before it returned.
 */
long weiri_inbox_take(weiri_inbox *in, void **out, size_t n, int64_t timeout_ns);

/* Any thread. */
void weiri_inbox_close(weiri_inbox *in);  /* idempotent; wakes everyone */
bool weiri_inbox_is_closed(const weiri_inbox *in);
size_t weiri_inbox_size(const weiri_inbox *in);   /* claimed, not yet taken */
size_t weiri_inbox_capacity(const weiri_inbox *in);
uint64_t weiri_inbox_pushed(const weiri_inbox *in); /* claims ever made */

#endif /* WEIR_INBOX_INTERNAL_H */
