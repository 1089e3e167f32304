/* SPDX-License-Identifier: MIT */
/*
 * soak.c - weir's bus under a random mix for WEIR_SOAK_SECONDS (default
 * 60), round after round: publishers on several threads (plain, keyed,
 * delayed and batched publishes), subscriptions with random options
 * opened and closed while they run, handlers that fail, are slow, or
 * forward to the next topic, and a bus closed (with time to drain) and
 * made anew each round.  After each close it proves, from each
 * subscription's final statistics and from the handlers' own count:
 * nothing in flight or queued is left, the identity holds, and no
 * message was finished twice by one subscription.  A watchdog fails the
 * run if a round makes no progress for 10 s.  `make soak` runs it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir.h"

/* Message ids a round may use: a bit each, per subscription. */
enum { TOPICS = 4, SUBS_MAX = 64, PUBLISHERS = 3, IDS = 1 << 23 };

typedef struct sub_state {
    weir_sub *sub;
    unsigned max_attempts;
    bool slow, forwards;
    int topic;
    _Atomic uint64_t finished;       /* handler calls that ended a message */
    _Atomic uint8_t *seen;           /* a bit per message id: finished */
    weir_sub_stats final;
    bool closed;                     /* final holds its close's statistics */
} sub_state;

static weir_bus *bus;
static sub_state subs[SUBS_MAX];
static _Atomic int nsubs;
static _Atomic bool stop;
static _Atomic uint64_t progress, published, twice, beyond;
static const char *const names[TOPICS] = { "t0", "t1", "t2", "t3" };

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int
handler(const weir_msg *m, void *ctx)
{
    sub_state *s = ctx;
    uint64_t id = weir_msg_id(m);
    uint64_t x = id * 0x9E3779B97F4A7C15ull + weir_msg_attempt(m);
    int rc = rnd(&x) % 8 == 0 ? -1 : 0;
    if (s->slow && rnd(&x) % 64 == 0) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    if (s->forwards && rc == 0 && s->topic + 1 < TOPICS)
        (void)weir_bus_publish(bus, names[s->topic + 1], weir_msg_data(m),
                               weir_msg_size(m), NULL);
    if (rc == 0 || weir_msg_attempt(m) >= s->max_attempts) {
        atomic_fetch_add(&s->finished, 1);
        uint8_t bit = (uint8_t)(1u << (id % 8));
        if (id < IDS && (atomic_fetch_or(&s->seen[id / 8], bit) & bit))
            atomic_fetch_add(&twice, 1);
        if (id >= IDS)
            atomic_fetch_add(&beyond, 1);
    }
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
    return rc;
}

static void
subscribe_random(uint64_t *x)
{
    int i = atomic_load(&nsubs);
    if (i == SUBS_MAX)
        return;
    sub_state *s = &subs[i];
    _Atomic uint8_t *seen = s->seen;
    memset(s, 0, sizeof(*s));
    s->seen = seen;
    memset((void *)s->seen, 0, IDS / 8);
    s->topic = (int)(rnd(x) % TOPICS);
    s->slow = rnd(x) % 4 == 0;
    s->forwards = rnd(x) % 2 == 0;
    weir_sub_opts o = {
        .workers = 1 + (unsigned)(rnd(x) % 4),
        .capacity = 1 + rnd(x) % 256,
        .overflow = (weir_overflow)(rnd(x) % 4),
        .max_attempts = 1 + (unsigned)(rnd(x) % 3),
        .retry_backoff_ns = 1 + (int64_t)(rnd(x) % WEIR_MSEC),
        .ordered_by_key = rnd(x) % 3 == 0,
    };
    if (rnd(x) % 4 == 0)
        o.rate_per_sec = 50000, o.burst = 64;
    if (rnd(x) % 3 == 0)
        o.dead_letter_topic = "dead";
    s->max_attempts = o.max_attempts;
    /* A forwarding stage never blocks on a full BLOCK queue downstream. */
    if (s->forwards && o.overflow == WEIR_OVERFLOW_BLOCK)
        o.overflow = WEIR_OVERFLOW_REJECT;
    if (weir_bus_subscribe(bus, names[s->topic], handler, s, &o, &s->sub) ==
        0)
        atomic_store(&nsubs, i + 1);
}

static void *
publisher(void *arg)
{
    uint64_t x = (uintptr_t)arg * 2654435761u + 1;
    char payload[64];
    while (!atomic_load(&stop)) {
        int t = (int)(rnd(&x) % TOPICS);
        size_t len = rnd(&x) % sizeof(payload);
        memset(payload, 'p', len);
        char key[8];
        snprintf(key, sizeof(key), "k%u", (unsigned)(rnd(&x) % 32));
        weir_pub_opts o = { .timeout_ns = WEIR_MSEC };
        if (rnd(&x) % 2)
            o.key = key;
        if (rnd(&x) % 16 == 0)
            o.delay_ns = (int64_t)(rnd(&x) % WEIR_MSEC);
        int rc;
        if (rnd(&x) % 32 == 0) {
            weir_batch *b;
            rc = weir_batch_begin(bus, &b);
            if (rc == 0) {
                (void)weir_batch_publish(b, names[t], payload, len, &o);
                o.delay_ns = 0;
                (void)weir_batch_publish(b, names[(t + 1) % TOPICS], payload,
                                         len, &o);
                rc = weir_batch_commit(b, WEIR_MSEC);
            }
        } else {
            rc = weir_bus_publish(bus, names[t], payload, len, &o);
        }
        if (rc == 0)
            atomic_fetch_add_explicit(&published, 1, memory_order_relaxed);
    }
    return NULL;
}

static int
dead_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
    return 0;
}

/* Checks one subscription's final books; returns the number of faults. */
static int
check(const sub_state *s, int round, int i)
{
    const weir_sub_stats *f = &s->final;
    int bad = 0;
    uint64_t right = f->acked + f->failed + f->dead_lettered + f->dropped +
                     f->queued + f->in_flight;
    if (f->routed != right) {
        fprintf(stderr, "round %d sub %d: routed %llu != %llu\n", round, i,
                (unsigned long long)f->routed, (unsigned long long)right);
        bad++;
    }
    if (f->queued != 0 || f->in_flight != 0) {
        fprintf(stderr, "round %d sub %d: left queued %llu in flight %llu\n",
                round, i, (unsigned long long)f->queued,
                (unsigned long long)f->in_flight);
        bad++;
    }
    uint64_t done = f->acked + f->failed + f->dead_lettered - f->duplicates;
    if (atomic_load(&s->finished) != done) {
        fprintf(stderr, "round %d sub %d: handler finished %llu, books %llu\n",
                round, i, (unsigned long long)atomic_load(&s->finished),
                (unsigned long long)done);
        bad++;
    }
    return bad;
}

static double
seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(void)
{
    const char *env = getenv("WEIR_SOAK_SECONDS");
    double seconds = env != NULL ? atof(env) : 60;
    for (int i = 0; i < SUBS_MAX; i++)
        if ((subs[i].seen = calloc(IDS / 8, 1)) == NULL)
            return 2;
    double start = seconds_now(), end = start + seconds;
    uint64_t x = 88172645463325252ull, handled = 0;
    int faults = 0, rounds = 0;
    while (seconds_now() < end && faults == 0) {
        if (weir_bus_create(&bus, NULL) != 0)
            return 2;
        atomic_store(&nsubs, 0);
        atomic_store(&stop, false);
        static _Atomic uint64_t dead;
        weir_sub *dl;
        if (weir_bus_subscribe(bus, "dead", dead_handler, &dead, NULL, &dl))
            return 2;
        for (int i = 0; i < 6; i++)
            subscribe_random(&x);
        pthread_t th[PUBLISHERS];
        for (uintptr_t i = 0; i < PUBLISHERS; i++)
            pthread_create(&th[i], NULL, publisher, (void *)(i + 1));
        /* Subscriptions come and go while the publishers run. */
        double round_end = seconds_now() + 1.0, last_move = seconds_now();
        uint64_t last = atomic_load(&progress);
        while (seconds_now() < round_end) {
            struct timespec ts = { 0, 20000000 };
            nanosleep(&ts, NULL);
            int n = atomic_load(&nsubs);
            if (rnd(&x) % 3 == 0 && n > 0) {
                sub_state *s = &subs[rnd(&x) % (uint64_t)n];
                if (!s->closed) {
                    int rc = weir_sub_close_stats(s->sub, 10 * WEIR_SEC,
                                                  &s->final);
                    /* Closed (and freed) either way; late is a fault. */
                    s->closed = rc == 0 || rc == WEIR_ETIMEDOUT;
                    if (rc != 0) {
                        fprintf(stderr, "round %d: sub close %d\n", rounds,
                                rc);
                        faults++;
                    }
                }
            } else {
                subscribe_random(&x);
            }
            uint64_t now = atomic_load(&progress);
            if (now != last)
                last = now, last_move = seconds_now();
            if (seconds_now() - last_move > 10) {
                fprintf(stderr, "round %d: no progress for 10 s\n", rounds);
                return 3;
            }
        }
        atomic_store(&stop, true);
        for (int i = 0; i < PUBLISHERS; i++)
            pthread_join(th[i], NULL);
        int rc = weir_bus_close(bus, 30 * WEIR_SEC);
        if (rc != 0) {
            fprintf(stderr, "round %d: close %d\n", rounds, rc);
            faults++;
        }
        int n = atomic_load(&nsubs);
        for (int i = 0; i < n; i++) {
            if (!subs[i].closed)
                weir_sub_get_stats(subs[i].sub, &subs[i].final);
            faults += check(&subs[i], rounds, i);
            handled += atomic_load(&subs[i].finished);
        }
        weir_bus_destroy(bus);
        rounds++;
    }
    if (atomic_load(&beyond) != 0)
        printf("soak: %llu finishes beyond the id map were not checked\n",
               (unsigned long long)atomic_load(&beyond));
    if (atomic_load(&twice) != 0) {
        fprintf(stderr, "%llu messages finished twice by one subscription\n",
                (unsigned long long)atomic_load(&twice));
        faults++;
    }
    double took = seconds_now() - start;
    printf("soak: %d rounds in %.1f s, %llu publishes accepted, %llu "
           "messages finished (%.0f/s), %d faults\n",
           rounds, took, (unsigned long long)atomic_load(&published),
           (unsigned long long)handled, (double)handled / took, faults);
    for (int i = 0; i < SUBS_MAX; i++)
        free((void *)subs[i].seen);
    return faults == 0 ? 0 : 1;
}
