/* SPDX-License-Identifier: MIT */
/*
 * inbox.c - a subscription's inbox (inbox_internal.h, which also holds
 * the producers' side, inline).
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
#include <stddef.h>
#include <string.h>

#include "weir/common.h"

#include "alloc_internal.h"
#include "inbox_internal.h"
#include "wait_internal.h"

/* A worker's copy of a message: a body with room for what a slot holds. */
typedef union weiri_scratch {
    weiri_body body;
    unsigned char bytes[sizeof(weiri_body) + WEIRI_INBOX_INLINE];
} scratch;

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
    in->slots = weiri_alloc_array(n, sizeof(weiri_slot));
    in->scratch = weiri_alloc_array(WEIRI_INBOX_HOLD, sizeof(scratch));
    if (in->slots == NULL || in->scratch == NULL)
        goto fail;
    /* What every copy has in common, written once: see take_try. */
    for (size_t i = 0; i < WEIRI_INBOX_HOLD; i++)
    {
        weiri_body_fill(&in->scratch[i].body, NULL, topic, NULL, 0, NULL, 0,
                        0, 1);
        in->scratch[i].body.in_slot = true;
    }
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
    return (t & WEIRI_INBOX_CLOSED) == 0 &&
           weiri_inbox_beyond(in, t, atomic_load(&in->taken));
}

int
weiri_inbox_push(weiri_inbox *in, weiri_body *b, int64_t timeout_ns)
{
    push_ctx c = { in, b };
    long rc = weiri_await(&in->not_full, timeout_ns, push_try, push_idle, &c,
                          false);
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
        weiri_slot *s = weiri_inbox_slot(in, k + i);
        if (atomic_load_explicit(&s->seq, memory_order_acquire) != k + i + 1)
            break;
        weiri_body *b = s->item;
        if (b == NULL) {
            /* Only what differs between messages: the rest is fixed. */
            b = &in->scratch[i].body;
            b->id = s->id;
            b->timestamp_ns = s->timestamp_ns;
            b->size = s->size;
            memcpy(b->data, s->data, WEIRI_INBOX_INLINE); /* key and NUL too */
            b->key = s->keyed ? (const char *)b->data + s->size : NULL;
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
    return (t & WEIRI_INBOX_CLOSED) && (t & ~WEIRI_INBOX_CLOSED) == k
               ? WEIR_ECLOSED
               : 0;
}

static bool
take_idle(void *arg)
{
    weiri_inbox *in = ((take_ctx *)arg)->in;
    return (atomic_load(&in->tail) & ~WEIRI_INBOX_CLOSED) ==
           atomic_load(&in->taken);
}

long
weiri_inbox_take(weiri_inbox *in, void **out, size_t n, int64_t timeout_ns)
{
    take_ctx c = { in, out, n < WEIRI_INBOX_HOLD ? n : WEIRI_INBOX_HOLD };
    return weiri_await(&in->not_empty, timeout_ns, take_try, take_idle, &c,
                       false);
}

void
weiri_inbox_close(weiri_inbox *in)
{
    atomic_fetch_or(&in->tail, WEIRI_INBOX_CLOSED);
    atomic_store(&in->closing, true);
    weiri_event_notify(&in->not_full, UINT32_MAX);
    weiri_event_notify(&in->not_empty, UINT32_MAX);
}

bool
weiri_inbox_is_closed(const weiri_inbox *in)
{
    return (atomic_load(&((weiri_inbox *)in)->tail) & WEIRI_INBOX_CLOSED) != 0;
}

size_t
weiri_inbox_size(const weiri_inbox *in)
{
    weiri_inbox *m = (weiri_inbox *)in; /* atomics are read-only here */
    size_t k = atomic_load_explicit(&m->taken, memory_order_acquire);
    size_t t = atomic_load_explicit(&m->tail, memory_order_acquire) &
               ~WEIRI_INBOX_CLOSED;
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
    weiri_inbox *m = (weiri_inbox *)in; /* atomics are read-only here */
    return atomic_load_explicit(&m->tail, memory_order_acquire) &
           ~WEIRI_INBOX_CLOSED;
}
