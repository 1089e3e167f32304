/* SPDX-License-Identifier: MIT */
/*
 * durable_orders.c - orders that survive the process.
 *
 * The order service publishes each order to a durable topic and tells
 * its caller "accepted" only when the publish returns 0: the order is in
 * the journal on disk.  Billing is a durable subscription, slower than
 * the orders come in, so orders pile up behind it.  Then the process is
 * killed (SIGKILL: no close, no flush, nothing).
 *
 * To show that, the program runs the service as a child (itself, run
 * again with "child DIR"), reads the orders it accepted from a pipe, and
 * kills it part way.  Then it opens a bus on the same directory, as the
 * restarted service would: billing is handed every order it had not
 * acknowledged, marked redelivered, and the program checks that every
 * accepted order was billed.  It exits non-zero if one was lost.
 *
 * Build:  cc -std=c11 -O2 durable_orders.c $(pkg-config --cflags --libs weir)
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <weir.h>

enum { ORDERS = 2000, KILL_AFTER = 600 };

typedef struct order {
    uint32_t number;
    uint32_t cents;
} order;

/* --- the service, killed part way ---------------------------------------- */

/* Bills an order (2 ms: billing lags behind), and tells the caller. */
static int
bill_slowly(const weir_msg *m, void *ctx)
{
    (void)ctx;
    order ord;
    memcpy(&ord, weir_msg_data(m), sizeof(ord));
    struct timespec ts = { 0, 2000000 };
    nanosleep(&ts, NULL);
    printf("b %u\n", ord.number);
    fflush(stdout);
    return 0;
}

static int
service(const char *dir)
{
    weir_bus_opts o = { .journal_dir = dir,
                        .journal_sync = WEIR_SYNC_BATCH };
    weir_bus *bus;
    int rc = weir_bus_create(&bus, &o);
    weir_topic *orders;
    if (rc == 0)
        rc = weir_bus_durable_topic(bus, "orders", &orders);
    weir_sub_opts billing = { .name = "billing", .durable = true };
    if (rc == 0)
        rc = weir_bus_subscribe(bus, "orders", bill_slowly, NULL, &billing,
                                NULL);
    if (rc != 0) {
        fprintf(stderr, "service: %s\n", weir_strerror(rc));
        return 1;
    }
    for (uint32_t n = 1; n <= ORDERS; n++) {
        order ord = { n, 100 * n };
        char key[16];
        snprintf(key, sizeof(key), "customer-%u", n % 7);
        weir_pub_opts po = { .key = key };
        rc = weir_topic_publish(orders, &ord, sizeof(ord), &po);
        if (rc != 0) {
            /* The caller sees the end of the pipe, not a hang. */
            fprintf(stderr, "service: order %u: %s\n", n, weir_strerror(rc));
            return 1;
        }
        printf("a %u\n", n); /* accepted: tell the caller */
        fflush(stdout);
    }
    pause(); /* killed before it gets here, or here */
    return 0;
}

/* --- the restart ---------------------------------------------------------- */

static _Atomic uint8_t billed[ORDERS + 1];
static _Atomic uint64_t billed_count, redelivered;

static int
bill(const weir_msg *m, void *ctx)
{
    (void)ctx;
    order ord;
    if (weir_msg_size(m) != sizeof(ord))
        return -1;
    memcpy(&ord, weir_msg_data(m), sizeof(ord));
    if (ord.number == 0 || ord.number > ORDERS || ord.cents != 100 * ord.number)
        return -1;
    atomic_fetch_add(&billed[ord.number], 1);
    atomic_fetch_add(&billed_count, 1);
    if (weir_msg_redelivered(m))
        atomic_fetch_add(&redelivered, 1);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0)
        return service(argv[2]);
    char dir[] = "/tmp/weir-durable-orders-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int out[2];
    if (pipe(out) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        execl("/proc/self/exe", argv[0], "child", dir, (char *)NULL);
        execl(argv[0], argv[0], "child", dir, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    /*
     * Read what the service accepted ("a N") and billed ("b N"); kill it
     * part way, then read what it wrote before it died.
     */
    FILE *in = fdopen(out[0], "r");
    static bool accepted[ORDERS + 1];
    unsigned n, count = 0, billed_before = 0;
    char what;
    bool killed = false;
    while (in != NULL && fscanf(in, " %c %u", &what, &n) == 2) {
        if (n < 1 || n > ORDERS)
            continue;
        if (what == 'a' && !accepted[n])
            accepted[n] = true, count++;
        if (what == 'b' && atomic_fetch_add(&billed[n], 1) == 0)
            billed_before++;
        if (!killed && count == KILL_AFTER) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    if (!killed)
        kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (in != NULL)
        fclose(in);
    printf("service killed with SIGKILL after accepting %u orders and "
           "billing %u\n", count, billed_before);

    /* The restarted service: the same directory, the same names. */
    weir_bus_opts o = { .journal_dir = dir };
    weir_bus *bus;
    int rc = weir_bus_create(&bus, &o);
    weir_sub_opts billing = { .name = "billing", .durable = true,
                              .workers = 4, .ordered_by_key = true };
    weir_sub *sub = NULL;
    if (rc == 0)
        rc = weir_bus_subscribe(bus, "orders", bill, NULL, &billing, &sub);
    if (rc != 0) {
        fprintf(stderr, "restart: %s\n", weir_strerror(rc));
        return 1;
    }
    /* Close hands billing everything the journal holds for it. */
    rc = weir_bus_close(bus, 30 * WEIR_SEC);
    weir_sub_stats st;
    weir_sub_get_stats(sub, &st);
    weir_bus_stats bs;
    weir_bus_get_stats(bus, &bs);
    unsigned lost = 0;
    for (unsigned i = 1; i <= ORDERS; i++)
        lost += accepted[i] && atomic_load(&billed[i]) == 0;
    printf("after the restart: %llu records read back, %llu orders billed "
           "(%llu handed out again), %u accepted orders never billed\n",
           (unsigned long long)bs.journal_recovered,
           (unsigned long long)atomic_load(&billed_count),
           (unsigned long long)atomic_load(&redelivered), lost);
    weir_bus_destroy(bus);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return rc == 0 && lost == 0 && count > 0 ? 0 : 1;
}
