/*
 * topic.c - the topic registry of a bus and each topic's snapshot of its
 * subscriptions.
 *
 * Topics are created once and live until the bus is destroyed, so the
 * registry is a fixed array of hash chains that only ever grow at their
 * head: publishers walk them without a lock.  Subscription changes
 * replace a topic's snapshot under bus->mu; publishers load it inside a
 * read section counted per epoch parity, and a writer frees the old
 * snapshot only after weiri_topic_quiesce has seen every section that
 * could hold it end (a small epoch-based reclamation, as in RCU).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "bus_internal.h"
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

const weiri_subset *
weiri_topic_enter(weir_topic *t, unsigned *ticket)
{
    unsigned p = atomic_load_explicit(&t->epoch, memory_order_relaxed) & 1;
    /*
     * seq_cst on both: if weiri_topic_quiesce reads this counter as 0, the
     * increment comes after that read in the single total order, so the
     * load of subs below sees the snapshot stored before the quiesce.
     */
    atomic_fetch_add_explicit(&t->readers[p], 1, memory_order_seq_cst);
    *ticket = p;
    return atomic_load_explicit(&t->subs, memory_order_seq_cst);
}

void
weiri_topic_leave(weir_topic *t, unsigned ticket)
{
    /* Release: our reads of the snapshot finish before it may be freed. */
    atomic_fetch_sub_explicit(&t->readers[ticket], 1, memory_order_release);
}

void
weiri_topic_quiesce(weir_topic *t)
{
    pthread_mutex_lock(&t->bus->grace_mu);
    /*
     * Two flips: a publisher may have read the parity just before the
     * previous flip and be counted under the other one; waiting for both
     * parities to drain catches it too.
     */
    for (int phase = 0; phase < 2; phase++) {
        unsigned e = atomic_load_explicit(&t->epoch, memory_order_relaxed);
        atomic_store_explicit(&t->epoch, e + 1, memory_order_seq_cst);
        for (unsigned spins = 0;
             atomic_load_explicit(&t->readers[e & 1], memory_order_seq_cst) != 0;
             spins++) {
            if (spins < 16)
                weiri_yield();
            else
                weiri_sleep_until(weiri_now_ns() + 100 * WEIR_USEC);
        }
    }
    pthread_mutex_unlock(&t->bus->grace_mu);
}

int
weiri_topic_swap(weir_topic *t, weir_sub *s, bool add, weiri_subset **old)
{
    weiri_subset *cur = atomic_load_explicit(&t->subs, memory_order_relaxed);
    size_t n = cur ? cur->n : 0;
    weiri_subset *next = malloc(sizeof(*next) + (n + 1) * sizeof(weir_sub *));
    if (next == NULL)
        return WEIR_ENOMEM;
    next->n = 0;
    for (size_t i = 0; i < n; i++)
        if (cur->subs[i] != s)
            next->subs[next->n++] = cur->subs[i];
    if (add)
        next->subs[next->n++] = s;
    /* seq_cst: see weiri_topic_enter. */
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
            free(atomic_load_explicit(&t->subs, memory_order_relaxed));
            weiri_free(t);
            t = next;
        }
    }
}
