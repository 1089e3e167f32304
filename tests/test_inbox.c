/* SPDX-License-Identifier: MIT */
/*
 * test_inbox.c - the inbox (lib/bus/inbox.c, inbox_internal.h), the MPSC
 * ring of a subscription whose one worker takes its messages, driven
 * directly rather than through the bus: claim, fill and take, a full
 * inbox, close, positions past 32 bits and many laps of the ring, and
 * more producers than cores against one taker, every message tagged
 * (producer, sequence) and checked exactly once and in each producer's
 * order.
 *
 * The inbox never reads a shared body it carries, so the bodies here
 * hold nothing but their tag, in id.  Messages written in place come
 * back as the inbox's own copies, with id, size, data and key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "inbox_internal.h"
#include "support/support.h"
#include "weir.h"

/* Shared bodies for tags from..from+n-1, each carrying its tag in id. */
static weiri_body *
bodies_tagged(uint64_t from, size_t n)
{
    weiri_body *b = calloc(n, sizeof(*b));
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i].id = from + i;
    return b;
}

/* Take exactly one message, waiting up to 1 s, and return it. */
static weiri_body *
take_one(weiri_inbox *in)
{
    void *out[1];
    assert_int_equal(weiri_inbox_take(in, out, 1, WEIR_SEC), 1);
    return out[0];
}

/* Claim a place, which must be free, and return it. */
static size_t
claim(weiri_inbox *in)
{
    size_t pos = 0;
    assert_int_equal(weiri_inbox_claim(in, &pos), 0);
    return pos;
}

static void
test_inbox_create_rejects_bad_capacity(void **state)
{
    (void)state;
    weiri_inbox *in = (weiri_inbox *)&in;
    assert_int_equal(weiri_inbox_create(&in, 0, "t"), WEIR_EINVAL);
    assert_null(in);
    in = (weiri_inbox *)&in;
    assert_int_equal(weiri_inbox_create(&in, WEIRI_INBOX_MAX + 1, "t"),
                     WEIR_EINVAL);
    assert_null(in);
    assert_int_equal(weiri_inbox_create(&in, WEIRI_INBOX_MAX, "t"), 0);
    assert_int_equal(weiri_inbox_capacity(in), WEIRI_INBOX_MAX);
    assert_int_equal(weiri_inbox_size(in), 0);
    assert_false(weiri_inbox_is_closed(in));
    weiri_inbox_destroy(in);
    weiri_inbox_destroy(NULL);
}

/*
 * Claimed places are taken in claim order whichever way they were
 * filled, and the taker stops at a place claimed but not yet filled even
 * when later ones are: a later message never overtakes an earlier one.
 */
static void
test_inbox_claim_fill_take_in_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weiri_inbox *in;
    assert_int_equal(weiri_inbox_create(&in, 4, "orders"), 0);
    weiri_body *b = bodies_tagged(100, 4);
    size_t p0 = claim(in), p1 = claim(in), p2 = claim(in);
    assert_int_equal(weiri_inbox_size(in), 3);
    assert_int_equal(weiri_inbox_pushed(in), 3);
    weiri_inbox_fill(in, p2, &b[2]);
    weiri_inbox_fill_copy(in, p1, 101, 7, "abc", 4, "key", 3);
    void *out[WEIRI_INBOX_HOLD];
    /* p0 is claimed, not filled: nothing can be taken yet. */
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_NOWAIT), WEIR_EAGAIN);
    weiri_inbox_fill(in, p0, &b[0]);
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_NOWAIT), 3);
    weiri_body *got = out[0];
    assert_ptr_equal(got, &b[0]);
    got = out[1]; /* written in place: the inbox's copy */
    assert_true(got->in_slot);
    assert_int_equal(got->id, 101);
    assert_int_equal(got->timestamp_ns, 7);
    assert_int_equal(got->size, 4);
    assert_string_equal((const char *)got->data, "abc");
    assert_string_equal(got->key, "key");
    assert_string_equal(got->topic, "orders");
    assert_ptr_equal(out[2], &b[2]);
    assert_int_equal(weiri_inbox_size(in), 0);

    /* In place without a key, and with as many bytes as a slot holds. */
    unsigned char full[WEIRI_INBOX_INLINE];
    for (size_t i = 0; i < sizeof(full); i++)
        full[i] = (unsigned char)(i + 1);
    weiri_inbox_fill_copy(in, claim(in), 102, 8, full, sizeof(full), NULL, 0);
    weiri_inbox_fill_copy(in, claim(in), 103, 9, "k", 0, "0123456789", 10);
    got = take_one(in);
    assert_int_equal(got->id, 102);
    assert_null(got->key);
    assert_int_equal(got->size, sizeof(full));
    assert_memory_equal(got->data, full, sizeof(full));
    got = take_one(in);
    assert_int_equal(got->id, 103);
    assert_int_equal(got->size, 0);
    assert_string_equal(got->key, "0123456789");
    assert_int_equal(weiri_inbox_pushed(in), 5);
    weiri_inbox_destroy(in);
    free(b);
    ts_watchdog_disarm();
}

/*
 * A full inbox refuses a claim and a WEIR_NOWAIT push, times a bounded
 * push out no sooner than its bound, and has room again for exactly as
 * many as were taken.  An empty one does the same for takes.  A take
 * returns at most WEIRI_INBOX_HOLD.
 */
static void
test_inbox_full_and_empty(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    enum { CAP = 100 };
    weiri_inbox *in;
    assert_int_equal(weiri_inbox_create(&in, CAP, "t"), 0);
    weiri_body *b = bodies_tagged(0, CAP + 1);
    void *out[WEIRI_INBOX_HOLD];
    size_t pos = 0;
    assert_int_equal(weiri_inbox_take(in, out, 1, WEIR_NOWAIT), WEIR_EAGAIN);
    int64_t t0 = ts_now_ns();
    assert_int_equal(weiri_inbox_take(in, out, 1, 10 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    assert_true(ts_now_ns() - t0 >= 10 * WEIR_MSEC);
    for (size_t i = 0; i < CAP; i++)
        assert_int_equal(weiri_inbox_push(in, &b[i], WEIR_NOWAIT), 0);
    assert_int_equal(weiri_inbox_size(in), CAP);
    assert_int_equal(weiri_inbox_claim(in, &pos), WEIR_EAGAIN);
    assert_int_equal(weiri_inbox_push(in, &b[CAP], WEIR_NOWAIT), WEIR_EAGAIN);
    t0 = ts_now_ns();
    assert_int_equal(weiri_inbox_push(in, &b[CAP], 10 * WEIR_MSEC),
                     WEIR_ETIMEDOUT);
    assert_true(ts_now_ns() - t0 >= 10 * WEIR_MSEC);
    assert_int_equal(weiri_inbox_size(in), CAP);
    assert_int_equal(weiri_inbox_pushed(in), CAP);

    /* Take two: room for exactly two. */
    assert_int_equal(weiri_inbox_take(in, out, 2, WEIR_NOWAIT), 2);
    assert_ptr_equal(out[0], &b[0]);
    assert_ptr_equal(out[1], &b[1]);
    assert_int_equal(weiri_inbox_push(in, &b[CAP], WEIR_NOWAIT), 0);
    assert_int_equal(weiri_inbox_claim(in, &pos), 0);
    weiri_inbox_fill(in, pos, &b[0]);
    assert_int_equal(weiri_inbox_claim(in, &pos), WEIR_EAGAIN);

    /* Takes are capped at WEIRI_INBOX_HOLD, oldest first. */
    void *many[CAP + 10];
    assert_int_equal(weiri_inbox_take(in, many, CAP + 10, WEIR_NOWAIT),
                     WEIRI_INBOX_HOLD);
    for (size_t i = 0; i < WEIRI_INBOX_HOLD; i++)
        assert_ptr_equal(many[i], &b[i + 2]);
    assert_int_equal(weiri_inbox_take(in, many, CAP + 10, WEIR_NOWAIT),
                     CAP - WEIRI_INBOX_HOLD);
    assert_ptr_equal(many[CAP - WEIRI_INBOX_HOLD - 2], &b[CAP]);
    assert_ptr_equal(many[CAP - WEIRI_INBOX_HOLD - 1], &b[0]);
    assert_int_equal(weiri_inbox_size(in), 0);
    weiri_inbox_destroy(in);
    free(b);
    ts_watchdog_disarm();
}

/* ---- close -------------------------------------------------------------- */

typedef struct sleeper {
    weiri_inbox *in;
    weiri_body *b;             /* to push; NULL: take instead */
    _Atomic int started;
    _Atomic long rc;
} sleeper;

static void *
sleep_in_inbox(void *arg)
{
    sleeper *s = arg;
    void *out[1];
    atomic_store(&s->started, 1);
    long rc = s->b != NULL ? weiri_inbox_push(s->in, s->b, 10 * WEIR_SEC)
                           : weiri_inbox_take(s->in, out, 1, 10 * WEIR_SEC);
    atomic_store(&s->rc, rc);
    return NULL;
}

/* Start a thread sleeping in a push (b) or a take (b NULL) on in. */
static pthread_t
start_sleeper(sleeper *s, weiri_inbox *in, weiri_body *b)
{
    pthread_t th;
    s->in = in;
    s->b = b;
    atomic_store(&s->started, 0);
    atomic_store(&s->rc, 1);
    assert_int_equal(pthread_create(&th, NULL, sleep_in_inbox, s), 0);
    while (!atomic_load(&s->started))
        ts_sleep_ms(1);
    ts_sleep_ms(20); /* asleep by now, or about to be: either must wake */
    return th;
}

/*
 * A close refuses new claims and pushes at once, but the taker still
 * gets everything claimed before it, a place filled only after the close
 * included, and WEIR_ECLOSED only once that is all taken.  It is
 * idempotent.
 */
static void
test_inbox_close_drains_what_was_claimed(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weiri_inbox *in;
    assert_int_equal(weiri_inbox_create(&in, 8, "t"), 0);
    weiri_body *b = bodies_tagged(0, 3);
    void *out[4];
    size_t pos = 0;
    assert_int_equal(weiri_inbox_push(in, &b[0], WEIR_NOWAIT), 0);
    size_t late = claim(in);
    weiri_inbox_close(in);
    weiri_inbox_close(in);
    assert_true(weiri_inbox_is_closed(in));
    assert_int_equal(weiri_inbox_claim(in, &pos), WEIR_ECLOSED);
    assert_int_equal(weiri_inbox_push(in, &b[2], WEIR_NOWAIT), WEIR_ECLOSED);
    assert_int_equal(weiri_inbox_push(in, &b[2], WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weiri_inbox_size(in), 2);
    assert_int_equal(weiri_inbox_pushed(in), 2);
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_NOWAIT), 1);
    assert_ptr_equal(out[0], &b[0]);
    /* The late place is claimed: not closed-and-empty yet. */
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_NOWAIT), WEIR_EAGAIN);
    weiri_inbox_fill(in, late, &b[1]);
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_FOREVER), 1);
    assert_ptr_equal(out[0], &b[1]);
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_NOWAIT), WEIR_ECLOSED);
    assert_int_equal(weiri_inbox_take(in, out, 4, WEIR_FOREVER), WEIR_ECLOSED);
    weiri_inbox_destroy(in);
    free(b);
    ts_watchdog_disarm();
}

/*
 * A close wakes a taker asleep on an empty inbox and a producer asleep
 * on a full one; each returns WEIR_ECLOSED long before its 10 s bound
 * (the watchdog fails the case if a wake-up is lost).
 */
static void
test_inbox_close_wakes_sleepers(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weiri_body *b = bodies_tagged(0, 2);
    for (int push = 0; push < 2; push++) {
        weiri_inbox *in;
        assert_int_equal(weiri_inbox_create(&in, 1, "t"), 0);
        if (push)
            assert_int_equal(weiri_inbox_push(in, &b[0], WEIR_NOWAIT), 0);
        static sleeper s;
        pthread_t th = start_sleeper(&s, in, push ? &b[1] : NULL);
        int64_t t0 = ts_now_ns();
        weiri_inbox_close(in);
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&s.rc), WEIR_ECLOSED);
        assert_true(ts_now_ns() - t0 < 5 * WEIR_SEC);
        weiri_inbox_destroy(in);
    }
    free(b);
    ts_watchdog_disarm();
}

/* A sleeping taker wakes for a push, a sleeping producer for a take. */
static void
test_inbox_sleepers_wake_on_change(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weiri_body *b = bodies_tagged(0, 2);
    weiri_inbox *in;
    assert_int_equal(weiri_inbox_create(&in, 1, "t"), 0);
    static sleeper s;
    pthread_t th = start_sleeper(&s, in, NULL);
    assert_int_equal(weiri_inbox_push(in, &b[0], WEIR_NOWAIT), 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&s.rc), 1);
    assert_int_equal(weiri_inbox_push(in, &b[0], WEIR_NOWAIT), 0);
    th = start_sleeper(&s, in, &b[1]);
    assert_ptr_equal(take_one(in), &b[0]);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&s.rc), 0);
    assert_ptr_equal(take_one(in), &b[1]);
    weiri_inbox_destroy(in);
    free(b);
    ts_watchdog_disarm();
}

/* ---- positions past 32 bits, many laps ----------------------------------- */

/*
 * Positions are free-running and compared by difference (ck's way).  A
 * fresh inbox seeded a few claims short of 2^32 must behave exactly as
 * one at 0 while its positions cross 2^32 (a size_t narrowed to 32 bits
 * anywhere would make it stall or deliver out of order), and a capacity
 * that is not a power of two (5 in 8 slots) must bound the inbox at 5
 * on every one of a thousand laps of its ring.
 */
static void
test_inbox_wraps_around(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    enum { CAP = 5, LAPS = 1000 };
    weiri_inbox *in;
    assert_int_equal(weiri_inbox_create(&in, CAP, "t"), 0);
    size_t start = ((size_t)1 << 32) - 7;
    atomic_store(&in->tail, start);
    atomic_store(&in->taken, start);
    atomic_store(&in->taken_cache, start);
    weiri_body *b = bodies_tagged(0, CAP);
    uint64_t next_in = 0, next_out = 0;
    void *out[CAP];
    for (int lap = 0; lap < LAPS; lap++) {
        /* Fill to the brim, half in place and half shared. */
        size_t pos = 0;
        while (weiri_inbox_size(in) < CAP) {
            assert_int_equal(weiri_inbox_claim(in, &pos), 0);
            if (next_in % 2)
                weiri_inbox_fill_copy(in, pos, next_in, 0, &next_in,
                                      sizeof(next_in), NULL, 0);
            else
                weiri_inbox_fill(in, pos, &b[next_in % CAP]);
            next_in++;
        }
        assert_int_equal(weiri_inbox_claim(in, &pos), WEIR_EAGAIN);
        /* Take 1, 2, 3, 4 or 5 of them, in order. */
        size_t n = 1 + (size_t)lap % CAP;
        assert_int_equal(weiri_inbox_take(in, out, n, WEIR_NOWAIT), (long)n);
        for (size_t i = 0; i < n; i++, next_out++) {
            weiri_body *got = out[i];
            if (next_out % 2) {
                uint64_t v;
                memcpy(&v, got->data, sizeof(v));
                assert_true(got->in_slot);
                assert_int_equal(got->id, next_out);
                assert_int_equal(v, next_out);
            } else {
                assert_ptr_equal(got, &b[next_out % CAP]);
            }
        }
    }
    assert_int_equal(weiri_inbox_pushed(in) - start, next_in);
    assert_true(weiri_inbox_pushed(in) > ((size_t)1 << 32));
    assert_int_equal(weiri_inbox_size(in), next_in - next_out);
    weiri_inbox_destroy(in);
    free(b);
    ts_watchdog_disarm();
}

/* ---- many producers, one taker ------------------------------------------- */

#define TAG(p, seq) (((uint64_t)(p) << 40) | (seq))

typedef struct mpsc {
    weiri_inbox *in;
    size_t each;               /* messages per producer */
    _Atomic unsigned next_id;  /* hands out producer numbers */
    _Atomic int failures;      /* producer calls that returned an error */
} mpsc;

/*
 * Producer p sends TAG(p, 0..each-1) in order, a third each way: a
 * claim retried with back-off and filled with a shared body, the same
 * filled in place, and a push that waits for room (10 s at most, then it
 * counts a failure: the taker never stalls that long).
 */
static void *
mpsc_producer(void *arg)
{
    mpsc *m = arg;
    unsigned p = atomic_fetch_add(&m->next_id, 1);
    weiri_body *b = bodies_tagged(TAG(p, 0), m->each);
    for (size_t seq = 0; seq < m->each; seq++) {
        if (seq % 3 == 2) {
            if (weiri_inbox_push(m->in, &b[seq], 10 * WEIR_SEC) != 0)
                atomic_fetch_add(&m->failures, 1);
            continue;
        }
        size_t pos = 0;
        unsigned tries = 0;
        int rc;
        while ((rc = weiri_inbox_claim(m->in, &pos)) == WEIR_EAGAIN)
            ts_backoff(&tries);
        if (rc != 0) {
            atomic_fetch_add(&m->failures, 1);
            continue;
        }
        if (seq % 3 == 0)
            weiri_inbox_fill(m->in, pos, &b[seq]);
        else
            weiri_inbox_fill_copy(m->in, pos, TAG(p, seq), 0, &seq,
                                  sizeof(seq), NULL, 0);
    }
    /* The bodies are freed by the test once everything is taken. */
    return b;
}

/*
 * More producers than cores, capacity 8 so that they keep meeting a full
 * inbox, one taker: every message arrives exactly once (each producer's
 * sequence numbers arrive as 0, 1, 2... with none missing or repeated)
 * and in its producer's order; an in-place copy carries its sequence in
 * its bytes too.  The taker waits at most 10 s for each batch.
 */
static void
test_inbox_mpsc_exactly_once_in_producer_order(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 120);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned producers = cpus < 2 ? 5 : cpus > 4 ? 9 : 2 * (unsigned)cpus + 1;
    static mpsc m;
    memset(&m, 0, sizeof(m));
    m.each = ts_scale(60000);
    assert_int_equal(weiri_inbox_create(&m.in, 8, "t"), 0);
    pthread_t th[9];
    for (unsigned i = 0; i < producers; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mpsc_producer, &m), 0);
    uint64_t next[9] = { 0 };
    uint64_t total = producers * (uint64_t)m.each, got = 0;
    unsigned bad = 0;
    void *out[WEIRI_INBOX_HOLD];
    while (got < total) {
        long n = weiri_inbox_take(m.in, out, WEIRI_INBOX_HOLD, 10 * WEIR_SEC);
        assert_true(n > 0);
        for (long i = 0; i < n; i++) {
            weiri_body *b = out[i];
            uint64_t p = b->id >> 40, seq = b->id & ((1ull << 40) - 1);
            if (p >= producers || seq != next[p]) {
                bad++;
                continue;
            }
            if (b->in_slot) {
                uint64_t v;
                memcpy(&v, b->data, sizeof(v));
                bad += v != seq || seq % 3 != 1;
            }
            next[p]++;
        }
        got += (uint64_t)n;
    }
    for (unsigned i = 0; i < producers; i++) {
        void *bodies;
        pthread_join(th[i], &bodies);
        free(bodies);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(atomic_load(&m.failures), 0);
    for (unsigned p = 0; p < producers; p++)
        assert_int_equal(next[p], m.each);
    assert_int_equal(weiri_inbox_take(m.in, out, 1, WEIR_NOWAIT), WEIR_EAGAIN);
    assert_int_equal(weiri_inbox_size(m.in), 0);
    assert_int_equal(weiri_inbox_pushed(m.in), total);
    weiri_inbox_destroy(m.in);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbox_create_rejects_bad_capacity),
        cmocka_unit_test(test_inbox_claim_fill_take_in_order),
        cmocka_unit_test(test_inbox_full_and_empty),
        cmocka_unit_test(test_inbox_close_drains_what_was_claimed),
        cmocka_unit_test(test_inbox_close_wakes_sleepers),
        cmocka_unit_test(test_inbox_sleepers_wake_on_change),
        cmocka_unit_test(test_inbox_wraps_around),
        cmocka_unit_test(test_inbox_mpsc_exactly_once_in_producer_order),
    };
    return cmocka_run_group_tests_name("inbox", tests, ts_watchdog_group, NULL);
}
