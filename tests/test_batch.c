/* SPDX-License-Identifier: MIT */
/*
 * test_batch.c - atomic batches: all at once or not at all, aborts, concurrent
 * commits, a commit waiting for room, the books right after a commit,
 * and commits to a handler's own full queue.
 */
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

/* ---- atomic batches ------------------------------------------------------ */

typedef struct seer {
    weir_sub *other;       /* the other topic's subscription */
    uint64_t expect_other; /* what it must have been routed when we see ours */
    _Atomic int count, early;
} seer;

static int
seer_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    seer *s = ctx;
    weir_sub_stats st;
    /* The whole batch is placed before any of it is handled. */
    if (weir_sub_get_stats(s->other, &st) != 0 || st.routed < s->expect_other)
        atomic_fetch_add(&s->early, 1);
    atomic_fetch_add(&s->count, 1);
    return 0;
}

static void
test_batch_all_at_once(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    seer a = { 0 };
    gate_handler slow = { 0 };
    weir_sub *sa, *sb;
    assert_int_equal(weir_bus_subscribe(bus, "a", seer_handler, &a, NULL, &sa),
                     0);
    /* b: BLOCK, capacity 2, full: one held by its worker, two queued. */
    sb = full_held_sub(bus, "b", &slow, 2, WEIR_OVERFLOW_BLOCK);
    a.other = sb;
    a.expect_other = 5;

    weir_batch *batch;
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "3", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "4", 1, NULL), 0);
    /* Nothing visible before the commit. */
    assert_int_equal(stats_of(sa).routed, 0);
    /* b is full: a NOWAIT commit places nothing. */
    assert_int_equal(weir_batch_commit(batch, WEIR_NOWAIT), WEIR_EAGAIN);
    assert_int_equal(stats_of(sa).routed, 0);
    assert_int_equal(atomic_load(&a.count), 0);

    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "3", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "b", "4", 1, NULL), 0);
    atomic_store(&slow.release, 1); /* b drains: room comes */
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&a.count), 2);
    assert_int_equal(atomic_load(&a.early), 0);
    assert_int_equal(atomic_load(&slow.count), 5);
    weir_sub_stats st = stats_of(sa);
    assert_int_equal(st.routed, 2);
    assert_balanced(&st);
    st = stats_of(sb);
    assert_int_equal(st.routed, 5);
    assert_int_equal(st.acked, 5);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

static void
test_batch_reject_full_fails_whole_and_abort_leaves_no_trace(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    _Atomic int seen = 0;
    gate_handler held = { 0 };
    weir_sub *sa, *sr;
    assert_int_equal(weir_bus_subscribe(bus, "a", count_handler, &seen, NULL,
                                        &sa), 0);
    sr = full_held_sub(bus, "r", &held, 1, WEIR_OVERFLOW_REJECT);

    weir_batch *batch;
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(weir_batch_publish(batch, "a", &i, sizeof(i), NULL),
                         0);
    assert_int_equal(weir_batch_publish(batch, "r", "z", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* A share larger than a queue could never fit. */
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* A message to a topic nobody listens to is part of the batch too. */
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "nobody", "0", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "r", "z", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);

    /* Abort: no trace. */
    weir_bus_stats before, after;
    assert_int_equal(weir_bus_get_stats(bus, &before), 0);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    weir_batch_abort(batch);
    weir_batch_abort(NULL);

    assert_int_equal(weir_bus_get_stats(bus, &after), 0);
    assert_int_equal(after.published, before.published);
    assert_int_equal(after.published, 2);
    assert_int_equal(atomic_load(&seen), 0);
    assert_int_equal(stats_of(sa).routed, 0);

    /* Committed: one message routed, one unrouted, both published. */
    atomic_store(&held.release, 1);
    assert_int_equal(weir_batch_begin(bus, &batch), 0);
    assert_int_equal(weir_batch_publish(batch, "nobody", "0", 1, NULL), 0);
    assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&seen), 1);
    assert_int_equal(weir_bus_get_stats(bus, &after), 0);
    assert_int_equal(after.published, 4);
    assert_int_equal(after.unrouted, before.unrouted + 1);
    weir_sub_stats st = stats_of(sa);
    assert_int_equal(st.routed, 1);
    assert_balanced(&st);
    st = stats_of(sr);
    assert_int_equal(st.routed, 2);
    assert_int_equal(st.acked, 2);
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* Concurrent batches and publishers: each batch is seen whole or not at all. */
typedef struct batcher {
    weir_bus *bus;
    int id, batches;
} batcher;

static void *
batch_thread(void *arg)
{
    batcher *b = arg;
    for (int i = 0; i < b->batches; i++) {
        weir_batch *batch;
        if (weir_batch_begin(b->bus, &batch) != 0)
            return NULL;
        for (int j = 0; j < 4; j++) {
            int v[2] = { b->id, i };
            weir_batch_publish(batch, j % 2 ? "left" : "right", v, sizeof(v),
                               NULL);
        }
        weir_batch_commit(batch, WEIR_FOREVER);
    }
    return NULL;
}

static void
test_batch_concurrent_commits(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    weir_bus *bus = make_bus();
    _Atomic int left = 0, right = 0;
    weir_sub *sl, *sr;
    weir_sub_opts o = { .workers = 3, .capacity = 16 };
    assert_int_equal(weir_bus_subscribe(bus, "left", count_handler, &left, &o,
                                        &sl), 0);
    assert_int_equal(weir_bus_subscribe(bus, "right", count_handler, &right, &o,
                                        &sr), 0);
    batcher b[4];
    pthread_t t[4];
    int per = (int)ts_scale(2000);
    for (int i = 0; i < 4; i++) {
        b[i] = (batcher){ bus, i, per };
        assert_int_equal(pthread_create(&t[i], NULL, batch_thread, &b[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(atomic_load(&left), 4 * per * 2);
    assert_int_equal(atomic_load(&right), 4 * per * 2);
    weir_sub_stats st = stats_of(sl);
    assert_int_equal(st.routed, (uint64_t)(4 * per * 2));
    assert_balanced(&st);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- found in review: close races, stalls, overflows --------------------- */

typedef struct closer {
    weir_bus *bus;
    int rc;
} closer;

static void *
commit_thread(void *arg)
{
    closer *c = arg;
    weir_batch *batch;
    c->rc = weir_batch_begin(c->bus, &batch);
    if (c->rc == 0 &&
        (c->rc = weir_batch_publish(batch, "full", "1", 1, NULL)) == 0)
        c->rc = weir_batch_commit(batch, 5 * WEIR_SEC);
    return NULL;
}

/*
 * A commit waiting for room survives the full subscription's close, and
 * a subscription of the same topic that stays open gets the batch's
 * message once, after the two published before it.
 */
static void
test_batch_waiting_for_room_survives_close(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    trace stays = { .mu = PTHREAD_MUTEX_INITIALIZER };
    assert_int_equal(weir_bus_subscribe(bus, "full", trace_handler, &stays,
                                        NULL, NULL), 0);
    gate_handler held = { 0 };
    weir_sub *s = full_held_sub(bus, "full", &held, 1, WEIR_OVERFLOW_BLOCK);
    closer c = { bus, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, commit_thread, &c), 0);
    ts_sleep_ms(20); /* the commit is waiting for room */
    atomic_store(&held.release, 1);
    int rc = weir_sub_close(s, WEIR_NOWAIT);
    assert_true(rc == 0 || rc == WEIR_ETIMEDOUT);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0); /* placed, or the topic lost its subscription */
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_string_equal(stays.order, "hq1");
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    assert_int_equal(bs.published, 3);
    assert_int_equal(bs.unrouted, 0);
    weir_bus_destroy(bus);
    pthread_mutex_destroy(&stays.mu);
    ts_watchdog_disarm();
}

/*
 * WEIR_NOWAIT tries once in every call: a commit that meets a full BLOCK
 * queue is WEIR_EAGAIN, as a publish with WEIR_NOWAIT is, not
 * WEIR_ETIMEDOUT (found by fuzz_names).  A positive timeout that runs
 * out is WEIR_ETIMEDOUT.
 */
static void
test_batch_nowait_commit_on_full_block_queue_is_eagain(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    gate_handler held = { 0 };
    weir_sub *s = full_held_sub(bus, "full", &held, 1, WEIR_OVERFLOW_BLOCK);
    weir_batch *b;
    assert_int_equal(weir_batch_begin(bus, &b), 0);
    assert_int_equal(weir_batch_publish(b, "full", "x", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(b, WEIR_NOWAIT), WEIR_EAGAIN);
    assert_int_equal(weir_batch_begin(bus, &b), 0);
    assert_int_equal(weir_batch_publish(b, "full", "x", 1, NULL), 0);
    assert_int_equal(weir_batch_commit(b, WEIR_MSEC), WEIR_ETIMEDOUT);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.routed, 2); /* the two that filled it, no more */
    atomic_store(&held.release, 1);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- books right after a failed or retried commit ------------------------ */

/*
 * A batch for a, r and c, with r a full REJECT queue: the commit fails.
 * a's and c's workers may already hold their message, waiting for the
 * decision; the books must balance the moment the commit returns, every
 * time.  Then commits that succeed only on a second try (a full BLOCK
 * queue that empties meanwhile) must leave them balanced too.
 */
static void
test_batch_books_balance_right_after_commit(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    weir_bus *bus = make_bus();
    _Atomic int seen = 0;
    gate_handler held = { 0 };
    weir_sub *sa, *sc;
    assert_int_equal(weir_bus_subscribe(bus, "a", count_handler, &seen, NULL,
                                        &sa), 0);
    assert_int_equal(weir_bus_subscribe(bus, "c", count_handler, &seen, NULL,
                                        &sc), 0);
    weir_sub *sr = full_held_sub(bus, "r", &held, 1, WEIR_OVERFLOW_REJECT);
    for (int round = 0; round < (int)ts_scale(1000); round++) {
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "c", "3", 1, NULL), 0);
        assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);
        weir_sub_stats st = stats_of(sa);
        assert_balanced(&st);
        assert_int_equal(st.routed, 0);
        st = stats_of(sc);
        assert_balanced(&st);
        assert_int_equal(st.routed, 0);
    }
    /*
     * The same, without a race: a paced worker (2 a second) that takes a
     * message of a failed commit keeps it while it waits for its next
     * permit, up to half a second; its books must balance all that time.
     */
    weir_sub *sp;
    weir_sub_opts paced = { .rate_per_sec = 2, .burst = 1 };
    assert_int_equal(weir_bus_subscribe(bus, "p", count_handler, &seen, &paced,
                                        &sp), 0);
    for (int round = 0; round < 3; round++) {
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "p", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, "r", "2", 1, NULL), 0);
        assert_int_equal(weir_batch_commit(batch, WEIR_FOREVER), WEIR_EAGAIN);
        for (int look = 0; look < 20; look++) {
            weir_sub_stats st = stats_of(sp);
            assert_balanced(&st);
            assert_int_equal(st.routed, 0);
            ts_sleep_ms(1);
        }
    }
    atomic_store(&held.release, 1);
    assert_int_equal(weir_sub_close(sr, WEIR_FOREVER), 0);

    for (int round = 0; round < (int)ts_scale(50); round++) {
        gate_handler slow = { 0 };
        char topic[16];
        snprintf(topic, sizeof(topic), "b%d", round);
        weir_sub *sb = full_held_sub(bus, topic, &slow, 1, WEIR_OVERFLOW_BLOCK);
        weir_batch *batch;
        assert_int_equal(weir_batch_begin(bus, &batch), 0);
        assert_int_equal(weir_batch_publish(batch, "a", "1", 1, NULL), 0);
        assert_int_equal(weir_batch_publish(batch, topic, "2", 1, NULL), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, release_later, &slow), 0);
        assert_int_equal(weir_batch_commit(batch, 10 * WEIR_SEC), 0);
        weir_sub_stats st = stats_of(sa);
        assert_balanced(&st);
        st = stats_of(sb);
        assert_balanced(&st);
        pthread_join(th, NULL);
        assert_int_equal(weir_sub_close(sb, WEIR_FOREVER), 0);
    }
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st = stats_of(sa);
    assert_balanced(&st);
    assert_int_equal(st.routed, ts_scale(50));
    assert_int_equal(st.acked, ts_scale(50));
    weir_bus_destroy(bus);
    ts_watchdog_disarm();
}

/* ---- a handler committing to its own full queue -------------------------- */

typedef struct self_batch {
    weir_bus *bus;
    _Atomic int ok, deadlk, other, children;
} self_batch;

/* A seed ('s') commits three one-message batches to its own topic. */
static int
self_batcher(const weir_msg *m, void *ctx)
{
    self_batch *p = ctx;
    if (*(const char *)weir_msg_data(m) == 'c') {
        atomic_fetch_add(&p->children, 1);
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        weir_batch *b;
        int rc = weir_batch_begin(p->bus, &b);
        if (rc == 0 && (rc = weir_batch_publish(b, "own", "c", 1, NULL)) == 0)
            rc = weir_batch_commit(b, WEIR_FOREVER);
        else if (rc != 0 && b != NULL)
            weir_batch_abort(b);
        atomic_fetch_add(rc == 0 ? &p->ok : rc == WEIR_EDEADLK ? &p->deadlk
                                                               : &p->other, 1);
    }
    return 0;
}

/*
 * One worker, capacity 2: its handler's third commit to its own topic
 * would wait for room only it could make.  It gets WEIR_EDEADLK, as a
 * publish would, instead of waiting for ever.
 */
static void
test_batch_commit_to_own_full_queue_is_edeadlk(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static self_batch p;
    memset(&p, 0, sizeof(p));
    p.bus = make_bus();
    weir_sub_opts two = { .capacity = 2 };
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(p.bus, "own", self_batcher, &p, &two,
                                        &s), 0);
    assert_int_equal(weir_bus_publish(p.bus, "own", "s", 1, NULL), 0);
    assert_int_equal(weir_bus_close(p.bus, 10 * WEIR_SEC), 0);
    assert_int_equal(atomic_load(&p.ok), 2);
    assert_int_equal(atomic_load(&p.deadlk), 1);
    assert_int_equal(atomic_load(&p.other), 0);
    assert_int_equal(atomic_load(&p.children), 2);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.routed, 3);
    assert_int_equal(st.acked, 3);
    assert_balanced(&st);
    weir_bus_destroy(p.bus);
    ts_watchdog_disarm();
}

/* ---- a handler's batch whose first try failed elsewhere ------------------ */

typedef struct own_first {
    weir_bus *bus;
    gate_handler f;             /* holds "f" full until released */
    _Atomic int started, done, rc;
} own_first;

static int
own_first_handler(const weir_msg *m, void *ctx)
{
    own_first *o = ctx;
    if (*(const char *)weir_msg_data(m) != 'g')
        return 0;
    atomic_store(&o->started, 1);
    ts_sleep_ms(20); /* let 'q' be queued behind us */
    weir_batch *b;
    int rc = weir_batch_begin(o->bus, &b);
    if (rc == 0 && (rc = weir_batch_publish(b, "s", "x", 1, NULL)) == 0 &&
        (rc = weir_batch_publish(b, "f", "y", 1, NULL)) == 0)
        rc = weir_batch_commit(b, WEIR_FOREVER);
    else if (b != NULL)
        weir_batch_abort(b);
    atomic_store(&o->rc, rc);
    atomic_store(&o->done, 1);
    return 0;
}

/*
 * A handler of s (capacity 2, one worker, one message queued behind it)
 * commits a batch for s and for f, which is full.  The try that fails on
 * f must not leave its message in s, where only this worker could take
 * it: the commit then found s full and gave WEIR_EDEADLK although s had
 * room.  It waits for f, then commits.
 */
static void
test_batch_own_queue_is_placed_last(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    static own_first o;
    memset(&o, 0, sizeof(o));
    o.bus = make_bus();
    weir_sub *s;
    weir_sub_opts so = { .capacity = 2 };
    (void)full_held_sub(o.bus, "f", &o.f, 1, WEIR_OVERFLOW_BLOCK);
    assert_int_equal(weir_bus_subscribe(o.bus, "s", own_first_handler, &o, &so,
                                        &s), 0);
    assert_int_equal(weir_bus_publish(o.bus, "s", "g", 1, NULL), 0);
    while (!atomic_load(&o.started))
        ts_sleep_ms(1);
    assert_int_equal(weir_bus_publish(o.bus, "s", "q", 1, NULL), 0);
    ts_sleep_ms(50); /* the commit's first try fails on f */
    atomic_store(&o.f.release, 1);
    while (!atomic_load(&o.done))
        ts_sleep_ms(1);
    assert_int_equal(atomic_load(&o.rc), 0);
    assert_int_equal(weir_bus_close(o.bus, 10 * WEIR_SEC), 0);
    weir_sub_stats st = stats_of(s);
    assert_int_equal(st.routed, 3);
    assert_int_equal(st.acked, 3);
    assert_balanced(&st);
    weir_bus_destroy(o.bus);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_all_at_once),
        cmocka_unit_test(
            test_batch_reject_full_fails_whole_and_abort_leaves_no_trace),
        cmocka_unit_test(test_batch_concurrent_commits),
        cmocka_unit_test(test_batch_waiting_for_room_survives_close),
        cmocka_unit_test(test_batch_books_balance_right_after_commit),
        cmocka_unit_test(test_batch_commit_to_own_full_queue_is_edeadlk),
        cmocka_unit_test(test_batch_own_queue_is_placed_last),
        cmocka_unit_test(
            test_batch_nowait_commit_on_full_block_queue_is_eagain),
    };
    return cmocka_run_group_tests_name("batch", tests, ts_watchdog_group, NULL);
}
