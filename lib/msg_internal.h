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

typedef struct weiri_body {
    _Atomic uint32_t refs;   /* holders: one per subscription queue it sits in */
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
 * weiri_body_create - copy data and key into a new body with refs holders.
 * NULL when memory runs out.
 */
weiri_body *weiri_body_create(const char *topic, const void *data,
                              size_t size, const char *key, size_t key_len,
                              uint64_t id, int64_t timestamp_ns,
                              uint32_t refs);

/* weiri_body_release - drop n holders; the last one frees the body. */
void weiri_body_release(weiri_body *b, uint32_t n);

#endif /* WEIR_MSG_INTERNAL_H */
