/* SPDX-License-Identifier: MIT */
/*
 * bench/rings.c - the C side of the ring benchmark: weir's rings,
 * Concurrency Kit's ck_ring, and the floor every round trip is compared
 * with.  Usage: rings IMPL CASE COUNT (see harness.h); bench/run drives it.
 * Built with -DBENCH_NO_CK where ck_ring.h is not available.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <weir/ring.h>

#ifndef BENCH_NO_CK
#include <ck_ring.h>
#endif

#include "harness.h"

#define ALL_SPSC (BENCH_CASE_BIT(BENCH_SPSC) | BENCH_CASE_BIT(BENCH_BURST) \
                  | BENCH_CASE_BIT(BENCH_RTT))
#define ALL_MPMC (BENCH_CASE_BIT(BENCH_MPMC1) | BENCH_CASE_BIT(BENCH_MPMC2))

/* Rings start on a cache line of their own, as a program would place them. */
static void *
alloc_line(size_t size)
{
    return aligned_alloc(64, (size + 63) & ~(size_t)63);
}

/* --- weir ------------------------------------------------------------- */

static void *
wspsc_create(size_t capacity, void *peer)
{
    weir_spsc *r = alloc_line(sizeof(*r));
    (void)peer;
    if (r != NULL && weir_spsc_init(r, capacity) != 0)
        free(r), r = NULL;
    return r;
}

static void
wspsc_destroy(void *r)
{
    weir_spsc_destroy(r);
    free(r);
}

static int
wspsc_push(void *r, void *item)
{
    return weir_spsc_push(r, item) == 0;
}

static int
wspsc_pop(void *r, void **item)
{
    return weir_spsc_pop(r, item) == 0;
}

static size_t
wspsc_push_burst(void *r, void *const *items, size_t n)
{
    return weir_spsc_push_burst(r, items, n);
}

static size_t
wspsc_pop_burst(void *r, void **items, size_t n)
{
    return weir_spsc_pop_burst(r, items, n);
}

BENCH_THREAD static void *
wspsc_thread(void *w)
{
    return bench_role(w, wspsc_push, wspsc_pop, wspsc_push_burst,
                      wspsc_pop_burst);
}

static void *
wmpmc_create(size_t capacity, void *peer)
{
    weir_mpmc *r = alloc_line(sizeof(*r));
    (void)peer;
    if (r != NULL && weir_mpmc_init(r, capacity) != 0)
        free(r), r = NULL;
    return r;
}

static void
wmpmc_destroy(void *r)
{
    weir_mpmc_destroy(r);
    free(r);
}

static int
wmpmc_push(void *r, void *item)
{
    return weir_mpmc_push(r, item) == 0;
}

static int
wmpmc_pop(void *r, void **item)
{
    return weir_mpmc_pop(r, item) == 0;
}

BENCH_THREAD static void *
wmpmc_thread(void *w)
{
    return bench_role(w, wmpmc_push, wmpmc_pop, NULL, NULL);
}

/* --- Concurrency Kit -------------------------------------------------- */

#ifndef BENCH_NO_CK
/* ck keeps the ring and its slots apart; one allocation holds both. */
struct ck_pair {
    ck_ring_t ring;
    ck_ring_buffer_t *slots;
};

static void *
ck_create(size_t capacity, void *peer)
{
    struct ck_pair *p = alloc_line(sizeof(*p));
    (void)peer;
    if (p == NULL)
        return NULL;
    p->slots = alloc_line(capacity * sizeof(ck_ring_buffer_t));
    if (p->slots == NULL)
        free(p), p = NULL;
    else
        ck_ring_init(&p->ring, (unsigned)capacity);
    return p;
}

static void
ck_destroy(void *r)
{
    free(((struct ck_pair *)r)->slots);
    free(r);
}

static int
ck_spsc_push(void *r, void *item)
{
    struct ck_pair *p = r;
    return ck_ring_enqueue_spsc(&p->ring, p->slots, item);
}

static int
ck_spsc_pop(void *r, void **item)
{
    struct ck_pair *p = r;
    return ck_ring_dequeue_spsc(&p->ring, p->slots, item);
}

BENCH_THREAD static void *
ck_spsc_thread(void *w)
{
    return bench_role(w, ck_spsc_push, ck_spsc_pop, NULL, NULL);
}

static int
ck_mpmc_push(void *r, void *item)
{
    struct ck_pair *p = r;
    return ck_ring_enqueue_mpmc(&p->ring, p->slots, item);
}

static int
ck_mpmc_pop(void *r, void **item)
{
    struct ck_pair *p = r;
    return ck_ring_dequeue_mpmc(&p->ring, p->slots, item);
}

BENCH_THREAD static void *
ck_mpmc_thread(void *w)
{
    return bench_role(w, ck_mpmc_push, ck_mpmc_pop, NULL, NULL);
}
#endif

/* --- the floor -------------------------------------------------------- */

/*
 * The least any cross-thread round trip can cost: one atomic on one cache
 * line, written by each thread in turn.  It runs through the same ping and
 * pong loops as the rings, as a ring of one item: both directions share
 * the line, and the low bit of the stored word says which way the value
 * travels, so each side waits for the other's store, as it would wait for
 * k + 1 after storing k.
 */
struct floor_line {
    alignas(64) atomic_uint_fast64_t word; /* item << 1 | direction */
};

struct floor_end {
    struct floor_line *line;
    uint64_t dir; /* 0: ping to pong, 1: pong to ping */
};

static void *
floor_create(size_t capacity, void *peer)
{
    struct floor_end *e = malloc(sizeof(*e));
    (void)capacity;
    if (e == NULL)
        return NULL;
    e->dir = peer != NULL;
    e->line = peer != NULL ? ((struct floor_end *)peer)->line
                           : alloc_line(sizeof(struct floor_line));
    if (e->line == NULL)
        free(e), e = NULL;
    else if (peer == NULL) /* nothing for pong until ping stores */
        atomic_init(&e->line->word, 1);
    return e;
}

static void
floor_destroy(void *r)
{
    struct floor_end *e = r;
    if (e->dir == 0)
        free(e->line);
    free(e);
}

static int
floor_push(void *r, void *item)
{
    struct floor_end *e = r;
    /* Release pairs with floor_pop's acquire, as a ring's push would. */
    atomic_store_explicit(&e->line->word, (uintptr_t)item << 1 | e->dir,
                          memory_order_release);
    return 1;
}

static int
floor_pop(void *r, void **item)
{
    struct floor_end *e = r;
    uint64_t w = atomic_load_explicit(&e->line->word, memory_order_acquire);
    if ((w & 1) != e->dir)
        return 0;
    *item = (void *)(uintptr_t)(w >> 1);
    return 1;
}

BENCH_THREAD static void *
floor_thread(void *w)
{
    return bench_role(w, floor_push, floor_pop, NULL, NULL);
}

static const struct bench_impl impls[] = {
    { "floor", BENCH_CASE_BIT(BENCH_RTT), floor_create, floor_destroy,
      floor_thread },
    { "weir-spsc", ALL_SPSC, wspsc_create, wspsc_destroy, wspsc_thread },
    { "weir-mpmc", ALL_MPMC, wmpmc_create, wmpmc_destroy, wmpmc_thread },
#ifndef BENCH_NO_CK
    { "ck-spsc", BENCH_CASE_BIT(BENCH_SPSC) | BENCH_CASE_BIT(BENCH_RTT),
      ck_create, ck_destroy, ck_spsc_thread },
    { "ck-mpmc", ALL_MPMC, ck_create, ck_destroy, ck_mpmc_thread },
#endif
};

int
main(int argc, char **argv)
{
    return bench_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]));
}
