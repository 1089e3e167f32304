/*
 * inbox.c - a subscription's inbox (inbox_internal.h).
 *
 * Producers claim positions with a CAS on tail, after checking room
 * against taken, the worker's count of messages taken; the close bit sits
 * in tail, so a claim and a close are ordered by one atomic operation, as
 * in weir_queue.  A filled slot's sequence says which position it holds,
 * so the worker reads only filled slots and never writes one.
 *
 * A slot is one cache line, so a message written in place costs its
 * publisher one line and its worker one line.  The worker copies such a
 * message out into a body of its own (scratch) as it takes it, and only
 * then publishes taken (release, the producers' acquire on it), so a
 * slot is free again as soon as it is taken: the ring needs no more
 * slots than its capacity.
 */
#include <limits.h>
#include <stddef.h>
#include <stdalign.h>
#include <string.h>

#include "weir/common.h"

#include "alloc_internal.h"
#include "inbox_internal.h"
#include "wait_internal.h"

typedef struct slot {
    _Atomic size_t seq;            /* 1 + the position it holds; 0: never filled */
    weiri_body *item;              /* a shared body, or NULL: the message is here */
    uint64_t id;                   /* the rest: a message here */
    int64_t timestamp_ns;
    uint32_t size;
    uint16_t key_len;
    bool keyed;
    unsigned char data[WEIRI_INBOX_INLINE]; /* payload, then key and its NUL */
} slot;

_Static_assert(sizeof(slot) == WEIR_CACHELINE, "a slot is one line");

/* A worker's copy of a message: a body with room for what a slot holds. */
typedef union scratch {
    weiri_body body;
    unsigned char bytes[sizeof(weiri_body) + WEIRI_INBOX_INLINE];
} scratch;

#define CLOSED (~(SIZE_MAX >> 1))

struct weiri_inbox {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t tail;           /* next position to claim; top bit: closed */
    _Atomic size_t taken_cache;    /* producers' last reading of taken */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic size_t taken;          /* next position the worker takes */
    scratch *scratch;              /* WEIRI_INBOX_HOLD, the worker's alone */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    /*
     * Set after the close bit: the worker checks this line, which stays
     * in its cache, and reads tail, which every claim writes, only once
     * it is set.
     */
    _Atomic bool closing;
    slot *slots;                   /* mask + 1 */
    size_t mask;
    size_t capacity;
    const char *topic;             /* for the messages copied out */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_empty;         /* the worker sleeps here */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_event not_full;          /* producers sleep here */
};

static slot *
slot_at(const weiri_inbox *in, size_t pos)
{
    return &in->slots[pos & in->mask];
}

int
weiri_inbox_create(weiri_inbox **out, size_t capacity, const char *topic)
{
    *out = NULL;
    if (capacity == 0 || capacity > WEIRI_INBOX_MAX)
        return WEIR_EINVAL;
    weiri_inbox *in = weiri_alloc_array(1, sizeof(*in));
    if (in == NULL)
        return WEIR_ENOMEM;
    size_t n = 1;
    while (n < capacity)
        n <<= 1;
    in->mask = n - 1;
    in->capacity = capacity;
    in->topic = topic;
    in->slots = weiri_alloc_array(n, sizeof(slot));
    in->scratch = weiri_alloc_array(WEIRI_INBOX_HOLD, sizeof(scratch));
    if (in->slots == NULL || in->scratch == NULL)
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
    weiri_free(in->scratch);
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
    weiri_free(in->scratch);
    weiri_free(in->slots);
    weiri_free(in);
}

/*
 * Whether position t is at least the capacity past taken k.  t may be a
 * stale reading of tail that the worker has since taken past (t < k):
 * that is room, and the claim's CAS then fails and reads tail afresh.
 */
static bool
beyond(const weiri_inbox *in, size_t t, size_t k)
{
    return (ptrdiff_t)(t - k) >= 0 && t - k >= in->capacity;
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
    if (!beyond(in, t, k))
        return false;
    k = atomic_load_explicit(&in->taken, memory_order_acquire);
    atomic_store_explicit(&in->taken_cache, k, memory_order_release);
    return beyond(in, t, k);
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

/* Make slot s, claimed, hold what it was given; wake the worker. */
static void
publish(weiri_inbox *in, slot *s, size_t pos)
{
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    weiri_event_notify(&in->not_empty, 1);
}

void
weiri_inbox_fill(weiri_inbox *in, size_t pos, weiri_body *b)
{
    slot *s = slot_at(in, pos);
    s->item = b;
    publish(in, s, pos);
}

void
weiri_inbox_fill_copy(weiri_inbox *in, size_t pos, uint64_t id,
                      int64_t timestamp_ns, const void *data, size_t size,
                      const char *key, size_t key_len)
{
    slot *s = slot_at(in, pos);
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
    publish(in, s, pos);
}

void
weiri_inbox_prefetch(weiri_inbox *in, size_t pos)
{
    weiri_prefetch_write(slot_at(in, pos));
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

/*
 * Sleep only if the counters say full, and not closed: the try read tail
 * relaxed and may have missed a close whose wake-up found no waiter yet.
 */
static bool
push_idle(void *arg)
{
    weiri_inbox *in = ((push_ctx *)arg)->in;
    size_t t = atomic_load(&in->tail);
    return (t & CLOSED) == 0 && beyond(in, t, atomic_load(&in->taken));
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
        weiri_body *b = s->item;
        if (b == NULL) {
            b = &in->scratch[i].body;
            weiri_body_fill(b, NULL, in->topic, s->data, s->size,
                            s->keyed ? (const char *)s->data + s->size : NULL,
                            s->key_len, s->timestamp_ns, 1);
            b->in_slot = true;
            b->id = s->id;
        }
        c->out[i] = b;
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
