/* SPDX-License-Identifier: MIT */
/*
 * dedup.c - duplicate suppression (weir/dedup.h).
 *
 * Keys sit in a circular array in insertion order, which is also the
 * order they expire and the order they are evicted when the table is
 * full: both only ever remove the oldest entry.  A chained hash table of
 * array indices finds them.  Insertion times come from the monotonic
 * clock read under the mutex, so they never decrease along the array.
 *
 * Keys come from outside (request ids, message keys), so the chains are
 * hashed with SipHash under a seed of the table's own, drawn at create:
 * with an unseeded hash, keys chosen to share one bucket would make every
 * call walk one long chain under the mutex (see hash_internal.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "weir/dedup.h"

#include "alloc_internal.h"
#include "clock_internal.h"
#include "dedup_internal.h"
#include "hash_internal.h"

#define NIL UINT32_MAX

typedef struct entry {
    uint64_t hash;       /* weiri_siphash of key under the table's seed */
    int64_t at;          /* when inserted */
    uint32_t next;       /* next in its hash chain, or NIL */
    size_t len;
    unsigned char *key;  /* a copy */
} entry;

struct weir_dedup {
    pthread_mutex_t mu;
    int64_t window;
    size_t max, count, oldest; /* the live entries are oldest ..
                                  oldest+count-1, mod max */
    entry *e;
    uint32_t *bucket;          /* heads of chains */
    size_t mask;               /* buckets - 1 */
    uint64_t seed[2];          /* SipHash key, random, fixed at create */
};

int
weir_dedup_create(weir_dedup **d, size_t max_keys, int64_t window_ns)
{
    if (d == NULL)
        return WEIR_EINVAL;
    *d = NULL;
    if (window_ns <= 0 || max_keys > WEIR_DEDUP_MAX_KEYS)
        return WEIR_EINVAL;
    if (max_keys == 0)
        max_keys = 65536;
    weir_dedup *t = weiri_calloc(1, sizeof(*t));
    if (t == NULL)
        return WEIR_ENOMEM;
    size_t buckets = 1;
    while (buckets < 2 * max_keys)
        buckets <<= 1;
    t->e = weiri_calloc(max_keys, sizeof(entry));
    t->bucket = weiri_malloc(buckets * sizeof(uint32_t));
    if (t->e == NULL || t->bucket == NULL ||
        pthread_mutex_init(&t->mu, NULL) != 0) {
        weiri_free(t->e);
        weiri_free(t->bucket);
        weiri_free(t);
        return WEIR_ENOMEM;
    }
    memset(t->bucket, 0xff, buckets * sizeof(uint32_t)); /* all NIL */
    t->window = window_ns;
    t->max = max_keys;
    t->mask = buckets - 1;
    weiri_random_seed(t->seed);
    *d = t;
    return 0;
}

/* Unlink and free the oldest entry. */
static void
evict_oldest(weir_dedup *t)
{
    uint32_t i = (uint32_t)t->oldest;
    entry *victim = &t->e[i];
    uint32_t *link = &t->bucket[victim->hash & t->mask];
    while (*link != i)
        link = &t->e[*link].next;
    *link = victim->next;
    weiri_free(victim->key);
    victim->key = NULL;
    t->oldest = (t->oldest + 1) % t->max;
    t->count--;
}

/* Forget the keys older than the window. */
static void
expire(weir_dedup *t)
{
    int64_t now = weiri_now_ns();
    while (t->count > 0 && now - t->e[t->oldest].at >= t->window)
        evict_oldest(t);
}

int
weir_dedup_check_and_insert(weir_dedup *d, const void *key, size_t len)
{
    if (d == NULL || key == NULL)
        return WEIR_EINVAL;
    uint64_t h = weiri_siphash(d->seed, key, len); /* outside the lock */
    pthread_mutex_lock(&d->mu);
    expire(d);
    int64_t now = weiri_now_ns();
    for (uint32_t i = d->bucket[h & d->mask]; i != NIL; i = d->e[i].next) {
        entry *x = &d->e[i];
        if (x->hash == h && x->len == len && memcmp(x->key, key, len) == 0) {
            pthread_mutex_unlock(&d->mu);
            return 0;
        }
    }
    unsigned char *copy = weiri_malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        pthread_mutex_unlock(&d->mu);
        return WEIR_ENOMEM;
    }
    memcpy(copy, key, len);
    if (d->count == d->max)
        evict_oldest(d);
    uint32_t i = (uint32_t)((d->oldest + d->count) % d->max);
    d->e[i] = (entry){ .hash = h, .at = now, .next = d->bucket[h & d->mask],
                       .len = len, .key = copy };
    d->bucket[h & d->mask] = i;
    d->count++;
    pthread_mutex_unlock(&d->mu);
    return 1;
}

size_t
weir_dedup_size(weir_dedup *d)
{
    if (d == NULL)
        return 0;
    pthread_mutex_lock(&d->mu);
    expire(d);
    size_t n = d->count;
    pthread_mutex_unlock(&d->mu);
    return n;
}

void
weiri_dedup_inspect(weir_dedup *d, uint64_t seed[2], size_t *longest)
{
    pthread_mutex_lock(&d->mu);
    seed[0] = d->seed[0];
    seed[1] = d->seed[1];
    size_t most = 0;
    for (size_t b = 0; b <= d->mask; b++) {
        size_t n = 0;
        for (uint32_t i = d->bucket[b]; i != NIL; i = d->e[i].next)
            n++;
        if (n > most)
            most = n;
    }
    *longest = most;
    pthread_mutex_unlock(&d->mu);
}

void
weir_dedup_destroy(weir_dedup *d)
{
    if (d == NULL)
        return;
    for (size_t k = 0; k < d->count; k++)
        weiri_free(d->e[(d->oldest + k) % d->max].key);
    weiri_free(d->e);
    weiri_free(d->bucket);
    pthread_mutex_destroy(&d->mu);
    weiri_free(d);
}
