/* SPDX-License-Identifier: MIT */
/*
 * test_topic.c - a topic's read sections and their reclamation
 * (lib/bus/topic.c, bus_internal.h), driven directly: weiri_topic_quiesce
 * waits for every section of its topic entered before it and for none
 * entered after it or on another topic, whether the section holds one of
 * the bus's read slots or, with every slot taken, counts itself in the
 * topic's shared counters; and a snapshot swapped out is freed only once
 * the quiesce after the swap returns, however many readers are inside.
 *
 * The topics come from a real bus (weir_bus_topic) with no subscription
 * of its own; the snapshots swapped in here name stand-in subscriptions
 * that nothing dereferences.  Every wait is bounded, and a quiesce that
 * waits for ever is caught by the watchdog.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "alloc_internal.h"
#include "topic_internal.h"
#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

static weir_topic *
topic_of(weir_bus *bus, const char *name)
{
    weir_topic *t;
    assert_int_equal(weir_bus_topic(bus, name, &t), 0);
    return t;
}

/* Poll flag, every millisecond, until it is set or ms have passed. */
static bool
flag_within(_Atomic int *flag, unsigned ms)
{
    int64_t until = ts_now_ns() + (int64_t)ms * WEIR_MSEC;
    while (!atomic_load(flag)) {
        if (ts_now_ns() > until)
            return false;
        ts_sleep_ms(1);
    }
    return true;
}

/* ---- a section held by a thread until released --------------------------- */

typedef struct holder {
    weir_topic *t;
    unsigned ticket;           /* the section's, once entered */
    _Atomic int entered, release, left;
} holder;

static void *
hold_section(void *arg)
{
    holder *h = arg;
    (void)weiri_topic_enter(h->t, &h->ticket);
    atomic_store(&h->entered, 1);
    (void)flag_within(&h->release, 30 * 1000);
    weiri_topic_leave(h->t, h->ticket);
    atomic_store(&h->left, 1);
    return NULL;
}

/* Start a thread that enters a section of t and holds it until released. */
static pthread_t
start_holder(holder *h, weir_topic *t)
{
    pthread_t th;
    memset(h, 0, sizeof(*h));
    h->t = t;
    assert_int_equal(pthread_create(&th, NULL, hold_section, h), 0);
    assert_true(flag_within(&h->entered, 10 * 1000));
    return th;
}

typedef struct quiescer {
    weir_topic *t;
    _Atomic int started, done;
} quiescer;

static void *
run_quiesce(void *arg)
{
    quiescer *q = arg;
    atomic_store(&q->started, 1);
    weiri_topic_quiesce(q->t);
    atomic_store(&q->done, 1);
    return NULL;
}

static pthread_t
start_quiesce(quiescer *q, weir_topic *t)
{
    pthread_t th;
    memset(q, 0, sizeof(*q));
    q->t = t;
    assert_int_equal(pthread_create(&th, NULL, run_quiesce, q), 0);
    assert_true(flag_within(&q->started, 10 * 1000));
    return th;
}

/*
 * A section entered before a quiesce holds it up until the section
 * leaves: 50 ms later it has not returned (however slow the machine, a
 * correct quiesce cannot), and once the section leaves it does.
 */
static void
test_topic_quiesce_waits_for_an_earlier_section(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    weir_topic *t = topic_of(bus, "t");
    static holder h;
    static quiescer q;
    pthread_t ht = start_holder(&h, t);
    assert_true(h.ticket < WEIRI_READER_SLOTS); /* a read slot, not shared */
    pthread_t qt = start_quiesce(&q, t);
    ts_sleep_ms(50);
    assert_false(atomic_load(&q.done));
    atomic_store(&h.release, 1);
    assert_true(flag_within(&q.done, 10 * 1000));
    pthread_join(ht, NULL);
    pthread_join(qt, NULL);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/*
 * A quiesce held up by an earlier section ignores one entered after it
 * began (it moved the epoch: the later section saw the new snapshot) and
 * one of another topic: once the earlier one leaves, it returns while
 * both others are still inside.
 */
static void
test_topic_quiesce_ignores_later_and_other_sections(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    weir_topic *t = topic_of(bus, "t"), *u = topic_of(bus, "u");
    static holder early, later, other;
    static quiescer q;
    pthread_t ot = start_holder(&other, u);
    pthread_t et = start_holder(&early, t);
    uint64_t epoch = atomic_load(&bus->epoch);
    pthread_t qt = start_quiesce(&q, t);
    while (atomic_load(&bus->epoch) == epoch) /* the quiesce has begun */
        ts_sleep_ms(1);
    pthread_t lt = start_holder(&later, t);
    ts_sleep_ms(20);
    assert_false(atomic_load(&q.done));
    atomic_store(&early.release, 1);
    /* Returns with later and other still inside (10 s: no hang). */
    assert_true(flag_within(&q.done, 10 * 1000));
    assert_false(atomic_load(&later.left));
    assert_false(atomic_load(&other.left));
    /* And a fresh quiesce of t, begun now, waits for later but not other. */
    pthread_join(qt, NULL);
    qt = start_quiesce(&q, t);
    ts_sleep_ms(20);
    assert_false(atomic_load(&q.done));
    atomic_store(&later.release, 1);
    assert_true(flag_within(&q.done, 10 * 1000));
    assert_false(atomic_load(&other.left));
    atomic_store(&other.release, 1);
    pthread_join(qt, NULL);
    pthread_join(et, NULL);
    pthread_join(lt, NULL);
    pthread_join(ot, NULL);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/*
 * More sections at once than the bus has read slots: the first
 * WEIRI_READER_SLOTS take slots, the rest count themselves in the
 * topic's shared counters.  A quiesce waits for both kinds: with every
 * slot holder gone it still waits for the shared ones, and returns once
 * they leave too.
 */
static void
test_topic_quiesce_waits_for_sections_beyond_the_slots(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 90);
    enum { EXTRA = 16, N = WEIRI_READER_SLOTS + EXTRA };
    weir_bus *bus = make_bus();
    weir_topic *t = topic_of(bus, "t");
    static holder h[N];
    static pthread_t th[N];
    static quiescer q;
    for (int i = 0; i < N; i++)
        th[i] = start_holder(&h[i], t);
    unsigned in_slots = 0;
    for (int i = 0; i < N; i++)
        in_slots += h[i].ticket < WEIRI_READER_SLOTS;
    assert_int_equal(in_slots, WEIRI_READER_SLOTS);
    assert_int_equal(atomic_load(&t->shared[0]) + atomic_load(&t->shared[1]),
                     EXTRA);
    pthread_t qt = start_quiesce(&q, t);
    ts_sleep_ms(20);
    assert_false(atomic_load(&q.done));
    for (int i = 0; i < N; i++)
        if (h[i].ticket < WEIRI_READER_SLOTS)
            atomic_store(&h[i].release, 1);
    for (int i = 0; i < N; i++)
        if (h[i].ticket < WEIRI_READER_SLOTS)
            assert_true(flag_within(&h[i].left, 10 * 1000));
    ts_sleep_ms(50);
    assert_false(atomic_load(&q.done)); /* the shared ones are still in */
    for (int i = 0; i < N; i++)
        atomic_store(&h[i].release, 1);
    assert_true(flag_within(&q.done, 10 * 1000));
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_join(qt, NULL);
    assert_int_equal(atomic_load(&t->shared[0]) + atomic_load(&t->shared[1]),
                     0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- a snapshot freed only after quiesce --------------------------------- */

enum { READERS_MAX = 9 };

typedef struct churn {
    weir_topic *t;
    weir_sub *fake[2];         /* stand-ins, never dereferenced */
    _Atomic int stop;
    _Atomic unsigned ready;    /* readers past their first section */
    _Atomic uint64_t sections, shared_sections, bad;
} churn;

/* Whether snapshot set is one the writer could have made. */
static bool
snapshot_ok(const churn *c, const weiri_subset *set)
{
    if (set == NULL)
        return true;
    size_t n = set->n;
    if (n > 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (set->subs[i] != c->fake[0] && set->subs[i] != c->fake[1])
            return false;
    return true;
}

/*
 * Enter, check the snapshot, now and then yield inside the section so
 * that the writer's swap and quiesce overlap it, check it again (it is
 * immutable, so it must read the same), leave.
 */
static void *
read_sections(void *arg)
{
    churn *c = arg;
    uint64_t sections = 0, shared = 0, bad = 0;
    do {
        unsigned ticket;
        const weiri_subset *set = weiri_topic_enter(c->t, &ticket);
        size_t n = set != NULL ? set->n : 0;
        bad += !snapshot_ok(c, set);
        if (sections % 8 == 0)
            sched_yield();
        bad += !snapshot_ok(c, set) || (set != NULL && set->n != n);
        weiri_topic_leave(c->t, ticket);
        shared += ticket >= WEIRI_READER_SLOTS;
        if (sections++ == 0)
            atomic_fetch_add(&c->ready, 1);
    } while (!atomic_load(&c->stop));
    atomic_fetch_add(&c->sections, sections);
    atomic_fetch_add(&c->shared_sections, shared);
    atomic_fetch_add(&c->bad, bad);
    return NULL;
}

/*
 * Swap t's snapshot through {}, {a}, {a, b}, {b}, ... as a subscription
 * change does (under bus->mu), quiesce, then poison the old snapshot and
 * free it.  A reader that still held it would see the poison (and
 * AddressSanitizer the use after free).
 */
static void
swap_rounds(weir_bus *bus, churn *c, size_t rounds)
{
    for (size_t r = 0; r < rounds; r++) {
        weiri_subset *old;
        pthread_mutex_lock(&bus->mu);
        int rc = weiri_topic_swap(c->t, c->fake[r % 2], (r / 2) % 2 == 0, &old);
        pthread_mutex_unlock(&bus->mu);
        assert_int_equal(rc, 0);
        weiri_topic_quiesce(c->t);
        if (old != NULL) {
            memset(old->subs, 0xdb, old->n * sizeof(old->subs[0]));
            old->n = SIZE_MAX;
        }
        free(old);
    }
}

/*
 * More readers than cores enter and leave t's sections without pause
 * while a writer swaps its snapshot and frees the old one after each
 * quiesce: no reader ever sees a freed snapshot.  Run twice: with the
 * read slots free, and with every slot held by a section of another
 * topic, so that t's readers all count in its shared counters (which the
 * quiesce must wait on) and the slot holders, of another topic, must not
 * hold the quiesce up.
 */
static void
test_topic_snapshot_freed_only_after_quiesce(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned readers =
        cpus < 2 ? 5 : cpus > 4 ? READERS_MAX : 2 * (unsigned)cpus + 1;
    for (int slots_taken = 0; slots_taken < 2; slots_taken++) {
        weir_bus *bus = make_bus();
        static churn c;
        memset(&c, 0, sizeof(c));
        c.t = topic_of(bus, "t");
        weir_topic *u = topic_of(bus, "u");
        weir_sub *fakes = weiri_alloc_array(2, sizeof(struct weir_sub));
        assert_non_null(fakes);
        c.fake[0] = &fakes[0];
        c.fake[1] = &fakes[1];
        static holder h[WEIRI_READER_SLOTS];
        static pthread_t ht[WEIRI_READER_SLOTS];
        if (slots_taken) {
            for (int i = 0; i < WEIRI_READER_SLOTS; i++)
                ht[i] = start_holder(&h[i], u);
        }
        pthread_t th[READERS_MAX];
        for (unsigned i = 0; i < readers; i++)
            assert_int_equal(pthread_create(&th[i], NULL, read_sections, &c),
                             0);
        /*
         * Every reader is in its loop before the swaps start (a loaded
         * machine may start them late), so the swaps overlap sections.
         */
        while (atomic_load(&c.ready) < readers)
            ts_sleep_ms(1);
        swap_rounds(bus, &c, ts_scale(4000));
        atomic_store(&c.stop, 1);
        for (unsigned i = 0; i < readers; i++)
            pthread_join(th[i], NULL);
        if (slots_taken) {
            for (int i = 0; i < WEIRI_READER_SLOTS; i++)
                atomic_store(&h[i].release, 1);
            for (int i = 0; i < WEIRI_READER_SLOTS; i++)
                pthread_join(ht[i], NULL);
        }
        assert_int_equal(atomic_load(&c.bad), 0);
        assert_true(atomic_load(&c.sections) > 0);
        if (slots_taken)
            assert_int_equal(atomic_load(&c.shared_sections),
                             atomic_load(&c.sections));
        else
            assert_int_equal(atomic_load(&c.shared_sections), 0);
        /* Leave t with an empty snapshot, none of the stand-ins in it. */
        weiri_subset *old;
        pthread_mutex_lock(&bus->mu);
        assert_int_equal(weiri_topic_swap(c.t, c.fake[0], false, &old), 0);
        pthread_mutex_unlock(&bus->mu);
        weiri_topic_quiesce(c.t);
        free(old);
        pthread_mutex_lock(&bus->mu);
        assert_int_equal(weiri_topic_swap(c.t, c.fake[1], false, &old), 0);
        pthread_mutex_unlock(&bus->mu);
        weiri_topic_quiesce(c.t);
        free(old);
        assert_int_equal(atomic_load(&c.t->subs)->n, 0);
        weir_bus_destroy(bus);
        weiri_free(fakes);
    }
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_quiesce_waits_for_an_earlier_section),
        cmocka_unit_test(test_topic_quiesce_ignores_later_and_other_sections),
        cmocka_unit_test(
            test_topic_quiesce_waits_for_sections_beyond_the_slots),
        cmocka_unit_test(test_topic_snapshot_freed_only_after_quiesce),
    };
    return cmocka_run_group_tests_name("topic", tests, ts_watchdog_group, NULL);
}
