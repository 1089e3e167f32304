/* SPDX-License-Identifier: MIT */
/*
 * test_bad_input_core.c - tables of bad input for every public call
 * outside the bus (test_bad_input.c has the bus's): the two rings, the
 * queue, the limiter, the dedup table, weir_strerror, weir_version,
 * weir_set_allocator and the message accessors.  NULL for every
 * pointer; zero, negative and huge sizes and counts; every bad timeout;
 * rates and bursts that are NaN, infinite, negative, zero or huge; keys
 * at and past WEIR_KEY_MAX; calls on closed, destroyed and never-made
 * objects.  Each call must return its documented code, crash nothing and
 * leave the object as it was: a refused call is followed by a check of
 * the object's size and contents, or of what it would do next.
 *
 * The whole file runs under an allocator that refuses any block over
 * ALLOC_CAP and counts live blocks, so that "huge" sizes fail the same
 * way on every machine and under every sanitizer (ASan aborts on a
 * request of terabytes instead of returning NULL), and so that a refused
 * create can be shown to leave no block behind.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/support.h"
#include "weir.h"

/* ---- rows tried, per function ------------------------------------------ */

/*
 * How many bad (and boundary) inputs each public function was given, so
 * that the run says what it covered.  Functions named by family and
 * suffix, since the ring tables run once per family.
 */
typedef struct tally_entry {
    char fn[40];
    unsigned long n;
} tally_entry;

static tally_entry tally_tab[64];
static size_t tally_len;

static void
tried2(const char *family, const char *fn)
{
    char name[40];
    snprintf(name, sizeof(name), "%s%s", family, fn);
    for (size_t i = 0; i < tally_len; i++) {
        if (strcmp(tally_tab[i].fn, name) == 0) {
            tally_tab[i].n++;
            return;
        }
    }
    assert_true(tally_len < sizeof(tally_tab) / sizeof(tally_tab[0]));
    snprintf(tally_tab[tally_len].fn, sizeof(tally_tab[0].fn), "%s", name);
    tally_tab[tally_len++].n = 1;
}

static void
tried(const char *fn)
{
    tried2("", fn);
}

/* ---- a capped, counting allocator --------------------------------------- */

/*
 * 1 GiB: far above anything a good row allocates, far below what the
 * "huge" rows ask for.
 */
#define ALLOC_CAP ((size_t)1 << 30)

typedef struct capped {
    _Atomic long live;      /* blocks handed out and not yet freed */
    _Atomic long made;      /* blocks asked for, refused ones included */
    _Atomic int fail_next;  /* refuse the next request, whatever its size */
} capped;

static capped cap_state;

static bool
cap_refuses(size_t size, void *ctx)
{
    capped *c = ctx;
    atomic_fetch_add(&c->made, 1);
    return atomic_exchange(&c->fail_next, 0) != 0 || size > ALLOC_CAP;
}

static void *
cap_malloc(size_t size, void *ctx)
{
    if (cap_refuses(size, ctx))
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&((capped *)ctx)->live, 1);
    return p;
}

static void *
cap_realloc(void *p, size_t size, void *ctx)
{
    if (cap_refuses(size, ctx))
        return NULL;
    void *q = realloc(p, size);
    if (q != NULL && p == NULL)
        atomic_fetch_add(&((capped *)ctx)->live, 1);
    return q;
}

static void
cap_free(void *p, void *ctx)
{
    if (p != NULL)
        atomic_fetch_sub(&((capped *)ctx)->live, 1);
    free(p);
}

static void *
cap_aligned(size_t alignment, size_t size, void *ctx)
{
    if (cap_refuses(size, ctx))
        return NULL;
    void *p = aligned_alloc(alignment, size);
    if (p != NULL)
        atomic_fetch_add(&((capped *)ctx)->live, 1);
    return p;
}

static const weir_allocator capped_allocator = {
    cap_malloc, cap_realloc, cap_free, cap_aligned, &cap_state
};

static long
live_blocks(void)
{
    return atomic_load(&cap_state.live);
}

/* The allocator goes in before any other weir call, as common.h asks. */
static int
group_setup(void **state)
{
    ts_watchdog_group(state);
    return weir_set_allocator(&capped_allocator);
}

/* Prints the rows tried; fails the group if any block was not freed. */
static int
group_teardown(void **state)
{
    (void)state;
    unsigned long total = 0;
    for (size_t i = 0; i < tally_len; i++) {
        print_message("bad inputs tried: %-28s %4lu\n", tally_tab[i].fn,
                      tally_tab[i].n);
        total += tally_tab[i].n;
    }
    print_message("bad inputs tried: %lu in all, over %zu functions\n",
                  total, tally_len);
    long live = live_blocks();
    if (weir_set_allocator(NULL) != 0 || live != 0) {
        print_error("%ld blocks never freed\n", live);
        return -1;
    }
    return 0;
}

/* ---- timeouts ------------------------------------------------------------ */

/* Below WEIR_NOWAIT, nothing means anything (common.h). */
static const int64_t bad_timeouts[] = {
    WEIR_NOWAIT - 1, -3, -100, -WEIR_SEC, INT64_MIN + 1, INT64_MIN,
};
#define N_BAD_TIMEOUTS (sizeof(bad_timeouts) / sizeof(bad_timeouts[0]))

/* ---- rings --------------------------------------------------------------- */

/*
 * The two families behind one set of pointers, so that each table runs
 * on both: ring.h promises them the same answers to bad input.
 */
typedef struct ring_ops {
    const char *family;   /* "weir_spsc" or "weir_mpmc" */
    void *ring;           /* static storage of the family's struct */
    size_t bytes;         /* its size */
    int (*init)(void *r, size_t capacity);
    void (*destroy)(void *r);
    int (*push)(void *r, void *item);
    int (*pop)(void *r, void **item);
    size_t (*push_burst)(void *r, void *const *items, size_t n);
    size_t (*pop_burst)(void *r, void **items, size_t n);
    size_t (*size)(const void *r);
    size_t (*capacity)(const void *r);
} ring_ops;

static weir_spsc spsc_ring;
static weir_mpmc mpmc_ring;

static int sp_init(void *r, size_t c) { return weir_spsc_init(r, c); }
static void sp_destroy(void *r) { weir_spsc_destroy(r); }
static int sp_push(void *r, void *x) { return weir_spsc_push(r, x); }
static int sp_pop(void *r, void **x) { return weir_spsc_pop(r, x); }
static size_t
sp_push_burst(void *r, void *const *x, size_t n)
{
    return weir_spsc_push_burst(r, x, n);
}
static size_t
sp_pop_burst(void *r, void **x, size_t n)
{
    return weir_spsc_pop_burst(r, x, n);
}
static size_t sp_size(const void *r) { return weir_spsc_size(r); }
static size_t sp_capacity(const void *r) { return weir_spsc_capacity(r); }

static int mp_init(void *r, size_t c) { return weir_mpmc_init(r, c); }
static void mp_destroy(void *r) { weir_mpmc_destroy(r); }
static int mp_push(void *r, void *x) { return weir_mpmc_push(r, x); }
static int mp_pop(void *r, void **x) { return weir_mpmc_pop(r, x); }
static size_t
mp_push_burst(void *r, void *const *x, size_t n)
{
    return weir_mpmc_push_burst(r, x, n);
}
static size_t
mp_pop_burst(void *r, void **x, size_t n)
{
    return weir_mpmc_pop_burst(r, x, n);
}
static size_t mp_size(const void *r) { return weir_mpmc_size(r); }
static size_t mp_capacity(const void *r) { return weir_mpmc_capacity(r); }

static const ring_ops ring_families[] = {
    { "weir_spsc", &spsc_ring, sizeof(spsc_ring), sp_init, sp_destroy,
      sp_push, sp_pop, sp_push_burst, sp_pop_burst, sp_size, sp_capacity },
    { "weir_mpmc", &mpmc_ring, sizeof(mpmc_ring), mp_init, mp_destroy,
      mp_push, mp_pop, mp_push_burst, mp_pop_burst, mp_size, mp_capacity },
};
#define N_FAMILIES (sizeof(ring_families) / sizeof(ring_families[0]))

/*
 * A ring that holds no slots (init failed, destroyed) answers as ring.h
 * says: push and pop WEIR_EINVAL, the bursts 0, size and capacity 0; a
 * destroy does nothing, and init may be called again.
 */
static void
assert_no_slots(const ring_ops *o, const char *what)
{
    void *r = o->ring, *in[4] = { NULL, NULL, NULL, NULL };
    void *out = (void *)&out;
    void *outs[4] = { NULL, NULL, NULL, NULL };
    int rc;
    if ((rc = o->push(r, in[0])) != WEIR_EINVAL)
        fail_msg("%s %s: push on no slots gave %d", o->family, what, rc);
    if ((rc = o->pop(r, &out)) != WEIR_EINVAL)
        fail_msg("%s %s: pop on no slots gave %d", o->family, what, rc);
    assert_ptr_equal(out, (void *)&out);
    assert_int_equal(o->push_burst(r, in, 4), 0);
    assert_int_equal(o->pop_burst(r, outs, 4), 0);
    assert_int_equal(o->push_burst(r, in, SIZE_MAX), 0);
    assert_int_equal(o->pop_burst(r, outs, SIZE_MAX), 0);
    assert_int_equal(o->size(r), 0);
    assert_int_equal(o->capacity(r), 0);
    o->destroy(r);
    o->destroy(r);
    assert_int_equal(o->capacity(r), 0);
    /* And it can be made again: nothing of the failure lingers. */
    assert_int_equal(o->init(r, 4), 0);
    assert_int_equal(o->capacity(r), 4);
    assert_int_equal(o->push(r, in[0]), 0);
    assert_int_equal(o->pop(r, &out), 0);
    o->destroy(r);
}

typedef struct ring_init_row {
    const char *what;
    size_t capacity;
    int rc;
    size_t rounded;   /* capacity after rounding, when rc is 0 */
} ring_init_row;

/* Limit of ring.h: a capacity above SIZE_MAX / 8 + 1 is WEIR_EINVAL. */
#define RING_MAX_CAP ((SIZE_MAX >> 3) + 1)

static const ring_init_row ring_init_rows[] = {
    { "capacity 0", 0, WEIR_EINVAL, 0 },
    { "capacity 1", 1, 0, 1 },
    { "capacity 5", 5, 0, 8 },
    { "capacity 8", 8, 0, 8 },
    { "capacity 9", 9, 0, 16 },
    /* Taken by the check, refused by the (capped) allocator. */
    { "capacity 2^30 + 1", ((size_t)1 << 30) + 1, WEIR_ENOMEM, 0 },
    { "capacity 2^40", (size_t)1 << 40, WEIR_ENOMEM, 0 },
    { "capacity max - 1", RING_MAX_CAP - 1, WEIR_ENOMEM, 0 },
    { "capacity max", RING_MAX_CAP, WEIR_ENOMEM, 0 },
    { "capacity max + 1", RING_MAX_CAP + 1, WEIR_EINVAL, 0 },
    { "capacity 2^62", (size_t)1 << 62, WEIR_EINVAL, 0 },
    { "capacity SIZE_MAX / 2", SIZE_MAX / 2, WEIR_EINVAL, 0 },
    { "capacity 2^63", SIZE_MAX / 2 + 1, WEIR_EINVAL, 0 },
    { "capacity SIZE_MAX - 1", SIZE_MAX - 1, WEIR_EINVAL, 0 },
    { "capacity SIZE_MAX", SIZE_MAX, WEIR_EINVAL, 0 },
};

/*
 * Each capacity, given to a ring struct full of garbage (init must not
 * read what was there): the documented code; on failure no block is
 * left and the ring holds no slots, on success it has the rounded
 * capacity.  NULL is refused whatever the capacity.
 */
static void
test_ring_init_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const ring_ops *o = &ring_families[f];
        for (size_t i = 0;
             i < sizeof(ring_init_rows) / sizeof(ring_init_rows[0]); i++) {
            const ring_init_row *row = &ring_init_rows[i];
            tried2(o->family, "_init");
            if (o->init(NULL, row->capacity) != WEIR_EINVAL)
                fail_msg("%s_init(NULL, %s) not refused", o->family,
                         row->what);
            tried2(o->family, "_init");
            memset(o->ring, 0xa5, o->bytes);
            long before = live_blocks();
            int rc = o->init(o->ring, row->capacity);
            if (rc != row->rc)
                fail_msg("%s_init %s: %d, want %d", o->family, row->what, rc,
                         row->rc);
            if (rc != 0) {
                assert_int_equal(live_blocks(), before);
                assert_no_slots(o, row->what);
                continue;
            }
            assert_int_equal(o->capacity(o->ring), row->rounded);
            assert_int_equal(o->size(o->ring), 0);
            o->destroy(o->ring);
            assert_int_equal(live_blocks(), before);
        }
    }
    ts_watchdog_disarm();
}

/*
 * The lifecycle calls on rings that are not live: a zeroed ring never
 * initialised (destroy and init only, ring.h), a destroyed one and one
 * destroyed twice (everything answers "no slots"), NULL everywhere.
 */
static void
test_ring_lifecycle_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    int x = 0;
    void *items[4] = { &x, &x, &x, &x }, *out = &x;
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const ring_ops *o = &ring_families[f];
        /* Zeroed, never initialised: destroy is harmless, twice. */
        memset(o->ring, 0, o->bytes);
        o->destroy(o->ring);
        tried2(o->family, "_destroy");
        o->destroy(o->ring);
        tried2(o->family, "_destroy");
        assert_no_slots(o, "zeroed then destroyed");
        /* Zeroed, then initialised at once. */
        memset(o->ring, 0, o->bytes);
        assert_int_equal(o->init(o->ring, 2), 0);
        tried2(o->family, "_init");
        o->destroy(o->ring);
        /* Destroyed with items inside, which stay the caller's. */
        assert_int_equal(o->init(o->ring, 8), 0);
        assert_int_equal(o->push_burst(o->ring, items, 4), 4);
        o->destroy(o->ring);
        tried2(o->family, "_destroy");
        assert_no_slots(o, "destroyed with items");
        tried2(o->family, "_push");
        tried2(o->family, "_pop");
        tried2(o->family, "_push_burst");
        tried2(o->family, "_pop_burst");
        tried2(o->family, "_size");
        tried2(o->family, "_capacity");
        /* NULL for the ring in every call. */
        o->destroy(NULL);
        tried2(o->family, "_destroy");
        assert_int_equal(o->size(NULL), 0);
        tried2(o->family, "_size");
        assert_int_equal(o->capacity(NULL), 0);
        tried2(o->family, "_capacity");
        assert_int_equal(o->push(NULL, &x), WEIR_EINVAL);
        tried2(o->family, "_push");
        assert_int_equal(o->pop(NULL, &out), WEIR_EINVAL);
        tried2(o->family, "_pop");
        assert_int_equal(o->pop(NULL, NULL), WEIR_EINVAL);
        tried2(o->family, "_pop");
        assert_ptr_equal(out, &x);
        assert_int_equal(o->push_burst(NULL, items, 4), 0);
        tried2(o->family, "_push_burst");
        assert_int_equal(o->pop_burst(NULL, items, 4), 0);
        tried2(o->family, "_pop_burst");
    }
    ts_watchdog_disarm();
}

/* ---- ring calls on a live ring ------------------------------------------ */

enum op { OP_PUSH, OP_POP, OP_PUSH_BURST, OP_POP_BURST, OP_SIZE,
          OP_CAPACITY };

static const char *const op_suffix[] = {
    "_push", "_pop", "_push_burst", "_pop_burst", "_size", "_capacity",
};

/* Symbolic expectations, for rows that run at several fills. */
#define EXP_ROOM (LONG_MIN + 1)  /* capacity - items held */
#define EXP_SIZE (LONG_MIN + 2)  /* items held */
#define EXP_CAP  (LONG_MIN + 3)  /* capacity */

#define FILL_FULL ((size_t)-1)

typedef struct ring_row {
    const char *what;
    enum op op;
    size_t fill;       /* items in the ring before the call */
    bool null_ring;    /* pass NULL for the ring */
    bool null_arg;     /* pass NULL for the item (push) or the array */
    size_t n;          /* the bursts' count */
    long expect;       /* return value, or one of EXP_* */
} ring_row;

#define RING_CAP 8

static const ring_row ring_rows[] = {
    { "push, NULL ring", OP_PUSH, 3, true, false, 0, WEIR_EINVAL },
    { "push, NULL ring, full", OP_PUSH, FILL_FULL, true, false, 0,
      WEIR_EINVAL },
    { "push NULL: an item", OP_PUSH, 3, false, true, 0, 0 },
    { "push NULL into empty", OP_PUSH, 0, false, true, 0, 0 },
    { "push, full", OP_PUSH, FILL_FULL, false, false, 0, WEIR_EAGAIN },
    { "push NULL, full", OP_PUSH, FILL_FULL, false, true, 0, WEIR_EAGAIN },
    { "pop, NULL ring", OP_POP, 3, true, false, 0, WEIR_EINVAL },
    { "pop, NULL item", OP_POP, 3, false, true, 0, WEIR_EINVAL },
    { "pop, NULL item, full", OP_POP, FILL_FULL, false, true, 0,
      WEIR_EINVAL },
    { "pop, NULL item, empty", OP_POP, 0, false, true, 0, WEIR_EINVAL },
    { "pop, NULL both", OP_POP, 3, true, true, 0, WEIR_EINVAL },
    { "pop, empty", OP_POP, 0, false, false, 0, WEIR_EAGAIN },
    { "push_burst, NULL ring", OP_PUSH_BURST, 3, true, false, 3, 0 },
    { "push_burst, NULL items", OP_PUSH_BURST, 3, false, true, 3, 0 },
    { "push_burst, NULL items, n huge", OP_PUSH_BURST, 0, false, true,
      SIZE_MAX, 0 },
    { "push_burst, n 0", OP_PUSH_BURST, 3, false, false, 0, 0 },
    { "push_burst, n 0, empty", OP_PUSH_BURST, 0, false, false, 0, 0 },
    { "push_burst, full", OP_PUSH_BURST, FILL_FULL, false, false, 1, 0 },
    { "push_burst, full, n huge", OP_PUSH_BURST, FILL_FULL, false, false,
      SIZE_MAX, 0 },
    { "push_burst, n huge, empty", OP_PUSH_BURST, 0, false, false, SIZE_MAX,
      EXP_ROOM },
    { "push_burst, n huge", OP_PUSH_BURST, 3, false, false, SIZE_MAX,
      EXP_ROOM },
    { "push_burst, n capacity + 1", OP_PUSH_BURST, 0, false, false,
      RING_CAP + 1, EXP_ROOM },
    { "push_burst, n 2^63", OP_PUSH_BURST, 5, false, false,
      SIZE_MAX / 2 + 1, EXP_ROOM },
    { "push_burst, n room + 1", OP_PUSH_BURST, 3, false, false,
      RING_CAP - 3 + 1, EXP_ROOM },
    { "pop_burst, NULL ring", OP_POP_BURST, 3, true, false, 3, 0 },
    { "pop_burst, NULL items", OP_POP_BURST, 3, false, true, 3, 0 },
    { "pop_burst, NULL items, n huge", OP_POP_BURST, FILL_FULL, false, true,
      SIZE_MAX, 0 },
    { "pop_burst, n 0", OP_POP_BURST, 3, false, false, 0, 0 },
    { "pop_burst, n 0, full", OP_POP_BURST, FILL_FULL, false, false, 0, 0 },
    { "pop_burst, empty", OP_POP_BURST, 0, false, false, 4, 0 },
    { "pop_burst, empty, n huge", OP_POP_BURST, 0, false, false, SIZE_MAX,
      0 },
    { "pop_burst, n huge", OP_POP_BURST, 3, false, false, SIZE_MAX,
      EXP_SIZE },
    { "pop_burst, n huge, full", OP_POP_BURST, FILL_FULL, false, false,
      SIZE_MAX, EXP_SIZE },
    { "pop_burst, n capacity + 1, full", OP_POP_BURST, FILL_FULL, false,
      false, RING_CAP + 1, EXP_SIZE },
    { "pop_burst, n 2^63", OP_POP_BURST, 5, false, false, SIZE_MAX / 2 + 1,
      EXP_SIZE },
    { "pop_burst, n size + 1", OP_POP_BURST, 3, false, false, 4, EXP_SIZE },
    { "size, NULL", OP_SIZE, 3, true, false, 0, 0 },
    { "size, full", OP_SIZE, FILL_FULL, false, false, 0, EXP_SIZE },
    { "capacity, NULL", OP_CAPACITY, 3, true, false, 0, 0 },
    { "capacity, full", OP_CAPACITY, FILL_FULL, false, false, 0, EXP_CAP },
};

static long
resolve(long expect, size_t cap, size_t fill)
{
    switch (expect) {
    case EXP_ROOM: return (long)(cap - fill);
    case EXP_SIZE: return (long)fill;
    case EXP_CAP:  return (long)cap;
    default:       return expect;
    }
}

/*
 * One row on a ring of RING_CAP whose positions start at rot (so rows
 * run across the wrap and, for SPSC, across its cache-line cycle): the
 * return value, then the ring's contents, item by item, against a model
 * that a refused call leaves as it was.  Pops must write nothing past
 * what they return.
 */
static void
run_ring_row(const ring_ops *o, const ring_row *row, size_t rot)
{
    static int old[RING_CAP], fresh[2 * RING_CAP], spare;
    void *r = o->ring, *model[2 * RING_CAP], *in[2 * RING_CAP];
    void *out[2 * RING_CAP + 1], *one = &spare;
    size_t mn = 0;
    assert_int_equal(o->init(r, RING_CAP), 0);
    for (size_t i = 0; i < rot; i++) {
        void *got;
        assert_int_equal(o->push(r, &spare), 0);
        assert_int_equal(o->pop(r, &got), 0);
    }
    size_t fill = row->fill == FILL_FULL ? RING_CAP : row->fill;
    for (size_t i = 0; i < fill; i++) {
        assert_int_equal(o->push(r, &old[i]), 0);
        model[mn++] = &old[i];
    }
    for (size_t i = 0; i < 2 * RING_CAP; i++)
        in[i] = &fresh[i];
    for (size_t i = 0; i < 2 * RING_CAP + 1; i++)
        out[i] = &spare;
    void *rp = row->null_ring ? NULL : r;
    long got = 0;
    switch (row->op) {
    case OP_PUSH:
        got = o->push(rp, row->null_arg ? NULL : in[0]);
        break;
    case OP_POP:
        got = o->pop(rp, row->null_arg ? NULL : &one);
        break;
    case OP_PUSH_BURST:
        got = (long)o->push_burst(rp, row->null_arg ? NULL : in, row->n);
        break;
    case OP_POP_BURST:
        got = (long)o->pop_burst(rp, row->null_arg ? NULL : out, row->n);
        break;
    case OP_SIZE:
        got = (long)o->size(rp);
        break;
    case OP_CAPACITY:
        got = (long)o->capacity(rp);
        break;
    }
    tried2(o->family, op_suffix[row->op]);
    long want = resolve(row->expect, RING_CAP, fill);
    if (got != want)
        fail_msg("%s %s (from %zu): %ld, want %ld", o->family, row->what, rot,
                 got, want);
    /* What the call did, in the model; what it returned, checked. */
    if (row->op == OP_PUSH && got == 0)
        model[mn++] = row->null_arg ? NULL : in[0];
    if (row->op == OP_PUSH_BURST)
        for (long k = 0; k < got; k++)
            model[mn++] = in[k];
    if (row->op == OP_POP) {
        /* *item is written on success only. */
        assert_ptr_equal(one, got == 0 ? model[0] : (void *)&spare);
        if (got == 0)
            memmove(model, model + 1, --mn * sizeof(model[0]));
    }
    if (row->op == OP_POP_BURST) {
        for (long k = 0; k < got; k++)
            assert_ptr_equal(out[k], model[k]);
        assert_ptr_equal(out[got], &spare);
        mn -= (size_t)got;
        memmove(model, model + got, mn * sizeof(model[0]));
    }
    assert_int_equal(o->size(r), mn);
    for (size_t k = 0; k < mn; k++) {
        void *item = &spare;
        assert_int_equal(o->pop(r, &item), 0);
        if (item != model[k])
            fail_msg("%s %s (from %zu): item %zu is not as it was",
                     o->family, row->what, rot, k);
    }
    assert_int_equal(o->pop(r, &one), WEIR_EAGAIN);
    o->destroy(r);
}

/*
 * Every row, on both families, from position 0 and from positions
 * past the first lap and mid-way through an SPSC line.
 */
static void
test_ring_calls_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const size_t rots[] = { 0, 5, RING_CAP + 3 };
    for (size_t f = 0; f < N_FAMILIES; f++)
        for (size_t i = 0; i < sizeof(ring_rows) / sizeof(ring_rows[0]); i++)
            for (size_t k = 0; k < sizeof(rots) / sizeof(rots[0]); k++)
                run_ring_row(&ring_families[f], &ring_rows[i], rots[k]);
    ts_watchdog_disarm();
}

/* ---- queue: create ------------------------------------------------------- */

typedef struct queue_create_row {
    const char *what;
    size_t capacity;
    int rc;
} queue_create_row;

static const queue_create_row queue_create_rows[] = {
    { "capacity 0", 0, WEIR_EINVAL },
    { "capacity 1", 1, 0 },
    { "capacity 3, not rounded", 3, 0 },
    { "capacity 2^30 + 1", ((size_t)1 << 30) + 1, WEIR_ENOMEM },
    { "capacity 2^40", (size_t)1 << 40, WEIR_ENOMEM },
    { "capacity SIZE_MAX / 8", SIZE_MAX / 8, WEIR_ENOMEM },
    { "capacity SIZE_MAX / 8 + 1", SIZE_MAX / 8 + 1, WEIR_EINVAL },
    { "capacity SIZE_MAX / 8 + 2", SIZE_MAX / 8 + 2, WEIR_EINVAL },
    { "capacity SIZE_MAX / 2", SIZE_MAX / 2, WEIR_EINVAL },
    { "capacity SIZE_MAX", SIZE_MAX, WEIR_EINVAL },
};

/*
 * Each capacity: the documented code; on failure *q is NULL and no
 * block is left; on success the bound is exactly the capacity asked.
 * A NULL q is refused at every capacity.
 */
static void
test_queue_create_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (size_t i = 0;
         i < sizeof(queue_create_rows) / sizeof(queue_create_rows[0]); i++) {
        const queue_create_row *row = &queue_create_rows[i];
        assert_int_equal(weir_queue_create(NULL, row->capacity), WEIR_EINVAL);
        tried("weir_queue_create");
        long before = live_blocks();
        weir_queue *q = (weir_queue *)&q;
        int rc = weir_queue_create(&q, row->capacity);
        tried("weir_queue_create");
        if (rc != row->rc)
            fail_msg("queue %s: %d, want %d", row->what, rc, row->rc);
        if (rc != 0) {
            assert_null(q);
            assert_int_equal(live_blocks(), before);
            continue;
        }
        assert_int_equal(weir_queue_capacity(q), row->capacity);
        /* Exactly capacity items go in, and not one more. */
        int x;
        for (size_t k = 0; k < row->capacity; k++)
            assert_int_equal(weir_queue_push(q, &x, WEIR_NOWAIT), 0);
        assert_int_equal(weir_queue_push(q, &x, WEIR_NOWAIT), WEIR_EAGAIN);
        weir_queue_destroy(q);
        assert_int_equal(live_blocks(), before);
    }
    ts_watchdog_disarm();
}

/* ---- queue: calls in every state ----------------------------------------- */

enum qstate { Q_EMPTY, Q_SOME, Q_FULL, Q_CLOSED_EMPTY, Q_CLOSED_SOME,
              Q_STATES };

static const char *const qstate_name[] = {
    "empty", "one item", "full", "closed, empty", "closed, one item",
};

enum qop { Q_PUSH, Q_POP, Q_PUSH_BURST, Q_POP_BURST, Q_OPS };

static const char *const qop_fn[] = {
    "weir_queue_push", "weir_queue_pop", "weir_queue_push_burst",
    "weir_queue_pop_burst",
};

typedef struct queue_row {
    enum qstate st;
    enum qop op;
    int64_t timeout;
    bool null_q;
    bool null_arg;    /* NULL item (push: a good item) or array */
    size_t n;         /* bursts */
    long expect;      /* return, or EXP_ROOM / EXP_SIZE */
} queue_row;

#define Q_HUGE INT64_MAX

/*
 * The good timeouts in each state.  Blocking ones only where the call
 * ends at once (room, an item, closed) or times out in a millisecond:
 * a huge timeout that must wait is test_queue_huge_timeouts_wait's.
 */
static const queue_row queue_rows[] = {
    /* push */
    { Q_EMPTY, Q_PUSH, WEIR_NOWAIT, false, false, 0, 0 },
    { Q_EMPTY, Q_PUSH, 0, false, true, 0, 0 },
    { Q_SOME, Q_PUSH, WEIR_FOREVER, false, false, 0, 0 },
    { Q_SOME, Q_PUSH, Q_HUGE, false, true, 0, 0 },
    { Q_SOME, Q_PUSH, 1, false, false, 0, 0 },
    { Q_FULL, Q_PUSH, WEIR_NOWAIT, false, false, 0, WEIR_EAGAIN },
    { Q_FULL, Q_PUSH, 0, false, true, 0, WEIR_EAGAIN },
    { Q_FULL, Q_PUSH, 1, false, false, 0, WEIR_ETIMEDOUT },
    { Q_FULL, Q_PUSH, WEIR_MSEC, false, false, 0, WEIR_ETIMEDOUT },
    { Q_CLOSED_EMPTY, Q_PUSH, WEIR_NOWAIT, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_PUSH, 0, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_PUSH, 1, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_PUSH, WEIR_FOREVER, false, true, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_PUSH, Q_HUGE, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_SOME, Q_PUSH, WEIR_FOREVER, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_SOME, Q_PUSH, Q_HUGE, false, false, 0, WEIR_ECLOSED },
    { Q_SOME, Q_PUSH, WEIR_NOWAIT, true, false, 0, WEIR_EINVAL },
    { Q_SOME, Q_PUSH, WEIR_FOREVER, true, false, 0, WEIR_EINVAL },
    { Q_CLOSED_SOME, Q_PUSH, 0, true, false, 0, WEIR_EINVAL },
    /* pop */
    { Q_SOME, Q_POP, WEIR_NOWAIT, false, false, 0, 0 },
    { Q_SOME, Q_POP, 0, false, false, 0, 0 },
    { Q_SOME, Q_POP, 1, false, false, 0, 0 },
    { Q_FULL, Q_POP, WEIR_FOREVER, false, false, 0, 0 },
    { Q_FULL, Q_POP, Q_HUGE, false, false, 0, 0 },
    { Q_EMPTY, Q_POP, WEIR_NOWAIT, false, false, 0, WEIR_EAGAIN },
    { Q_EMPTY, Q_POP, 0, false, false, 0, WEIR_EAGAIN },
    { Q_EMPTY, Q_POP, 1, false, false, 0, WEIR_ETIMEDOUT },
    { Q_EMPTY, Q_POP, WEIR_MSEC, false, false, 0, WEIR_ETIMEDOUT },
    { Q_CLOSED_SOME, Q_POP, WEIR_NOWAIT, false, false, 0, 0 },
    { Q_CLOSED_SOME, Q_POP, WEIR_FOREVER, false, false, 0, 0 },
    { Q_CLOSED_SOME, Q_POP, Q_HUGE, false, false, 0, 0 },
    { Q_CLOSED_EMPTY, Q_POP, WEIR_NOWAIT, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_POP, 0, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_POP, 1, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_POP, WEIR_FOREVER, false, false, 0, WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_POP, Q_HUGE, false, false, 0, WEIR_ECLOSED },
    { Q_SOME, Q_POP, WEIR_NOWAIT, true, false, 0, WEIR_EINVAL },
    { Q_SOME, Q_POP, WEIR_NOWAIT, false, true, 0, WEIR_EINVAL },
    { Q_SOME, Q_POP, WEIR_FOREVER, false, true, 0, WEIR_EINVAL },
    { Q_EMPTY, Q_POP, WEIR_FOREVER, false, true, 0, WEIR_EINVAL },
    { Q_CLOSED_SOME, Q_POP, 0, false, true, 0, WEIR_EINVAL },
    { Q_SOME, Q_POP, 0, true, true, 0, WEIR_EINVAL },
    /* push_burst */
    { Q_EMPTY, Q_PUSH_BURST, WEIR_NOWAIT, false, false, SIZE_MAX, EXP_ROOM },
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, false, false, SIZE_MAX, EXP_ROOM },
    { Q_SOME, Q_PUSH_BURST, Q_HUGE, false, false, SIZE_MAX, EXP_ROOM },
    { Q_SOME, Q_PUSH_BURST, 0, false, false, (size_t)LONG_MAX + 1,
      EXP_ROOM },
    { Q_EMPTY, Q_PUSH_BURST, WEIR_FOREVER, false, false, 1, 1 },
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, false, false, 0, 0 },
    { Q_FULL, Q_PUSH_BURST, WEIR_FOREVER, false, false, 0, 0 },
    { Q_CLOSED_SOME, Q_PUSH_BURST, WEIR_FOREVER, false, false, 0, 0 },
    { Q_FULL, Q_PUSH_BURST, WEIR_NOWAIT, false, false, 1, WEIR_EAGAIN },
    { Q_FULL, Q_PUSH_BURST, 0, false, false, SIZE_MAX, WEIR_EAGAIN },
    { Q_FULL, Q_PUSH_BURST, 1, false, false, SIZE_MAX, WEIR_ETIMEDOUT },
    { Q_CLOSED_EMPTY, Q_PUSH_BURST, WEIR_NOWAIT, false, false, 2,
      WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_PUSH_BURST, Q_HUGE, false, false, SIZE_MAX,
      WEIR_ECLOSED },
    { Q_CLOSED_SOME, Q_PUSH_BURST, WEIR_FOREVER, false, false, 1,
      WEIR_ECLOSED },
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, true, false, 1, WEIR_EINVAL },
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, false, true, 1, WEIR_EINVAL },
    { Q_SOME, Q_PUSH_BURST, WEIR_FOREVER, false, true, SIZE_MAX,
      WEIR_EINVAL },
    /* A NULL array is refused before the count is looked at. */
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, false, true, 0, WEIR_EINVAL },
    { Q_SOME, Q_PUSH_BURST, WEIR_NOWAIT, true, false, 0, WEIR_EINVAL },
    /* pop_burst */
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, false, false, SIZE_MAX, EXP_SIZE },
    { Q_FULL, Q_POP_BURST, WEIR_NOWAIT, false, false, SIZE_MAX, EXP_SIZE },
    { Q_FULL, Q_POP_BURST, Q_HUGE, false, false, SIZE_MAX, EXP_SIZE },
    { Q_FULL, Q_POP_BURST, 0, false, false, (size_t)LONG_MAX + 1,
      EXP_SIZE },
    { Q_CLOSED_SOME, Q_POP_BURST, WEIR_FOREVER, false, false, SIZE_MAX,
      EXP_SIZE },
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, false, false, 0, 0 },
    { Q_EMPTY, Q_POP_BURST, WEIR_FOREVER, false, false, 0, 0 },
    { Q_CLOSED_EMPTY, Q_POP_BURST, WEIR_FOREVER, false, false, 0, 0 },
    { Q_EMPTY, Q_POP_BURST, WEIR_NOWAIT, false, false, 1, WEIR_EAGAIN },
    { Q_EMPTY, Q_POP_BURST, 0, false, false, SIZE_MAX, WEIR_EAGAIN },
    { Q_EMPTY, Q_POP_BURST, 1, false, false, SIZE_MAX, WEIR_ETIMEDOUT },
    { Q_CLOSED_EMPTY, Q_POP_BURST, WEIR_NOWAIT, false, false, 2,
      WEIR_ECLOSED },
    { Q_CLOSED_EMPTY, Q_POP_BURST, Q_HUGE, false, false, SIZE_MAX,
      WEIR_ECLOSED },
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, true, false, 1, WEIR_EINVAL },
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, false, true, 1, WEIR_EINVAL },
    { Q_FULL, Q_POP_BURST, WEIR_FOREVER, false, true, SIZE_MAX,
      WEIR_EINVAL },
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, false, true, 0, WEIR_EINVAL },
    { Q_SOME, Q_POP_BURST, WEIR_NOWAIT, true, false, 0, WEIR_EINVAL },
};

/*
 * One row on a queue of capacity cap whose positions start at rot:
 * the return value; *item and the array written only as far as the
 * call says; closed or not, as before; then the contents, in order,
 * against a model the refused call left alone, ending with the code a
 * drained queue gives (WEIR_EAGAIN open, WEIR_ECLOSED closed).
 */
static void
run_queue_row(const queue_row *row, size_t cap, size_t rot)
{
    static int old[8], fresh[8], spare;
    void *model[16], *in[8], *out[9], *one = &spare;
    size_t mn = 0;
    weir_queue *q;
    assert_int_equal(weir_queue_create(&q, cap), 0);
    for (size_t i = 0; i < rot; i++) {
        void *got;
        assert_int_equal(weir_queue_push(q, &spare, WEIR_NOWAIT), 0);
        assert_int_equal(weir_queue_pop(q, &got, WEIR_NOWAIT), 0);
    }
    size_t fill = row->st == Q_FULL ? cap
                : row->st == Q_SOME || row->st == Q_CLOSED_SOME ? 1 : 0;
    bool closed = row->st == Q_CLOSED_EMPTY || row->st == Q_CLOSED_SOME;
    for (size_t i = 0; i < fill; i++) {
        assert_int_equal(weir_queue_push(q, &old[i], WEIR_NOWAIT), 0);
        model[mn++] = &old[i];
    }
    if (closed)
        weir_queue_close(q);
    for (size_t i = 0; i < 8; i++)
        in[i] = &fresh[i];
    for (size_t i = 0; i < 9; i++)
        out[i] = &spare;
    weir_queue *qp = row->null_q ? NULL : q;
    long got = 0;
    switch (row->op) {
    case Q_PUSH:
        got = weir_queue_push(qp, row->null_arg ? NULL : in[0], row->timeout);
        break;
    case Q_POP:
        got = weir_queue_pop(qp, row->null_arg ? NULL : &one, row->timeout);
        break;
    case Q_PUSH_BURST:
        got = weir_queue_push_burst(qp, row->null_arg ? NULL : in, row->n,
                                    row->timeout);
        break;
    case Q_POP_BURST:
        got = weir_queue_pop_burst(qp, row->null_arg ? NULL : out, row->n,
                                   row->timeout);
        break;
    case Q_OPS:
        break;
    }
    tried(qop_fn[row->op]);
    long want = resolve(row->expect, cap, fill);
    if (got != want)
        fail_msg("%s, %s, cap %zu, timeout %lld, n %zu%s%s: %ld, want %ld",
                 qop_fn[row->op], qstate_name[row->st], cap,
                 (long long)row->timeout, row->n,
                 row->null_q ? ", NULL queue" : "",
                 row->null_arg ? ", NULL arg" : "", got, want);
    assert_int_equal(weir_queue_is_closed(q), closed);
    if (row->op == Q_PUSH && got == 0)
        model[mn++] = row->null_arg ? NULL : in[0];
    if (row->op == Q_PUSH_BURST)
        for (long k = 0; k < got; k++)
            model[mn++] = in[k];
    if (row->op == Q_POP) {
        assert_ptr_equal(one, got == 0 ? model[0] : (void *)&spare);
        if (got == 0)
            memmove(model, model + 1, --mn * sizeof(model[0]));
    }
    if (row->op == Q_POP_BURST) {
        for (long k = 0; k < got; k++)
            assert_ptr_equal(out[k], model[k]);
        assert_ptr_equal(out[got > 0 ? got : 0], &spare);
        if (got > 0) {
            mn -= (size_t)got;
            memmove(model, model + got, mn * sizeof(model[0]));
        }
    }
    assert_int_equal(weir_queue_size(q), mn);
    assert_int_equal(weir_queue_capacity(q), cap);
    for (size_t k = 0; k < mn; k++) {
        void *item = &spare;
        assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
        assert_ptr_equal(item, model[k]);
    }
    assert_int_equal(weir_queue_pop(q, &one, WEIR_NOWAIT),
                     closed ? WEIR_ECLOSED : WEIR_EAGAIN);
    weir_queue_destroy(q);
}

/*
 * Every good-timeout row, then every bad timeout in every state for
 * every call (WEIR_EINVAL, even on a closed queue: the arguments are
 * checked first), on queues bounded by their ring's slots (2, 4) and
 * by a count (3), from a fresh queue and from one past its first lap.
 */
static void
test_queue_calls_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    static const size_t caps[] = { 2, 3, 4 };
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        for (size_t rot = 0; rot <= 5; rot += 5) {
            for (size_t i = 0; i < sizeof(queue_rows) / sizeof(queue_rows[0]);
                 i++)
                run_queue_row(&queue_rows[i], caps[c], rot);
            for (int st = 0; st < Q_STATES; st++) {
                for (int op = 0; op < Q_OPS; op++) {
                    for (size_t t = 0; t < N_BAD_TIMEOUTS; t++) {
                        for (int nul = 0; nul < 2; nul++) {
                            queue_row row = { (enum qstate)st, (enum qop)op,
                                              bad_timeouts[t], nul != 0,
                                              false, 1, WEIR_EINVAL };
                            run_queue_row(&row, caps[c], rot);
                            /* A burst of 0 is no excuse either. */
                            row.n = 0;
                            if (op >= Q_PUSH_BURST)
                                run_queue_row(&row, caps[c], rot);
                        }
                    }
                }
            }
        }
    }
    ts_watchdog_disarm();
}

/* ---- queue: huge timeouts that must wait --------------------------------- */

typedef struct helper_arg {
    weir_queue *q;
    bool pop;        /* pop one item, else push one */
    int rc;
} helper_arg;

static void *
helper(void *p)
{
    helper_arg *a = p;
    void *item;
    /* Time for the main thread to go to sleep; the result is the same. */
    ts_sleep_ms(5);
    a->rc = a->pop ? weir_queue_pop(a->q, &item, WEIR_SEC)
                   : weir_queue_push(a->q, &a->rc, WEIR_SEC);
    return NULL;
}

/*
 * A timeout so large that "now + timeout" overflows must wait like
 * WEIR_FOREVER, not wrap into the past and time out at once: a push on a
 * full queue and a pop on an empty one, each with such a timeout,
 * complete when another thread makes room or an item.
 */
static void
test_queue_huge_timeouts_wait(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const int64_t huge[] = {
        INT64_MAX, INT64_MAX - 1, INT64_MAX / 2 + 1, (int64_t)1 << 62,
        WEIR_FOREVER,
    };
    int x;
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        for (int pop = 0; pop < 2; pop++) {
            weir_queue *q;
            assert_int_equal(weir_queue_create(&q, 1), 0);
            if (!pop)
                assert_int_equal(weir_queue_push(q, &x, WEIR_NOWAIT), 0);
            helper_arg a = { q, !pop, 1 };
            pthread_t t;
            assert_int_equal(pthread_create(&t, NULL, helper, &a), 0);
            void *item;
            int rc = pop ? weir_queue_pop(q, &item, huge[i])
                         : weir_queue_push(q, &x, huge[i]);
            tried(pop ? "weir_queue_pop" : "weir_queue_push");
            assert_int_equal(pthread_join(t, NULL), 0);
            if (rc != 0)
                fail_msg("%s with timeout %lld: %d", pop ? "pop" : "push",
                         (long long)huge[i], rc);
            assert_int_equal(a.rc, 0);
            weir_queue_destroy(q);
        }
    }
    ts_watchdog_disarm();
}

/* ---- queue: close and the calls around it -------------------------------- */

/*
 * close, is_closed, size, capacity and destroy with NULL; close twice;
 * the answers of a closed queue's size and capacity, which close does
 * not change.
 */
static void
test_queue_close_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_queue_close(NULL);
    tried("weir_queue_close");
    assert_false(weir_queue_is_closed(NULL));
    tried("weir_queue_is_closed");
    assert_int_equal(weir_queue_size(NULL), 0);
    tried("weir_queue_size");
    assert_int_equal(weir_queue_capacity(NULL), 0);
    tried("weir_queue_capacity");
    weir_queue_destroy(NULL);
    tried("weir_queue_destroy");
    weir_queue *q;
    int x[3];
    assert_int_equal(weir_queue_create(&q, 3), 0);
    assert_int_equal(weir_queue_push(q, &x[0], WEIR_NOWAIT), 0);
    assert_int_equal(weir_queue_push(q, &x[1], WEIR_NOWAIT), 0);
    for (int i = 0; i < 3; i++) {
        weir_queue_close(q);
        tried("weir_queue_close");
        assert_true(weir_queue_is_closed(q));
        tried("weir_queue_is_closed");
        assert_int_equal(weir_queue_size(q), 2);
        tried("weir_queue_size");
        assert_int_equal(weir_queue_capacity(q), 3);
        tried("weir_queue_capacity");
    }
    /* Closing again after the queue drained changes nothing either. */
    void *out[3];
    assert_int_equal(weir_queue_pop_burst(q, out, 3, WEIR_NOWAIT), 2);
    assert_ptr_equal(out[0], &x[0]);
    assert_ptr_equal(out[1], &x[1]);
    weir_queue_close(q);
    tried("weir_queue_close");
    assert_int_equal(weir_queue_pop(q, out, WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weir_queue_size(q), 0);
    /* Destroyed with items queued: they stay the caller's. */
    weir_queue_destroy(q);
    assert_int_equal(weir_queue_create(&q, 3), 0);
    assert_int_equal(weir_queue_push(q, &x[2], WEIR_NOWAIT), 0);
    weir_queue_destroy(q);
    tried("weir_queue_destroy");
    ts_watchdog_disarm();
}

/* ---- limiter ------------------------------------------------------------- */

typedef struct rate_row {
    const char *what;
    double rate, burst;
    bool ok;
} rate_row;

/* Filled in at run time: NAN and nextafter are not constant everywhere. */
static rate_row rate_rows[40];
static size_t n_rate_rows;

static void
add_rate(const char *what, double rate, double burst, bool ok)
{
    assert_true(n_rate_rows < sizeof(rate_rows) / sizeof(rate_rows[0]));
    rate_rows[n_rate_rows++] = (rate_row){ what, rate, burst, ok };
}

static void
make_rate_rows(void)
{
    n_rate_rows = 0;
    add_rate("rate NaN", NAN, 1, false);
    add_rate("rate -NaN", -NAN, 1, false);
    add_rate("rate inf", INFINITY, 1, false);
    add_rate("rate -inf", -INFINITY, 1, false);
    add_rate("rate -1", -1, 1, false);
    add_rate("rate -0", -0.0, 1, false);
    add_rate("rate 0", 0, 1, false);
    add_rate("rate -DBL_MAX", -DBL_MAX, 1, false);
    add_rate("rate DBL_MAX", DBL_MAX, 1, false);
    add_rate("rate 2e9", 2e9, 1, false);
    add_rate("rate just above 1e9", nextafter(1e9, INFINITY), 1, false);
    add_rate("rate 1e9", 1e9, 1, true);
    add_rate("rate 0.5", 0.5, 1, true);
    /* An interval of infinity ns: never due again after the burst. */
    add_rate("rate DBL_MIN", DBL_MIN, 1, true);
    add_rate("rate denormal", DBL_TRUE_MIN, 1, true);
    add_rate("burst NaN", 10, NAN, false);
    add_rate("burst inf", 10, INFINITY, false);
    add_rate("burst -inf", 10, -INFINITY, false);
    add_rate("burst 0", 10, 0, false);
    add_rate("burst -0", 10, -0.0, false);
    add_rate("burst -1", 10, -1, false);
    add_rate("burst just below 1", 10, nextafter(1, 0), false);
    add_rate("burst 0.5", 10, 0.5, false);
    add_rate("burst 1", 10, 1, true);
    add_rate("burst 1e18", 10, 1e18, true);
    add_rate("burst DBL_MAX", 10, DBL_MAX, true);
    add_rate("burst DBL_MAX, rate 1e9", 1e9, DBL_MAX, true);
    add_rate("both NaN", NAN, NAN, false);
    add_rate("both 0", 0, 0, false);
}

/* What a limiter on c would do next: the waits for 1 and 3 permits. */
typedef struct limiter_look {
    int64_t now, wait1, wait3;
} limiter_look;

static limiter_look
look(weir_limiter *l, ts_vclock *c)
{
    limiter_look k = { atomic_load(&c->now), weir_limiter_wait_ns(l, 1),
                       weir_limiter_wait_ns(l, 3) };
    return k;
}

static void
assert_same_look(const limiter_look *a, const limiter_look *b,
                 const char *what)
{
    if (a->now != b->now || a->wait1 != b->wait1 || a->wait3 != b->wait3)
        fail_msg("%s changed the limiter: now %lld/%lld, waits %lld/%lld "
                 "and %lld/%lld", what, (long long)a->now, (long long)b->now,
                 (long long)a->wait1, (long long)b->wait1,
                 (long long)a->wait3, (long long)b->wait3);
}

/*
 * Each rate and burst given to init (real clock), init_clock (virtual
 * clock, and NULL clock) and set_rate.  A refused init leaves *l as it
 * was, byte for byte; a refused set_rate leaves the pace as it was; an
 * accepted one gives a limiter whose burst passes at once and whose next
 * permit is then not due at once (or is, for a huge burst).  NULL l is
 * refused with every row.
 */
static void
test_limiter_rate_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    make_rate_rows();
    for (size_t i = 0; i < n_rate_rows; i++) {
        const rate_row *row = &rate_rows[i];
        int want = row->ok ? 0 : WEIR_EINVAL;
        ts_vclock c = { 1000 };
        weir_clock vc = { ts_vclock_now, ts_vclock_sleep_until, &c };
        assert_int_equal(weir_limiter_init(NULL, row->rate, row->burst),
                         WEIR_EINVAL);
        tried("weir_limiter_init");
        assert_int_equal(weir_limiter_init_clock(NULL, row->rate, row->burst,
                                                 &vc), WEIR_EINVAL);
        tried("weir_limiter_init_clock");
        assert_int_equal(weir_limiter_set_rate(NULL, row->rate, row->burst),
                         WEIR_EINVAL);
        tried("weir_limiter_set_rate");
        for (int how = 0; how < 3; how++) {
            weir_limiter l, pattern;
            memset(&l, 0x5a, sizeof(l));
            memset(&pattern, 0x5a, sizeof(pattern));
            int rc = how == 0 ? weir_limiter_init(&l, row->rate, row->burst)
                   : how == 1 ? weir_limiter_init_clock(&l, row->rate,
                                                        row->burst, NULL)
                   : weir_limiter_init_clock(&l, row->rate, row->burst, &vc);
            tried(how == 0 ? "weir_limiter_init" : "weir_limiter_init_clock");
            if (rc != want)
                fail_msg("init (%d) %s: %d, want %d", how, row->what, rc,
                         want);
            if (rc != 0) {
                if (memcmp(&l, &pattern, sizeof(l)) != 0)
                    fail_msg("refused init (%d) %s wrote *l", how, row->what);
                continue;
            }
            /* Idle: the first permit is due at once. */
            assert_int_equal(weir_limiter_wait_ns(&l, 1), 0);
            assert_int_equal(weir_limiter_acquire(&l, 1, WEIR_NOWAIT), 0);
        }
        /* set_rate on a limiter whose burst is spent: 10/s, burst 2. */
        weir_limiter l;
        assert_int_equal(weir_limiter_init_clock(&l, 10, 2, &vc), 0);
        assert_int_equal(weir_limiter_acquire(&l, 2, WEIR_NOWAIT), 0);
        limiter_look before = look(&l, &c);
        int rc = weir_limiter_set_rate(&l, row->rate, row->burst);
        tried("weir_limiter_set_rate");
        if (rc != want)
            fail_msg("set_rate %s: %d, want %d", row->what, rc, want);
        limiter_look after = look(&l, &c);
        if (rc != 0)
            assert_same_look(&before, &after, row->what);
        else if (row->burst < 3)
            /* Two permits are reserved: a third is not due at once. */
            assert_true(after.wait1 > 0);
    }
    ts_watchdog_disarm();
}

static int64_t never_now(void *ctx) { (void)ctx; return 0; }
static void never_sleep(void *ctx, int64_t d) { (void)ctx; (void)d; }

/*
 * A clock with a function missing is refused, *l untouched, with good
 * and bad rates alike; a clock whose ctx is NULL is fine (ctx is the
 * clock's business).
 */
static void
test_limiter_clock_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    const struct {
        const char *what;
        weir_clock clock;
        int rc;
    } rows[] = {
        { "now NULL", { NULL, never_sleep, NULL }, WEIR_EINVAL },
        { "sleep NULL", { never_now, NULL, NULL }, WEIR_EINVAL },
        { "both NULL", { NULL, NULL, NULL }, WEIR_EINVAL },
        { "both NULL, ctx set", { NULL, NULL, (void *)rows }, WEIR_EINVAL },
        { "ctx NULL", { never_now, never_sleep, NULL }, 0 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        for (int bad_rate = 0; bad_rate < 2; bad_rate++) {
            weir_limiter l, pattern;
            memset(&l, 0x5a, sizeof(l));
            memset(&pattern, 0x5a, sizeof(pattern));
            int want = bad_rate ? WEIR_EINVAL : rows[i].rc;
            int rc = weir_limiter_init_clock(&l, bad_rate ? NAN : 10, 1,
                                             &rows[i].clock);
            tried("weir_limiter_init_clock");
            if (rc != want)
                fail_msg("clock %s%s: %d, want %d", rows[i].what,
                         bad_rate ? ", rate NaN" : "", rc, want);
            if (rc != 0 && memcmp(&l, &pattern, sizeof(l)) != 0)
                fail_msg("refused clock %s wrote *l", rows[i].what);
            if (rc == 0)
                assert_int_equal(weir_limiter_acquire(&l, 1, WEIR_NOWAIT), 0);
        }
    }
    ts_watchdog_disarm();
}

typedef struct acquire_row {
    const char *what;
    bool null_l;
    unsigned n;
    int64_t timeout;
    int rc;
} acquire_row;

/*
 * On a virtual clock, 10 permits a second, burst 2, idle: 2 are due at
 * once, a third 100 ms after.
 */
static const acquire_row acquire_rows[] = {
    { "NULL", true, 1, WEIR_NOWAIT, WEIR_EINVAL },
    { "NULL, forever", true, 1, WEIR_FOREVER, WEIR_EINVAL },
    { "NULL, n 0", true, 0, WEIR_NOWAIT, WEIR_EINVAL },
    { "n 0", false, 0, WEIR_NOWAIT, WEIR_EINVAL },
    { "n 0, wait 0", false, 0, 0, WEIR_EINVAL },
    { "n 0, forever", false, 0, WEIR_FOREVER, WEIR_EINVAL },
    { "n 0, huge", false, 0, INT64_MAX, WEIR_EINVAL },
    { "n 3, no wait", false, 3, WEIR_NOWAIT, WEIR_EAGAIN },
    { "n 3, wait 0", false, 3, 0, WEIR_EAGAIN },
    { "n 3, wait 1 ns", false, 3, 1, WEIR_ETIMEDOUT },
    { "n 3, wait a ns short", false, 3, 100 * WEIR_MSEC - 1,
      WEIR_ETIMEDOUT },
    { "n UINT_MAX, no wait", false, UINT_MAX, WEIR_NOWAIT, WEIR_EAGAIN },
    { "n UINT_MAX, wait 0", false, UINT_MAX, 0, WEIR_EAGAIN },
    { "n UINT_MAX, a year", false, UINT_MAX, 365 * 86400 * WEIR_SEC,
      WEIR_ETIMEDOUT },
    { "n 2, no wait", false, 2, WEIR_NOWAIT, 0 },
    { "n 3, wait just enough", false, 3, 100 * WEIR_MSEC, 0 },
    { "n 3, huge", false, 3, INT64_MAX, 0 },
    { "n UINT_MAX, huge", false, UINT_MAX, INT64_MAX, 0 },
    { "n UINT_MAX, forever", false, UINT_MAX, WEIR_FOREVER, 0 },
};

/*
 * Each row, and each bad timeout with good and bad counts: a failure
 * leaves the clock where it was (no sleep) and the limiter's next waits
 * as they were (nothing taken); a success sleeps exactly the wait that
 * wait_ns announced, on the virtual clock.
 */
static void
test_limiter_acquire_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    size_t nrows = sizeof(acquire_rows) / sizeof(acquire_rows[0]);
    static const unsigned counts[] = { 0, 1, 3, UINT_MAX };
    size_t ncounts = sizeof(counts) / sizeof(counts[0]);
    for (size_t i = 0; i < nrows + N_BAD_TIMEOUTS * ncounts; i++) {
        acquire_row row;
        if (i < nrows) {
            row = acquire_rows[i];
        } else {
            size_t b = i - nrows;
            row = (acquire_row){ "bad timeout", false, counts[b % ncounts],
                                 bad_timeouts[b / ncounts], WEIR_EINVAL };
        }
        ts_vclock c = { 5 * WEIR_SEC };
        weir_clock vc = { ts_vclock_now, ts_vclock_sleep_until, &c };
        weir_limiter l;
        assert_int_equal(weir_limiter_init_clock(&l, 10, 2, &vc), 0);
        limiter_look before = look(&l, &c);
        int64_t due = row.n != 0 ? weir_limiter_wait_ns(&l, row.n) : 0;
        int rc = weir_limiter_acquire(row.null_l ? NULL : &l, row.n,
                                      row.timeout);
        tried("weir_limiter_acquire");
        if (rc != row.rc)
            fail_msg("acquire %s (n %u, timeout %lld): %d, want %d", row.what,
                     row.n, (long long)row.timeout, rc, row.rc);
        limiter_look after = look(&l, &c);
        if (rc != 0)
            assert_same_look(&before, &after, row.what);
        else
            assert_int_equal(after.now, before.now + due);
    }
    /* wait_ns: NULL and 0 refused, a huge count answered, nothing taken. */
    ts_vclock c = { 0 };
    weir_clock vc = { ts_vclock_now, ts_vclock_sleep_until, &c };
    weir_limiter l;
    assert_int_equal(weir_limiter_init_clock(&l, 10, 2, &vc), 0);
    limiter_look before = look(&l, &c);
    assert_int_equal(weir_limiter_wait_ns(NULL, 1), WEIR_EINVAL);
    tried("weir_limiter_wait_ns");
    assert_int_equal(weir_limiter_wait_ns(NULL, 0), WEIR_EINVAL);
    tried("weir_limiter_wait_ns");
    assert_int_equal(weir_limiter_wait_ns(&l, 0), WEIR_EINVAL);
    tried("weir_limiter_wait_ns");
    assert_true(weir_limiter_wait_ns(&l, UINT_MAX) > 0);
    tried("weir_limiter_wait_ns");
    limiter_look after = look(&l, &c);
    assert_same_look(&before, &after, "wait_ns");
    ts_watchdog_disarm();
}

/* ---- dedup --------------------------------------------------------------- */

typedef struct dedup_create_row {
    const char *what;
    size_t max_keys;
    int64_t window;
    int rc;
} dedup_create_row;

static const dedup_create_row dedup_create_rows[] = {
    { "window 0", 16, 0, WEIR_EINVAL },
    { "window -1 (WEIR_FOREVER)", 16, WEIR_FOREVER, WEIR_EINVAL },
    { "window WEIR_NOWAIT", 16, WEIR_NOWAIT, WEIR_EINVAL },
    { "window -1 s", 16, -WEIR_SEC, WEIR_EINVAL },
    { "window INT64_MIN", 16, INT64_MIN, WEIR_EINVAL },
    { "window 0, keys 0", 0, 0, WEIR_EINVAL },
    { "keys max + 1", WEIR_DEDUP_MAX_KEYS + 1, WEIR_SEC, WEIR_EINVAL },
    { "keys SIZE_MAX", SIZE_MAX, WEIR_SEC, WEIR_EINVAL },
    { "keys SIZE_MAX / 2 + 1", SIZE_MAX / 2 + 1, WEIR_SEC, WEIR_EINVAL },
    { "keys max + 1, window 0", WEIR_DEDUP_MAX_KEYS + 1, 0, WEIR_EINVAL },
    /* Taken by the check; tens of GiB, refused by the allocator. */
    { "keys max", WEIR_DEDUP_MAX_KEYS, WEIR_SEC, WEIR_ENOMEM },
    { "keys 0 (the default)", 0, WEIR_SEC, 0 },
    { "keys 1", 1, WEIR_SEC, 0 },
    { "window 1 ns", 16, 1, 0 },
    { "window INT64_MAX", 16, INT64_MAX, 0 },
};

/*
 * Each row: the documented code; on failure *d is NULL and no block is
 * left; on success a table that takes a key.  NULL d with every row.
 */
static void
test_dedup_create_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    for (size_t i = 0;
         i < sizeof(dedup_create_rows) / sizeof(dedup_create_rows[0]); i++) {
        const dedup_create_row *row = &dedup_create_rows[i];
        assert_int_equal(weir_dedup_create(NULL, row->max_keys, row->window),
                         WEIR_EINVAL);
        tried("weir_dedup_create");
        long before = live_blocks();
        weir_dedup *d = (weir_dedup *)&d;
        int rc = weir_dedup_create(&d, row->max_keys, row->window);
        tried("weir_dedup_create");
        if (rc != row->rc)
            fail_msg("dedup %s: %d, want %d", row->what, rc, row->rc);
        if (rc != 0) {
            assert_null(d);
            assert_int_equal(live_blocks(), before);
            continue;
        }
        assert_int_equal(weir_dedup_check_and_insert(d, "k", 1), 1);
        weir_dedup_destroy(d);
        assert_int_equal(live_blocks(), before);
    }
    ts_watchdog_disarm();
}

typedef struct key_row {
    const char *what;
    bool null_d, null_key;
    size_t len;
    int rc;       /* first call */
} key_row;

#define BIG_KEY (64 * 1024)

/*
 * dedup.h sets no limit on a key's length, so the bus's WEIR_KEY_MAX
 * and one byte more are both ordinary keys here, distinct from each
 * other; so are the empty key and a 64 KiB one.
 */
static const key_row key_rows[] = {
    { "NULL table", true, false, 1, WEIR_EINVAL },
    { "NULL table and key", true, true, 1, WEIR_EINVAL },
    { "NULL key, len 0", false, true, 0, WEIR_EINVAL },
    { "NULL key, len 1", false, true, 1, WEIR_EINVAL },
    { "NULL key, len WEIR_KEY_MAX", false, true, WEIR_KEY_MAX,
      WEIR_EINVAL },
    { "NULL key, len SIZE_MAX", false, true, SIZE_MAX, WEIR_EINVAL },
    { "empty key", false, false, 0, 1 },
    { "1 byte", false, false, 1, 1 },
    { "WEIR_KEY_MAX bytes", false, false, WEIR_KEY_MAX, 1 },
    { "WEIR_KEY_MAX + 1 bytes", false, false, WEIR_KEY_MAX + 1, 1 },
    { "64 KiB", false, false, BIG_KEY, 1 },
};

/*
 * Each row on one table (so every key must be new to it, not confused
 * with another of a different length): the first call's code; a refused
 * one changes the size, a taken key is then a duplicate.
 */
static void
test_dedup_keys_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static char key[BIG_KEY];
    memset(key, 'k', sizeof(key));
    weir_dedup *d;
    assert_int_equal(weir_dedup_create(&d, 64, 3600 * WEIR_SEC), 0);
    for (size_t i = 0; i < sizeof(key_rows) / sizeof(key_rows[0]); i++) {
        const key_row *row = &key_rows[i];
        size_t before = weir_dedup_size(d);
        int rc = weir_dedup_check_and_insert(row->null_d ? NULL : d,
                                             row->null_key ? NULL : key,
                                             row->len);
        tried("weir_dedup_check_and_insert");
        if (rc != row->rc)
            fail_msg("key %s: %d, want %d", row->what, rc, row->rc);
        if (rc < 0) {
            assert_int_equal(weir_dedup_size(d), before);
            continue;
        }
        assert_int_equal(weir_dedup_size(d), before + 1);
        assert_int_equal(weir_dedup_check_and_insert(d, key, row->len), 0);
        tried("weir_dedup_check_and_insert");
        assert_int_equal(weir_dedup_size(d), before + 1);
    }
    /* Bytes after a NUL count: "a\0b" is not "a". */
    assert_int_equal(weir_dedup_check_and_insert(d, "a\0b", 3), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "a\0c", 3), 1);
    tried("weir_dedup_check_and_insert");
    tried("weir_dedup_check_and_insert");
    tried("weir_dedup_check_and_insert");
    assert_int_equal(weir_dedup_size(NULL), 0);
    tried("weir_dedup_size");
    weir_dedup_destroy(NULL);
    tried("weir_dedup_destroy");
    weir_dedup_destroy(d);
    ts_watchdog_disarm();
}

/*
 * After a failure and after the window: a key whose copy could not be
 * made is WEIR_ENOMEM, not remembered (new next time) and evicts
 * nothing, even from a full table; a key past its window is new again;
 * a full table forgets its oldest key for a new one.
 */
static void
test_dedup_after_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_dedup *d;
    assert_int_equal(weir_dedup_create(&d, 2, 3600 * WEIR_SEC), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 1);
    atomic_store(&cap_state.fail_next, 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "c", 1), WEIR_ENOMEM);
    tried("weir_dedup_check_and_insert");
    assert_int_equal(weir_dedup_size(d), 2);
    /* Neither a nor b was evicted for c: both still duplicates. */
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "b", 1), 0);
    /* A duplicate needs no copy: the failing allocator is not asked. */
    atomic_store(&cap_state.fail_next, 1);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 0);
    tried("weir_dedup_check_and_insert");
    assert_int_equal(atomic_exchange(&cap_state.fail_next, 0), 1);
    /* c was not remembered; now it is, and a (oldest) goes. */
    assert_int_equal(weir_dedup_check_and_insert(d, "c", 1), 1);
    tried("weir_dedup_check_and_insert");
    assert_int_equal(weir_dedup_size(d), 2);
    assert_int_equal(weir_dedup_check_and_insert(d, "a", 1), 1);
    tried("weir_dedup_check_and_insert");
    weir_dedup_destroy(d);
    /* A window of 1 ns has passed by the next call a millisecond on. */
    assert_int_equal(weir_dedup_create(&d, 4, 1), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "k", 1), 1);
    ts_sleep_ms(1);
    assert_int_equal(weir_dedup_size(d), 0);
    assert_int_equal(weir_dedup_check_and_insert(d, "k", 1), 1);
    tried("weir_dedup_check_and_insert");
    weir_dedup_destroy(d);
    ts_watchdog_disarm();
}

/* ---- common: strerror, version, allocator ------------------------------- */

/*
 * Each code has its own string; 0 is "success"; everything that is not
 * a code (positive, below WEIR_ELAST, the extremes) is "unknown error".
 * Never NULL.
 */
static void
test_strerror_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    static const int known[] = {
        WEIR_OK, WEIR_EINVAL, WEIR_ENOMEM, WEIR_EAGAIN, WEIR_ETIMEDOUT,
        WEIR_ECLOSED, WEIR_ENOENT, WEIR_EEXIST, WEIR_EDEADLK, WEIR_EBUSY,
        WEIR_EIO, WEIR_ECORRUPT,
    };
    static const int unknown[] = {
        1, 2, 42, WEIR_ELAST - 1, -12, -100, -4096, INT_MAX, INT_MIN,
        INT_MIN + 1, INT_MAX - 1,
    };
    size_t nk = sizeof(known) / sizeof(known[0]);
    /* The table must cover every code common.h defines. */
    assert_int_equal(nk, (size_t)(1 - WEIR_ELAST));
    assert_string_equal(weir_strerror(0), "success");
    for (size_t i = 0; i < nk; i++) {
        const char *s = weir_strerror(known[i]);
        tried("weir_strerror");
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, weir_strerror(known[j]));
    }
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        const char *s = weir_strerror(unknown[i]);
        tried("weir_strerror");
        assert_non_null(s);
        if (strcmp(s, "unknown error") != 0)
            fail_msg("weir_strerror(%d) = \"%s\"", unknown[i], s);
    }
    /* weir_version: the macros this file was compiled with. */
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", WEIR_VERSION_MAJOR,
             WEIR_VERSION_MINOR, WEIR_VERSION_PATCH);
    assert_non_null(weir_version());
    assert_string_equal(weir_version(), want);
    tried("weir_version");
    ts_watchdog_disarm();
}

static _Atomic long other_calls;

static void *
other_malloc(size_t size, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&other_calls, 1);
    return malloc(size);
}

static void *
other_realloc(void *p, size_t size, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&other_calls, 1);
    return realloc(p, size);
}

static void
other_free(void *p, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&other_calls, 1);
    free(p);
}

static void *
other_aligned(size_t alignment, size_t size, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&other_calls, 1);
    return aligned_alloc(alignment, size);
}

/*
 * Every allocator with at least one function missing (test_alloc.c
 * tries one missing at a time), ctx set or not: WEIR_EINVAL, and the
 * allocator in use stays the one that was: the refused one is never
 * called.  Then the struct is copied, as common.h says: changing it
 * after the call changes nothing.  No weir object is alive here, as
 * weir_set_allocator requires.
 */
static void
test_set_allocator_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    const weir_allocator full = { other_malloc, other_realloc, other_free,
                                  other_aligned, NULL };
    for (unsigned mask = 0; mask < 15; mask++) {
        for (int ctx = 0; ctx < 2; ctx++) {
            weir_allocator a = full;
            a.ctx = ctx ? (void *)&a : NULL;
            if (!(mask & 1))
                a.malloc_fn = NULL;
            if (!(mask & 2))
                a.realloc_fn = NULL;
            if (!(mask & 4))
                a.free_fn = NULL;
            if (!(mask & 8))
                a.aligned_fn = NULL;
            assert_int_equal(weir_set_allocator(&a), WEIR_EINVAL);
            tried("weir_set_allocator");
            long made = atomic_load(&cap_state.made);
            weir_queue *q;
            assert_int_equal(weir_queue_create(&q, 4), 0);
            weir_queue_destroy(q);
            assert_true(atomic_load(&cap_state.made) > made);
            assert_int_equal(atomic_load(&other_calls), 0);
        }
    }
    /* A copy is taken: the caller's struct may change or go. */
    weir_allocator a = full;
    assert_int_equal(weir_set_allocator(&a), 0);
    tried("weir_set_allocator");
    a = capped_allocator;
    a.malloc_fn = NULL;
    weir_queue *q;
    assert_int_equal(weir_queue_create(&q, 4), 0);
    weir_queue_destroy(q);
    assert_true(atomic_load(&other_calls) > 0);
    /* NULL goes back to the C library's, twice over. */
    assert_int_equal(weir_set_allocator(NULL), 0);
    tried("weir_set_allocator");
    assert_int_equal(weir_set_allocator(NULL), 0);
    tried("weir_set_allocator");
    atomic_store(&other_calls, 0);
    long made = atomic_load(&cap_state.made);
    assert_int_equal(weir_queue_create(&q, 4), 0);
    weir_queue_destroy(q);
    assert_int_equal(atomic_load(&other_calls), 0);
    assert_int_equal(atomic_load(&cap_state.made), made);
    /* And the capped one back, for the rest of the file. */
    assert_int_equal(weir_set_allocator(&capped_allocator), 0);
    ts_watchdog_disarm();
}

/* ---- message accessors --------------------------------------------------- */

/* bus.h: "All return 0 or NULL for a NULL msg"; the dead-letter two too. */
static void
test_msg_null_table(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    assert_null(weir_msg_data(NULL));
    tried("weir_msg_data");
    assert_int_equal(weir_msg_size(NULL), 0);
    tried("weir_msg_size");
    assert_null(weir_msg_topic(NULL));
    tried("weir_msg_topic");
    assert_null(weir_msg_key(NULL));
    tried("weir_msg_key");
    assert_int_equal(weir_msg_id(NULL), 0);
    tried("weir_msg_id");
    assert_int_equal(weir_msg_timestamp_ns(NULL), 0);
    tried("weir_msg_timestamp_ns");
    assert_int_equal(weir_msg_attempt(NULL), 0);
    tried("weir_msg_attempt");
    assert_null(weir_msg_origin_topic(NULL));
    tried("weir_msg_origin_topic");
    assert_int_equal(weir_msg_last_error(NULL), 0);
    tried("weir_msg_last_error");
    assert_false(weir_msg_redelivered(NULL));
    tried("weir_msg_redelivered");
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_init_table),
        cmocka_unit_test(test_ring_lifecycle_table),
        cmocka_unit_test(test_ring_calls_table),
        cmocka_unit_test(test_queue_create_table),
        cmocka_unit_test(test_queue_calls_table),
        cmocka_unit_test(test_queue_huge_timeouts_wait),
        cmocka_unit_test(test_queue_close_table),
        cmocka_unit_test(test_limiter_rate_table),
        cmocka_unit_test(test_limiter_clock_table),
        cmocka_unit_test(test_limiter_acquire_table),
        cmocka_unit_test(test_dedup_create_table),
        cmocka_unit_test(test_dedup_keys_table),
        cmocka_unit_test(test_dedup_after_table),
        cmocka_unit_test(test_strerror_table),
        cmocka_unit_test(test_set_allocator_table),
        cmocka_unit_test(test_msg_null_table),
    };
    return cmocka_run_group_tests_name("bad input, core", tests, group_setup,
                                       group_teardown);
}
