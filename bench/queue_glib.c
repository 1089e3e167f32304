/* SPDX-License-Identifier: MIT */
/*
 * bench/queue_glib.c - GLib's GAsyncQueue in weir's blocking-queue
 * benchmark.  Usage: queue_glib glib CASE COUNT (see queue_harness.h).
 * Needs libglib2.0-dev.
 *
 * GAsyncQueue has no bound: a push never waits, and a producer faster
 * than its consumer grows the queue (a linked list) instead of pausing.
 * The throughput it shows is therefore not that of a queue of capacity
 * 1024, and bench/run says so.
 */
#include <glib.h>

#include "queue_harness.h"

static void *
glib_create(size_t capacity)
{
    (void)capacity;
    return g_async_queue_new();
}

static void
glib_destroy(void *q)
{
    g_async_queue_unref(q);
}

static void
glib_push(void *q, void *item)
{
    g_async_queue_push(q, item); /* never blocks */
}

static void *
glib_pop(void *q)
{
    return g_async_queue_pop(q);
}

QBENCH_THREAD static void *
glib_thread(void *w)
{
    return qbench_role(w, glib_push, glib_pop);
}

static const struct qbench_impl impls[] = {
    { "glib", glib_create, glib_destroy, glib_thread },
};

int
main(int argc, char **argv)
{
    return qbench_main(argc, argv, impls, 1);
}
