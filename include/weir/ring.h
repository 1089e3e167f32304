/* SPDX-License-Identifier: MIT */
/*
 * weir/ring.h - lock-free bounded rings of void * items.
 *
 * Two families, each with its own contract:
 *
 *   weir_spsc_*  single producer, single consumer.  At most one thread may
 *                push (push, push_burst) and at most one thread may pop
 *                (pop, pop_burst) at any moment; the two may be different
 *                threads and run at the same time.  Wait-free: every call
 *                finishes in a bounded number of its own steps.
 *
 *   weir_mpmc_*  any number of producers and consumers, all at once.
 *                Lock-free with one caveat stated at weir_mpmc_push.
 *
 * Both store any void * value, NULL included; the ring never dereferences
 * or frees the items.  Capacity is rounded up to a power of two, and every
 * slot is usable: a ring of capacity 8 holds 8 items.
 *
 * Memory ordering: everything a thread wrote before a successful push of
 * an item is visible to the thread that pops that item, once its pop has
 * returned.  Nothing more is promised: two pushes by different producers
 * are not ordered with respect to each other.
 *
 * Ordering of items: an SPSC ring is FIFO.  An MPMC ring is FIFO in the
 * order in which pushes claimed their slots, so the items of any one
 * producer leave in the order that producer pushed them, and a consumer
 * sees the items of one producer in increasing order.
 *
 * init/destroy are not thread-safe: no other call may run on the ring
 * during them.  Everything else returns at once; nothing here sleeps,
 * allocates or takes a lock.
 *
 * A ring whose init failed, and a destroyed one, hold no slots: push and
 * pop on it return WEIR_EINVAL, the bursts 0, size and capacity 0;
 * destroy does nothing and init may be called again.  That holds for
 * both families alike.  A ring never passed to init (its memory merely
 * zeroed, say) may only be destroyed or initialised.
 *
 * In C the push/pop calls are inline functions, defined below.  C++ sees
 * them as ordinary extern "C" functions compiled into the library, since
 * C++ has no _Atomic; the struct layout is the same in both languages, so
 * C++ code may embed the rings too.
 */
#ifndef WEIR_RING_H
#define WEIR_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "common.h"

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*
 * PRIVATE.  The push/pop calls are declared inline in C: a declaration
 * without it would make every includer emit its own external copy.
 */
#ifdef __cplusplus
#define WEIRI_INLINE
#else
#define WEIRI_INLINE inline
#endif

/*
 * struct weir_spsc - PRIVATE.  Declared here only so that callers can embed
 * a ring and the hot paths can be inlined; use the functions below.
 *
 * Three cache lines of bookkeeping: the consumer's, a read-only one and the
 * producer's, in that order, so the two written lines are not neighbours
 * (some cores fetch lines in adjacent pairs).  The slots are packed in
 * cache lines of WEIRI_SPSC_PER_LINE items plus a sequence word saying how
 * far the producer has filled: it writes the items, then the word.  The
 * consumer polls the word of the line it wants next, so it never reads the
 * producer's index, and an item reaches it in the one cache line it sits
 * in: half the cross-core transfers of a ring whose consumer reads the
 * producer's index and then the slot, which is what a round trip and a
 * nearly empty ring pay for.  A burst fills several items of a line with
 * one word update.  The producer learns of free slots from head, through
 * its own stale copy, only when that copy says full.
 *
 * Positions count items and run freely, wrapping at SIZE_MAX + 1; they
 * are only ever compared by difference.  They do not locate slots: each
 * side walks the lines in a cycle with its own cursor (line and slot), so
 * no position is ever divided by the line's item count.  The cycle has
 * whole lines, at least capacity slots; capacity, not the slot count,
 * bounds how far the producer runs ahead.
 */
#define WEIRI_SPSC_PER_LINE \
    ((WEIR_CACHELINE - sizeof(size_t)) / sizeof(void *))

struct weir_spsc_line {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(size_t) seq;   /* 1 + the last position written
                                  into this line */
    void *item[WEIRI_SPSC_PER_LINE];
};

typedef struct weir_spsc {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(size_t) head;  /* next position to pop;
                                  written by the consumer */
    struct weir_spsc_line *head_line; /* consumer's cursor: the line of head */
    size_t head_off;                  /* and head's slot in it */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    struct weir_spsc_line *lines; /* first line; set at init, then read-only */
    struct weir_spsc_line *end;   /* one past the last line */
    size_t capacity;              /* the rounded capacity */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(size_t) tail;  /* next position to push;
                                  written by the producer */
    size_t head_cache;         /* producer's last reading of head */
    struct weir_spsc_line *tail_line; /* producer's cursor: the line of tail */
    size_t tail_off;                  /* and tail's slot in it */
} weir_spsc;

/*
 * struct weir_mpmc - PRIVATE, as above.
 *
 * The bounded MPMC queue of Dmitry Vyukov: every slot carries a sequence
 * number saying which lap of which side may use it next, so producers and
 * consumers coordinate through the slot itself and touch the other side's
 * counter only when the ring looks full or empty.  tail and head are claim
 * counters, each on its own line; slots are 16 bytes, four to a line.
 */
struct weir_mpmc_slot {
    /*
     * 2 * pos: free for the push at position pos; 2 * pos + 1: holds the
     * item pushed at pos.  Doubling keeps the two states apart even when
     * the capacity is 1, where Vyukov's pos / pos + 1 would collide.
     */
    WEIR_ATOMIC(size_t) seq;
    void *item;                /* written by the claiming producer,
                                  read by the claiming consumer */
};

typedef struct weir_mpmc {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(size_t) tail;  /* next position producers will claim;
                                  top bit: closed */
    WEIR_ATOMIC(size_t) head_cache; /* producers' last reading of head
                                       (bounded rings) */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    WEIR_ATOMIC(size_t) head;  /* next position consumers will claim */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    struct weir_mpmc_slot *slots; /* mask + 1 entries;
                                     set at init, then read-only */
    size_t mask;                  /* slot count - 1 */
    size_t limit;                 /* 0, or a bound below the slot count
                                     (weir_queue) */
    int closable;                 /* nonzero: the top bit of tail means
                                     closed */
} weir_mpmc;

/*
 * weir_spsc_init - prepare r to hold capacity items, rounded up to the next
 * power of two.  Allocates the slots; weir_spsc_destroy frees them.
 * Returns 0; WEIR_EINVAL if r is NULL, or capacity is 0 or above
 * SIZE_MAX / 8 + 1 (2^61 on a 64-bit machine: the MPMC ring compares
 * doubled positions by signed difference, which needs that headroom, and
 * both families refuse the same sizes); WEIR_ENOMEM if the slots cannot
 * be allocated.  On failure nothing is allocated and r (when not NULL)
 * holds no slots: see the top of this file for what may be called on it.
 */
int weir_spsc_init(weir_spsc *r, size_t capacity);

/*
 * weir_spsc_destroy - free the slots of r, leaving it with none (see the
 * top of this file).  Items still inside are forgotten, not freed: they
 * belong to the caller.  Accepts NULL, a ring whose init failed, and a
 * zeroed or already destroyed ring.
 */
void weir_spsc_destroy(weir_spsc *r);

/* weir_spsc_capacity - the rounded capacity; 0 for NULL.  Any thread. */
size_t weir_spsc_capacity(const weir_spsc *r);

/*
 * weir_spsc_size - how many items the ring holds.  Exact when called by
 * the producer or consumer while the other side is idle; otherwise a value
 * the ring had at some moment during the call, never above the capacity.
 * Any thread; 0 for NULL.
 */
size_t weir_spsc_size(const weir_spsc *r);

/* weir_mpmc_init / destroy / capacity / size: as for weir_spsc above. */
int weir_mpmc_init(weir_mpmc *r, size_t capacity);
void weir_mpmc_destroy(weir_mpmc *r);
size_t weir_mpmc_capacity(const weir_mpmc *r);

/*
 * weir_mpmc_size - pushes claimed minus pops claimed, read without
 * stopping anyone: a snapshot that may be stale by the time it returns and
 * counts operations still in progress.  Between 0 and the capacity.
 */
size_t weir_mpmc_size(const weir_mpmc *r);

/*
 * weir_spsc_push - append item.  Producer only.
 * Returns 0, WEIR_EAGAIN if the ring is full (nothing changed), or
 * WEIR_EINVAL if r is NULL or holds no slots.
 */
WEIRI_INLINE int weir_spsc_push(weir_spsc *r, void *item);

/*
 * weir_spsc_pop - remove the oldest item into *item.  Consumer only.
 * Returns 0, WEIR_EAGAIN if the ring is empty (*item untouched), or
 * WEIR_EINVAL if r or item is NULL or r holds no slots.
 */
WEIRI_INLINE int weir_spsc_pop(weir_spsc *r, void **item);

/*
 * weir_spsc_push_burst - append up to n items from items[0..n-1], in
 * order, as many as there is room for.  Returns how many were appended,
 * 0 when full or on NULL arguments.  Producer only.  The items become
 * visible to the consumer together, with one index update.
 */
WEIRI_INLINE size_t weir_spsc_push_burst(weir_spsc *r, void *const *items,
                                         size_t n);

/*
 * weir_spsc_pop_burst - remove up to n of the oldest items into
 * items[0..], oldest first.  Returns how many, 0 when empty or on NULL
 * arguments.  Consumer only.
 */
WEIRI_INLINE size_t weir_spsc_pop_burst(weir_spsc *r, void **items, size_t n);

/*
 * weir_mpmc_push - append item.  Any thread.
 * Returns 0, WEIR_EAGAIN if the slot the push must use next is not free
 * (nothing changed), or WEIR_EINVAL if r is NULL or holds no slots.
 *
 * That slot is not free when the ring is full, and also for a moment when
 * the consumer that took the item one lap earlier has claimed it but not
 * yet finished copying it out.  If that consumer is preempted in between,
 * pushes report EAGAIN until it runs again (pops of other slots continue).
 * Likewise a producer preempted between claiming a slot and filling it
 * makes pops report EAGAIN until it runs again, even if later pushes have
 * completed, because the ring hands items out strictly in claim order.
 * No thread is ever blocked by a lock; a preempted thread delays only the
 * other side's use of its one slot.
 *
 * So the MPMC calls are not linearizable: WEIR_EAGAIN (a burst's 0) does
 * not prove that the ring was ever full (empty) during the call.  Ask
 * weir_mpmc_size after the failure, which reads head before tail: after
 * a failed pop, 0 proves the ring was empty; after a failed push, a size
 * below the capacity proves it was not full.  Otherwise a thread of the
 * other side may be mid-way through that slot, and a retry is worth it.
 * weir_queue checks its counters in the right order for each side and
 * reports full or empty only when it was.  The ring leaves that to its
 * caller because it means reading the other side's counter on every
 * failed call, the line that side writes on every call, which costs a
 * one-producer, one-consumer ring much of its throughput.
 */
WEIRI_INLINE int weir_mpmc_push(weir_mpmc *r, void *item);

/*
 * weir_mpmc_pop - remove the oldest item into *item.  Any thread.
 * Returns 0, WEIR_EAGAIN if the next item is not there yet (the ring is
 * empty, or its producer is between claiming and filling the slot; see
 * weir_mpmc_push), or WEIR_EINVAL if r or item is NULL or r holds no
 * slots.
 */
WEIRI_INLINE int weir_mpmc_pop(weir_mpmc *r, void **item);

/*
 * weir_mpmc_push_burst - append up to n items, in order, into consecutive
 * positions claimed with one atomic operation, so no other producer's item
 * lands between them.  Returns how many (0 when the next slot is not free,
 * see weir_mpmc_push, or on NULL arguments or a ring with no slots); it
 * stops before the first slot that is not free.  Any thread.
 */
WEIRI_INLINE size_t weir_mpmc_push_burst(weir_mpmc *r, void *const *items,
                                         size_t n);

/*
 * weir_mpmc_pop_burst - remove up to n consecutive oldest items with one
 * claim; returns how many, 0 if none is ready (see weir_mpmc_pop) or on
 * NULL arguments or a ring with no slots.
 */
WEIRI_INLINE size_t weir_mpmc_pop_burst(weir_mpmc *r, void **items, size_t n);

#ifndef __cplusplus
#include "ring_inline.h"
#endif

#ifdef __cplusplus
}
#endif

#endif /* WEIR_RING_H */
