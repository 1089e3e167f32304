/* SPDX-License-Identifier: MIT */
/*
 * test_bad_input.c - tables of bad input for the bus's public calls:
 * topic names and keys at and past their limits and with each character
 * a name may not hold, every kind of bad timeout, each option out of
 * range, NULL for every pointer, calls on a closed bus.  Each call must
 * return its documented code, crash nothing, and leave the bus's books
 * as they were (a good call after it still works).
 */
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
#include <stdatomic.h>

#include "support/bus.h"
#include "support/support.h"
#include "weir.h"

static int
nop(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return 0;
}

/* The bus's books, to show a refused call changed nothing. */
static weir_bus_stats
books(const weir_bus *bus)
{
    weir_bus_stats bs;
    assert_int_equal(weir_bus_get_stats(bus, &bs), 0);
    return bs;
}

static void
assert_same_books(const weir_bus_stats *a, const weir_bus_stats *b)
{
    assert_int_equal(a->published, b->published);
    assert_int_equal(a->unrouted, b->unrouted);
    assert_int_equal(a->delayed, b->delayed);
    assert_int_equal(a->delayed_left, b->delayed_left);
    assert_int_equal(a->forwards_refused, b->forwards_refused);
}

/* ---- topic names --------------------------------------------------------- */

/* A name of n bytes of c, in buf (at least n + 1 long). */
static const char *
name_of(char *buf, size_t n, char c)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static const char *const bad_names[] = {
    "", " ", "a b", "a\tb", "a\nb", "*", ">", "a.*", "#", "?", "a,b",
    "a;b", "a\"b", "a'b", "a\\b", "a|b", "a@b", "a$b", "a%b", "a+b",
    "a=b", "a(b", "a[b", "a{b", "\x01", "a\x7f", "\xc3\xa9", "a~b",
};

/*
 * Every call that takes a topic name refuses each bad one with
 * WEIR_EINVAL, and takes names of 1 and 255 bytes of every allowed kind;
 * 256 bytes is refused.  Nothing is counted for a refused call.
 */
static void
test_bad_topic_names_everywhere(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    char longest[WEIR_TOPIC_MAX + 2], too_long[WEIR_TOPIC_MAX + 2];
    name_of(longest, WEIR_TOPIC_MAX, 'a');
    name_of(too_long, WEIR_TOPIC_MAX + 1, 'a');
    weir_bus_stats before = books(bus);
    size_t nbad = sizeof(bad_names) / sizeof(bad_names[0]);
    for (size_t i = 0; i <= nbad; i++) {
        const char *n = i < nbad ? bad_names[i] : too_long;
        weir_sub *s = NULL;
        weir_topic *t = NULL;
        assert_int_equal(weir_bus_publish(bus, n, "x", 1, NULL), WEIR_EINVAL);
        weir_pub_opts later = { .delay_ns = WEIR_MSEC };
        assert_int_equal(weir_bus_publish(bus, n, "x", 1, &later),
                         WEIR_EINVAL);
        assert_int_equal(weir_bus_subscribe(bus, n, nop, NULL, NULL, &s),
                         WEIR_EINVAL);
        assert_null(s);
        assert_int_equal(weir_bus_topic(bus, n, &t), WEIR_EINVAL);
        weir_sub_opts dl = { .dead_letter_topic = n };
        assert_int_equal(weir_bus_subscribe(bus, "ok", nop, NULL, &dl, &s),
                         WEIR_EINVAL);
        weir_batch *b;
        assert_int_equal(weir_batch_begin(bus, &b), 0);
        assert_int_equal(weir_batch_publish(b, n, "x", 1, NULL), WEIR_EINVAL);
        assert_int_equal(weir_batch_commit(b, WEIR_NOWAIT), 0);
    }
    weir_bus_stats after = books(bus);
    assert_same_books(&before, &after);
    /* Good names, of every allowed kind and both lengths. */
    const char *good[] = { "a", "Z", "0", "order.created", "a_b-c:d/e",
                           longest };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        weir_sub *s;
        weir_topic *t;
        assert_int_equal(weir_bus_subscribe(bus, good[i], nop, NULL, NULL,
                                            &s), 0);
        assert_int_equal(weir_bus_topic(bus, good[i], &t), 0);
        assert_int_equal(weir_bus_publish(bus, good[i], "x", 1, NULL), 0);
        assert_int_equal(weir_topic_publish(t, "y", 1, NULL), 0);
    }
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    after = books(bus);
    assert_int_equal(after.published, before.published + 12);
    weir_bus_destroy(bus);
}

/* ---- keys and payloads --------------------------------------------------- */

/*
 * A key of WEIR_KEY_MAX bytes is taken, one more is refused, by a
 * publish, a topic publish, a delayed publish and a batch; so are a
 * payload over WEIR_MAX_PAYLOAD and NULL data with a length.
 */
static void
test_bad_keys_and_payloads(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, NULL, &s), 0);
    weir_topic *t;
    assert_int_equal(weir_bus_topic(bus, "t", &t), 0);
    static char key_ok[WEIR_KEY_MAX + 2], key_bad[WEIR_KEY_MAX + 2];
    name_of(key_ok, WEIR_KEY_MAX, 'k');
    name_of(key_bad, WEIR_KEY_MAX + 1, 'k');
    weir_bus_stats before = books(bus);
    for (int delayed = 0; delayed < 2; delayed++) {
        weir_pub_opts bad = { .key = key_bad, .delay_ns = delayed };
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &bad),
                         WEIR_EINVAL);
        assert_int_equal(weir_topic_publish(t, "x", 1, &bad), WEIR_EINVAL);
        /* Not even counted unrouted, to a topic nobody has. */
        assert_int_equal(weir_bus_publish(bus, "none", "x", 1, &bad),
                         WEIR_EINVAL);
        weir_pub_opts plain = { .delay_ns = delayed };
        assert_int_equal(weir_bus_publish(bus, "t", NULL, 1, &plain),
                         WEIR_EINVAL);
        assert_int_equal(weir_topic_publish(t, "x", WEIR_MAX_PAYLOAD + 1,
                                            &plain), WEIR_EINVAL);
        assert_int_equal(weir_bus_publish(bus, "none", NULL, 1, &plain),
                         WEIR_EINVAL);
    }
    weir_batch *b;
    assert_int_equal(weir_batch_begin(bus, &b), 0);
    weir_pub_opts bad = { .key = key_bad };
    assert_int_equal(weir_batch_publish(b, "t", "x", 1, &bad), WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(b, "t", NULL, 1, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(b, "t", "x", WEIR_MAX_PAYLOAD + 1,
                                        NULL), WEIR_EINVAL);
    weir_batch_abort(b);
    weir_bus_stats after = books(bus);
    assert_same_books(&before, &after);
    /* At the limits: taken. */
    weir_pub_opts ok = { .key = key_ok };
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &ok), 0);
    assert_int_equal(weir_topic_publish(t, NULL, 0, &ok), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    assert_int_equal(stats_of(s).acked, 2);
    weir_bus_destroy(bus);
}

/* ---- timeouts ------------------------------------------------------------ */

/* Below WEIR_NOWAIT, nothing means anything. */
static const int64_t bad_timeouts[] = { WEIR_NOWAIT - 1, -3, -100, -WEIR_SEC,
                                        INT64_MIN };

/*
 * Every call that takes a timeout, and the publish option that holds
 * one, refuses each bad one with WEIR_EINVAL and changes nothing: the
 * bus and the subscription are still open afterwards.
 */
static void
test_bad_timeouts_everywhere(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    weir_sub *s;
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, NULL, &s), 0);
    weir_queue *q;
    assert_int_equal(weir_queue_create(&q, 4), 0);
    weir_limiter l;
    assert_int_equal(weir_limiter_init(&l, 1000, 1), 0);
    weir_bus_stats before = books(bus);
    int item = 1;
    void *out;
    for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]);
         i++) {
        int64_t bad = bad_timeouts[i];
        assert_int_equal(weir_bus_close(bus, bad), WEIR_EINVAL);
        assert_int_equal(weir_sub_close(s, bad), WEIR_EINVAL);
        weir_sub_stats fin;
        assert_int_equal(weir_sub_close_stats(s, bad, &fin), WEIR_EINVAL);
        weir_pub_opts o = { .timeout_ns = bad };
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &o), WEIR_EINVAL);
        weir_pub_opts d = { .timeout_ns = bad, .delay_ns = WEIR_MSEC };
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &d), WEIR_EINVAL);
        weir_batch *b;
        assert_int_equal(weir_batch_begin(bus, &b), 0);
        assert_int_equal(weir_batch_publish(b, "t", "x", 1, &o), WEIR_EINVAL);
        assert_int_equal(weir_batch_publish(b, "t", "x", 1, NULL), 0);
        /* The commit frees the batch whatever it returns. */
        assert_int_equal(weir_batch_commit(b, bad), WEIR_EINVAL);
        assert_int_equal(weir_queue_push(q, &item, bad), WEIR_EINVAL);
        assert_int_equal(weir_queue_pop(q, &out, bad), WEIR_EINVAL);
        assert_int_equal(weir_queue_push_burst(q, (void *const *)&out, 1, bad),
                         WEIR_EINVAL);
        assert_int_equal(weir_queue_pop_burst(q, &out, 1, bad), WEIR_EINVAL);
        assert_int_equal(weir_limiter_acquire(&l, 1, bad), WEIR_EINVAL);
    }
    weir_bus_stats after = books(bus);
    assert_same_books(&before, &after);
    assert_int_equal(weir_queue_size(q), 0);
    /* Still open: every good sentinel works. */
    int64_t good[] = { WEIR_NOWAIT, 0, WEIR_FOREVER, WEIR_SEC };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        weir_pub_opts o = { .timeout_ns = good[i] };
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &o), 0);
        assert_int_equal(weir_queue_push(q, &item, good[i]), 0);
        assert_int_equal(weir_queue_pop(q, &out, good[i]), 0);
    }
    assert_int_equal(weir_sub_close(s, 10 * WEIR_SEC), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_queue_destroy(q);
    weir_bus_destroy(bus);
}

/* ---- subscription options ------------------------------------------------ */

typedef struct bad_opt {
    const char *what;
    weir_sub_opts o;
} bad_opt;

/*
 * Each option out of range is refused with WEIR_EINVAL before anything
 * is made: no subscription, no topic change, and the same options made
 * good subscribe at once.
 */
static void
test_bad_sub_options(void **state)
{
    (void)state;
    const bad_opt table[] = {
        { "workers", { .workers = WEIR_MAX_WORKERS + 1 } },
        { "workers huge", { .workers = UINT_MAX } },
        { "capacity", { .capacity = WEIR_MAX_CAPACITY + 1 } },
        { "capacity huge", { .capacity = SIZE_MAX } },
        { "overflow", { .overflow = (weir_overflow)4 } },
        { "overflow negative", { .overflow = (weir_overflow)-1 } },
        { "rate negative", { .rate_per_sec = -1 } },
        { "rate NaN", { .rate_per_sec = NAN } },
        { "rate infinite", { .rate_per_sec = INFINITY } },
        { "rate huge", { .rate_per_sec = 2e9 } },
        { "burst below 1", { .rate_per_sec = 10, .burst = 0.5 } },
        { "burst NaN", { .rate_per_sec = 10, .burst = NAN } },
        { "burst negative", { .rate_per_sec = 10, .burst = -1 } },
        { "attempts", { .max_attempts = WEIR_MAX_ATTEMPTS + 1 } },
        { "backoff negative", { .max_attempts = 2,
                                .retry_backoff_ns = -1 } },
        { "backoff max negative", { .max_attempts = 2,
                                    .retry_backoff_max_ns = -1 } },
        { "backoff max below first", { .max_attempts = 2,
                                       .retry_backoff_ns = WEIR_SEC,
                                       .retry_backoff_max_ns = WEIR_MSEC } },
        { "multiplier below 1", { .max_attempts = 2,
                                  .retry_multiplier = 0.5 } },
        { "multiplier NaN", { .max_attempts = 2,
                              .retry_multiplier = NAN } },
        { "multiplier negative", { .max_attempts = 2,
                                   .retry_multiplier = -2 } },
        { "dedup window negative", { .dedup_window_ns = -1 } },
        { "dedup keys", { .dedup_window_ns = WEIR_SEC,
                          .dedup_max_keys = WEIR_DEDUP_MAX_KEYS + 1 } },
        { "dead letter to itself", { .dead_letter_topic = "t" } },
        { "dead letter bad name", { .dead_letter_topic = "a b" } },
    };
    weir_bus *bus = make_bus();
    weir_bus_stats before = books(bus);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        weir_sub *s = NULL;
        int rc = weir_bus_subscribe(bus, "t", nop, NULL, &table[i].o, &s);
        if (rc != WEIR_EINVAL)
            fail_msg("%s: %d", table[i].what, rc);
        assert_null(s);
        /* Nothing subscribed: a publish to t is unrouted. */
        assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), 0);
    }
    weir_bus_stats after = books(bus);
    size_t n = sizeof(table) / sizeof(table[0]);
    assert_int_equal(after.unrouted, before.unrouted + n);
    assert_int_equal(after.published, before.published + n);
    weir_sub *s;
    weir_sub_opts good = { .workers = WEIR_MAX_WORKERS,
                           .capacity = WEIR_MAX_CAPACITY,
                           .overflow = WEIR_OVERFLOW_DROP_NEWEST,
                           .rate_per_sec = 1e9, .burst = 1,
                           .max_attempts = WEIR_MAX_ATTEMPTS,
                           .retry_multiplier = 1,
                           .dedup_window_ns = 1,
                           .dedup_max_keys = 1 };
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, &good, &s), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_bus_destroy(bus);
}

/* ---- NULL, and calls on a closed bus ------------------------------------- */

/* NULL for each pointer a call needs: WEIR_EINVAL, or nothing for a void. */
static void
test_null_for_every_pointer(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    weir_sub *s;
    weir_topic *t;
    weir_batch *b;
    weir_sub_stats ss;
    weir_bus_stats bs;
    assert_int_equal(weir_bus_create(NULL, NULL), WEIR_EINVAL);
    weir_bus *other = (weir_bus *)&other;
    weir_bus_opts reserved = { .reserved = 1 };
    assert_int_equal(weir_bus_create(&other, &reserved), WEIR_EINVAL);
    assert_null(other);
    assert_int_equal(weir_bus_subscribe(NULL, "t", nop, NULL, NULL, &s),
                     WEIR_EINVAL);
    assert_int_equal(weir_bus_subscribe(bus, NULL, nop, NULL, NULL, &s),
                     WEIR_EINVAL);
    assert_int_equal(weir_bus_subscribe(bus, "t", NULL, NULL, NULL, &s),
                     WEIR_EINVAL);
    assert_int_equal(weir_bus_topic(NULL, "t", &t), WEIR_EINVAL);
    assert_int_equal(weir_bus_topic(bus, NULL, &t), WEIR_EINVAL);
    assert_int_equal(weir_bus_topic(bus, "t", NULL), WEIR_EINVAL);
    assert_int_equal(weir_bus_publish(NULL, "t", "x", 1, NULL), WEIR_EINVAL);
    assert_int_equal(weir_bus_publish(bus, NULL, "x", 1, NULL), WEIR_EINVAL);
    assert_int_equal(weir_topic_publish(NULL, "x", 1, NULL), WEIR_EINVAL);
    assert_int_equal(weir_bus_close(NULL, WEIR_FOREVER), WEIR_EINVAL);
    assert_int_equal(weir_sub_close(NULL, WEIR_FOREVER), WEIR_EINVAL);
    assert_int_equal(weir_sub_close_stats(NULL, WEIR_FOREVER, &ss),
                     WEIR_EINVAL);
    assert_int_equal(weir_sub_get_stats(NULL, &ss), WEIR_EINVAL);
    assert_int_equal(weir_bus_get_stats(NULL, &bs), WEIR_EINVAL);
    assert_int_equal(weir_bus_get_stats(bus, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(NULL, &b), WEIR_EINVAL);
    assert_int_equal(weir_batch_begin(bus, NULL), WEIR_EINVAL);
    assert_int_equal(weir_batch_publish(NULL, "t", "x", 1, NULL),
                     WEIR_EINVAL);
    assert_int_equal(weir_batch_commit(NULL, WEIR_FOREVER), WEIR_EINVAL);
    assert_null(weir_sub_name(NULL));
    weir_batch_abort(NULL);
    weir_bus_destroy(NULL);
    /* Durable topics: NULL anywhere, or a bus without a journal. */
    assert_int_equal(weir_bus_durable_topic(NULL, "t", &t), WEIR_EINVAL);
    assert_int_equal(weir_bus_durable_topic(bus, NULL, &t), WEIR_EINVAL);
    assert_int_equal(weir_bus_durable_topic(bus, "t", NULL), WEIR_EINVAL);
    assert_int_equal(weir_bus_forget_durable(NULL, "t", "n"), WEIR_EINVAL);
    assert_int_equal(weir_bus_forget_durable(bus, NULL, "n"), WEIR_EINVAL);
    assert_int_equal(weir_bus_forget_durable(bus, "t", NULL), WEIR_EINVAL);
    weir_bus_opts nul_dir = { .journal_dir = "" };
    assert_int_equal(weir_bus_create(&other, &nul_dir), WEIR_EINVAL);
    assert_null(other);
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, NULL, &s), 0);
    assert_int_equal(weir_sub_get_stats(s, NULL), WEIR_EINVAL);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_bus_destroy(bus);
}

/*
 * A closed bus refuses everything that would add to it with
 * WEIR_ECLOSED, a second close too, and still answers its statistics.
 */
static void
test_calls_on_a_closed_bus(void **state)
{
    (void)state;
    weir_bus *bus = make_bus();
    weir_sub *s;
    weir_topic *t;
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, NULL, &s), 0);
    assert_int_equal(weir_bus_topic(bus, "t", &t), 0);
    assert_int_equal(weir_bus_close(bus, 10 * WEIR_SEC), 0);
    weir_bus_stats before = books(bus);
    weir_sub *s2 = NULL;
    weir_topic *t2 = NULL;
    weir_batch *b = NULL;
    weir_pub_opts later = { .delay_ns = WEIR_MSEC };
    assert_int_equal(weir_bus_subscribe(bus, "t", nop, NULL, NULL, &s2),
                     WEIR_ECLOSED);
    assert_int_equal(weir_bus_topic(bus, "new", &t2), WEIR_ECLOSED);
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, NULL), WEIR_ECLOSED);
    assert_int_equal(weir_bus_publish(bus, "t", "x", 1, &later),
                     WEIR_ECLOSED);
    assert_int_equal(weir_bus_publish(bus, "none", "x", 1, NULL),
                     WEIR_ECLOSED);
    assert_int_equal(weir_topic_publish(t, "x", 1, NULL), WEIR_ECLOSED);
    assert_int_equal(weir_batch_begin(bus, &b), WEIR_ECLOSED);
    assert_int_equal(weir_sub_close(s, WEIR_FOREVER), WEIR_ECLOSED);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), WEIR_ECLOSED);
    weir_bus_stats after = books(bus);
    assert_same_books(&before, &after);
    weir_sub_stats ss;
    assert_int_equal(weir_sub_get_stats(s, &ss), 0);
    assert_string_equal(weir_sub_name(s), "t");
    weir_bus_destroy(bus);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_topic_names_everywhere),
        cmocka_unit_test(test_bad_keys_and_payloads),
        cmocka_unit_test(test_bad_timeouts_everywhere),
        cmocka_unit_test(test_bad_sub_options),
        cmocka_unit_test(test_null_for_every_pointer),
        cmocka_unit_test(test_calls_on_a_closed_bus),
    };
    return cmocka_run_group_tests_name("bad input", tests, ts_watchdog_group,
                                       NULL);
}
