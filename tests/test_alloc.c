/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c - the allocator hook (weir_set_allocator): every
 * allocation of the library goes through it and is given back, and
 * failing each allocation in turn along a user's path gives WEIR_ENOMEM
 * (or the call's documented code), leaks nothing and hangs nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

/* Counts live blocks; fails the fail_at-th allocation (0: none). */
typedef struct counting {
    _Atomic long live, made, fail_at, failed;
} counting;

static bool
fails_now(counting *c)
{
    long n = atomic_fetch_add(&c->made, 1) + 1;
    long at = atomic_load(&c->fail_at);
    if (at != 0 && n == at) {
        atomic_fetch_add(&c->failed, 1);
        return true;
    }
    return false;
}

static void *
c_malloc(size_t size, void *ctx)
{
    counting *c = ctx;
    if (fails_now(c))
        return NULL;
    void *p = malloc(size);
    if (p != NULL)
        atomic_fetch_add(&c->live, 1);
    return p;
}

static void *
c_realloc(void *p, size_t size, void *ctx)
{
    counting *c = ctx;
    if (fails_now(c))
        return NULL;
    void *q = realloc(p, size);
    if (q != NULL && p == NULL)
        atomic_fetch_add(&c->live, 1);
    return q;
}

static void
c_free(void *p, void *ctx)
{
    counting *c = ctx;
    if (p != NULL)
        atomic_fetch_sub(&c->live, 1);
    free(p);
}

static void *
c_aligned(size_t alignment, size_t size, void *ctx)
{
    counting *c = ctx;
    if (fails_now(c))
        return NULL;
    void *p = aligned_alloc(alignment, size);
    if (p != NULL)
        atomic_fetch_add(&c->live, 1);
    return p;
}

static counting cnt;

static void
use_counting(long fail_at)
{
    memset(&cnt, 0, sizeof(cnt));
    atomic_store(&cnt.fail_at, fail_at);
    weir_allocator a = { c_malloc, c_realloc, c_free, c_aligned, &cnt };
    assert_int_equal(weir_set_allocator(&a), 0);
}

static int
ok_or_nomem(int rc)
{
    if (rc != 0 && rc != WEIR_ENOMEM)
        fail_msg("unexpected %d (%s)", rc, weir_strerror(rc));
    return rc;
}

static int
fail_once(const weir_msg *m, void *ctx)
{
    (void)ctx;
    return weir_msg_attempt(m) == 1 ? -1 : 0;
}

static char journal_dir[64];

/*
 * A durable delayed message: written, given up by a destroy before it is
 * due, put back on the timer by the next bus on the directory (or kept,
 * if that bus cannot be made), given up again.  The directory is emptied
 * first and after, so that every run makes the same allocations.
 */
static int
durable_delayed_path(void)
{
    int failures = 0;
    if (ts_remove_tree(journal_dir) != 0)
        fail_msg("cannot empty %s", journal_dir);
    weir_bus_opts o = { .journal_dir = journal_dir,
                        .journal_sync = WEIR_SYNC_NONE };
    weir_pub_opts later = { .delay_ns = 3600 * WEIR_SEC };
    weir_bus *bus;
    weir_topic *t;
    if (ok_or_nomem(weir_bus_create(&bus, &o)) != 0)
        return 1;
    failures += ok_or_nomem(weir_bus_durable_topic(bus, "orders", &t)) != 0;
    failures += ok_or_nomem(weir_bus_publish(bus, "orders", "o", 1,
                                             &later)) != 0;
    weir_bus_destroy(bus);
    failures += ok_or_nomem(weir_bus_create(&bus, &o)) != 0;
    if (failures == 0) {
        weir_bus_stats st;
        assert_int_equal(weir_bus_get_stats(bus, &st), 0);
        assert_int_equal(st.delayed, 1);
    }
    if (bus != NULL)
        weir_bus_destroy(bus);
    if (ts_remove_tree(journal_dir) != 0)
        fail_msg("cannot empty %s", journal_dir);
    return failures;
}

/*
 * The journal's part: a bus made on a journal (read back, with what the
 * last run left), a durable topic and subscription, publishes, a close
 * after which its books balance with nothing left, a destroy.
 */
static int
durable_path(void)
{
    int failures = 0;
    weir_bus_opts o = { .journal_dir = journal_dir,
                        .journal_sync = WEIR_SYNC_NONE };
    weir_bus *bus;
    if (ok_or_nomem(weir_bus_create(&bus, &o)) != 0)
        return 1;
    static _Atomic uint64_t sink;
    weir_topic *t;
    failures += ok_or_nomem(weir_bus_durable_topic(bus, "orders", &t)) != 0;
    weir_sub_opts d = { .name = "billing", .durable = true };
    weir_sub *s = NULL;
    failures += ok_or_nomem(weir_bus_subscribe(bus, "orders", count_any,
                                               &sink, &d, &s)) != 0;
    for (int i = 0; i < 3; i++)
        failures += ok_or_nomem(weir_bus_publish(bus, "orders", "o", 1,
                                                 NULL)) != 0;
    int rc = weir_bus_close(bus, 10 * WEIR_SEC);
    if (rc != 0 && rc != WEIR_ENOMEM)
        fail_msg("durable close: %d", rc);
    if (s != NULL) {
        weir_sub_stats st;
        assert_int_equal(weir_sub_get_stats(s, &st), 0);
        assert_balanced(&st);
        assert_int_equal(st.queued + st.in_flight, 0);
    }
    weir_bus_destroy(bus);
    return failures;
}

/*
 * A user's path through every part that allocates: rings, a queue, a
 * dedup table, a bus with plain and careful subscriptions, plain, keyed,
 * delayed and batched publishes, a retry, a close and a destroy.  Each
 * step may meet WEIR_ENOMEM; the path then cleans up what it made.
 * Returns how many steps failed.
 */
static int
user_path(void)
{
    int failures = 0;
    weir_spsc sp;
    if (ok_or_nomem(weir_spsc_init(&sp, 8)) == 0)
        weir_spsc_destroy(&sp);
    else
        failures++;
    weir_mpmc mp;
    if (ok_or_nomem(weir_mpmc_init(&mp, 8)) == 0)
        weir_mpmc_destroy(&mp);
    else
        failures++;
    weir_queue *q;
    if (ok_or_nomem(weir_queue_create(&q, 8)) == 0)
        weir_queue_destroy(q);
    else
        failures++;
    weir_dedup *d;
    if (ok_or_nomem(weir_dedup_create(&d, 16, WEIR_SEC)) == 0) {
        failures += ok_or_nomem(weir_dedup_check_and_insert(d, "k", 1) < 0
                                    ? WEIR_ENOMEM : 0) != 0;
        weir_dedup_destroy(d);
    } else {
        failures++;
    }
    weir_bus *bus;
    if (ok_or_nomem(weir_bus_create(&bus, NULL)) != 0)
        return failures + 1;
    static _Atomic uint64_t sink;
    atomic_store(&sink, 0);
    weir_sub *s = NULL, *plain = NULL;
    uint64_t plain_ok = 0;
    failures += ok_or_nomem(weir_bus_subscribe(bus, "plain", count_any,
                                               &sink, NULL, &plain)) != 0;
    weir_sub_opts careful = { .max_attempts = 2, .retry_backoff_ns = 1,
                              .ordered_by_key = true,
                              .dedup_window_ns = WEIR_SEC,
                              .dead_letter_topic = "dl" };
    failures += ok_or_nomem(weir_bus_subscribe(bus, "careful", fail_once,
                                               NULL, &careful, &s)) != 0;
    weir_pub_opts key = { .key = "k1" }, later = { .delay_ns = 1 };
    for (int i = 0; i < 4; i++) {
        int rc = ok_or_nomem(weir_bus_publish(bus, "plain", "x", 1, NULL));
        failures += rc != 0;
        plain_ok += rc == 0;
        failures += ok_or_nomem(weir_bus_publish(bus, "careful", "y", 1,
                                                 &key)) != 0;
        rc = ok_or_nomem(weir_bus_publish(bus, "plain", "z", 1, &later));
        failures += rc != 0;
        plain_ok += rc == 0;
    }
    weir_batch *b;
    if (ok_or_nomem(weir_batch_begin(bus, &b)) == 0) {
        int rc = ok_or_nomem(weir_batch_publish(b, "plain", "b", 1, NULL));
        rc = rc != 0 ? rc : ok_or_nomem(weir_batch_publish(b, "careful", "c",
                                                           1, &key));
        if (rc == 0)
            rc = ok_or_nomem(weir_batch_commit(b, WEIR_FOREVER));
        else
            weir_batch_abort(b);
        failures += rc != 0;
        plain_ok += rc == 0;
    } else {
        failures++;
    }
    /* A subscription closed on its own drains and balances. */
    if (s != NULL) {
        weir_sub_stats st;
        int rc = weir_sub_close_stats(s, 10 * WEIR_SEC, &st);
        if (rc != 0 && rc != WEIR_ENOMEM)
            fail_msg("sub close: %d", rc);
        failures += rc != 0;
        if (rc == 0) {
            assert_balanced(&st);
            assert_int_equal(st.queued + st.in_flight, 0);
        }
    }
    int rc = weir_bus_close(bus, 10 * WEIR_SEC);
    if (rc != 0 && rc != WEIR_ENOMEM)
        fail_msg("close: %d", rc);
    /*
     * Whatever failed, nothing accepted was lost: every plain publish
     * that returned 0 was handled once.
     */
    if (plain != NULL && rc == 0) {
        weir_sub_stats st;
        assert_int_equal(weir_sub_get_stats(plain, &st), 0);
        assert_balanced(&st);
        assert_int_equal(st.queued + st.in_flight, 0);
        assert_int_equal(atomic_load(&sink), plain_ok);
    }
    weir_bus_destroy(bus);
    return failures + durable_path() + durable_delayed_path();
}

/* Every allocation goes through the hook and comes back to it. */
static void
test_alloc_every_block_comes_back(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 60);
    snprintf(journal_dir, sizeof(journal_dir), "/tmp/weir-test-alloc-%d",
             (int)getpid());
    use_counting(0);
    assert_int_equal(user_path(), 0);
    assert_int_equal(weir_set_allocator(NULL), 0);
    assert_true(atomic_load(&cnt.made) > 20);
    assert_int_equal(atomic_load(&cnt.live), 0);
    ts_watchdog_disarm();
}

/* A hook with a function missing is refused; NULL goes back to libc. */
static void
test_alloc_hook_needs_every_function(void **state)
{
    (void)state;
    weir_allocator a = { c_malloc, c_realloc, c_free, c_aligned, &cnt };
    weir_allocator part = a;
    part.malloc_fn = NULL;
    assert_int_equal(weir_set_allocator(&part), WEIR_EINVAL);
    part = a;
    part.realloc_fn = NULL;
    assert_int_equal(weir_set_allocator(&part), WEIR_EINVAL);
    part = a;
    part.free_fn = NULL;
    assert_int_equal(weir_set_allocator(&part), WEIR_EINVAL);
    part = a;
    part.aligned_fn = NULL;
    assert_int_equal(weir_set_allocator(&part), WEIR_EINVAL);
    assert_int_equal(weir_set_allocator(NULL), 0);
    /* Still the C library's: nothing counted. */
    memset(&cnt, 0, sizeof(cnt));
    weir_queue *q;
    assert_int_equal(weir_queue_create(&q, 4), 0);
    weir_queue_destroy(q);
    assert_int_equal(atomic_load(&cnt.made), 0);
}

/*
 * Fail the k-th allocation, for every k the path makes: each failure is
 * WEIR_ENOMEM at the call that met it (or is absorbed: a body the pool
 * could not take back, a table that stays small), and when the path is
 * over every block has come back.
 */
static void
test_alloc_each_failure_in_turn(void **state)
{
    (void)state;
    ts_watchdog_arm(__func__, 300);
    snprintf(journal_dir, sizeof(journal_dir), "/tmp/weir-test-alloc-%d",
             (int)getpid());
    use_counting(0);
    assert_int_equal(user_path(), 0);
    long total = atomic_load(&cnt.made);
    long with_failure = 0;
    for (long k = 1; k <= total; k++) {
        use_counting(k);
        int failures = user_path();
        assert_int_equal(weir_set_allocator(NULL), 0);
        if (atomic_load(&cnt.live) != 0)
            fail_msg("allocation %ld of %ld failed: %ld blocks leaked", k,
                     total, atomic_load(&cnt.live));
        with_failure += failures > 0;
    }
    /* Most failures show as a call's WEIR_ENOMEM. */
    assert_true(with_failure > 0);
    print_message("%ld allocations failed in turn, %ld seen as ENOMEM\n",
                  total, with_failure);
    assert_int_equal(ts_remove_tree(journal_dir), 0);
    ts_watchdog_disarm();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_every_block_comes_back),
        cmocka_unit_test(test_alloc_hook_needs_every_function),
        cmocka_unit_test(test_alloc_each_failure_in_turn),
    };
    return cmocka_run_group_tests_name("alloc", tests, ts_watchdog_group,
                                       NULL);
}
