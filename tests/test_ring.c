/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c - the SPSC and MPMC rings: edges, errors, wrap-around and
 * multi-threaded exactly-once / per-producer order.
 *
 * The single-threaded cases run against both ring types through a small
 * table of operations, so each property is written once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "support/support.h"
#include "weir.h"

/* ---- one interface over both ring types -------------------------------- */

typedef struct ring_ops {
    const char *name;
    int (*init)(void *r, size_t cap);
    void (*destroy)(void *r);
    int (*push)(void *r, void *item);
    int (*pop)(void *r, void **item);
    size_t (*push_burst)(void *r, void *const *items, size_t n);
    size_t (*pop_burst)(void *r, void **items, size_t n);
    size_t (*size)(const void *r);
    size_t (*capacity)(const void *r);
    /* Move a fresh, empty ring's counters to pos, as if pos items had
     * passed. */
    void (*seek)(void *r, size_t pos);
} ring_ops;

static int spsc_init(void *r, size_t c) { return weir_spsc_init(r, c); }
static void spsc_destroy(void *r) { weir_spsc_destroy(r); }
static int spsc_push(void *r, void *i) { return weir_spsc_push(r, i); }
static int spsc_pop(void *r, void **i) { return weir_spsc_pop(r, i); }

static size_t
spsc_pushb(void *r, void *const *i, size_t n)
{
    return weir_spsc_push_burst(r, i, n);
}

static size_t
spsc_popb(void *r, void **i, size_t n)
{
    return weir_spsc_pop_burst(r, i, n);
}

static size_t spsc_size(const void *r) { return weir_spsc_size(r); }
static size_t spsc_cap(const void *r) { return weir_spsc_capacity(r); }

static void
spsc_seek(void *rp, size_t pos)
{
    weir_spsc *r = rp;
    atomic_store(&r->head, pos);
    atomic_store(&r->tail, pos);
    r->head_cache = pos;
    /*
     * Every line reads "filled through pos": nothing from pos on is in.
     * The cursors stay where init put them: slots are found by walking
     * the lines, not from positions.
     */
    for (struct weir_spsc_line *l = r->lines; l != r->end; l++)
        atomic_store(&l->seq, pos);
}

static int mpmc_init(void *r, size_t c) { return weir_mpmc_init(r, c); }
static void mpmc_destroy(void *r) { weir_mpmc_destroy(r); }
static int mpmc_push(void *r, void *i) { return weir_mpmc_push(r, i); }
static int mpmc_pop(void *r, void **i) { return weir_mpmc_pop(r, i); }

static size_t
mpmc_pushb(void *r, void *const *i, size_t n)
{
    return weir_mpmc_push_burst(r, i, n);
}

static size_t
mpmc_popb(void *r, void **i, size_t n)
{
    return weir_mpmc_pop_burst(r, i, n);
}

static size_t mpmc_size(const void *r) { return weir_mpmc_size(r); }
static size_t mpmc_cap(const void *r) { return weir_mpmc_capacity(r); }

static void
mpmc_seek(void *rp, size_t pos)
{
    weir_mpmc *r = rp;
    atomic_store(&r->head, pos);
    atomic_store(&r->tail, pos);
    /* Slot of position p must read "free for p" for the next lap of pushes. */
    for (size_t i = 0; i <= r->mask; i++)
        atomic_store(&r->slots[(pos + i) & r->mask].seq, 2 * (pos + i));
}

static const ring_ops spsc_ops = {
    "spsc", spsc_init, spsc_destroy, spsc_push, spsc_pop, spsc_pushb,
    spsc_popb, spsc_size, spsc_cap, spsc_seek,
};
static const ring_ops mpmc_ops = {
    "mpmc", mpmc_init, mpmc_destroy, mpmc_push, mpmc_pop, mpmc_pushb,
    mpmc_popb, mpmc_size, mpmc_cap, mpmc_seek,
};

/* Big enough for either ring type, aligned as they are. */
typedef union any_ring {
    weir_spsc spsc;
    weir_mpmc mpmc;
} any_ring;

#define ITEM(i) ((void *)(uintptr_t)(i))

/* ---- single-threaded properties, run per ring type --------------------- */

static void
check_bad_arguments(const ring_ops *o)
{
    any_ring r;
    void *item = NULL;
    void *items[4] = { 0 };
    assert_int_equal(o->init(NULL, 8), WEIR_EINVAL);
    assert_int_equal(o->init(&r, 0), WEIR_EINVAL);
    assert_int_equal(o->capacity(&r), 0); /* a failed init leaves no slots */
    o->destroy(&r);
    assert_int_equal(o->init(&r, SIZE_MAX), WEIR_EINVAL);
    assert_int_equal(o->init(&r, (SIZE_MAX >> 1) + 1), WEIR_EINVAL);
    assert_int_equal(o->init(&r, (SIZE_MAX >> 3) + 2), WEIR_EINVAL);
    /* Rounds fine but n * slot size overflows: memory, not argument. */
    assert_int_equal(o->init(&r, (SIZE_MAX >> 3) + 1), WEIR_ENOMEM);
    o->destroy(&r);

    assert_int_equal(o->push(NULL, item), WEIR_EINVAL);
    assert_int_equal(o->pop(NULL, &item), WEIR_EINVAL);
    assert_int_equal(o->push_burst(NULL, items, 4), 0);
    assert_int_equal(o->pop_burst(NULL, items, 4), 0);
    assert_int_equal(o->size(NULL), 0);
    assert_int_equal(o->capacity(NULL), 0);
    o->destroy(NULL);

    assert_int_equal(o->init(&r, 4), 0);
    assert_int_equal(o->pop(&r, NULL), WEIR_EINVAL);
    assert_int_equal(o->push_burst(&r, NULL, 4), 0);
    assert_int_equal(o->pop_burst(&r, NULL, 4), 0);
    assert_int_equal(o->push_burst(&r, items, 0), 0);
    assert_int_equal(o->size(&r), 0);
    o->destroy(&r);
    o->destroy(&r); /* twice is harmless */
}

static void
check_capacity_rounding(const ring_ops *o)
{
    const size_t asked[] = { 1, 2, 3, 5, 1000, 1024, 1025 };
    const size_t got[] = { 1, 2, 4, 8, 1024, 1024, 2048 };
    for (size_t i = 0; i < sizeof(asked) / sizeof(asked[0]); i++) {
        any_ring r;
        assert_int_equal(o->init(&r, asked[i]), 0);
        assert_int_equal(o->capacity(&r), got[i]);
        o->destroy(&r);
    }
}

static void
check_full_and_empty_edges(const ring_ops *o)
{
    any_ring r;
    void *item = ITEM(99);
    assert_int_equal(o->init(&r, 8), 0);
    assert_int_equal(o->pop(&r, &item), WEIR_EAGAIN);
    assert_ptr_equal(item, ITEM(99)); /* untouched on EAGAIN */
    for (uintptr_t i = 0; i < 8; i++) {
        assert_int_equal(o->size(&r), i);
        /* ITEM(0) is NULL: allowed */
        assert_int_equal(o->push(&r, ITEM(i)), 0);
    }
    assert_int_equal(o->size(&r), 8);
    assert_int_equal(o->push(&r, ITEM(8)), WEIR_EAGAIN);
    assert_int_equal(o->size(&r), 8);
    for (uintptr_t i = 0; i < 8; i++) {
        assert_int_equal(o->pop(&r, &item), 0);
        assert_ptr_equal(item, ITEM(i));
    }
    assert_int_equal(o->pop(&r, &item), WEIR_EAGAIN);
    assert_int_equal(o->size(&r), 0);
    o->destroy(&r);
}

static void
check_capacity_one(const ring_ops *o)
{
    any_ring r;
    void *item;
    assert_int_equal(o->init(&r, 1), 0);
    for (uintptr_t i = 0; i < 1000; i++) {
        assert_int_equal(o->push(&r, ITEM(i)), 0);
        assert_int_equal(o->push(&r, ITEM(i)), WEIR_EAGAIN);
        assert_int_equal(o->pop(&r, &item), 0);
        assert_ptr_equal(item, ITEM(i));
        assert_int_equal(o->pop(&r, &item), WEIR_EAGAIN);
    }
    o->destroy(&r);
}

/*
 * Many laps with a fill level that keeps changing, so every slot is used
 * at many different offsets from the counters.  start lets a case begin
 * next to the wrap of size_t.
 */
static void
check_laps(const ring_ops *o, size_t start)
{
    any_ring r;
    void *item;
    void *buf[16];
    assert_int_equal(o->init(&r, 16), 0);
    o->seek(&r, start);
    uintptr_t in = 0, out = 0;
    for (unsigned round = 0; round < 20000; round++) {
        size_t n = (round * 7) % 17;
        for (size_t i = 0; i < n; i++) {
            int rc = o->push(&r, ITEM(in));
            if (rc == WEIR_EAGAIN) {
                assert_int_equal(o->size(&r), 16);
                break;
            }
            assert_int_equal(rc, 0);
            in++;
        }
        size_t m = (round * 5) % 13;
        if (round % 2) {
            size_t got = o->pop_burst(&r, buf, m);
            for (size_t i = 0; i < got; i++)
                assert_ptr_equal(buf[i], ITEM(out++));
        } else {
            for (size_t i = 0; i < m && o->pop(&r, &item) == 0; i++)
                assert_ptr_equal(item, ITEM(out++));
        }
        assert_int_equal(o->size(&r), in - out);
    }
    while (o->pop(&r, &item) == 0)
        assert_ptr_equal(item, ITEM(out++));
    assert_int_equal(in, out);
    assert_true(in > 100000);
    o->destroy(&r);
}

static void
check_burst_partial(const ring_ops *o)
{
    any_ring r;
    void *in[12], *out[12];
    for (uintptr_t i = 0; i < 12; i++)
        in[i] = ITEM(i + 1);
    assert_int_equal(o->init(&r, 8), 0);
    assert_int_equal(o->push_burst(&r, in, 5), 5);
    assert_int_equal(o->push_burst(&r, in + 5, 5), 3); /* only 3 fit */
    assert_int_equal(o->push_burst(&r, in, 5), 0);
    assert_int_equal(o->pop_burst(&r, out, 3), 3);
    assert_int_equal(o->push_burst(&r, in + 8, 4), 3); /* wraps the end */
    assert_int_equal(o->pop_burst(&r, out + 3, 12), 8);
    for (uintptr_t i = 0; i < 11; i++)
        assert_ptr_equal(out[i], ITEM(i + 1));
    assert_int_equal(o->pop_burst(&r, out, 12), 0);
    /* A burst larger than the whole ring takes what fits. */
    assert_int_equal(o->push_burst(&r, in, 12), 8);
    assert_int_equal(o->size(&r), 8);
    o->destroy(&r);
}

/*
 * Bursts of every length up to the capacity, pushed and popped from every
 * starting slot: the burst calls split a burst at line ends and may wrap
 * to the line they started in.  A run of fixed-length bursts moves the
 * start through all the slots of the ring's lines, since a length and the
 * slot count rarely share a factor; two single pushes between runs shift
 * it further.
 */
static void
check_burst_offsets(const ring_ops *o, size_t capacity)
{
    any_ring r;
    void *in[64], *out[64];
    assert_true(capacity <= 64);
    assert_int_equal(o->init(&r, capacity), 0);
    uintptr_t next_in = 0, next_out = 0;
    for (size_t n = 1; n <= capacity; n++) {
        for (unsigned round = 0; round < 3 * capacity; round++) {
            for (size_t i = 0; i < n; i++)
                in[i] = ITEM(next_in + i);
            assert_int_equal(o->push_burst(&r, in, n), n);
            next_in += n;
            size_t got = o->pop_burst(&r, out, n);
            assert_int_equal(got, n);
            for (size_t i = 0; i < got; i++)
                assert_ptr_equal(out[i], ITEM(next_out++));
        }
        /* Half-full, then a burst asking for more than is there. */
        for (size_t i = 0; i < n; i++)
            in[i] = ITEM(next_in + i);
        assert_int_equal(o->push_burst(&r, in, n / 2 + 1), n / 2 + 1);
        next_in += n / 2 + 1;
        size_t got = o->pop_burst(&r, out, capacity);
        assert_int_equal(got, n / 2 + 1);
        for (size_t i = 0; i < got; i++)
            assert_ptr_equal(out[i], ITEM(next_out++));
        assert_int_equal(o->push(&r, ITEM(next_in++)), 0);
        assert_int_equal(o->push(&r, ITEM(next_in++)), 0);
        assert_int_equal(o->pop_burst(&r, out, 2), 2);
        assert_ptr_equal(out[0], ITEM(next_out++));
        assert_ptr_equal(out[1], ITEM(next_out++));
    }
    assert_int_equal(o->size(&r), 0);
    o->destroy(&r);
}

/*
 * A ring whose init failed, for either reason, or that was destroyed
 * holds no slots, and every call on it fails the same way in both
 * families (issue 17: some of them crashed).  It can be initialised
 * again.
 */
static void
check_no_slots_calls(const ring_ops *o, void *r)
{
    void *item = ITEM(99), *items[4] = { ITEM(1), ITEM(2), ITEM(3), ITEM(4) };
    for (int round = 0; round < 2; round++) {
        assert_int_equal(o->push(r, ITEM(1)), WEIR_EINVAL);
        assert_int_equal(o->pop(r, &item), WEIR_EINVAL);
        assert_ptr_equal(item, ITEM(99));
        assert_int_equal(o->push_burst(r, items, 4), 0);
        assert_int_equal(o->pop_burst(r, items, 4), 0);
        assert_ptr_equal(items[0], ITEM(1));
        assert_int_equal(o->size(r), 0);
        assert_int_equal(o->capacity(r), 0);
        o->destroy(r); /* harmless, and leaves it as it was */
    }
}

static void
check_no_slots(const ring_ops *o)
{
    any_ring r;
    void *item;
    memset(&r, 0xa5, sizeof(r)); /* what init found must not matter */
    assert_int_equal(o->init(&r, 0), WEIR_EINVAL);
    check_no_slots_calls(o, &r);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(o->init(&r, (SIZE_MAX >> 3) + 2), WEIR_EINVAL);
    check_no_slots_calls(o, &r);
    memset(&r, 0xa5, sizeof(r));
    assert_int_equal(o->init(&r, (SIZE_MAX >> 3) + 1), WEIR_ENOMEM);
    check_no_slots_calls(o, &r);
    /* Initialised again, then destroyed with an item inside. */
    assert_int_equal(o->init(&r, 2), 0);
    assert_int_equal(o->push(&r, ITEM(5)), 0);
    assert_int_equal(o->pop(&r, &item), 0);
    assert_ptr_equal(item, ITEM(5));
    assert_int_equal(o->push(&r, ITEM(6)), 0);
    o->destroy(&r);
    check_no_slots_calls(o, &r);
}

#define BOTH(name, body)                                                     \
    static void test_ring_##name(void **state)                               \
    {                                                                        \
        (void)state;                                                         \
        const ring_ops *o = &spsc_ops;                                       \
        body;                                                                \
        o = &mpmc_ops;                                                       \
        body;                                                                \
    }

BOTH(rejects_bad_arguments, check_bad_arguments(o))
BOTH(calls_fail_safely_without_slots, check_no_slots(o))
BOTH(rounds_capacity_to_power_of_two, check_capacity_rounding(o))
BOTH(full_and_empty_edges, check_full_and_empty_edges(o))
BOTH(capacity_one, check_capacity_one(o))
BOTH(wraps_over_many_laps, check_laps(o, 0))
BOTH(counters_wrap_size_max, check_laps(o, SIZE_MAX - 37))
BOTH(burst_partial_fills, check_burst_partial(o))
BOTH(bursts_from_every_slot,
     check_burst_offsets(o, 16); check_burst_offsets(o, 64))

/* The C++ test checks the same sizes from the C++ side of the header. */
static void
test_ring_layout_is_three_lines(void **state)
{
    (void)state;
    assert_int_equal(sizeof(weir_spsc), 3 * WEIR_CACHELINE);
    assert_int_equal(sizeof(weir_mpmc), 3 * WEIR_CACHELINE);
    assert_int_equal(offsetof(weir_spsc, tail) % WEIR_CACHELINE, 0);
    assert_int_equal(offsetof(weir_mpmc, head) % WEIR_CACHELINE, 0);
}

/* ---- concurrency -------------------------------------------------------- */

/*
 * Items are tagged: value = seq * NPROD + producer + 1, so 0 (NULL) never
 * appears and a consumer can tell whose item it holds and its place.
 */
enum { NPROD = 4, NCONS = 4 };

typedef struct stress {
    weir_mpmc ring;
    size_t per_producer;
    _Atomic size_t consumed;
    _Atomic unsigned char *seen; /* per item: times it was popped */
    _Atomic int failures;        /* order violations seen by consumers */
    _Atomic unsigned next_id;
} stress;

static void *
mpmc_producer(void *arg)
{
    stress *s = arg;
    unsigned p = atomic_fetch_add(&s->next_id, 1) % NPROD;
    void *batch[8];
    size_t seq = 0;
    unsigned fails = 0;
    while (seq < s->per_producer) {
        /* Mix single pushes and bursts of varying length. */
        size_t n = (seq % 3 == 0) ? 1 + seq % 8 : 1;
        if (n > s->per_producer - seq)
            n = s->per_producer - seq;
        for (size_t i = 0; i < n; i++)
            batch[i] = ITEM((seq + i) * NPROD + p + 1);
        size_t done = n == 1 ? (weir_mpmc_push(&s->ring, batch[0]) == 0)
                             : weir_mpmc_push_burst(&s->ring, batch, n);
        if (done == 0) {
            ts_backoff(&fails);
            continue;
        }
        fails = 0;
        seq += done;
    }
    return NULL;
}

static void *
mpmc_consumer(void *arg)
{
    stress *s = arg;
    size_t total = s->per_producer * NPROD;
    size_t last[NPROD];
    int have[NPROD] = { 0 };
    void *batch[8];
    unsigned fails = 0, turn = 0;
    while (atomic_load_explicit(&s->consumed, memory_order_relaxed) < total) {
        size_t got = (turn++ % 2) ? weir_mpmc_pop_burst(&s->ring, batch, 8)
                                  : (weir_mpmc_pop(&s->ring, batch) == 0);
        if (got == 0) {
            ts_backoff(&fails);
            continue;
        }
        fails = 0;
        for (size_t i = 0; i < got; i++) {
            size_t v = (uintptr_t)batch[i] - 1;
            size_t p = v % NPROD, seq = v / NPROD;
            if (v >= total || (have[p] && seq <= last[p]))
                atomic_fetch_add(&s->failures, 1);
            else
                atomic_fetch_add_explicit(&s->seen[v], 1, memory_order_relaxed);
            have[p] = 1;
            last[p] = seq;
        }
        atomic_fetch_add(&s->consumed, got);
    }
    return NULL;
}

static void
run_mpmc_stress(size_t capacity, size_t items)
{
    /* The ring inside wants its cache-line alignment, which calloc lacks. */
    stress *s = aligned_alloc(_Alignof(stress), sizeof(*s));
    assert_non_null(s);
    memset(s, 0, sizeof(*s));
    s->per_producer = items / NPROD;
    size_t total = s->per_producer * NPROD;
    s->seen = calloc(total, 1);
    assert_non_null(s->seen);
    assert_int_equal(weir_mpmc_init(&s->ring, capacity), 0);

    pthread_t th[NPROD + NCONS];
    for (int i = 0; i < NPROD + NCONS; i++)
        assert_int_equal(pthread_create(&th[i], NULL,
                             i < NPROD ? mpmc_producer : mpmc_consumer, s), 0);
    for (int i = 0; i < NPROD + NCONS; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(atomic_load(&s->failures), 0);
    assert_int_equal(atomic_load(&s->consumed), total);
    for (size_t v = 0; v < total; v++)
        if (atomic_load_explicit(&s->seen[v], memory_order_relaxed) != 1)
            fail_msg("item %zu seen %d times", v, (int)s->seen[v]);
    assert_int_equal(weir_mpmc_size(&s->ring), 0);
    weir_mpmc_destroy(&s->ring);
    free((void *)s->seen);
    free(s);
}

static void
test_ring_mpmc_4p4c_exactly_once_in_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_mpmc_stress(1024, ts_scale(10000000));
    ts_watchdog_disarm();
}

/* A tiny ring keeps every thread on the full/empty and in-progress paths. */
static void
test_ring_mpmc_4p4c_small_capacity(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_mpmc_stress(2, ts_scale(2000000));
    ts_watchdog_disarm();
}

/*
 * crossbeam's `linearizable` test, on the ring: threads that each push
 * one item and then pop one, so that a thread about to push has taken
 * out all it put in and each other thread has at most one more in than
 * out, and a thread about to pop has one more in than out.  With as many
 * threads as slots, the ring has room throughout every push and holds an
 * item throughout every pop, counting the claims weir_mpmc_size counts.
 * The ring is not linearizable (see weir_mpmc_push): a call may still
 * fail on a slot a thread of the other side is mid-way through.  What
 * ring.h promises is that a retry gets through, and that a failed pop
 * followed by weir_mpmc_size tells such a slot from an empty ring: a size
 * of 0 after a failed pop here is a wrong answer.  (A size cannot prove
 * a ring full; see ring.h.)  The burst rounds move two items a thread
 * (capacity twice the threads).  8 threads on few cores get preempted
 * inside those windows often.
 */
typedef struct busy_ring {
    weir_mpmc ring;
    int burst;
    unsigned rounds;            /* per thread */
    _Atomic unsigned wrong;     /* failed pops that then saw size 0 */
} busy_ring;

/* Move n items in (put) or out, retrying only on a busy slot. */
static void
busy_move(busy_ring *b, int put, size_t n)
{
    void *items[2] = { ITEM(1), ITEM(2) };
    unsigned fails = 0;
    for (size_t done = 0; done < n;) {
        size_t k;
        if (b->burst)
            k = put ? weir_mpmc_push_burst(&b->ring, items, n - done)
                    : weir_mpmc_pop_burst(&b->ring, items, n - done);
        else
            k = (put ? weir_mpmc_push(&b->ring, items[0])
                     : weir_mpmc_pop(&b->ring, items)) == 0;
        if (k > 0) {
            done += k;
            fails = 0;
            continue;
        }
        if (!put && weir_mpmc_size(&b->ring) == 0)
            atomic_fetch_add(&b->wrong, 1);
        ts_backoff(&fails);
    }
}

static void *
busy_worker(void *arg)
{
    busy_ring *b = arg;
    size_t n = b->burst ? 2 : 1;
    for (unsigned i = 0; i < b->rounds; i++) {
        busy_move(b, 1, n);
        busy_move(b, 0, n);
    }
    return NULL;
}

static void
run_busy_ring(size_t capacity, int threads, int burst, size_t rounds)
{
    busy_ring *b = aligned_alloc(_Alignof(busy_ring), sizeof(*b));
    assert_non_null(b);
    memset(b, 0, sizeof(*b));
    b->burst = burst;
    b->rounds = (unsigned)rounds;
    assert_int_equal(weir_mpmc_init(&b->ring, capacity), 0);
    pthread_t th[8];
    assert_true(threads <= 8);
    for (int i = 0; i < threads; i++)
        assert_int_equal(pthread_create(&th[i], NULL, busy_worker, b), 0);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    unsigned wrong = atomic_load(&b->wrong);
    if (wrong != 0)
        fail_msg("capacity %zu, %d threads%s: %u pops failed on empty",
                 capacity, threads, burst ? ", bursts" : "", wrong);
    assert_int_equal(weir_mpmc_size(&b->ring), 0);
    weir_mpmc_destroy(&b->ring);
    free(b);
}

static void
test_ring_mpmc_size_tells_busy_from_empty(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_busy_ring(4, 4, 0, ts_scale(100000));
    run_busy_ring(8, 8, 0, ts_scale(100000));
    run_busy_ring(8, 4, 1, ts_scale(100000));
    run_busy_ring(16, 8, 1, ts_scale(100000));
    ts_watchdog_disarm();
}

typedef struct spsc_stress {
    weir_spsc ring;
    size_t items;
    _Atomic int failures;
} spsc_stress;

static void *
spsc_producer(void *arg)
{
    spsc_stress *s = arg;
    void *batch[32];
    size_t next = 0;
    unsigned fails = 0;
    while (next < s->items) {
        size_t n = (next / 1000) % 2 ? 1 + next % 32 : 1;
        if (n > s->items - next)
            n = s->items - next;
        for (size_t i = 0; i < n; i++)
            batch[i] = ITEM(next + i);
        size_t done = n == 1 ? (weir_spsc_push(&s->ring, batch[0]) == 0)
                             : weir_spsc_push_burst(&s->ring, batch, n);
        if (done == 0) {
            ts_backoff(&fails);
            continue;
        }
        fails = 0;
        next += done;
    }
    return NULL;
}

static void *
spsc_consumer(void *arg)
{
    spsc_stress *s = arg;
    void *batch[32];
    size_t next = 0;
    unsigned fails = 0;
    while (next < s->items) {
        size_t got = (next / 777) % 2 ? weir_spsc_pop_burst(&s->ring, batch, 32)
                                      : (weir_spsc_pop(&s->ring, batch) == 0);
        if (got == 0) {
            ts_backoff(&fails);
            continue;
        }
        fails = 0;
        for (size_t i = 0; i < got; i++, next++)
            if (batch[i] != ITEM(next)) {
                atomic_fetch_add(&s->failures, 1);
                return NULL;
            }
    }
    return NULL;
}

static void
run_spsc_stress(size_t capacity, size_t items)
{
    spsc_stress s;
    memset(&s, 0, sizeof(s));
    s.items = items;
    assert_int_equal(weir_spsc_init(&s.ring, capacity), 0);
    pthread_t p, c;
    assert_int_equal(pthread_create(&p, NULL, spsc_producer, &s), 0);
    assert_int_equal(pthread_create(&c, NULL, spsc_consumer, &s), 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    assert_int_equal(atomic_load(&s.failures), 0);
    assert_int_equal(weir_spsc_size(&s.ring), 0);
    weir_spsc_destroy(&s.ring);
}

static void
test_ring_spsc_1p1c_exactly_once_in_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 100);
    run_spsc_stress(1024, ts_scale(10000000));
    run_spsc_stress(4, ts_scale(2000000));
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_rejects_bad_arguments),
        cmocka_unit_test(test_ring_calls_fail_safely_without_slots),
        cmocka_unit_test(test_ring_rounds_capacity_to_power_of_two),
        cmocka_unit_test(test_ring_full_and_empty_edges),
        cmocka_unit_test(test_ring_capacity_one),
        cmocka_unit_test(test_ring_wraps_over_many_laps),
        cmocka_unit_test(test_ring_counters_wrap_size_max),
        cmocka_unit_test(test_ring_burst_partial_fills),
        cmocka_unit_test(test_ring_bursts_from_every_slot),
        cmocka_unit_test(test_ring_layout_is_three_lines),
        cmocka_unit_test(test_ring_spsc_1p1c_exactly_once_in_order),
        cmocka_unit_test(test_ring_mpmc_4p4c_exactly_once_in_order),
        cmocka_unit_test(test_ring_mpmc_4p4c_small_capacity),
        cmocka_unit_test(test_ring_mpmc_size_tells_busy_from_empty),
    };
    return cmocka_run_group_tests_name("ring", tests, ts_watchdog_group, NULL);
}
