/* SPDX-License-Identifier: MIT */
/*
 * flash_sale.c - peak shaving: a burst of 50,000 purchase requests in
 * under a second meets an order database that takes 2,000 writes a
 * second.
 *
 * The requests go to a bus subscription with a bounded queue, a rate
 * limit of 2,000/s and the REJECT policy: what the buffer can hold is
 * accepted and written at the database's pace, the rest is turned away at
 * once (the shop can tell those customers "sold out, try again") instead
 * of piling up without bound.  A live view shows arrivals per second,
 * queue depth and consumption rate, redrawn in place on a terminal and as
 * plain lines otherwise.  At the end accepted + rejected must equal the
 * requests and every accepted request must have been processed, or the
 * program exits non-zero.
 *
 * Build:  cc -std=c11 -O2 flash_sale.c $(pkg-config --cflags --libs weir)
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <weir.h>

enum {
    REQUESTS = 50000,
    ARRIVAL_MS = 500,      /* the whole burst arrives within this */
    BUFFER = 4000,         /* requests the queue may hold */
    DB_RATE = 2000,        /* writes per second the database takes */
    VIEW_MS = 250          /* live view refresh */
};

static _Atomic uint64_t written;   /* requests the database stored */
static _Atomic uint64_t arrived;   /* requests that reached the shop */
static _Atomic int selling = 1;

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
write_order(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    atomic_fetch_add(&written, 1);
    return 0;
}

typedef struct view {
    weir_sub *sub;
    int tty;
} view;

/* The live view: one line per refresh, redrawn in place on a terminal. */
static void
show(const view *v, uint64_t *last_arrived, uint64_t *last_written,
     double secs, int final)
{
    weir_sub_stats st;
    weir_sub_get_stats(v->sub, &st);
    uint64_t a = atomic_load(&arrived), w = atomic_load(&written);
    double dt = VIEW_MS / 1000.0;
    printf("%s t=%5.2fs  arrivals %7.0f/s  queue %5" PRIu64 "  consumed %6.0f/s"
           "  accepted %6" PRIu64 "  rejected %6" PRIu64 "%s",
           v->tty ? "\r" : "", secs, (a - *last_arrived) / dt, st.queued,
           (w - *last_written) / dt, st.routed, st.rejected,
           v->tty && !final ? "" : "\n");
    fflush(stdout);
    *last_arrived = a;
    *last_written = w;
}

static void *
viewer(void *arg)
{
    view *v = arg;
    uint64_t la = 0, lw = 0;
    int64_t t0 = now_ns();
    struct timespec tick = { 0, VIEW_MS * 1000000L };
    while (atomic_load(&selling)) {
        nanosleep(&tick, NULL);
        show(v, &la, &lw, (now_ns() - t0) / 1e9, !atomic_load(&selling));
    }
    return NULL;
}

int
main(void)
{
    weir_bus *bus;
    weir_topic *orders;
    view v = { NULL, isatty(STDOUT_FILENO) };
    weir_sub_opts db = { .capacity = BUFFER, .overflow = WEIR_OVERFLOW_REJECT,
                         .rate_per_sec = DB_RATE, .burst = 100 };
    int rc = weir_bus_create(&bus, NULL);
    if (rc == 0)
        rc = weir_bus_subscribe(bus, "sale.order", write_order, NULL, &db,
                                &v.sub);
    if (rc == 0)
        rc = weir_bus_topic(bus, "sale.order", &orders);
    if (rc != 0) {
        fprintf(stderr, "setup: %s\n", weir_strerror(rc));
        return 1;
    }
    printf("flash sale: %d requests within %d ms, database takes %d/s, "
           "buffer %d, overflow REJECT\n", REQUESTS, ARRIVAL_MS, DB_RATE,
           BUFFER);
    pthread_t th;
    if (pthread_create(&th, NULL, viewer, &v) != 0)
        return 1;

    uint64_t accepted = 0, refused = 0;
    int64_t start = now_ns();
    for (uint64_t i = 0; i < REQUESTS; i++) {
        /* Spread the burst evenly over ARRIVAL_MS. */
        int64_t due = start +
                      (int64_t)(i * (ARRIVAL_MS * 1000000LL) / REQUESTS);
        while (now_ns() < due)
            ;
        uint64_t request = i;
        rc = weir_topic_publish(orders, &request, sizeof(request), NULL);
        atomic_fetch_add(&arrived, 1);
        if (rc == 0)
            accepted++;
        else if (rc == WEIR_EAGAIN)
            refused++;   /* "sold out, try again" */
        else
            fprintf(stderr, "publish: %s\n", weir_strerror(rc));
    }
    double burst_ms = (now_ns() - start) / 1e6;

    /* Everything accepted is written at the database's pace. */
    rc = weir_bus_close(bus, 60 * WEIR_SEC);
    atomic_store(&selling, 0);
    pthread_join(th, NULL);
    double total_s = (now_ns() - start) / 1e9;

    weir_sub_stats st;
    weir_sub_get_stats(v.sub, &st);
    uint64_t done = atomic_load(&written);
    printf("\nburst took %.0f ms; drained in %.2f s (%.0f writes/s)\n",
           burst_ms, total_s, done / total_s);
    printf("requests %d = accepted %" PRIu64 " + rejected %" PRIu64
           "; processed %" PRIu64 "\n", REQUESTS, accepted, refused, done);
    int ok = rc == 0 && accepted + refused == REQUESTS && done == accepted &&
             st.routed == accepted && st.rejected == refused &&
             st.acked == accepted && st.queued == 0 && refused > 0;
    printf("%s\n", ok ? "flash_sale: OK, the counts add up"
                      : "flash_sale: MISMATCH");
    weir_bus_destroy(bus);
    return ok ? 0 : 1;
}
