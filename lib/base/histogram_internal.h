/* SPDX-License-Identifier: MIT */
/*
 * histogram_internal.h - PRIVATE to lib/: a fixed-size, lock-free
 * histogram of nanosecond durations with log-scaled buckets.
 *
 * Each power of two is split in WEIRI_HIST_SUB buckets, so a percentile is
 * known to within a quarter of its power of two, in 64 * 4 counters and
 * no allocation.  A histogram has one writer (each worker keeps its own),
 * so recording is a relaxed load and store, not a locked increment: cheap
 * enough for every handled message.  Readers on any thread sum a set of
 * them, cheap enough to poll every second.
 */
#ifndef WEIR_HISTOGRAM_INTERNAL_H
#define WEIR_HISTOGRAM_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define WEIRI_HIST_SUB_BITS 2
#define WEIRI_HIST_SUB (1 << WEIRI_HIST_SUB_BITS)
#define WEIRI_HIST_BUCKETS (64 * WEIRI_HIST_SUB)

typedef struct weiri_hist {
    _Atomic uint64_t bucket[WEIRI_HIST_BUCKETS];
    _Atomic int64_t max;
} weiri_hist;

/*
 * weiri_hist_record - add one duration (negative values count as 0).
 * Only h's one writer may call it.
 */
void weiri_hist_record(weiri_hist *h, int64_t ns);

/*
 * A sum of histograms, as a reader builds it: the workers of a
 * subscription each keep their own, wherever their structs put them, and
 * a reader adds them up one by one.  Zero it before the first add.
 */
typedef struct weiri_hist_sum {
    uint64_t bucket[WEIRI_HIST_BUCKETS];
    uint64_t total;                /* durations recorded */
    int64_t max;                   /* the largest of them */
} weiri_hist_sum;

/* weiri_hist_sum_add - add what h holds now to sum.  Any thread. */
void weiri_hist_sum_add(weiri_hist_sum *sum, const weiri_hist *h);

/*
 * weiri_hist_sum_percentile - the upper bound of the bucket holding the
 * p-th fraction (0 < p <= 1) of what sum holds, but never more than its
 * max: a bucket's top may lie above every value in it.  0 if empty.
 */
int64_t weiri_hist_sum_percentile(const weiri_hist_sum *sum, double p);

#endif /* WEIR_HISTOGRAM_INTERNAL_H */
