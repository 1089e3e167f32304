/* SPDX-License-Identifier: MIT */
/*
 * histogram.c - see histogram_internal.h.
 */
#include "histogram_internal.h"

/*
 * Bucket of v: values below WEIRI_HIST_SUB get their own buckets; above,
 * the position of the top bit picks the power of two and the next
 * WEIRI_HIST_SUB_BITS bits pick the quarter within it.
 */
static unsigned
bucket_of(uint64_t v)
{
    if (v < WEIRI_HIST_SUB)
        return (unsigned)v;
    unsigned top = 63 - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (top - WEIRI_HIST_SUB_BITS)) &
                   (WEIRI_HIST_SUB - 1);
    return (top - WEIRI_HIST_SUB_BITS + 1) * WEIRI_HIST_SUB + sub;
}

/* The largest value that falls in bucket b. */
static int64_t
bucket_top(unsigned b)
{
    if (b < WEIRI_HIST_SUB)
        return (int64_t)b;
    unsigned top = b / WEIRI_HIST_SUB + WEIRI_HIST_SUB_BITS - 1;
    uint64_t sub = b % WEIRI_HIST_SUB;
    uint64_t low = ((uint64_t)WEIRI_HIST_SUB + sub) <<
                   (top - WEIRI_HIST_SUB_BITS);
    uint64_t width = (uint64_t)1 << (top - WEIRI_HIST_SUB_BITS);
    uint64_t hi = low + width - 1;
    return hi > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)hi;
}

void
weiri_hist_record(weiri_hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    /*
     * One writer: a load and a store make an increment no reader can
     * tear, without a locked instruction.  The max moves first, and the
     * bucket's store is a release (a plain store on x86) that pairs with
     * the acquire loads of weiri_hist_sum_add, so a reader that counts
     * this value also sees a max at least as large: a percentile clamped
     * to the max never falls below a value it counts.
     */
    if (ns > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, ns, memory_order_relaxed);
    _Atomic uint64_t *b = &h->bucket[bucket_of((uint64_t)ns)];
    atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + 1,
                          memory_order_release);
}

void
weiri_hist_sum_add(weiri_hist_sum *sum, const weiri_hist *h)
{
    for (unsigned b = 0; b < WEIRI_HIST_BUCKETS; b++) {
        /* Acquire: pairs with weiri_hist_record's store. */
        uint64_t c = atomic_load_explicit(&h->bucket[b], memory_order_acquire);
        sum->bucket[b] += c;
        sum->total += c;
    }
    int64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    if (m > sum->max)
        sum->max = m;
}

int64_t
weiri_hist_sum_percentile(const weiri_hist_sum *sum, double p)
{
    if (sum->total == 0)
        return 0;
    /* The rank of the p-th value, 1-based, rounded up. */
    uint64_t rank = (uint64_t)(p * (double)sum->total);
    if ((double)rank < p * (double)sum->total)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    unsigned b = 0;
    for (; b < WEIRI_HIST_BUCKETS - 1; b++) {
        seen += sum->bucket[b];
        if (seen >= rank)
            break;
    }
    /* The max was read after the buckets: see weiri_hist_record. */
    int64_t top = bucket_top(b);
    return top < sum->max ? top : sum->max;
}
