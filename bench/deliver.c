/* SPDX-License-Identifier: MIT */
/*
 * bench/deliver.c - what the bus's delivery guarantees cost: publish
 * throughput of a subscription with each option on, next to a plain one,
 * and the cost of a delayed publish while many are pending.  No peer has
 * these features in-process, so the reference is weir's own plain
 * subscription.
 *
 * Usage: deliver IMPL CASE COUNT.
 *   CASE thru: COUNT 8-byte messages published to one topic (through a
 *   weir_bus_topic handle), then weir_bus_close drains them; prints
 *   messages/s over the whole span.  IMPL:
 *     weir-plain  default options (one worker): the reference
 *     retry    max_attempts 3, handlers never fail: the careful path
 *     keyed8   8 workers, every message keyed (1,000 keys), no order
 *     ordered8 the same with ordered_by_key
 *     dedup    one worker, dedup_window_ns 1 s over 1,000 keys
 *   CASE delay: IMPL delayed; COUNT publishes with delays of an hour and
 *   more (so all stay pending); prints ns per publish.
 * After each run the subscription's statistics must show every message
 * acked, or the program fails.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <weir/bus.h>

#include "common.h"

enum { KEYS = 1000 };

static int
ok_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return 0;
}

struct impl {
    const char *name;
    weir_sub_opts opts;
    int keyed;
};

static const struct impl impls[] = {
    { "weir-plain", { 0 }, 0 },
    { "retry", { .max_attempts = 3 }, 0 },
    { "keyed8", { .workers = 8 }, 1 },
    { "ordered8", { .workers = 8, .ordered_by_key = true }, 1 },
    { "dedup", { .dedup_window_ns = WEIR_SEC }, 1 },
    { "delayed", { 0 }, 0 },
};

static const char *const case_names[] = { "thru", "delay", NULL };

int
main(int argc, char **argv)
{
    struct bench_cli cli = { .impls = impls,
        .nimpls = sizeof(impls) / sizeof(impls[0]),
        .impl_size = sizeof(impls[0]), .cases = case_names,
        .case_help = "thru delay (COUNT: messages)" };
    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    const struct impl *im = &impls[cli.impl];
    int delay = cli.kase == 1;
    if (delay != (strcmp(im->name, "delayed") == 0))
        return bench_cli_usage(&cli);

    weir_bus *bus;
    weir_topic *topic;
    weir_sub *sub;
    int rc;
    if ((rc = weir_bus_create(&bus, NULL)) != 0)
        bench_fail("weir_bus_create", rc);
    if ((rc = weir_bus_subscribe(bus, "bench", ok_handler, NULL, &im->opts,
                                 &sub)) != 0)
        bench_fail("weir_bus_subscribe", rc);
    if ((rc = weir_bus_topic(bus, "bench", &topic)) != 0)
        bench_fail("weir_bus_topic", rc);
    char keys[KEYS][8];
    for (int k = 0; k < KEYS; k++)
        snprintf(keys[k], sizeof(keys[k]), "k%d", k);

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < cli.count; i++) {
        weir_pub_opts po = { 0 };
        if (im->keyed)
            po.key = keys[i % KEYS];
        if (delay)
            po.delay_ns = 3600 * WEIR_SEC + (int64_t)(i % 977) * WEIR_MSEC;
        if ((rc = weir_topic_publish(topic, &i, sizeof(i), &po)) != 0)
            bench_fail("weir_topic_publish", rc);
    }
    uint64_t t1 = bench_now_ns();
    if (delay) {
        /* Nothing is due: the close gives them all up. */
        weir_bus_close(bus, WEIR_NOWAIT);
        printf("%.1f\n", (double)(t1 - t0) / (double)cli.count);
        weir_bus_destroy(bus);
        return 0;
    }
    if ((rc = weir_bus_close(bus, WEIR_FOREVER)) != 0)
        bench_fail("weir_bus_close", rc);
    uint64_t t2 = bench_now_ns();
    weir_sub_stats st;
    weir_sub_get_stats(sub, &st);
    if (st.acked != cli.count || st.routed != cli.count) {
        fprintf(stderr, "bench: %" PRIu64 " routed, %" PRIu64
                " acked of %" PRIu64 "\n", st.routed, st.acked, cli.count);
        return 1;
    }
    printf("%.0f\n", (double)cli.count * 1e9 / (double)(t2 - t0));
    weir_bus_destroy(bus);
    return 0;
}
