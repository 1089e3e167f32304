/* SPDX-License-Identifier: MIT */
/*
 * test_order.c - per-key order (ordered_by_key): with retries, when destroy
 * drops a retry, and a due retry against a key's parked messages.
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

#include "bus_internal.h" /* one test reads a sub's ready list */
#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

/* ---- per-key order ------------------------------------------------------- */

#define NKEYS 1000

typedef struct keyed {
    _Atomic int busy[NKEYS];
    _Atomic int64_t last[NKEYS];  /* last sequence handled per key, -1 none */
    _Atomic int overlap, disorder;
} keyed;

static int
keyed_handler(const weir_msg *m, void *ctx)
{
    keyed *k = ctx;
    uint32_t v[2]; /* key, sequence within the key */
    memcpy(v, weir_msg_data(m), sizeof(v));
    if (atomic_exchange(&k->busy[v[0]], 1) != 0)
        atomic_fetch_add(&k->overlap, 1);
    int64_t last = atomic_load(&k->last[v[0]]);
    bool retry = weir_msg_attempt(m) > 1;
    if (retry ? v[1] != last : v[1] != last + 1)
        atomic_fetch_add(&k->disorder, 1);
    atomic_store(&k->last[v[0]], v[1]);
    int rc = flaky(v[0] * 100000u + v[1], weir_msg_attempt(m)) ? -1 : 0;
    atomic_store(&k->busy[v[0]], 0);
    return rc;
}

static void
test_per_key_order_with_retries(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 90);
    keyed *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    for (int i = 0; i < NKEYS; i++)
        atomic_store(&k->last[i], -1);
    weir_bus *bus = make_bus();
    weir_sub *s;
    weir_sub_opts o = { .workers = 8, .capacity = 4096, .ordered_by_key = true,
                        .max_attempts = 4, .retry_backoff_ns = 20 * WEIR_USEC,
                        .retry_backoff_max_ns = 100 * WEIR_USEC };
    assert_int_equal(weir_bus_subscribe(bus, "acct", keyed_handler, k, &o, &s),
                     0);
    size_t n = ts_scale(50000);
    uint32_t next[NKEYS] = { 0 };
    srand(7);
    for (size_t i = 0; i < n; i++) {
        uint32_t v[2];
        v[0] = (uint32_t)rand() % NKEYS;
        v[1] = next[v[0]]++;
        char key[16];
        snprintf(key, sizeof(key), "k%u", v[0]);
        weir_pub_opts po = { .key = key };
        assert_int_equal(weir_bus_publish(bus, "acct", v, sizeof(v), &po), 0);
    }
    while (!all_finished(s, n))
        ts_sleep_ms(1);
    assert_int_equal(atomic_load(&k->overlap), 0);
    assert_int_equal(atomic_load(&k->disorder), 0);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(atomic_load(&k->last[i]), (int64_t)next[i] - 1);
    weir_sub_stats st = stats_of(s);
    assert_true(st.retried > 0);
    assert_int_equal(st.acked + st.failed, n);
    assert_balanced(&st);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    weir_bus_destroy(bus);
    free(k);
    ts_watchdog_disarm();
}

/* ---- found in review: close races, stalls, overflows --------------------- */

typedef struct keyed_once {
    _Atomic int k, j;
} keyed_once;

/* Key "k"'s first message fails once; everything else succeeds. */
static int
keyed_once_handler(const weir_msg *m, void *ctx)
{
    keyed_once *c = ctx;
    if (strcmp(weir_msg_key(m), "k") == 0)
        return atomic_fetch_add(&c->k, 1) == 0 ? -1 : 0;
    atomic_fetch_add(&c->j, 1);
    return 0;
}

/* destroy drops a retry not yet due, not the later messages of its key. */
static void
test_destroy_hands_a_dropped_retrys_key_on(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 30);
    weir_bus *bus = make_bus();
    keyed_once c = { 0 };
    weir_sub *s;
    weir_sub_opts o = { .workers = 2, .max_attempts = 3, .ordered_by_key = true,
                        .retry_backoff_ns = 10 * WEIR_SEC };
    assert_int_equal(weir_bus_subscribe(bus, "t", keyed_once_handler, &c, &o,
                                        &s), 0);
    weir_pub_opts k = { .key = "k" }, j = { .key = "j" };
    assert_int_equal(weir_bus_publish(bus, "t", "a", 1, &k), 0);
    while (stats_of(s).retried == 0)
        ts_sleep_ms(1);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(weir_bus_publish(bus, "t", "b", 1, &k), 0);
        assert_int_equal(weir_bus_publish(bus, "t", "c", 1, &j), 0);
    }
    while (stats_of(s).acked < 5) /* j's; k's five wait behind the retry */
        ts_sleep_ms(1);
    weir_bus_destroy(bus);
    assert_int_equal(atomic_load(&c.k), 6); /* the first try, then the five */
    assert_int_equal(atomic_load(&c.j), 5);
    ts_watchdog_disarm();
}

/* ---- a due retry does not wait behind a key's parked messages ------------ */

typedef struct chain_log {
    weir_sub *sub;
    _Atomic int go, entered, calls, j_failed, inconclusive;
    _Atomic int j_retry_at;      /* the call that was J's retry */
    _Atomic int k_at[24];        /* the call that handled K message i */
} chain_log;

/*
 * Payload: 'H' holds the worker until go; "Ki" is key K's i-th message
 * (K0 fails once); "J" fails once.  K0's retry returns only once J's
 * retry is on the ready list (white-box: the timer thread's delay is
 * the scheduler's, so waiting for the list, not for a time, is what
 * makes the order below certain).  If K0's retry came before J's first
 * try (the worker was slower than the backoff), the run proves nothing
 * and says so.
 */
static int
chain_handler(const weir_msg *m, void *ctx)
{
    chain_log *l = ctx;
    const char *p = weir_msg_data(m);
    int call = atomic_fetch_add(&l->calls, 1);
    if (p[0] == 'H') {
        atomic_store(&l->entered, 1);
        while (!atomic_load(&l->go))
            ts_sleep_ms(1);
        return 0;
    }
    if (p[0] == 'J') {
        if (weir_msg_attempt(m) == 1) {
            atomic_store(&l->j_failed, 1);
            return -1;
        }
        atomic_store(&l->j_retry_at, call);
        return 0;
    }
    int i = atoi(p + 1);
    if (i == 0 && weir_msg_attempt(m) == 1)
        return -1;
    if (i == 0) {
        if (!atomic_load(&l->j_failed))
            atomic_store(&l->inconclusive, 1);
        else
            while (atomic_load(&l->sub->ready_n) == 0)
                ts_sleep_ms(1);
    }
    atomic_store(&l->k_at[i], call);
    return 0;
}

/*
 * K0 fails, and K1..K20 park behind its retry; then J fails.  When K0's
 * retry is done, J's retry (due) goes before the chain of K's parked
 * messages, not after all twenty; K's messages keep their order.  The
 * backoff is long enough that the worker nearly always takes J before
 * K0's retry is due; a run where it did not is tried again.
 */
static void
test_due_retry_goes_before_a_parked_chain(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    int conclusive = 0;
    for (int run = 0; run < 10 && !conclusive; run++) {
        weir_bus *bus = make_bus();
        static chain_log l;
        memset(&l, 0, sizeof(l));
        weir_sub_opts o = { .max_attempts = 2,
                            .retry_backoff_ns = 20 * WEIR_MSEC,
                            .ordered_by_key = true };
        assert_int_equal(weir_bus_subscribe(bus, "t", chain_handler, &l, &o,
                                            &l.sub), 0);
        assert_int_equal(weir_bus_publish(bus, "t", "H", 2, NULL), 0);
        while (!atomic_load(&l.entered))
            ts_sleep_ms(1);
        weir_pub_opts k = { .key = "K" }, j = { .key = "J" };
        for (int i = 0; i <= 20; i++) {
            char p[16];
            snprintf(p, sizeof(p), "K%d", i);
            assert_int_equal(weir_bus_publish(bus, "t", p, strlen(p) + 1, &k),
                             0);
        }
        assert_int_equal(weir_bus_publish(bus, "t", "J", 2, &j), 0);
        atomic_store(&l.go, 1);
        assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
        weir_sub_stats st = stats_of(l.sub);
        assert_int_equal(st.acked, 23);
        assert_int_equal(st.retried, 2);
        for (int i = 1; i <= 20; i++)
            assert_true(atomic_load(&l.k_at[i]) > atomic_load(&l.k_at[i - 1]));
        if (!atomic_load(&l.inconclusive)) {
            conclusive = 1;
            assert_int_equal(atomic_load(&l.j_retry_at),
                             atomic_load(&l.k_at[0]) + 1);
        }
        weir_bus_destroy(bus);
    }
    assert_true(conclusive);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_key_order_with_retries),
        cmocka_unit_test(test_destroy_hands_a_dropped_retrys_key_on),
        cmocka_unit_test(test_due_retry_goes_before_a_parked_chain),
    };
    return cmocka_run_group_tests_name("order", tests, ts_watchdog_group, NULL);
}
