/* SPDX-License-Identifier: MIT */
/*
 * bench/queue_weir.c - weir's blocking queue and the textbook queue it is
 * measured against: a ring under one mutex with two condition variables
 * (bench/textbook.h).
 * Usage: queue_weir IMPL CASE COUNT (see queue_harness.h); bench/run
 * drives it.
 */
#include <pthread.h>
#include <stdlib.h>

#include <weir/queue.h>

#include "queue_harness.h"
#include "textbook.h"

/* --- weir ------------------------------------------------------------- */

static void *
weir_create(size_t capacity)
{
    weir_queue *q;
    return weir_queue_create(&q, capacity) == 0 ? q : NULL;
}

static void
weir_destroy(void *q)
{
    weir_queue_destroy(q);
}

static void
weir_push(void *q, void *item)
{
    int rc = weir_queue_push(q, item, WEIR_FOREVER);
    if (rc != 0)
        bench_fail("weir_queue_push", rc);
}

static void *
weir_pop(void *q)
{
    void *item;
    int rc = weir_queue_pop(q, &item, WEIR_FOREVER);
    if (rc != 0)
        bench_fail("weir_queue_pop", rc);
    return item;
}

QBENCH_THREAD static void *
weir_thread(void *w)
{
    return qbench_role(w, weir_push, weir_pop);
}

/* --- the textbook queue (bench/textbook.h) ---------------------------- */

static void *
textbook_create(size_t capacity)
{
    struct textbook *t = malloc(sizeof(*t));
    if (t != NULL && textbook_init(t, capacity) != 0)
        free(t), t = NULL;
    return t;
}

static void
textbook_free(void *q)
{
    textbook_destroy(q);
    free(q);
}

/* textbook_push and textbook_pop take a struct textbook *, not a void *. */
static void
textbook_push_item(void *q, void *item)
{
    textbook_push(q, item);
}

static void *
textbook_pop_item(void *q)
{
    return textbook_pop(q);
}

QBENCH_THREAD static void *
textbook_thread(void *w)
{
    return qbench_role(w, textbook_push_item, textbook_pop_item);
}

static const struct qbench_impl impls[] = {
    { "weir", weir_create, weir_destroy, weir_thread },
    { "textbook", textbook_create, textbook_free, textbook_thread },
};

int
main(int argc, char **argv)
{
    return qbench_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]));
}
