// SPDX-License-Identifier: MIT
/*
 * bench/queue_tbb.cpp - oneTBB's concurrent_bounded_queue in weir's
 * blocking-queue benchmark, with set_capacity(1024): push waits while it
 * is full, pop while it is empty.  Usage: queue_tbb tbb CASE COUNT (see
 * queue_harness.h).  Needs libtbb-dev.
 */
#include <new>

#include <tbb/concurrent_queue.h>

#include "queue_harness.h"

namespace {

using tbb_queue = tbb::concurrent_bounded_queue<void *>;

void *
tbb_create(size_t capacity)
{
    tbb_queue *q = new (std::nothrow) tbb_queue();
    if (q != nullptr)
        q->set_capacity(static_cast<std::ptrdiff_t>(capacity));
    return q;
}

void
tbb_destroy(void *q)
{
    delete static_cast<tbb_queue *>(q);
}

void
tbb_push(void *q, void *item)
{
    static_cast<tbb_queue *>(q)->push(item);
}

void *
tbb_pop(void *q)
{
    void *item;
    static_cast<tbb_queue *>(q)->pop(item);
    return item;
}

QBENCH_THREAD void *
tbb_thread(void *w)
{
    return qbench_role(w, tbb_push, tbb_pop);
}

const qbench_impl impls[] = {
    { "tbb", tbb_create, tbb_destroy, tbb_thread },
};

} // namespace

int
main(int argc, char **argv)
{
    return qbench_main(argc, argv, impls, 1);
}
