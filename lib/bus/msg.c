/* SPDX-License-Identifier: MIT */
/*
 * msg.c - message bodies and the weir_msg accessors.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "clock_internal.h"
#include "msg_internal.h"

#ifdef WEIRI_PREFETCHW
#include <cpuid.h>
#endif

#ifdef WEIRI_PREFETCHW
_Atomic bool weiri_have_prefetchw;
#endif

void
weiri_body_setup(void)
{
#ifdef WEIRI_PREFETCHW
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d) && (c & (1u << 8)))
        atomic_store_explicit(&weiri_have_prefetchw, true,
                              memory_order_relaxed);
#endif
}

weiri_body *
weiri_body_alloc(weir_mpmc *pool, size_t size, size_t key_len, bool keyed)
{
    size_t extra = weiri_body_extra(size, key_len, keyed);
    bool small = extra <= WEIRI_BODY_SMALL;
    void *b;
    if (small && pool != NULL && weir_mpmc_pop(pool, &b) == 0)
        return b;
    return weiri_malloc(sizeof(weiri_body) +
                        (small ? WEIRI_BODY_SMALL : extra));
}

weiri_body *
weiri_body_ahead(weir_mpmc *pool, weiri_body **spare, weiri_body *fresh)
{
    weiri_body *now = *spare;
    if (now == NULL) {
        /* A first publish in this slot, or the pool ran dry: one more. */
        now = fresh;
        void *more;
        fresh = weir_mpmc_pop(pool, &more) == 0 ? more : NULL;
    }
    *spare = fresh;
    if (fresh != NULL) {
        /* The lines of the header and of a payload's first 16 bytes. */
        const char *p = (const char *)fresh;
        weiri_prefetch_write(p);
        weiri_prefetch_write(p + 64);
        weiri_prefetch_write(p + sizeof(weiri_body) + 15);
    }
    return now;
}

void
weiri_body_fill(weiri_body *b, weir_mpmc *pool, const char *topic,
                const void *data, size_t size, const char *key,
                size_t key_len, int64_t timestamp_ns, uint32_t refs)
{
    atomic_init(&b->refs, refs);
    b->in_slot = false;
    /* Small bodies are all of one size, whether from the pool or not. */
    b->pool = weiri_body_is_small(size, key_len, key != NULL) ? pool : NULL;
    b->id = 0;
    b->timestamp_ns = timestamp_ns;
    b->topic = topic;
    b->size = size;
    b->gate = NULL;
    b->origin = NULL;
    b->attempt_base = 1;
    b->origin_error = 0;
    b->redelivered = false;
    b->jentry = 0;
    b->later = 0;
    if (size > 0)
        memcpy(b->data, data, size);
    if (key != NULL) {
        char *k = (char *)b->data + size;
        memcpy(k, key, key_len);
        k[key_len] = '\0';
        b->key = k;
    } else {
        b->key = NULL;
    }
}

weiri_body *
weiri_body_create(weir_mpmc *pool, const char *topic, const void *data,
                  size_t size, const char *key, size_t key_len,
                  int64_t timestamp_ns, uint32_t refs)
{
    weiri_body *b = weiri_body_alloc(pool, size, key_len, key != NULL);
    if (b != NULL)
        weiri_body_fill(b, pool, topic, data, size, key, key_len,
                        timestamp_ns, refs);
    return b;
}

void
weiri_body_release(weiri_body *b, uint32_t n)
{
    /*
     * Release so this holder's reads of the body happen before it is
     * reused, acquire so the last holder sees every other holder's reads
     * done.  (acq_rel on the decrement rather than a separate acquire
     * fence: the same instruction on x86, and ThreadSanitizer understands
     * it.)
     */
    if (b->in_slot ||
        atomic_fetch_sub_explicit(&b->refs, n, memory_order_acq_rel) != n)
        return;
    if (b->gate != NULL)
        weiri_gate_release(b->gate);
    if (b->pool == NULL || weir_mpmc_push(b->pool, b) != 0)
        weiri_free(b);
}

void
weiri_body_pool_drain(weir_mpmc *pool)
{
    void *b;
    while (weir_mpmc_pop(pool, &b) == 0)
        weiri_free(b);
}

const void *
weir_msg_data(const weir_msg *m)
{
    return m == NULL ? NULL : m->body->data;
}

size_t
weir_msg_size(const weir_msg *m)
{
    return m == NULL ? 0 : m->body->size;
}

const char *
weir_msg_topic(const weir_msg *m)
{
    return m == NULL ? NULL : m->body->topic;
}

const char *
weir_msg_key(const weir_msg *m)
{
    return m == NULL ? NULL : m->body->key;
}

uint64_t
weir_msg_id(const weir_msg *m)
{
    return m == NULL ? 0 : m->body->id;
}

int64_t
weir_msg_timestamp_ns(const weir_msg *m)
{
    return m == NULL ? 0 : m->body->timestamp_ns;
}

/* A dead letter counts on from the attempts its original had. */
unsigned
weir_msg_attempt(const weir_msg *m)
{
    return m == NULL ? 0 : m->body->attempt_base + m->attempt - 1;
}

const char *
weir_msg_origin_topic(const weir_msg *m)
{
    return m == NULL ? NULL : m->body->origin;
}

int
weir_msg_last_error(const weir_msg *m)
{
    if (m == NULL)
        return 0;
    return m->attempt > 1 ? m->last_error : m->body->origin_error;
}

bool
weir_msg_redelivered(const weir_msg *m)
{
    return m != NULL && m->body->redelivered;
}

bool
weiri_gate_wait(weiri_gate *g)
{
    int st;
    while ((st = atomic_load_explicit(&g->state, memory_order_acquire)) ==
           WEIRI_GATE_PENDING) {
        uint32_t e = weiri_event_prepare(&g->decided);
        if (atomic_load(&g->state) != WEIRI_GATE_PENDING)
            weiri_event_cancel(&g->decided);
        else
            weiri_event_wait(&g->decided, e, WEIRI_NO_DEADLINE);
    }
    return st == WEIRI_GATE_COMMITTED;
}

void
weiri_gate_release(weiri_gate *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    weiri_event_destroy(&g->decided);
    weiri_free(g);
}
