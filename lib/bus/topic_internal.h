/* SPDX-License-Identifier: MIT */
/*
 * topic_internal.h - PRIVATE to lib/: the topic registry and the read sections
 * of publishers (topic.c).
 */
#ifndef WEIR_TOPIC_INTERNAL_H
#define WEIR_TOPIC_INTERNAL_H

#include "bus_internal.h"

bool weiri_topic_name_ok(const char *name, size_t *len);
weir_topic *weiri_topic_find(weir_bus *bus, const char *name, size_t len);
int weiri_topic_get(weir_bus *bus, const char *name, size_t len,
                    weir_topic **out);               /* under bus->mu */
/*
 * weiri_topic_swap - under bus->mu: publish a snapshot of t's
 * subscriptions with s added (add) or removed, and hand back the old one.
 * The caller frees it after weiri_topic_quiesce, called without bus->mu
 * (a publisher being waited for may be preempted, or allocating).
 * Returns 0 or WEIR_ENOMEM (nothing changed).
 */
int weiri_topic_swap(weir_topic *t, weir_sub *s, bool add, weiri_subset **old);
void weiri_topic_quiesce(weir_topic *t);
void weiri_topic_free_all(weir_bus *bus);
/*
 * A publisher's read section: the snapshot, and every subscription in
 * it, stays valid until leave.  Sections may nest (a batch holds one per
 * topic); each has its own ticket.  Inline, for every publish enters
 * one: the common case (the read slot this thread had last is free)
 * here, the rest in topic.c, which explains the protocol.
 */
const weiri_subset *weiri_topic_enter_slow(weir_topic *t, unsigned *ticket);

/* The read slot this thread took last: where its next section looks first. */
extern _Thread_local unsigned weiri_reader_hint;

static inline const weiri_subset *
weiri_topic_enter(weir_topic *t, unsigned *ticket)
{
    unsigned i = weiri_reader_hint;
    if (i < WEIRI_READER_SLOTS) {
        weiri_reader *r = &t->bus->readers[i];
        uint64_t free_mark = 0;
        uint64_t mark = atomic_load(&t->bus->epoch) + 1;
        if (atomic_load_explicit(&r->mark, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&r->mark, &free_mark, mark)) {
            /* seq_cst, a locked instruction on x86: see weiri_reader. */
            atomic_store(&r->topic, t);
            *ticket = i;
            return atomic_load(&t->subs);
        }
    }
    return weiri_topic_enter_slow(t, ticket);
}

static inline void
weiri_topic_leave(weir_topic *t, unsigned ticket)
{
    /*
     * Release: our reads of the snapshot and of its subscriptions finish
     * before the slot reads free.  A plain store on x86.
     */
    if (ticket < WEIRI_READER_SLOTS)
        atomic_store_explicit(&t->bus->readers[ticket].mark, 0,
                              memory_order_release);
    else
        atomic_fetch_sub_explicit(&t->shared[ticket - WEIRI_READER_SLOTS], 1,
                                  memory_order_release);
}

/*
 * weiri_subset_has - whether set, a snapshot read in a section, holds
 * sub: the very one, by its serial, not a later one at its address (sub
 * is dereferenced only once found, so it may have been freed).
 */
static inline bool
weiri_subset_has(const weiri_subset *set, const weir_sub *sub,
                 uint64_t serial)
{
    for (size_t j = 0; set != NULL && j < set->n; j++)
        if (set->subs[j] == sub)
            return sub->serial == serial;
    return false;
}

#endif /* WEIR_TOPIC_INTERNAL_H */
