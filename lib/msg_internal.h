/*
 * msg_internal.h - PRIVATE to lib/: messages of the bus.
 *
 * A published payload lives in one allocation, the body, shared by every
 * subscription it was routed to and freed when the last one lets go.  The
 * body is immutable after creation, so workers read it without locks.
 * Handlers never see the body directly but a weir_msg, a small view that
 * a worker builds on its stack for each call and that will also carry
 * per-delivery facts (the attempt number) that cannot live in a shared,
 * immutable body.
 */
#ifndef WEIR_MSG_INTERNAL_H
#define WEIR_MSG_INTERNAL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/bus.h"
#include "weir/ring.h"

typedef struct weiri_body {
    _Atomic uint32_t refs;   /* holders: one per subscription queue it sits in */
    weir_mpmc *pool;         /* where it goes back when released; NULL: free() */
    uint64_t id;             /* unique, increasing per bus */
    int64_t timestamp_ns;    /* CLOCK_MONOTONIC at publish */
    const char *topic;       /* the topic's name; lives as long as the bus */
    const char *key;         /* NULL, or a copy inside this allocation */
    size_t size;             /* payload bytes */
    alignas(max_align_t) unsigned char data[]; /* payload, then the key */
} weiri_body;

struct weir_msg {
    const weiri_body *body;
    unsigned attempt;        /* 1 on the first delivery */
};

/*
 * Small bodies are recycled through a pool (a weir_mpmc of free bodies
 * that the bus owns), because a message is allocated on the publisher's
 * thread and freed on a worker's: glibc then takes its arena lock on both
 * sides of every message.  Bodies whose payload and key fit in
 * WEIRI_BODY_SMALL bytes come from the pool when it has one; larger ones,
 * and small ones when the pool is empty, from malloc.
 */
#define WEIRI_BODY_SMALL 448
#define WEIRI_BODY_POOL 4096

/*
 * weiri_body_create - copy data and key into a body with refs holders,
 * taken from pool when it fits (pool may be NULL).  NULL when memory runs
 * out.
 */
weiri_body *weiri_body_create(weir_mpmc *pool, const char *topic,
                              const void *data, size_t size, const char *key,
                              size_t key_len, int64_t timestamp_ns,
                              uint32_t refs);

/* weiri_body_release - drop n holders; the last one recycles or frees it. */
void weiri_body_release(weiri_body *b, uint32_t n);

/* weiri_body_pool_drain - free every body left in pool (at bus destroy). */
void weiri_body_pool_drain(weir_mpmc *pool);

#endif /* WEIR_MSG_INTERNAL_H */
