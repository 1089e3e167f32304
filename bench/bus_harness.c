/* SPDX-License-Identifier: MIT */
/*
 * bench/bus_harness.c - the parts of the bus benchmark that are not on
 * the per-message path: the command line, completion, pacing, the
 * merged histogram and the printed line.  See bus_harness.h.
 */
#include "bus_harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <sched.h>

void
bus_done_mark(struct bus_sub_state *s)
{
    uint64_t now = bench_now_ns();
    struct bus_done *d = s->done;
    pthread_mutex_lock(&d->lock);
    if (now > d->last_ns)
        d->last_ns = now;
    if (--d->left == 0)
        pthread_cond_broadcast(&d->all_done);
    pthread_mutex_unlock(&d->lock);
}

uint64_t
bus_done_wait(struct bus_done *d)
{
    pthread_mutex_lock(&d->lock);
    while (d->left > 0)
        pthread_cond_wait(&d->all_done, &d->lock);
    uint64_t last = d->last_ns;
    pthread_mutex_unlock(&d->lock);
    return last;
}

/*
 * Spins on the clock: a sleep would add the timer's slack (50 us by
 * default) to the gap, and the pace is the point.  Yields while spinning
 * so that handler threads sharing the publisher's core still run.
 */
uint64_t
bus_pace(uint64_t next_ns)
{
    uint64_t now;
    while ((now = bench_now_ns()) < next_ns)
        if (next_ns - now > 5000)
            sched_yield();
    return now;
}

/* The middle of a bucket, in ns. */
static double
bucket_value(unsigned i)
{
    if (i < (1u << BUS_HIST_SUB))
        return i;
    unsigned msb = (i >> BUS_HIST_SUB) - 1 + BUS_HIST_SUB;
    uint64_t m = i & ((1u << BUS_HIST_SUB) - 1);
    uint64_t lo = ((1u << BUS_HIST_SUB) + m) << (msb - BUS_HIST_SUB);
    return (double)lo + (double)((uint64_t)1 << (msb - BUS_HIST_SUB)) / 2;
}

static double
quantile(const struct bus_hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->n + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < BUS_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= want)
            return bucket_value(i);
    }
    return -1;
}

static int
parse_case(const char *s, struct bus_case *c)
{
    char k = *s++;
    char *end;
    unsigned long subs = strtoul(s, &end, 10);
    if (*end != 'x')
        return -1;
    unsigned long bytes = strtoul(end + 1, &end, 10);
    if (*end != '\0' || subs < 1 || subs > BUS_MAX_SUBS || bytes < 8 ||
        bytes > BUS_MAX_BYTES)
        return -1;
    c->subs = (unsigned)subs;
    c->bytes = bytes;
    c->latency = true;
    if (k == 't')
        c->kind = BUS_RATE;
    else if (k == 'l')
        c->kind = BUS_PACED;
    else if (k == 's')
        c->kind = BUS_COST, c->latency = false;
    else
        return -1;
    return 0;
}

int
bus_main(int argc, char **argv, const struct bus_impl *impls,
         size_t nimpls)
{
    struct bench_cli cli = { .impls = impls, .nimpls = nimpls,
        .impl_size = sizeof(*impls),
        .case_help = "{t,s,l}SUBSxBYTES, e.g. t4x256" };
    struct bus_case c;

    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    if (parse_case(argv[2], &c) != 0)
        return bench_cli_usage(&cli);
    const struct bus_impl *impl = &impls[cli.impl];
    c.count = cli.count;

    struct bus_sub_state *subs = calloc(c.subs, sizeof(*subs));
    struct bus_done done;
    if (subs == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&done.lock, NULL);
    pthread_cond_init(&done.all_done, NULL);
    done.left = c.subs;
    done.last_ns = 0;
    for (unsigned i = 0; i < c.subs; i++) {
        subs[i].target = c.count;
        subs[i].done = &done;
        subs[i].latency = c.latency;
    }

    uint64_t span = 0;
    double own[2] = { -1, -1 };
    int rc = impl->run(&c, subs, &done, &span, own);
    for (unsigned i = 0; rc == 0 && i < c.subs; i++)
        if (subs[i].handled != c.count) {
            fprintf(stderr, "bench: subscription %u handled %" PRIu64
                    " of %" PRIu64 " messages\n", i, subs[i].handled,
                    c.count);
            rc = 1;
        }
    if (rc == 0) {
        struct bus_hist *all = calloc(1, sizeof(*all));
        if (all == NULL) {
            free(subs);
            return 1;
        }
        for (unsigned i = 0; i < c.subs; i++) {
            all->n += subs[i].hist.n;
            for (unsigned b = 0; b < BUS_HIST_BUCKETS; b++)
                all->bucket[b] += subs[i].hist.bucket[b];
        }
        double ns = (double)span;
        if (c.kind == BUS_RATE)
            printf("%.0f %.0f %.0f", (double)c.count * 1e9 / ns,
                   quantile(all, 0.50), quantile(all, 0.99));
        else if (c.kind == BUS_PACED)
            printf("%.0f %.0f", quantile(all, 0.50), quantile(all, 0.99));
        else
            printf("%.1f %.2f", ns / (double)c.count,
                   ns / (double)c.count / c.subs);
        if (c.kind != BUS_COST && own[0] >= 0)
            printf(" %.0f %.0f", own[0], own[1]);
        printf("\n");
        free(all);
    }
    pthread_cond_destroy(&done.all_done);
    pthread_mutex_destroy(&done.lock);
    free(subs);
    return rc;
}
