/* SPDX-License-Identifier: MIT */
/*
 * weir/ring_inline.h - PRIVATE: the inline push/pop paths of weir/ring.h.
 * Include weir/ring.h, never this file.
 *
 * These use C99 inline semantics: each function here is an inline
 * definition, and one source file of the library declares them extern,
 * which makes it the one translation unit that emits their out-of-line
 * copies (taken by C++ callers, by unoptimised builds and by anyone
 * taking their address).  An inline definition with external linkage may
 * not refer to anything static, hence the macro rather than a helper
 * function below.
 *
 * The close bit, the bound (weiri_mpmc_room) and the claim / fill split
 * serve only the library: weir_queue's ring is bounded and closable, and
 * the bus claims a place in it before it writes the message.  A ring made
 * by weir_mpmc_init is never bounded or closed.  They are here, not in a
 * library header, because weir_mpmc_push and weir_mpmc_push_burst are
 * built from them and the queue pushes through those same inline calls;
 * moving them out would mean a second copy of the claim loop.  None of
 * them is API.
 */
#ifndef WEIR_RING_INLINE_H
#define WEIR_RING_INLINE_H

#ifndef WEIR_RING_H
#error "include weir/ring.h, not weir/ring_inline.h"
#endif

/*
 * The queue layer (weir/queue.h) closes its ring by setting the top bit of
 * tail, which makes every later claim fail, so that "refused" and "queued"
 * are decided by the same atomic operation.  Plain rings are never closed
 * and use the whole range; a closable ring gets 2^63 positions, centuries
 * of pushes on a 64-bit machine.
 */
#define WEIRI_MPMC_CLOSED (~(SIZE_MAX >> 1))

/*
 * weiri_spsc_room - PRIVATE: free slots for a push at t, re-reading head
 * only when the producer's copy of it shows fewer than want.  Acquire
 * pairs with the consumer's release of head: its reads of the slots it
 * freed are done before we overwrite them.
 */
inline size_t
weiri_spsc_room(weir_spsc *r, size_t t, size_t want)
{
    size_t room = r->capacity - (t - r->head_cache);
    if (room < want) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        room = r->capacity - (t - r->head_cache);
    }
    return room;
}

/*
 * weiri_spsc_copy - PRIVATE: copy k items, k at most a line's worth (0
 * too), from one array to another that does not overlap it.  Copies of a
 * constant size, which compilers turn into a vector move or two: a loop to
 * k becomes a call to memmove or a string instruction, whose start-up costs
 * more than the few items of a line.  Two such copies cover k items when
 * they overlap in the middle, so nothing outside the k is read or written.
 */
inline void
weiri_spsc_copy(void **dst, void *const *src, size_t k)
{
    if (k >= 4 && k <= 8) {
        memcpy(dst, src, 4 * sizeof(void *));
        memcpy(dst + k - 4, src + k - 4, 4 * sizeof(void *));
    } else if (k >= 2 && k <= 3) {
        memcpy(dst, src, 2 * sizeof(void *));
        memcpy(dst + k - 2, src + k - 2, 2 * sizeof(void *));
    } else {
        /* 1, or more than 8 with 4-byte pointers. */
        for (size_t i = 0; i < k; i++)
            dst[i] = src[i];
    }
}

/* weiri_spsc_next - PRIVATE: the line after l in the cycle. */
inline struct weir_spsc_line *
weiri_spsc_next(const weir_spsc *r, struct weir_spsc_line *l)
{
    return l + 1 == r->end ? r->lines : l + 1;
}

/*
 * weiri_spsc_ready - PRIVATE: how many items from position h on are in
 * line l, where h sits at slot off.  The line's word counts how far the
 * producer filled it; acquire pairs with its release, so those items are
 * visible.  A word from an earlier lap is below h + 1.  The word may
 * already count a later lap's first slots of this line, when the ring is
 * nearly full; every position from h up to it was pushed all the same,
 * and the slots from off on still hold this lap's items, unpopped, so the
 * count is capped at the line's end.
 */
inline size_t
weiri_spsc_ready(const struct weir_spsc_line *l, size_t h, size_t off)
{
    ptrdiff_t in = (ptrdiff_t)(atomic_load_explicit(&l->seq,
                                                    memory_order_acquire) - h);
    if (in <= 0)
        return 0;
    return (size_t)in < WEIRI_SPSC_PER_LINE - off ? (size_t)in
                                                  : WEIRI_SPSC_PER_LINE - off;
}

inline int
weir_spsc_push(weir_spsc *r, void *item)
{
    if (r == NULL)
        return WEIR_EINVAL;
    /* Relaxed: only this thread writes tail. */
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (weiri_spsc_room(r, t, 1) == 0) /* capacity 0: no slots, see ring.h */
        return r->capacity != 0 ? WEIR_EAGAIN : WEIR_EINVAL;
    struct weir_spsc_line *l = r->tail_line;
    l->item[r->tail_off] = item;
    /* Release: the item (and what the caller wrote before) precede seq. */
    atomic_store_explicit(&l->seq, t + 1, memory_order_release);
    if (++r->tail_off == WEIRI_SPSC_PER_LINE) {
        r->tail_off = 0;
        r->tail_line = weiri_spsc_next(r, l);
    }
    /* Relaxed: tail only feeds size() and this thread's next push. */
    atomic_store_explicit(&r->tail, t + 1, memory_order_relaxed);
    return 0;
}

inline int
weir_spsc_pop(weir_spsc *r, void **item)
{
    if (r == NULL || item == NULL)
        return WEIR_EINVAL;
    /* Relaxed: only this thread writes head. */
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    struct weir_spsc_line *l = r->head_line;
    /* l may be the library's stand-in for a ring with no slots (capacity 0). */
    if (weiri_spsc_ready(l, h, r->head_off) == 0)
        return r->capacity != 0 ? WEIR_EAGAIN : WEIR_EINVAL;
    *item = l->item[r->head_off];
    if (++r->head_off == WEIRI_SPSC_PER_LINE) {
        r->head_off = 0;
        r->head_line = weiri_spsc_next(r, l);
    }
    /* Release: our read of the slot finishes before the producer reuses it. */
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    return 0;
}

/*
 * The burst calls split a burst into the rest of the current line, whole
 * lines and a start of the last one.  Whole lines are copied with a
 * constant size, which compiles to a few vector moves with no branch on
 * the count; a loop over the segments, each of a computed length, costs
 * half as many instructions again and mispredicts as the offset moves from
 * burst to burst.
 */
inline size_t
weir_spsc_push_burst(weir_spsc *r, void *const *items, size_t n)
{
    if (r == NULL || items == NULL || n == 0)
        return 0;
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t room = weiri_spsc_room(r, t, n);
    if (n > room)
        n = room;
    if (n == 0)
        return 0;
    /* Each line's word moves once, after its items. */
    struct weir_spsc_line *l = r->tail_line;
    size_t off = r->tail_off;
    size_t done = WEIRI_SPSC_PER_LINE - off;
    if (done > n)
        done = n;
    weiri_spsc_copy(l->item + off, items, done);
    atomic_store_explicit(&l->seq, t + done, memory_order_release);
    off += done;
    if (off == WEIRI_SPSC_PER_LINE) {
        off = 0;
        l = weiri_spsc_next(r, l);
        while (n - done >= WEIRI_SPSC_PER_LINE) {
            memcpy(l->item, items + done, sizeof(l->item));
            done += WEIRI_SPSC_PER_LINE;
            atomic_store_explicit(&l->seq, t + done, memory_order_release);
            l = weiri_spsc_next(r, l);
        }
        if (done < n) {
            off = n - done;
            weiri_spsc_copy(l->item, items + done, off);
            atomic_store_explicit(&l->seq, t + n, memory_order_release);
        }
    }
    r->tail_line = l;
    r->tail_off = off;
    atomic_store_explicit(&r->tail, t + n, memory_order_relaxed);
    return n;
}

inline size_t
weir_spsc_pop_burst(weir_spsc *r, void **items, size_t n)
{
    if (r == NULL || items == NULL || n == 0)
        return 0;
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    struct weir_spsc_line *l = r->head_line;
    size_t off = r->head_off, got;
    /*
     * A burst that runs past this line is taken whole when the line of
     * its last item says filled: the producer filled the lines in order,
     * and the acquire on that word makes all of them visible, so no other
     * word need be read.  That line lies at most one lap on (n is at most
     * the capacity), so one subtraction wraps it.  Otherwise line by line,
     * as far as the words say.
     */
    bool whole = false;
    if (n > WEIRI_SPSC_PER_LINE - off && n <= r->capacity) {
        struct weir_spsc_line *last = l + (off + n - 1) / WEIRI_SPSC_PER_LINE;
        if (last >= r->end)
            last -= r->end - r->lines;
        whole = (ptrdiff_t)(atomic_load_explicit(&last->seq,
                                                 memory_order_acquire) -
                            (h + n)) >= 0;
    }
    if (whole) {
        got = WEIRI_SPSC_PER_LINE - off;
        weiri_spsc_copy(items, l->item + off, got);
        l = weiri_spsc_next(r, l);
        while (n - got >= WEIRI_SPSC_PER_LINE) {
            memcpy(items + got, l->item, sizeof(l->item));
            got += WEIRI_SPSC_PER_LINE;
            l = weiri_spsc_next(r, l);
        }
        off = n - got;
        weiri_spsc_copy(items + got, l->item, off);
        got = n;
    } else {
        got = 0;
        while (got < n) {
            size_t k = weiri_spsc_ready(l, h + got, off);
            if (k > n - got)
                k = n - got;
            weiri_spsc_copy(items + got, l->item + off, k);
            got += k;
            off += k;
            /* Done, or the producer has not filled this line further. */
            if (off < WEIRI_SPSC_PER_LINE)
                break;
            off = 0;
            l = weiri_spsc_next(r, l);
        }
    }
    if (got > 0) {
        r->head_line = l;
        r->head_off = off;
        atomic_store_explicit(&r->head, h + got, memory_order_release);
    }
    return got;
}

/*
 * The MPMC calls share one shape.  Read the slot at the claim position:
 * its sequence says whether it is ready for this side at this lap (claim
 * it with a CAS on the counter), still in use from the lap before (the
 * ring is full or empty, or a thread of the other side is mid-operation on
 * it: WEIR_EAGAIN at once), or already taken by a peer (re-read the
 * counter).  Telling full or empty from mid-operation would take a read
 * of the other side's counter, the line it writes on every call: a
 * caller polling an empty ring would pull that line away from the
 * producer on every try (reading it there and waiting out a busy slot,
 * as crossbeam's ArrayQueue does, is much slower one to one).  So the
 * slot alone decides, and a caller that must know (weir_queue, before it
 * sleeps or reports full or empty) asks weiri_mpmc_empty or _full.
 *
 * The acquire load of the slot's sequence before the CAS and the release
 * store after it carry the item.  The CAS is seq_cst although the ring
 * needs no order from it: weir_queue's sleepers check the counters after
 * announcing themselves, and a seq_cst claim lets a waker skip a separate
 * fence (the same instruction on x86).
 */

/*
 * weiri_mpmc_no_slot - PRIVATE, defined in the library: the one slot of
 * every MPMC ring that holds none (its init failed, or it was destroyed).
 * Its sequence is below that of any position such a ring has (0 for
 * pushes, 1 for pops) as a signed difference, so the calls below take
 * their "not ready" branch on it, never claim it, and tell it apart there
 * by its address, at no cost to the calls that succeed.
 */
extern struct weir_mpmc_slot weiri_mpmc_no_slot;

/*
 * weiri_mpmc_room - PRIVATE: how many more items a bounded ring (limit
 * != 0) takes if the next push claims pos; want is how many the caller
 * would place.  Consults producers' shared copy of head first and re-reads
 * head only when that copy shows less room than want.  head only grows,
 * so a stale copy can only understate the room, and a burst must not take
 * less than there is because of it (weir_queue_push_burst promises all
 * the room: a copy one behind once placed 2 of 3).  A pos that has gone
 * stale meanwhile (head beyond it) reports room: the claim that follows
 * fails and re-reads tail.  Relaxed loads and stores: the bound is
 * counted, not synchronised; the slot sequences carry the items.
 */
inline size_t
weiri_mpmc_room(weir_mpmc *r, size_t pos, size_t want)
{
    ptrdiff_t used = (ptrdiff_t)(pos -
        atomic_load_explicit(&r->head_cache, memory_order_relaxed));
    if (used < (ptrdiff_t)r->limit && r->limit - (size_t)used >= want)
        return r->limit - (size_t)used;
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head_cache, head, memory_order_relaxed);
    used = (ptrdiff_t)(pos - head);
    if (used < 0)
        return 1;
    return used < (ptrdiff_t)r->limit ? r->limit - (size_t)used : 0;
}

/*
 * weiri_mpmc_claim - PRIVATE: claim the next push position of r into
 * *claimed, or return WEIR_EAGAIN / WEIR_ECLOSED / WEIR_EINVAL as
 * weir_mpmc_push does.
 * The claimer must then fill it (weiri_mpmc_fill): pops stop at it until
 * then.  Split from the push for the bus, which claims before it writes
 * the message so that no locked instruction follows those writes.
 */
inline int
weiri_mpmc_claim(weir_mpmc *r, size_t *claimed)
{
    struct weir_mpmc_slot *slots = r->slots;
    size_t mask = r->mask;
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        if ((pos & WEIRI_MPMC_CLOSED) && r->closable)
            return WEIR_ECLOSED;
        struct weir_mpmc_slot *s = &slots[pos & mask];
        /*
         * Acquire pairs with the consumer's release of seq: it read the old
         * item.
         */
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        ptrdiff_t dif = (ptrdiff_t)(seq - 2 * pos);
        if (dif == 0) {
            if (r->limit != 0 && weiri_mpmc_room(r, pos, 1) == 0)
                return WEIR_EAGAIN;
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                    memory_order_seq_cst, memory_order_relaxed)) {
                *claimed = pos;
                return 0;
            }
            continue; /* the failed CAS reloaded pos */
        }
        if (dif < 0) {
            /*
             * The slot still holds the item of the lap before: the ring
             * is full, or that item's consumer is between its claim and
             * its read.  The slot alone decides; see above.
             */
            return s != &weiri_mpmc_no_slot ? WEIR_EAGAIN : WEIR_EINVAL;
        }
        pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    }
}

/* weiri_mpmc_fill - PRIVATE: put item in the position pos claimed. */
inline void
weiri_mpmc_fill(weir_mpmc *r, size_t pos, void *item)
{
    struct weir_mpmc_slot *s = &r->slots[pos & r->mask];
    s->item = item;
    /* Release pairs with the consumer's acquire of seq. */
    atomic_store_explicit(&s->seq, 2 * pos + 1, memory_order_release);
}

inline int
weir_mpmc_push(weir_mpmc *r, void *item)
{
    if (r == NULL)
        return WEIR_EINVAL;
    size_t pos;
    int rc = weiri_mpmc_claim(r, &pos);
    if (rc == 0)
        weiri_mpmc_fill(r, pos, item);
    return rc;
}

inline int
weir_mpmc_pop(weir_mpmc *r, void **item)
{
    if (r == NULL || item == NULL)
        return WEIR_EINVAL;
    struct weir_mpmc_slot *slots = r->slots;
    size_t mask = r->mask;
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        struct weir_mpmc_slot *s = &slots[pos & mask];
        /* Acquire pairs with the producer's release of seq: item is written. */
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        ptrdiff_t dif = (ptrdiff_t)(seq - (2 * pos + 1));
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + 1,
                    memory_order_seq_cst, memory_order_relaxed)) {
                *item = s->item;
                /* Release: our read of item precedes the next lap's write. */
                atomic_store_explicit(&s->seq, 2 * (pos + mask + 1),
                                      memory_order_release);
                return 0;
            }
            continue;
        }
        if (dif < 0) {
            /*
             * Not yet filled for this lap: empty unless a push has claimed
             * it.
             */
            return s != &weiri_mpmc_no_slot ? WEIR_EAGAIN : WEIR_EINVAL;
        }
        pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    }
}

inline size_t
weir_mpmc_push_burst(weir_mpmc *r, void *const *items, size_t n)
{
    if (r == NULL || items == NULL || n == 0)
        return 0;
    struct weir_mpmc_slot *slots = r->slots;
    size_t mask = r->mask;
    if (n > mask + 1)
        n = mask + 1;
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        if ((pos & WEIRI_MPMC_CLOSED) && r->closable)
            return 0;
        size_t room = r->limit != 0 ? weiri_mpmc_room(r, pos, n) : n;
        size_t want = n < room ? n : room;
        /*
         * A slot that is free for its position stays free until someone
         * claims that position, which needs the CAS below to succeed from
         * pos; so counting free slots first and claiming them after is
         * safe.  Consumers release slots out of order, hence the count
         * stops at the first one that is not free.
         */
        size_t k = 0;
        while (k < want &&
               atomic_load_explicit(&slots[(pos + k) & mask].seq,
                                    memory_order_acquire) == 2 * (pos + k))
            k++;
        /* Full, busy or a stale pos: the single push sorts it out. */
        if (k == 0)
            return weir_mpmc_push(r, items[0]) == 0 ? 1 : 0;
        if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + k,
                memory_order_seq_cst, memory_order_relaxed)) {
            for (size_t i = 0; i < k; i++) {
                struct weir_mpmc_slot *s = &slots[(pos + i) & mask];
                s->item = items[i];
                atomic_store_explicit(&s->seq, 2 * (pos + i) + 1,
                                      memory_order_release);
            }
            return k;
        }
    }
}

inline size_t
weir_mpmc_pop_burst(weir_mpmc *r, void **items, size_t n)
{
    if (r == NULL || items == NULL || n == 0)
        return 0;
    struct weir_mpmc_slot *slots = r->slots;
    size_t mask = r->mask;
    if (n > mask + 1)
        n = mask + 1;
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        /*
         * Filled slots stay filled until their position is claimed: as
         * above.
         */
        size_t k = 0;
        while (k < n &&
               atomic_load_explicit(&slots[(pos + k) & mask].seq,
                                    memory_order_acquire) == 2 * (pos + k) + 1)
            k++;
        if (k == 0)
            return weir_mpmc_pop(r, items) == 0 ? 1 : 0;
        if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + k,
                memory_order_seq_cst, memory_order_relaxed)) {
            for (size_t i = 0; i < k; i++) {
                struct weir_mpmc_slot *s = &slots[(pos + i) & mask];
                items[i] = s->item;
                atomic_store_explicit(&s->seq, 2 * (pos + i + mask + 1),
                                      memory_order_release);
            }
            return k;
        }
    }
}

#endif /* WEIR_RING_INLINE_H */
