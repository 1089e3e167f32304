/*
 * inbox.c - a subscription's inbox (inbox_internal.h).
 *
 * Producers claim positions with a CAS on tail, after checking room
 * against taken, the worker's count of messages taken; the close bit sits
 * in tail, so a claim and a close are ordered by one atomic operation, as
 * in weir_queue.  A filled slot's sequence says which position it holds,
 * so the worker reads only filled slots and never writes one.
 *
 * Why the extra WEIRI_INBOX_HOLD slots are enough: a producer claims p
 * only while p < taken + capacity, and the slots the worker may still be
 * reading lie at or after the start of its last take, which is at least
 * taken - WEIRI_INBOX_HOLD.  With ring >= capacity + WEIRI_INBOX_HOLD, p
 * lands on none of them.  And the worker finished with every older slot
 * before it published the taken that let p be claimed (release there,
 * acquire here), so a slot is never written while it is read.
 */
#include <limits.h>
#include <stdalign.h>
#include <string.h>

#include "weir/common.h"

#include "alloc_internal.h"
#include "inbox_internal.h"
#include "wait_internal.h"

enum { SLOT_SIZE = 128 };

typedef struct slot {
    _Atomic size_t seq;            /* 1 + the position it holds; 0: never filled */
    weiri_body *item;              /* what it holds: a shared body, or its own */
} slot;

/* The body of a slot follows the slot's header. */
_Static_assert(sizeof(slot) == 16 && 16 % alignof(weiri_body) == 0,
               "a slot's body must start aligned");
_Static_assert(WEIRI_INBOX_INLINE >= 16 && WEIRI_INBOX_INLINE < SLOT_SIZE,
               "a slot must hold a small message in place");

#define CLOSED (~(SIZE_MAX >> 1))

struct weiri_inbox {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t tail;           /* next position to claim; top bit: closed */
    _Atomic size_t taken_cache;    /* producers' last reading of taken */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t taken;          /* next position the worker takes */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    /*
     * Set after the close bit: the worker checks this line, which stays
     * in its cache, and reads tail, which every claim writes, only once
     * it is set.
     */
    _Atomic bool closing;
    unsigned char *slots;          /* mask + 1 of SLOT_SIZE bytes */
    size_t mask;
    size_t capacity;
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_empty;         /* the worker sleeps here */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_full;          /* producers sleep here */
};

static slot *
slot_at(const weiri_inbox *in, size_t pos)
{
    return (slot *)(void *)(in->slots + (pos & in->mask) * SLOT_SIZE);
}

int
weiri_inbox_create(weiri_inbox **out, size_t capacity)
{
    *out = NULL;
    if (capacity == 0 || capacity > WEIRI_INBOX_MAX)
        return WEIR_EINVAL;
    weiri_inbox *in = weiri_alloc_array(1, sizeof(*in));
    if (in == NULL)
        return WEIR_ENOMEM;
    size_t n = 1;
    while (n < capacity + WEIRI_INBOX_HOLD)
        n <<= 1;
    in->mask = n - 1;
    in->capacity = capacity;
    in->slots = weiri_alloc_array(n, SLOT_SIZE);
    if (in->slots == NULL)
        goto fail;
    if (weiri_event_init(&in->not_empty) != 0)
        goto fail;
    if (weiri_event_init(&in->not_full) != 0) {
        weiri_event_destroy(&in->not_empty);
        goto fail;
    }
    *out = in;
    return 0;
fail:
    weiri_free(in->slots);
    weiri_free(in);
    return WEIR_ENOMEM;
}

void
weiri_inbox_destroy(weiri_inbox *in)
{
    if (in == NULL)
        return;
    weiri_event_destroy(&in->not_full);
    weiri_event_destroy(&in->not_empty);
    weiri_free(in->slots);
    weiri_free(in);
}

/*
 * Whether position t is beyond the capacity, by the freshest reading of
 * taken if the cached one says so.  Acquire on both readings and release
 * on the cache: a producer that learns taken through another producer's
 * cache still sees the worker done with the slots that reading frees.
 */
static bool
full_at(weiri_inbox *in, size_t t)
{
    size_t k = atomic_load_explicit(&in->taken_cache, memory_order_acquire);
    if (t - k < in->capacity)
        return false;
    k = atomic_load_explicit(&in->taken, memory_order_acquire);
    atomic_store_explicit(&in->taken_cache, k, memory_order_release);
    return t - k >= in->capacity;
}

int
weiri_inbox_claim(weiri_inbox *in, size_t *pos)
{
    size_t t = atomic_load_explicit(&in->tail, memory_order_relaxed);
    for (;;) {
        if (t & CLOSED)
            return WEIR_ECLOSED;
        if (full_at(in, t))
            return WEIR_EAGAIN;
        /* seq_cst: the worker's sleep re-check must see it (wait_internal.h). */
        if (atomic_compare_exchange_weak_explicit(&in->tail, &t, t + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            *pos = t;
            return 0;
        }
    }
}

weiri_body *
weiri_inbox_place(weiri_inbox *in, size_t pos)
{
    return (weiri_body *)(void *)((unsigned char *)slot_at(in, pos) + sizeof(slot));
}

void
weiri_inbox_fill(weiri_inbox *in, size_t pos, weiri_body *b)
{
    slot *s = slot_at(in, pos);
    s->item = b;
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    weiri_event_notify(&in->not_empty, 1);
}

/* A push in progress, for weiri_await. */
typedef struct push_ctx {
    weiri_inbox *in;
    weiri_body *b;
} push_ctx;

static long
push_try(void *arg)
{
    push_ctx *c = arg;
    size_t pos;
    int rc = weiri_inbox_claim(c->in, &pos);
    if (rc == WEIR_EAGAIN)
        return 0;
    if (rc == 0)
        weiri_inbox_fill(c->in, pos, c->b);
    return rc == 0 ? 1 : rc;
}

static bool
push_idle(void *arg)
{
    weiri_inbox *in = ((push_ctx *)arg)->in;
    size_t t = atomic_load(&in->tail) & ~CLOSED;
    return t - atomic_load(&in->taken) >= in->capacity;
}

int
weiri_inbox_push(weiri_inbox *in, weiri_body *b, int64_t timeout_ns)
{
    push_ctx c = { in, b };
    long rc = weiri_await(&in->not_full, timeout_ns, push_try, push_idle, &c);
    return rc < 0 ? (int)rc : 0;
}

/* A take in progress, for weiri_await. */
typedef struct take_ctx {
    weiri_inbox *in;
    void **out;
    size_t n;
} take_ctx;

static long
take_try(void *arg)
{
    take_ctx *c = arg;
    weiri_inbox *in = c->in;
    size_t k = atomic_load_explicit(&in->taken, memory_order_relaxed);
    size_t i = 0;
    for (; i < c->n; i++) {
        slot *s = slot_at(in, k + i);
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != k + i + 1)
            break;
        c->out[i] = s->item;
    }
    if (i > 0) {
        /*
         * seq_cst, then the notify's look for sleepers: a producer about
         * to sleep on a full inbox re-checks taken (wait_internal.h).
         */
        atomic_store_explicit(&in->taken, k + i, memory_order_seq_cst);
        weiri_event_notify(&in->not_full, (uint32_t)i);
        return (long)i;
    }
    /* Closed and every claim taken: nothing can come any more. */
    if (!atomic_load(&in->closing))
        return 0;
    size_t t = atomic_load(&in->tail);
    return (t & CLOSED) && (t & ~CLOSED) == k ? WEIR_ECLOSED : 0;
}

static bool
take_idle(void *arg)
{
    weiri_inbox *in = ((take_ctx *)arg)->in;
    return (atomic_load(&in->tail) & ~CLOSED) == atomic_load(&in->taken);
}

long
weiri_inbox_take(weiri_inbox *in, void **out, size_t n, int64_t timeout_ns)
{
    take_ctx c = { in, out, n < WEIRI_INBOX_HOLD ? n : WEIRI_INBOX_HOLD };
    return weiri_await(&in->not_empty, timeout_ns, take_try, take_idle, &c);
}

void
weiri_inbox_close(weiri_inbox *in)
{
    atomic_fetch_or(&in->tail, CLOSED);
    atomic_store(&in->closing, true);
    weiri_event_notify(&in->not_full, UINT32_MAX);
    weiri_event_notify(&in->not_empty, UINT32_MAX);
}

bool
weiri_inbox_is_closed(const weiri_inbox *in)
{
    return (atomic_load(&((weiri_inbox *)in)->tail) & CLOSED) != 0;
}

size_t
weiri_inbox_size(const weiri_inbox *in)
{
    weiri_inbox *m = (weiri_inbox *)in; /* atomics are read-only here */
    size_t k = atomic_load_explicit(&m->taken, memory_order_acquire);
    size_t t = atomic_load_explicit(&m->tail, memory_order_acquire) & ~CLOSED;
    return t - k;
}

size_t
weiri_inbox_capacity(const weiri_inbox *in)
{
    return in->capacity;
}

uint64_t
weiri_inbox_pushed(const weiri_inbox *in)
{
    /* Acquire: a stats reader sees what led to the claims it counts. */
    return atomic_load_explicit(&((weiri_inbox *)in)->tail, memory_order_acquire) &
           ~CLOSED;
}
