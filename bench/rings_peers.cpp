// SPDX-License-Identifier: MIT
/*
 * bench/rings_peers.cpp - the C++ peers of the ring benchmark: Boost's
 * lock-free spsc_queue and queue, and moodycamel's ReaderWriterQueue
 * (SPSC) and ConcurrentQueue (MPMC).  Same harness, same loops and the
 * same command line as bench/rings.c.  Built with -DBENCH_NO_BOOST,
 * -DBENCH_NO_RWQ or -DBENCH_NO_CQ where a peer's headers are missing.
 *
 * Every queue is bounded at 1024 items and never allocates on the timed
 * path: Boost by its compile-time capacity, moodycamel through try_enqueue,
 * which fails rather than grow.
 */
#include <cstddef>
#include <new>
#include <optional>

#ifndef BENCH_NO_BOOST
#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>
#endif
#ifndef BENCH_NO_RWQ
#include <readerwriterqueue/readerwriterqueue.h>
#endif
#ifndef BENCH_NO_CQ
#include <concurrentqueue/concurrentqueue.h>
#endif

#include "harness.h"

namespace {

constexpr unsigned all_spsc = BENCH_CASE_BIT(BENCH_SPSC)
                              | BENCH_CASE_BIT(BENCH_RTT);
constexpr unsigned all_mpmc = BENCH_CASE_BIT(BENCH_MPMC1)
                              | BENCH_CASE_BIT(BENCH_MPMC2);

/* For a queue whose capacity is part of its type. */
template <class Q>
void *
create_fixed(size_t, void *)
{
    return new (std::nothrow) Q();
}

template <class Q>
void *
create_sized(size_t capacity, void *)
{
    return new (std::nothrow) Q(capacity);
}

template <class Q>
void
destroy(void *q)
{
    delete static_cast<Q *>(q);
}

#ifndef BENCH_NO_BOOST
using boost_spsc = boost::lockfree::spsc_queue<
    void *, boost::lockfree::capacity<1024>>;
using boost_mpmc = boost::lockfree::queue<
    void *, boost::lockfree::capacity<1024>>;

int
bspsc_push(void *q, void *item)
{
    return static_cast<boost_spsc *>(q)->push(item);
}

int
bspsc_pop(void *q, void **item)
{
    return static_cast<boost_spsc *>(q)->pop(*item);
}

size_t
bspsc_push_burst(void *q, void *const *items, size_t n)
{
    return static_cast<boost_spsc *>(q)->push(items, n);
}

size_t
bspsc_pop_burst(void *q, void **items, size_t n)
{
    return static_cast<boost_spsc *>(q)->pop(items, n);
}

BENCH_THREAD void *
bspsc_thread(void *w)
{
    return bench_role(w, bspsc_push, bspsc_pop, bspsc_push_burst,
                      bspsc_pop_burst);
}

/* bounded_push: push would allocate a node once the 1024 are in use. */
int
bmpmc_push(void *q, void *item)
{
    return static_cast<boost_mpmc *>(q)->bounded_push(item);
}

int
bmpmc_pop(void *q, void **item)
{
    return static_cast<boost_mpmc *>(q)->pop(*item);
}

BENCH_THREAD void *
bmpmc_thread(void *w)
{
    return bench_role(w, bmpmc_push, bmpmc_pop, nullptr, nullptr);
}
#endif

#ifndef BENCH_NO_RWQ
using rwq = moodycamel::ReaderWriterQueue<void *>;

int
rwq_push(void *q, void *item)
{
    return static_cast<rwq *>(q)->try_enqueue(item);
}

int
rwq_pop(void *q, void **item)
{
    return static_cast<rwq *>(q)->try_dequeue(*item);
}

BENCH_THREAD void *
rwq_thread(void *w)
{
    return bench_role(w, rwq_push, rwq_pop, nullptr, nullptr);
}
#endif

#ifndef BENCH_NO_CQ
using cq = moodycamel::ConcurrentQueue<void *>;

/*
 * ConcurrentQueue is fastest through per-thread tokens, which the harness
 * does not know about; so each thread swaps its ring pointer for one to
 * this, made before the start line (in bench_role), and back after the
 * run.  Room for 1024 items per producer, two producers at most.
 */
struct cq_end {
    cq *q;
    std::optional<moodycamel::ProducerToken> producer;
    std::optional<moodycamel::ConsumerToken> consumer;
};

void *
cq_create(size_t capacity, void *)
{
    return new (std::nothrow) cq(capacity, 2, 0);
}

int
cq_push(void *e, void *item)
{
    cq_end *end = static_cast<cq_end *>(e);
    return end->q->try_enqueue(*end->producer, item);
}

int
cq_pop(void *e, void **item)
{
    cq_end *end = static_cast<cq_end *>(e);
    return end->q->try_dequeue(*end->consumer, *item);
}

BENCH_THREAD void *
cq_thread(void *self)
{
    bench_worker *w = static_cast<bench_worker *>(
        static_cast<bench_thread *>(self)->arg);
    bool produce = w->role == BENCH_PRODUCE;
    void *&ring = produce ? w->out : w->in;
    cq_end end;
    end.q = static_cast<cq *>(ring);
    if (produce)
        end.producer.emplace(*end.q);
    else
        end.consumer.emplace(*end.q);
    ring = &end;
    void *rc = bench_role(self, cq_push, cq_pop, nullptr, nullptr);
    ring = end.q;
    return rc;
}
#endif

const bench_impl impls[] = {
#ifndef BENCH_NO_BOOST
    { "boost-spsc", all_spsc | BENCH_CASE_BIT(BENCH_BURST),
      create_fixed<boost_spsc>, destroy<boost_spsc>, bspsc_thread },
    { "boost-queue", all_mpmc, create_fixed<boost_mpmc>, destroy<boost_mpmc>,
      bmpmc_thread },
#endif
#ifndef BENCH_NO_RWQ
    { "rwq", all_spsc, create_sized<rwq>, destroy<rwq>, rwq_thread },
#endif
#ifndef BENCH_NO_CQ
    { "cq", all_mpmc, cq_create, destroy<cq>, cq_thread },
#endif
    { nullptr, 0, nullptr, nullptr, nullptr }, /* keeps the array non-empty */
};

} // namespace

int
main(int argc, char **argv)
{
    return bench_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]) - 1);
}
