/* SPDX-License-Identifier: MIT */
/*
 * retry_dead_letter.c - failures: a flaky payment gateway, retries with
 * backoff, and a dead-letter handler for what never went through.
 *
 * 2,000 payments are published to "payments".  The gateway handler fails
 * about a third of its calls (a timeout, a 5xx), and a few payments fail
 * every time (a card the bank always declines).  The subscription retries
 * each failure after 2 ms, 4 ms, 8 ms, with jitter, up to 4 attempts,
 * without holding a worker while it waits; what still fails goes to
 * "payments.dead", whose handler reports it with the attempts made and
 * the last error, as an operator would see it.  At the end every payment
 * must be either charged once or dead-lettered once, and the statistics
 * must reconcile, or the program exits non-zero.
 *
 * Build:  cc -std=c11 -O2 retry_dead_letter.c \
 *             $(pkg-config --cflags --libs weir)
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <weir.h>

enum { PAYMENTS = 2000, ATTEMPTS = 4, E_TIMEOUT = -110, E_DECLINED = -402 };

static _Atomic uint32_t charged[PAYMENTS];  /* times each payment was charged */
static _Atomic uint32_t dead[PAYMENTS];     /* times it was dead-lettered */
static _Atomic int reported;

typedef struct payment {
    uint32_t n;
    uint32_t cents;
} payment;

/*
 * A stand-in for a remote call: fails 1 call in 3, and always for every
 * 97th card.
 */
static int
gateway(const weir_msg *m, void *ctx)
{
    (void)ctx;
    payment p;
    memcpy(&p, weir_msg_data(m), sizeof(p));
    if (p.n % 97 == 13)
        return E_DECLINED;
    uint32_t h = (p.n + 1) * 2654435761u ^ weir_msg_attempt(m) * 40503u;
    if ((h >> 16) % 3 == 0)
        return E_TIMEOUT;
    atomic_fetch_add(&charged[p.n], 1);
    return 0;
}

static int
dead_letters(const weir_msg *m, void *ctx)
{
    (void)ctx;
    payment p;
    memcpy(&p, weir_msg_data(m), sizeof(p));
    atomic_fetch_add(&dead[p.n], 1);
    if (atomic_fetch_add(&reported, 1) < 5)
        printf("  dead letter: payment %s (id %" PRIu64 ", %u.%02u EUR) from %s"
               " after %u attempts, last error %d\n",
               weir_msg_key(m), weir_msg_id(m), p.cents / 100, p.cents % 100,
               weir_msg_origin_topic(m), weir_msg_attempt(m),
               weir_msg_last_error(m));
    return 0;
}

int
main(void)
{
    weir_bus *bus;
    if (weir_bus_create(&bus, NULL) != 0)
        return 1;
    weir_sub_opts pay = { .workers = 4, .max_attempts = ATTEMPTS,
                          .retry_backoff_ns = 2 * WEIR_MSEC,
                          .retry_multiplier = 2.0, .retry_jitter = true,
                          .dead_letter_topic = "payments.dead" };
    weir_sub *gw;
    if (weir_bus_subscribe(bus, "payments", gateway, NULL, &pay, &gw) != 0 ||
        weir_bus_subscribe(bus, "payments.dead", dead_letters, NULL, NULL,
                           NULL) != 0)
        return 1;

    printf("publishing %d payments to a gateway that fails a third of its "
           "calls\n", PAYMENTS);
    for (uint32_t i = 0; i < PAYMENTS; i++) {
        payment p = { i, 500 + i * 37 % 10000 };
        char key[24];
        snprintf(key, sizeof(key), "pay-%05u", (unsigned)i);
        weir_pub_opts po = { .key = key };
        if (weir_bus_publish(bus, "payments", &p, sizeof(p), &po) != 0)
            return 1;
    }
    /*
     * Close drains: the gateway's queue and its pending retries first,
     * then the dead letters they produced.
     */
    if (weir_bus_close(bus, 10 * WEIR_SEC) != 0)
        return 1;
    weir_sub_stats st;
    weir_sub_get_stats(gw, &st);

    int bad = 0;
    uint32_t ok = 0, gave_up = 0;
    for (int i = 0; i < PAYMENTS; i++) {
        uint32_t c = atomic_load(&charged[i]), d = atomic_load(&dead[i]);
        bad += c + d != 1;
        ok += c;
        gave_up += d;
    }
    printf("charged %u, dead-lettered %u, handler calls %" PRIu64
           ", retries %" PRIu64 "\n", ok, gave_up, st.delivered, st.retried);
    printf("statistics: routed %" PRIu64 " = acked %" PRIu64
           " + failed %" PRIu64 " + dead_lettered %" PRIu64
           " + queued %" PRIu64 " + in_flight %" PRIu64 "\n",
           st.routed, st.acked, st.failed, st.dead_lettered, st.queued,
           st.in_flight);
    bool books = st.routed == PAYMENTS && st.acked == ok &&
                 st.dead_lettered == gave_up && st.failed == 0 &&
                 st.queued == 0 && st.in_flight == 0 &&
                 st.delivered == st.routed + st.retried;
    weir_bus_destroy(bus);
    if (bad != 0 || !books) {
        printf("MISMATCH: %d payments not finished exactly once\n", bad);
        return 1;
    }
    printf("every payment charged once or dead-lettered once\n");
    return 0;
}
