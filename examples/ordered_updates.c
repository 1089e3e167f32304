/* SPDX-License-Identifier: MIT */
/*
 * ordered_updates.c - per-key order with parallelism: account balance
 * updates, handled in parallel across accounts and strictly in order
 * within each.
 *
 * 500 accounts receive 50,000 updates (deposits and withdrawals), each
 * published with the account number as its key to a subscription with 8
 * workers and ordered_by_key.  Each update carries the balance its
 * publisher expects the account to have before it, so a handler can see
 * at once whether it was overtaken.  The ledger is flaky: it fails about
 * 1 update in 20 on its first try, which the subscription retries while
 * the later updates of that account wait behind it (and other accounts
 * go on).  At the end every balance must match the one the publisher
 * computed, no update may have been applied out of order or concurrently
 * with another of its account, and the statistics must reconcile, or the
 * program exits non-zero.
 *
 * Build:  cc -std=c11 -O2 ordered_updates.c $(pkg-config --cflags --libs weir)
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <weir.h>

enum { ACCOUNTS = 500, UPDATES = 50000, WORKERS = 8 };

typedef struct update {
    uint32_t account;
    int32_t amount;        /* cents; negative: a withdrawal */
    int64_t expect_before; /* the balance the publisher expects before it */
} update;

/*
 * The ledger.  Plain integers on purpose: per-key order promises one
 * update of an account at a time, so no two workers touch the same
 * balance at once (busy catches it if they ever did).
 */
static int64_t balance[ACCOUNTS];
static _Atomic int busy[ACCOUNTS];
static _Atomic int overtaken, overlapped;

static int
apply(const weir_msg *m, void *ctx)
{
    (void)ctx;
    update u;
    memcpy(&u, weir_msg_data(m), sizeof(u));
    if (atomic_exchange(&busy[u.account], 1) != 0)
        atomic_fetch_add(&overlapped, 1);
    int rc = 0;
    uint64_t h = weir_msg_id(m) * 0x9E3779B97F4A7C15u;
    if (weir_msg_attempt(m) == 1 && (h >> 40) % 20 == 0) {
        rc = -1; /* the ledger's connection dropped: retry later */
    } else {
        if (balance[u.account] != u.expect_before)
            atomic_fetch_add(&overtaken, 1);
        balance[u.account] += u.amount;
    }
    atomic_store(&busy[u.account], 0);
    return rc;
}

int
main(void)
{
    weir_bus *bus;
    if (weir_bus_create(&bus, NULL) != 0)
        return 1;
    weir_sub_opts o = { .workers = WORKERS, .capacity = 4096,
                        .ordered_by_key = true, .max_attempts = 5,
                        .retry_backoff_ns = 200 * WEIR_USEC };
    weir_sub *sub;
    if (weir_bus_subscribe(bus, "balances", apply, NULL, &o, &sub) != 0)
        return 1;

    static int64_t expected[ACCOUNTS];
    uint32_t x = 12345;
    for (int i = 0; i < UPDATES; i++) {
        x = x * 1103515245u + 12345u;
        update u = { .account = (x >> 8) % ACCOUNTS,
                     .amount = (int32_t)((x >> 4) % 20001) - 10000 };
        u.expect_before = expected[u.account];
        expected[u.account] += u.amount;
        char key[16];
        snprintf(key, sizeof(key), "acct-%u", (unsigned)u.account);
        weir_pub_opts po = { .key = key };
        if (weir_bus_publish(bus, "balances", &u, sizeof(u), &po) != 0)
            return 1;
    }
    if (weir_bus_close(bus, 10 * WEIR_SEC) != 0)
        return 1;

    int wrong = 0;
    for (int a = 0; a < ACCOUNTS; a++)
        wrong += balance[a] != expected[a];
    weir_sub_stats st;
    weir_sub_get_stats(sub, &st);
    printf("%d updates over %d accounts, %d workers: %" PRIu64 " handler calls,"
           " %" PRIu64 " retried\n", UPDATES, ACCOUNTS, WORKERS, st.delivered,
           st.retried);
    printf("balances wrong: %d, updates applied out of order: %d,"
           " concurrently with their account: %d\n", wrong,
           atomic_load(&overtaken), atomic_load(&overlapped));
    bool books = st.routed == UPDATES && st.acked == UPDATES &&
                 st.failed == 0 && st.queued == 0 && st.in_flight == 0;
    weir_bus_destroy(bus);
    if (wrong != 0 || atomic_load(&overtaken) != 0 ||
        atomic_load(&overlapped) != 0 || !books) {
        printf("MISMATCH\n");
        return 1;
    }
    printf("every account in order, every balance right\n");
    return 0;
}
