/* SPDX-License-Identifier: MIT */
/*
 * bench/textbook.h - the bounded buffer of every operating-systems
 * course, the baseline both the queue suite (bench/queue_weir.c) and the
 * bus suite's fan-out (bench/bus.c) measure weir against: one mutex
 * guards a ring of pointers and its counts; a producer waits on not_full
 * while the ring is full, a consumer on not_empty while it is empty, and
 * each signals the other side's condition after every item, holding the
 * mutex.
 *
 * Header-only so that push and pop inline into each program's thread
 * functions, as the queues they are compared with do.
 */
#ifndef WEIR_BENCH_TEXTBOOK_H
#define WEIR_BENCH_TEXTBOOK_H

#include <pthread.h>
#include <stdlib.h>

struct textbook {
    pthread_mutex_t lock;
    pthread_cond_t not_full;  /* signalled after each pop */
    pthread_cond_t not_empty; /* signalled after each push */
    size_t head;              /* next slot to pop; guarded by lock */
    size_t count;             /* items queued; guarded by lock */
    size_t capacity;
    void **slots;
};

/* Returns 0, or -1 with nothing to undo when out of memory. */
static inline int
textbook_init(struct textbook *t, size_t capacity)
{
    t->slots = calloc(capacity, sizeof(void *));
    if (t->slots == NULL)
        return -1;
    t->head = t->count = 0;
    t->capacity = capacity;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->not_full, NULL);
    pthread_cond_init(&t->not_empty, NULL);
    return 0;
}

/* Frees the ring; items still in it are the caller's. */
static inline void
textbook_destroy(struct textbook *t)
{
    pthread_cond_destroy(&t->not_empty);
    pthread_cond_destroy(&t->not_full);
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
}

static inline void
textbook_push(struct textbook *t, void *item)
{
    pthread_mutex_lock(&t->lock);
    while (t->count == t->capacity)
        pthread_cond_wait(&t->not_full, &t->lock);
    t->slots[(t->head + t->count) % t->capacity] = item;
    t->count++;
    pthread_cond_signal(&t->not_empty);
    pthread_mutex_unlock(&t->lock);
}

static inline void *
textbook_pop(struct textbook *t)
{
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

#endif /* WEIR_BENCH_TEXTBOOK_H */
