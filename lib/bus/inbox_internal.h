/* SPDX-License-Identifier: MIT */
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

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weir/common.h"

#include "msg_internal.h"
#include "wait_internal.h"

typedef struct weiri_inbox weiri_inbox;

/* The most messages one take returns. */
#define WEIRI_INBOX_HOLD 64

/*
 * The largest capacity an inbox is made for (place.c uses a weir_queue
 * above it).
 */
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
/*
 * weiri_inbox_destroy - free it; the shared bodies still inside are the
 * caller's.
 */
void weiri_inbox_destroy(weiri_inbox *in);

/*
 * Producers, any number of threads.
 *
 * weiri_inbox_claim / weiri_inbox_fill - a push in two steps that never
 * waits: claim a place (0, WEIR_EAGAIN when full, WEIR_ECLOSED), then,
 * always and soon, fill it with b, a body whose reference the caller
 * hands over, which wakes the worker.  The worker stops at a claimed
 * place until it is filled.  (Inline, below.)
 *
 * weiri_inbox_fill_copy - fill claimed place pos with a message written
 * there, of weiri_body_extra(size, key_len, key != NULL) bytes at most
 * WEIRI_INBOX_INLINE.  The key is copied; key NULL: none.  (Inline.)
 *
 * weiri_inbox_prefetch - ask for place pos's line in a writable state,
 * for a producer about to claim it: see weiri_body_ahead.  (Inline.)
 *
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
long weiri_inbox_take(weiri_inbox *in, void **out, size_t n,
                      int64_t timeout_ns);

/* Any thread. */
void weiri_inbox_close(weiri_inbox *in);  /* idempotent; wakes everyone */
bool weiri_inbox_is_closed(const weiri_inbox *in);
size_t weiri_inbox_size(const weiri_inbox *in);   /* claimed, not yet taken */
size_t weiri_inbox_capacity(const weiri_inbox *in);
uint64_t weiri_inbox_pushed(const weiri_inbox *in); /* claims ever made */

/*
 * The producers' side, inline because every publish to a lone
 * subscription runs it (inbox.c explains the protocol).  The structures
 * are private to inbox.c otherwise.
 */
typedef struct weiri_slot {
    _Atomic size_t seq;            /* 1 + the position it holds; 0: never
                                      filled */
    weiri_body *item;              /* a shared body, or NULL: the message
                                      is here */
    uint64_t id;                   /* the rest: a message here */
    int64_t timestamp_ns;
    uint32_t size;
    uint16_t key_len;
    bool keyed;
    unsigned char data[WEIRI_INBOX_INLINE]; /* payload, then key and its NUL */
} weiri_slot;

_Static_assert(sizeof(weiri_slot) == WEIR_CACHELINE, "a slot is one line");

#define WEIRI_INBOX_CLOSED (~(SIZE_MAX >> 1))

struct weiri_inbox {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t tail;           /* next position to claim; top bit: closed */
    _Atomic size_t taken_cache;    /* producers' last reading of taken */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t taken;          /* next position the worker takes */
    union weiri_scratch *scratch;  /* WEIRI_INBOX_HOLD, the worker's alone */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    /*
     * Set after the close bit: the worker checks this line, which stays
     * in its cache, and reads tail, which every claim writes, only once
     * it is set.
     */
    _Atomic bool closing;
    weiri_slot *slots;             /* mask + 1 */
    size_t mask;
    size_t capacity;
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_empty;         /* the worker sleeps here */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_full;          /* producers sleep here */
};

static inline weiri_slot *
weiri_inbox_slot(const struct weiri_inbox *in, size_t pos)
{
    return &in->slots[pos & in->mask];
}

/*
 * Whether position t is at least the capacity past taken k.  t may be a
 * stale reading of tail that the worker has since taken past (t < k):
 * that is room, and the claim's CAS then fails and reads tail afresh.
 */
static inline bool
weiri_inbox_beyond(const weiri_inbox *in, size_t t, size_t k)
{
    return (ptrdiff_t)(t - k) >= 0 && t - k >= in->capacity;
}

/*
 * Whether position t is beyond the capacity, by the freshest reading of
 * taken if the cached one says so.  Acquire on both readings and release
 * on the cache: a producer that learns taken through another producer's
 * cache still sees the worker done with the slots that reading frees.
 */
static inline bool
weiri_inbox_full_at(weiri_inbox *in, size_t t)
{
    size_t k = atomic_load_explicit(&in->taken_cache, memory_order_acquire);
    if (!weiri_inbox_beyond(in, t, k))
        return false;
    k = atomic_load_explicit(&in->taken, memory_order_acquire);
    atomic_store_explicit(&in->taken_cache, k, memory_order_release);
    return weiri_inbox_beyond(in, t, k);
}

static inline int
weiri_inbox_claim(weiri_inbox *in, size_t *pos)
{
    size_t t = atomic_load_explicit(&in->tail, memory_order_relaxed);
    for (;;) {
        if (t & WEIRI_INBOX_CLOSED)
            return WEIR_ECLOSED;
        if (weiri_inbox_full_at(in, t))
            return WEIR_EAGAIN;
        /*
         * seq_cst: the worker's sleep re-check must see it
         * (wait_internal.h).
         */
        if (atomic_compare_exchange_weak_explicit(&in->tail, &t, t + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            *pos = t;
            return 0;
        }
    }
}

/* Make slot s, claimed, hold what it was given; wake the worker. */
static inline void
weiri_inbox_publish(weiri_inbox *in, weiri_slot *s, size_t pos)
{
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    weiri_event_notify(&in->not_empty, 1);
}

static inline void
weiri_inbox_fill(weiri_inbox *in, size_t pos, weiri_body *b)
{
    weiri_slot *s = weiri_inbox_slot(in, pos);
    s->item = b;
    weiri_inbox_publish(in, s, pos);
}

static inline void
weiri_inbox_fill_copy(weiri_inbox *in, size_t pos, uint64_t id,
                      int64_t timestamp_ns, const void *data, size_t size,
                      const char *key, size_t key_len)
{
    weiri_slot *s = weiri_inbox_slot(in, pos);
    s->item = NULL;
    s->id = id;
    s->timestamp_ns = timestamp_ns;
    s->size = (uint32_t)size;
    s->key_len = (uint16_t)key_len;
    s->keyed = key != NULL;
    if (size > 0)
        memcpy(s->data, data, size);
    if (key != NULL) {
        memcpy(s->data + size, key, key_len);
        s->data[size + key_len] = '\0';
    }
    weiri_inbox_publish(in, s, pos);
}

static inline void
weiri_inbox_prefetch(weiri_inbox *in, size_t pos)
{
    weiri_prefetch_write(weiri_inbox_slot(in, pos));
}

#endif /* WEIR_INBOX_INTERNAL_H */
