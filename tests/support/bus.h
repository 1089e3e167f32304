/* SPDX-License-Identifier: MIT */
/*
 * bus.h - helpers shared by the tests of the bus (test_bus.c,
 * test_publish.c, test_place.c, test_sub.c) and of its delivery features
 * (test_retry.c, test_dead_letter.c, test_order.c, test_delay.c,
 * test_dedup.c, test_batch.c): making a bus, checking a subscription's
 * books, waiting for a condition, and handlers that record, count, fail
 * or hold their worker.
 *
 * The names are those the tests had when each file kept its own copy, so
 * that the cases read as they did.  Handlers never call cmocka asserts:
 * a failed one cannot unwind a worker thread; they count what they find
 * wrong and the test asserts on the count.
 */
#ifndef WEIR_TEST_SUPPORT_BUS_H
#define WEIR_TEST_SUPPORT_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weir.h"

/* ---- a bus and its books ------------------------------------------------ */

/* make_bus - a bus with default options; fails the case if none is made. */
weir_bus *make_bus(void);

/*
 * wait_until - poll cond(arg) every millisecond until it holds.  Unbounded
 * by itself: the case's watchdog (support.h) turns a hang into a failure.
 */
void wait_until(int (*cond)(void *), void *arg);

/* assert_settled - s's books balance, with nothing queued or in flight. */
void assert_settled(const weir_sub *s, uint64_t routed);

/* stats_of - s's statistics; fails the case if they cannot be read. */
weir_sub_stats stats_of(const weir_sub *s);

/* assert_balanced - the books of a subscription balance. */
void assert_balanced(const weir_sub_stats *st);

/* all_finished - acked, failed and dead-lettered add up to n. */
int all_finished(const weir_sub *s, uint64_t n);

/* ---- a recording handler ------------------------------------------------ */

/*
 * record - the handler of a recorder (ctx): payloads are sequence numbers
 * 0, 1, 2... published in order; a message out of that order, or whose id
 * is not above the last one's, counts in disorder.
 */
typedef struct recorder {
    _Atomic uint64_t count;
    _Atomic uint64_t last_seq;  /* payload sequence of the last message */
    _Atomic uint64_t last_id;
    _Atomic int disorder;       /* messages seen out of publish order */
    _Atomic int fail_odd;       /* return -1 for odd sequence numbers */
} recorder;

int record(const weir_msg *m, void *ctx);

/* wait_counter - wait until *count reaches n. */
void wait_counter(_Atomic uint64_t *count, uint64_t n);

/* wait_count - wait until r has recorded n messages. */
void wait_count(recorder *r, uint64_t n);

/* ---- counting and failing handlers ------------------------------------- */

/* count_any - add one to the _Atomic uint64_t at ctx; succeed. */
int count_any(const weir_msg *m, void *ctx);

/* count_handler - add one to the _Atomic int at ctx; succeed. */
int count_handler(const weir_msg *m, void *ctx);

/* always_fail - add one to the _Atomic int at ctx; return -42. */
int always_fail(const weir_msg *m, void *ctx);

/*
 * fail_all - publish n messages to "x" on bus, handled by always_fail
 * under o, close the bus and return the subscription's statistics;
 * *calls counts the handler calls.
 */
weir_sub_stats fail_all(weir_bus *bus, const weir_sub_opts *o, int n,
                        _Atomic int *calls);

/*
 * flaky - whether delivery `attempt` of message seq fails: about 3 in 10,
 * fixed.
 */
bool flaky(uint64_t seq, unsigned attempt);

/*
 * trace_handler - records in a trace (ctx) the first letter of each
 * payload, and the time and last error of each delivery of "A", which
 * fails its first two attempts (with -7, then -8).
 */
typedef struct trace {
    pthread_mutex_t mu;
    char order[16];               /* "A1 B1 A2 ..." compressed: one letter
                                     per delivery */
    size_t len;
    int64_t at[8];                /* delivery times of A */
    int last_error[8];
    size_t na;
} trace;

int trace_handler(const weir_msg *m, void *ctx);

/* ---- a gate that holds handler calls ------------------------------------ */

/*
 * gated - the handler of a gate (ctx): records the payload's sequence
 * number, then waits until the gate lets its call through.
 */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;                  /* handler calls let through: the first open */
    _Atomic int entered;       /* handler calls started */
    _Atomic int done;          /* handler calls returned */
    _Atomic uint64_t got[160]; /* sequence numbers handled, in order */
} gate;

int gated(const weir_msg *m, void *ctx);

/* entered_one - for wait_until: a gate's handler has been called. */
int entered_one(void *arg);

/* gate_init - ready a gate, closed; gate_fini releases it. */
void gate_init(gate *g);
void gate_fini(gate *g);

/* gate_pass - let the first n handler calls through (INT_MAX: every one). */
void gate_pass(gate *g, int n);

/* gate_open - let every handler call through. */
void gate_open(gate *g);

/* open_later - a thread: open the gate arg after 50 ms. */
void *open_later(void *arg);

/* ---- a handler held until released -------------------------------------- */

typedef struct gate_handler {
    _Atomic int release, count;
} gate_handler;

/* held_handler - holds its worker until told, so its queue fills. */
int held_handler(const weir_msg *m, void *ctx);

/*
 * full_held_sub - subscribe a held_handler to topic with a queue of
 * capacity, the given policy, then fill it: one message in the held
 * handler, capacity queued.
 */
weir_sub *full_held_sub(weir_bus *bus, const char *topic, gate_handler *held,
                        size_t capacity, weir_overflow overflow);

/* release_later - a thread: release the gate_handler arg after 80 ms. */
void *release_later(void *arg);

/* ---- publishers racing a close ----------------------------------------- */

typedef struct closing_race {
    weir_bus *bus;
    _Atomic uint64_t published;
    _Atomic int failures;          /* publishes failing otherwise than
                                      ECLOSED */
} closing_race;

/*
 * publish_until_closed - a thread: publish to "t" of the closing_race
 * arg's bus until it refuses with WEIR_ECLOSED, counting each publish
 * and each failure of another kind.
 */
void *publish_until_closed(void *arg);

/* published_some - for wait_until: a closing_race has published 2,000. */
int published_some(void *arg);

#endif /* WEIR_TEST_SUPPORT_BUS_H */
