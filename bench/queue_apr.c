/* SPDX-License-Identifier: MIT */
/*
 * bench/queue_apr.c - APR-util's apr_queue_t, a bounded blocking FIFO (a
 * ring under an APR mutex with two condition variables), in weir's
 * blocking-queue benchmark.  Usage: queue_apr apr CASE COUNT (see
 * queue_harness.h).  Needs libaprutil1-dev.
 */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_queue.h>

#include "queue_harness.h"

/* APR wants its pool and its queue; the pool owns the queue's memory. */
struct aprq_end {
    apr_pool_t *pool;
    apr_queue_t *queue;
};

static void *
aprq_create(size_t capacity)
{
    struct aprq_end *e = malloc(sizeof(*e));
    if (e == NULL)
        return NULL;
    if (apr_pool_create(&e->pool, NULL) != APR_SUCCESS) {
        free(e);
        return NULL;
    }
    if (apr_queue_create(&e->queue, (unsigned)capacity, e->pool)
            != APR_SUCCESS) {
        apr_pool_destroy(e->pool);
        free(e);
        return NULL;
    }
    return e;
}

static void
aprq_destroy(void *q)
{
    struct aprq_end *e = q;
    apr_pool_destroy(e->pool); /* runs apr_queue_term through its cleanup */
    free(e);
}

/* Blocking; APR_EINTR means a signal cut the wait short, so try again. */
static void
aprq_push(void *q, void *item)
{
    apr_status_t rc;
    while ((rc = apr_queue_push(((struct aprq_end *)q)->queue, item))
           == APR_EINTR)
        continue;
    if (rc != APR_SUCCESS)
        bench_fail("apr_queue_push", rc);
}

static void *
aprq_pop(void *q)
{
    void *item;
    apr_status_t rc;
    while ((rc = apr_queue_pop(((struct aprq_end *)q)->queue, &item))
           == APR_EINTR)
        continue;
    if (rc != APR_SUCCESS)
        bench_fail("apr_queue_pop", rc);
    return item;
}

QBENCH_THREAD static void *
aprq_thread(void *w)
{
    return qbench_role(w, aprq_push, aprq_pop);
}

static const struct qbench_impl impls[] = {
    { "apr", aprq_create, aprq_destroy, aprq_thread },
};

int
main(int argc, char **argv)
{
    if (apr_initialize() != APR_SUCCESS) {
        fprintf(stderr, "bench: apr_initialize failed\n");
        return 1;
    }
    int rc = qbench_main(argc, argv, impls, 1);
    apr_terminate();
    return rc;
}
