/* SPDX-License-Identifier: MIT */
/*
 * topic.c - the topic registry of a bus and each topic's snapshot of its
 * subscriptions.
 *
 * Topics are created once and live until the bus is destroyed, so the
 * registry is a fixed array of hash chains that only ever grow at their
 * head: publishers walk them without a lock.  Subscription changes
 * replace a topic's snapshot under bus->mu; publishers load it inside a
 * read section marked with the bus's epoch, and a writer frees the old
 * snapshot only after weiri_topic_quiesce has seen every section that
 * could hold it end (a small epoch-based reclamation, as in RCU).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "topic_internal.h"
#include "hash_internal.h"
#include "clock_internal.h"

bool
weiri_topic_name_ok(const char *name, size_t *len)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-' || c == ':' || c == '/';
        if (!ok || n == WEIR_TOPIC_MAX)
            return false;
    }
    *len = n;
    return n > 0;
}

static size_t
bucket_of(const char *name, size_t len)
{
    return weiri_hash(name, len) % WEIRI_TOPIC_BUCKETS;
}

weir_topic *
weiri_topic_find(weir_bus *bus, const char *name, size_t len)
{
    /* Acquire pairs with the release in weiri_topic_get: the topic is whole. */
    weir_topic *t = atomic_load_explicit(&bus->buckets[bucket_of(name, len)],
                                         memory_order_acquire);
    for (; t != NULL; t = t->next)
        if (t->name_len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

int
weiri_topic_get(weir_bus *bus, const char *name, size_t len, weir_topic **out)
{
    weir_topic *t = weiri_topic_find(bus, name, len);
    if (t == NULL) {
        /* Cache-line aligned, as its readers counters demand. */
        t = weiri_alloc_array(1, sizeof(*t) + len + 1);
        if (t == NULL)
            return WEIR_ENOMEM;
        t->bus = bus;
        t->name_len = len;
        memcpy(t->name, name, len);
        size_t b = bucket_of(name, len);
        t->next = atomic_load_explicit(&bus->buckets[b], memory_order_relaxed);
        atomic_store_explicit(&bus->buckets[b], t, memory_order_release);
    }
    *out = t;
    return 0;
}

_Thread_local unsigned weiri_reader_hint = WEIRI_READER_SLOTS;

/* Threads' first slots, handed out in turn so that they spread. */
static _Atomic unsigned first_hint;

/*
 * A section's common case is inline (weiri_topic_enter, bus_internal.h);
 * this is the rest, and the protocol.  Every access of a section is
 * seq_cst.  A section marks a slot with the epoch and its topic, then
 * loads the snapshot; weiri_topic_quiesce stores the new snapshot, moves
 * the epoch, then reads every slot.  In the single total order either
 * the section's marks come first, and the quiesce sees them and waits,
 * or the section's load comes after the store and sees the new
 * snapshot.  A section that read the new epoch (seq_cst: after the move)
 * is later than the store too, so the quiesce waits only for older
 * epochs, and a thread that keeps publishing cannot hold it up.  It
 * waits only for its own topic's sections.  No section ever waits for
 * room in a queue (fanout waits after it), so none is long.
 */
const weiri_subset *
weiri_topic_enter_slow(weir_topic *t, unsigned *ticket)
{
    weir_bus *bus = t->bus;
    uint64_t mark = atomic_load(&bus->epoch) + 1;
    unsigned i = weiri_reader_hint;
    if (i >= WEIRI_READER_SLOTS) /* first section of this thread */
        i = atomic_fetch_add_explicit(&first_hint, 1, memory_order_relaxed) %
            WEIRI_READER_SLOTS;
    for (unsigned tries = 0; tries < WEIRI_READER_SLOTS; tries++) {
        uint64_t free_mark = 0;
        weiri_reader *r = &bus->readers[i];
        if (atomic_load_explicit(&r->mark, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&r->mark, &free_mark, mark)) {
            /* seq_cst, a locked instruction on x86: see weiri_reader. */
            atomic_store(&r->topic, t);
            weiri_reader_hint = i;
            *ticket = i;
            return atomic_load(&t->subs);
        }
        i = (i + 1) % WEIRI_READER_SLOTS;
    }
    /* Every slot taken: count ourselves under the topic's epoch parity. */
    unsigned p = atomic_load(&t->epoch) & 1;
    atomic_fetch_add(&t->shared[p], 1);
    *ticket = WEIRI_READER_SLOTS + p;
    return atomic_load(&t->subs);
}

/* A slot held by a section of t that entered under an epoch up to e. */
static bool
holds_old(weiri_reader *r, weir_topic *t, uint64_t e)
{
    uint64_t m = atomic_load(&r->mark);
    return m != 0 && m - 1 <= e && atomic_load(&r->topic) == t;
}

void
weiri_topic_quiesce(weir_topic *t)
{
    weir_bus *bus = t->bus;
    pthread_mutex_lock(&bus->grace_mu);
    uint64_t e = atomic_fetch_add(&bus->epoch, 1);
    for (unsigned i = 0; i < WEIRI_READER_SLOTS; i++)
        for (unsigned spins = 0; holds_old(&bus->readers[i], t, e); spins++)
            weiri_pause(spins);
    /*
     * Two flips for the shared counters: a section may have read the
     * parity just before the previous flip and be counted under the other
     * one; waiting for both parities to drain catches it too.
     */
    for (int phase = 0; phase < 2; phase++) {
        unsigned p = atomic_load_explicit(&t->epoch, memory_order_relaxed);
        atomic_store(&t->epoch, p + 1);
        for (unsigned spins = 0; atomic_load(&t->shared[p & 1]) != 0; spins++)
            weiri_pause(spins);
    }
    pthread_mutex_unlock(&bus->grace_mu);
}

int
weiri_topic_swap(weir_topic *t, weir_sub *s, bool add, weiri_subset **old)
{
    weiri_subset *cur = atomic_load_explicit(&t->subs, memory_order_relaxed);
    size_t n = cur ? cur->n : 0;
    weiri_subset *next = weiri_malloc(sizeof(*next) +
                                      (n + 1) * sizeof(weir_sub *));
    if (next == NULL)
        return WEIR_ENOMEM;
    next->n = 0;
    for (size_t i = 0; i < n; i++)
        if (cur->subs[i] != s)
            next->subs[next->n++] = cur->subs[i];
    if (add)
        next->subs[next->n++] = s;
    /* seq_cst: see weiri_topic_enter_slow. */
    atomic_store_explicit(&t->subs, next, memory_order_seq_cst);
    *old = cur;
    return 0;
}

void
weiri_topic_free_all(weir_bus *bus)
{
    for (size_t b = 0; b < WEIRI_TOPIC_BUCKETS; b++) {
        weir_topic *t = atomic_load_explicit(&bus->buckets[b],
                                             memory_order_relaxed);
        while (t != NULL) {
            weir_topic *next = t->next;
            weiri_free(atomic_load_explicit(&t->subs, memory_order_relaxed));
            weiri_free(t);
            t = next;
        }
    }
}
