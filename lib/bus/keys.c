/* SPDX-License-Identifier: MIT */
/*
 * keys.c - the keys in hand of a subscription with per-key order
 * (keys_internal.h).  A key with a message in hand (being handled, or
 * waiting for its retry) has an entry in s->keys, a chained hash table
 * under s->mu keyed by SipHash under a seed of the subscription's own,
 * for keys come from outside; later messages of the key park on it in
 * arrival order.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "hash_internal.h"
#include "keys_internal.h"

typedef struct weiri_key {
    struct weiri_key *next;        /* hash chain */
    uint64_t hash;
    weiri_delivery *head, *tail;   /* parked, oldest first */
    char name[];
} weiri_key;

static weiri_key **
key_slot(weir_sub *s, const char *key, uint64_t h)
{
    weiri_key **link = &s->keys[h & (s->key_buckets - 1)];
    while (*link != NULL &&
           ((*link)->hash != h || strcmp((*link)->name, key) != 0))
        link = &(*link)->next;
    return link;
}

/* Double the buckets when the table is as full as it is wide.  Under mu. */
static void
key_grow(weir_sub *s)
{
    size_t nb = s->key_buckets == 0 ? 64 : 2 * s->key_buckets;
    weiri_key **nk = weiri_calloc(nb, sizeof(*nk));
    if (nk == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->key_buckets; i++) {
        for (weiri_key *k = s->keys[i], *next; k != NULL; k = next) {
            next = k->next;
            k->next = nk[k->hash & (nb - 1)];
            nk[k->hash & (nb - 1)] = k;
        }
    }
    weiri_free(s->keys);
    s->keys = nk;
    s->key_buckets = nb;
}

/*
 * Claim b's key for the caller, or park d (holding b) behind the message
 * of that key in hand.  true: claimed, handle it now.  Under no lock.
 * Without memory for an entry the message is handled at once, out of
 * order rather than lost, and without holding the key (d->holds_key
 * stays false), so finishing it leaves the key's entry alone.
 */
bool
weiri_key_claim(weir_sub *s, weiri_delivery *d)
{
    const char *key = d->body->key;
    size_t len = strlen(key);
    uint64_t h = weiri_siphash(s->key_seed, key, len);
    d->key_hash = h; /* for weiri_key_next: one hash per message, not two */
    bool claimed = true;
    pthread_mutex_lock(&s->mu);
    if (s->nkeys >= s->key_buckets)
        key_grow(s);
    if (s->key_buckets > 0) {
        weiri_key **link = key_slot(s, key, h);
        if (*link != NULL) {
            weiri_key *k = *link;
            d->next = NULL;
            if (k->tail != NULL)
                k->tail->next = d;
            else
                k->head = d;
            k->tail = d;
            claimed = false;
        } else {
            weiri_key *k = weiri_malloc(sizeof(*k) + len + 1);
            if (k != NULL) {
                *k = (weiri_key){ .hash = h };
                memcpy(k->name, key, len + 1);
                *link = k;
                s->nkeys++;
                d->holds_key = true;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return claimed;
}

/* See keys_internal.h; the key's hash is the one its claim stored. */
weiri_delivery *
weiri_key_next(weir_sub *s, const weiri_delivery *in_hand)
{
    if (!in_hand->holds_key)
        return NULL;
    const char *key = in_hand->body->key;
    uint64_t h = in_hand->key_hash;
    weiri_delivery *d = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->key_buckets > 0) {
        weiri_key **link = key_slot(s, key, h);
        weiri_key *k = *link;
        if (k != NULL && (d = k->head) != NULL) {
            k->head = d->next;
            if (k->head == NULL)
                k->tail = NULL;
            d->holds_key = true; /* handed on with the key */
        } else if (k != NULL) {
            *link = k->next;
            s->nkeys--;
            weiri_free(k);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return d;
}

void
weiri_keys_setup(weir_sub *s)
{
    weiri_random_seed(s->key_seed);
}

void
weiri_keys_release(weir_sub *s,
                   void (*leave)(weir_sub *, weiri_delivery *))
{
    for (size_t i = 0; i < s->key_buckets; i++) {
        for (weiri_key *k = s->keys[i], *next; k != NULL; k = next) {
            next = k->next;
            for (weiri_delivery *d = k->head, *dn; d != NULL; d = dn) {
                dn = d->next;
                leave(s, d);
            }
            weiri_free(k);
        }
        s->keys[i] = NULL;
    }
    s->nkeys = 0;
}

void
weiri_keys_teardown(weir_sub *s)
{
    weiri_free(s->keys);
}
