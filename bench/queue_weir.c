/*
 * bench/queue_weir.c - weir's blocking queue and the textbook queue it is
 * measured against: a ring under one mutex with two condition variables.
 * Usage: queue_weir IMPL CASE COUNT (see queue_harness.h); bench/run
 * drives it.
 */
#include <pthread.h>
#include <stdlib.h>

#include <weir/queue.h>

#include "queue_harness.h"

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
        qbench_fail("weir_queue_push", rc);
}

static void *
weir_pop(void *q)
{
    void *item;
    int rc = weir_queue_pop(q, &item, WEIR_FOREVER);
    if (rc != 0)
        qbench_fail("weir_queue_pop", rc);
    return item;
}

QBENCH_THREAD static void *
weir_thread(void *w)
{
    return qbench_role(w, weir_push, weir_pop);
}

/* --- the textbook queue ------------------------------------------------ */

/*
 * The bounded buffer of every operating-systems course: one mutex guards
 * the ring and its counts; a producer waits on not_full while the ring is
 * full, a consumer on not_empty while it is empty, and each signals the
 * other side's condition after every item, holding the mutex.
 */
struct textbook {
    pthread_mutex_t lock;
    pthread_cond_t not_full;  /* signalled after each pop */
    pthread_cond_t not_empty; /* signalled after each push */
    size_t head;              /* next slot to pop; guarded by lock */
    size_t count;             /* items queued; guarded by lock */
    size_t capacity;
    void **slots;
};

static void *
textbook_create(size_t capacity)
{
    struct textbook *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->slots = calloc(capacity, sizeof(void *));
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    t->capacity = capacity;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->not_full, NULL);
    pthread_cond_init(&t->not_empty, NULL);
    return t;
}

static void
textbook_destroy(void *q)
{
    struct textbook *t = q;
    pthread_cond_destroy(&t->not_empty);
    pthread_cond_destroy(&t->not_full);
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static void
textbook_push(void *q, void *item)
{
    struct textbook *t = q;
    pthread_mutex_lock(&t->lock);
    while (t->count == t->capacity)
        pthread_cond_wait(&t->not_full, &t->lock);
    t->slots[(t->head + t->count) % t->capacity] = item;
    t->count++;
    pthread_cond_signal(&t->not_empty);
    pthread_mutex_unlock(&t->lock);
}

static void *
textbook_pop(void *q)
{
    struct textbook *t = q;
    pthread_mutex_lock(&t->lock);
    while (t->count == 0)
        pthread_cond_wait(&t->not_empty, &t->lock);
    void *item = t->slots[t->head];
    t->head = (t->head + 1) % t->capacity;
    t->count--;
    pthread_cond_signal(&t->not_full);
    pthread_mutex_unlock(&t->lock);
    return item;
}

QBENCH_THREAD static void *
textbook_thread(void *w)
{
    return qbench_role(w, textbook_push, textbook_pop);
}

static const struct qbench_impl impls[] = {
    { "weir", weir_create, weir_destroy, weir_thread },
    { "textbook", textbook_create, textbook_destroy, textbook_thread },
};

int
main(int argc, char **argv)
{
    return qbench_main(argc, argv, impls, sizeof(impls) / sizeof(impls[0]));
}
