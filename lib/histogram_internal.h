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
 * weiri_hist_percentile - over the n histograms h[0..n-1] together: the
 * upper bound of the bucket holding the p-th fraction (0 < p <= 1) of
 * what was recorded; 0 if nothing was.  Any thread.
 */
int64_t weiri_hist_percentile(const weiri_hist *h, size_t n, double p);

/* weiri_hist_max - the largest duration recorded in h[0..n-1]. */
int64_t weiri_hist_max(const weiri_hist *h, size_t n);

#endif /* WEIR_HISTOGRAM_INTERNAL_H */
