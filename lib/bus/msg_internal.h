/* SPDX-License-Identifier: MIT */
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
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/bus.h"
#include "weir/ring.h"

#include "wait_internal.h"

/*
 * weiri_gate - the commit of an atomic batch (weir_batch_commit).  Its
 * messages enter the queues while the commit is PENDING; a worker that
 * takes one waits for the decision and handles it only if COMMITTED, so
 * no handler sees a batch before all of it is placed, or a batch that was
 * aborted.  Each body of the batch holds a reference, the commit one.
 */
enum { WEIRI_GATE_PENDING, WEIRI_GATE_COMMITTED, WEIRI_GATE_ABORTED };

typedef struct weiri_gate {
    _Atomic int state;
    _Atomic uint32_t refs;
    weiri_event decided;     /* workers wait here while PENDING */
} weiri_gate;

/* weiri_gate_wait - wait for g's decision: true if committed. */
bool weiri_gate_wait(weiri_gate *g);
/* weiri_gate_release - drop a reference; the last frees g. */
void weiri_gate_release(weiri_gate *g);

typedef struct weiri_body {
    _Atomic uint32_t refs;   /* holders: one per subscription queue it sits
                                in */
    bool in_slot;            /* written in an inbox's slot (inbox_internal.h):
                                refs is not used, and a release does nothing */
    weir_mpmc *pool;         /* where it goes back when released; NULL:
                                weiri_free() */
    uint64_t id;             /* unique, increasing per bus */
    int64_t timestamp_ns;    /* CLOCK_MONOTONIC at publish */
    const char *topic;       /* the topic's name; lives as long as the bus */
    const char *key;         /* NULL, or a copy inside this allocation */
    size_t size;             /* payload bytes */
    weiri_gate *gate;        /* the batch it belongs to, or NULL */
    const char *origin;      /* dead letters: the topic it failed on; else
                                NULL */
    unsigned attempt_base;   /* 1, or for a dead letter the attempts it had */
    int origin_error;        /* dead letters: the handler's last return */
    bool redelivered;        /* from the journal, handed out again */
    uint64_t jentry;         /* from the journal: its entry, to ack */
    uint64_t later;          /* a durable delayed message: its number in
                                the journal (weiri_journal_later); else 0 */
    alignas(max_align_t) unsigned char data[]; /* payload, then the key */
} weiri_body;

struct weir_msg {
    const weiri_body *body;
    unsigned attempt;        /* 1 on the first delivery */
    int last_error;          /* what the previous delivery's handler returned */
};

/*
 * weiri_delivery - a message between deliveries: parked behind an
 * earlier message of its key, or waiting for its retry.  Holds one
 * reference to body.
 */
typedef struct weiri_delivery {
    struct weiri_delivery *next;
    weiri_body *body;
    unsigned attempt;        /* the delivery it waits for, from 1 */
    int last_error;          /* the previous delivery's return; 0 if none */
    bool heap;               /* malloc'ed; else on a worker's stack, for one
                                call */
    bool holds_key;          /* has its key's entry (ordered_by_key) */
    uint64_t key_hash;       /* its key's, once weiri_key_claim hashed it */
} weiri_delivery;

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

/* Payload and key bytes of a body; bounded by the callers' checks. */
static inline size_t
weiri_body_extra(size_t size, size_t key_len, bool keyed)
{
    return size + (keyed ? key_len + 1 : 0);
}

/* Whether a body of this payload and key is a small one. */
static inline bool
weiri_body_is_small(size_t size, size_t key_len, bool keyed)
{
    return weiri_body_extra(size, key_len, keyed) <= WEIRI_BODY_SMALL;
}

/*
 * weiri_body_create - copy data and key into a body with refs holders,
 * taken from pool when it fits (pool may be NULL).  NULL when memory runs
 * out.
 */
weiri_body *weiri_body_create(weir_mpmc *pool, const char *topic,
                              const void *data, size_t size, const char *key,
                              size_t key_len, int64_t timestamp_ns,
                              uint32_t refs);

/*
 * weiri_body_alloc / weiri_body_fill - weiri_body_create in two steps:
 * take the memory (NULL when it runs out), then write the body, with the
 * same sizes.  The bus claims its queue places in between, so that no
 * locked instruction follows the writes.
 */
weiri_body *weiri_body_alloc(weir_mpmc *pool, size_t size, size_t key_len,
                             bool keyed);
void weiri_body_fill(weiri_body *b, weir_mpmc *pool, const char *topic,
                     const void *data, size_t size, const char *key,
                     size_t key_len, int64_t timestamp_ns, uint32_t refs);
/*
 * weiri_body_ahead - for a publisher that keeps one small body in
 * *spare: fresh is a small body it just took (weiri_body_alloc); returns
 * the body to write now (the spare, or fresh when there was none) and
 * keeps fresh, or another from the pool, as the next spare, asking for
 * its lines in a writable state at once.  By the next publish they have
 * come over from the worker that last released the body.  On a machine
 * where a core waits ~200 ns for a line another core wrote, that wait
 * was otherwise paid on every publish: the body is written, and the next
 * publish's first locked instruction waits for those writes.  *spare
 * belongs to the caller alone.
 */
weiri_body *weiri_body_ahead(weir_mpmc *pool, weiri_body **spare,
                             weiri_body *fresh);

/*
 * weiri_prefetch_write - ask for the line at p in a writable state,
 * without waiting.  Compilers emit PREFETCHW only when told the target
 * has it, and fall back to a read prefetch, which fetches the line
 * shared (the write that follows must then ask for it again); so on
 * x86-64 weiri_body_setup (every weir_bus_create, before the bus's first
 * publish) checks CPUID 0x80000001 ECX bit 8 into weiri_have_prefetchw.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WEIRI_PREFETCHW 1
extern _Atomic bool weiri_have_prefetchw;

static inline void
weiri_prefetch_write(const void *p)
{
    if (atomic_load_explicit(&weiri_have_prefetchw, memory_order_relaxed))
        __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
}
#elif defined(__GNUC__) || defined(__clang__)
static inline void
weiri_prefetch_write(const void *p)
{
    __builtin_prefetch(p, 1, 3);
}
#else
static inline void
weiri_prefetch_write(const void *p)
{
    (void)p;
}
#endif

/* weiri_body_setup - learn what this CPU can do; once per bus, any thread. */
void weiri_body_setup(void);

/*
 * weiri_body_release - drop n holders; the last one recycles or frees it.
 * Nothing for a body in an inbox's slot.
 */
void weiri_body_release(weiri_body *b, uint32_t n);

/* weiri_body_pool_drain - free every body left in pool (at bus destroy). */
void weiri_body_pool_drain(weir_mpmc *pool);

#endif /* WEIR_MSG_INTERNAL_H */
