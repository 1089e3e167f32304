/* SPDX-License-Identifier: MIT */
/*
 * ring.c - set-up, teardown and size of the rings in weir/ring.h, and the
 * out-of-line copies of their inline push/pop paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/ring.h"

#include "alloc_internal.h"
#include "ring_internal.h"

/*
 * These declarations turn the inline definitions of weir/ring_inline.h
 * into external ones in this translation unit (C11 6.7.4p7), so C++ callers
 * and non-inlined calls have a symbol to link against.
 */
extern inline int weir_spsc_push(weir_spsc *r, void *item);
extern inline int weir_spsc_pop(weir_spsc *r, void **item);
extern inline size_t weir_spsc_push_burst(weir_spsc *r, void *const *items,
                                          size_t n);
extern inline size_t weir_spsc_pop_burst(weir_spsc *r, void **items, size_t n);
extern inline int weir_mpmc_push(weir_mpmc *r, void *item);
extern inline int weir_mpmc_pop(weir_mpmc *r, void **item);
extern inline size_t weir_mpmc_push_burst(weir_mpmc *r, void *const *items,
                                          size_t n);
extern inline size_t weir_mpmc_pop_burst(weir_mpmc *r, void **items, size_t n);
extern inline size_t weiri_mpmc_room(weir_mpmc *r, size_t pos, size_t want);
extern inline int weiri_mpmc_claim(weir_mpmc *r, size_t *claimed);
extern inline void weiri_mpmc_fill(weir_mpmc *r, size_t pos, void *item);
extern inline size_t weiri_spsc_room(weir_spsc *r, size_t t, size_t want);
extern inline void weiri_spsc_copy(void **dst, void *const *src, size_t k);
extern inline struct weir_spsc_line *weiri_spsc_next(const weir_spsc *r,
                                                     struct weir_spsc_line *l);
extern inline size_t weiri_spsc_ready(const struct weir_spsc_line *l, size_t h,
                                      size_t off);

/*
 * A ring with no slots (its init failed, or it was destroyed) points at
 * one of these instead of NULL, so that the inline push and pop paths,
 * which read a slot before anything else, need no test of their own for
 * it: what they read here sends them to their failure branch, where the
 * rare case is told apart (WEIR_EINVAL; see ring.h).  A line whose word
 * says "nothing filled" stops an SPSC pop (its push and burst push stop
 * at a capacity of 0 before reading a line); for the MPMC slot see
 * ring_inline.h.  Nothing ever writes them: no claim on such a ring
 * succeeds.  Not const: the inline paths take them as they take any
 * ring's slots.
 */
static struct weir_spsc_line spsc_no_line;
struct weir_mpmc_slot weiri_mpmc_no_slot = { SIZE_MAX, NULL };

/* r holds no slots: what init leaves on failure and destroy leaves. */
static void
spsc_no_slots(weir_spsc *r)
{
    memset(r, 0, sizeof(*r));
    r->head_line = r->tail_line = &spsc_no_line;
}

static void
mpmc_no_slots(weir_mpmc *r)
{
    memset(r, 0, sizeof(*r));
    r->slots = &weiri_mpmc_no_slot;
}

/*
 * Allocate *blocks, zeroed: blocks of size bytes, per_block items to a
 * block, enough for capacity rounded up to a power of two, which *cap
 * receives.  The MPMC ring compares doubled positions by signed
 * difference, so twice the capacity must stay well inside half the index
 * space; a request above 2^61 (SIZE_MAX / 8 + 1) is refused with
 * WEIR_EINVAL, as an overflow of the rounding would be, for both
 * families alike.  No machine has the memory for such a ring anyway.
 */
static int
ring_alloc(size_t capacity, size_t per_block, size_t size, void **blocks,
           size_t *cap)
{
    if (capacity == 0 || capacity > (SIZE_MAX >> 3) + 1)
        return WEIR_EINVAL;
    for (*cap = 1; *cap < capacity; *cap <<= 1)
        ;
    *blocks = weiri_alloc_array((*cap + per_block - 1) / per_block, size);
    return *blocks == NULL ? WEIR_ENOMEM : 0;
}

int
weir_spsc_init(weir_spsc *r, size_t capacity)
{
    if (r == NULL)
        return WEIR_EINVAL;
    size_t cap;
    void *mem;
    spsc_no_slots(r);
    int rc = ring_alloc(capacity, WEIRI_SPSC_PER_LINE,
                        sizeof(struct weir_spsc_line), &mem, &cap);
    if (rc != 0)
        return rc;
    /*
     * Zeroed words read "filled through position 0": nothing of the
     * first lap is in yet, as the consumer compares by signed difference.
     */
    r->lines = r->head_line = r->tail_line = mem;
    r->end = r->lines + (cap + WEIRI_SPSC_PER_LINE - 1) / WEIRI_SPSC_PER_LINE;
    r->capacity = cap;
    /* Before any thread sees r, so plain initialisation is enough. */
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return 0;
}

/*
 * Free a ring's slots and leave it with none, so that a second destroy is
 * harmless and calls made on it by mistake fail as ring.h says.  A zeroed
 * ring, never initialised, has lines NULL too.
 */
void
weir_spsc_destroy(weir_spsc *r)
{
    if (r == NULL)
        return;
    weiri_free(r->lines);
    spsc_no_slots(r);
}

size_t
weir_spsc_capacity(const weir_spsc *r)
{
    return r == NULL || r->lines == NULL ? 0 : r->capacity;
}

/*
 * Items between a head and a tail read in that order.  Head first: tail
 * only grows, so a tail read after head is at least the tail at the time
 * head was read, and the difference is never negative.  It can exceed the
 * capacity if consumers raced ahead in between, hence the clamp.  The
 * callers' acquire loads keep the two reads in order.
 */
static size_t
span(size_t h, size_t t, size_t cap)
{
    return t - h > cap ? cap : t - h;
}

size_t
weir_spsc_size(const weir_spsc *r)
{
    if (r == NULL || r->lines == NULL)
        return 0;
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    return span(h, atomic_load_explicit(&r->tail, memory_order_acquire),
                r->capacity);
}

int
weir_mpmc_init(weir_mpmc *r, size_t capacity)
{
    if (r == NULL)
        return WEIR_EINVAL;
    size_t cap;
    void *mem;
    mpmc_no_slots(r);
    int rc = ring_alloc(capacity, 1, sizeof(struct weir_mpmc_slot), &mem,
                        &cap);
    if (rc != 0)
        return rc;
    struct weir_mpmc_slot *slots = mem;
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&slots[i].seq, 2 * i);
        slots[i].item = NULL;
    }
    r->slots = slots;
    r->mask = cap - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head_cache, 0);
    return 0;
}

int
weiri_mpmc_init_bounded(weir_mpmc *r, size_t capacity)
{
    int rc = weir_mpmc_init(r, capacity);
    if (rc != 0)
        return rc;
    /* A power of two needs no extra bound: the slot sequences are it. */
    r->limit = capacity == r->mask + 1 ? 0 : capacity;
    r->closable = 1;
    return 0;
}

void
weiri_mpmc_close(weir_mpmc *r)
{
    /*
     * After this no claim of a position can succeed (see the push paths);
     * claims made before it complete normally.  Release so a pop that sees
     * the bit also sees what the closing thread did before closing;
     * seq_cst for the queue's sleepers (see weiri_mpmc_empty).
     */
    atomic_fetch_or_explicit(&r->tail, WEIRI_MPMC_CLOSED, memory_order_seq_cst);
}

bool
weiri_mpmc_is_closed(const weir_mpmc *r)
{
    return (atomic_load_explicit(&r->tail, memory_order_seq_cst) &
            WEIRI_MPMC_CLOSED) != 0;
}

/*
 * The two checks below and weiri_mpmc_drained use seq_cst loads: they are
 * the re-checks of a thread about to sleep in weir_queue, which must see
 * any seq_cst claim that came before the waker's look at the waiters
 * (lib/base/wait_internal.h).
 */
bool
weiri_mpmc_empty(const weir_mpmc *r)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    size_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    return (t & ~WEIRI_MPMC_CLOSED) == h;
}

bool
weiri_mpmc_full(const weir_mpmc *r)
{
    /*
     * Tail first: tail only grows, so tail at the load of head is at
     * least t, and t - h at or above the capacity means full at that
     * instant.  Consumers may have popped past t in between, making the
     * difference negative: not full, which an unsigned comparison read
     * as full (a WEIR_NOWAIT push then reported a full queue that never
     * was).
     */
    size_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    size_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    return (ptrdiff_t)((t & ~WEIRI_MPMC_CLOSED) - h) >=
           (ptrdiff_t)weir_mpmc_capacity(r);
}

bool
weiri_mpmc_drained(const weir_mpmc *r)
{
    /*
     * Head first, then tail (the loads stay in order): tail only grows and
     * head never passes it, so equal values mean every claimed position
     * was also popped at the moment tail was read, and with the bit set no
     * new claim can follow.
     */
    size_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    size_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    return (t & WEIRI_MPMC_CLOSED) != 0 && (t & ~WEIRI_MPMC_CLOSED) == h;
}

/* A zeroed ring, never initialised, has slots NULL: see weir_spsc_destroy. */
static bool
mpmc_has_slots(const weir_mpmc *r)
{
    return r->slots != NULL && r->slots != &weiri_mpmc_no_slot;
}

void
weir_mpmc_destroy(weir_mpmc *r)
{
    if (r == NULL)
        return;
    if (mpmc_has_slots(r))
        weiri_free(r->slots);
    mpmc_no_slots(r);
}

size_t
weir_mpmc_capacity(const weir_mpmc *r)
{
    if (r == NULL || !mpmc_has_slots(r))
        return 0;
    return r->limit != 0 ? r->limit : r->mask + 1;
}

size_t
weir_mpmc_size(const weir_mpmc *r)
{
    if (r == NULL || !mpmc_has_slots(r))
        return 0;
    /* A position is claimed by head only after tail: see span. */
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (r->closable)
        t &= ~WEIRI_MPMC_CLOSED;
    return span(h, t, weir_mpmc_capacity(r));
}
