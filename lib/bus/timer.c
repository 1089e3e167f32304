/* SPDX-License-Identifier: MIT */
/*
 * timer.c - a timer thread and its min-heap (timer_internal.h).
 *
 * The thread sleeps on an event count until the earliest entry is due or
 * an add makes an earlier one; it is started by the first add, so a timer
 * never used costs no thread.
 */
#include <stdlib.h>

#include "weir/common.h"

#include "alloc_internal.h"
#include "clock_internal.h"
#include "thread_internal.h"
#include "timer_internal.h"

int
weiri_timer_init(weiri_timer *t, bool locked)
{
    *t = (weiri_timer){ .locked = locked };
    if (pthread_mutex_init(&t->mu, NULL) != 0)
        return WEIR_ENOMEM;
    if (weiri_event_init(&t->changed) != 0) {
        pthread_mutex_destroy(&t->mu);
        return WEIR_ENOMEM;
    }
    return 0;
}

static bool
before(const weiri_timed *a, const weiri_timed *b)
{
    return a->due != b->due ? a->due < b->due : a->seq < b->seq;
}

/* Returns where the entry ended up: 0 if it is now the earliest. */
static size_t
sift_up(weiri_timed *h, size_t i)
{
    weiri_timed e = h[i];
    for (; i > 0 && before(&e, &h[(i - 1) / 2]); i = (i - 1) / 2)
        h[i] = h[(i - 1) / 2];
    h[i] = e;
    return i;
}

static void
sift_down(weiri_timed *h, size_t n, size_t i)
{
    weiri_timed e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static weiri_timed
pop_min(weiri_timer *t)
{
    weiri_timed e = t->heap[0];
    if (--t->n > 0) {
        t->heap[0] = t->heap[t->n];
        sift_down(t->heap, t->n, 0);
    }
    return e;
}

static void *
timer_main(void *arg)
{
    weiri_timer *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        int64_t now = weiri_now_ns();
        if (t->n == 0 || t->heap[0].due > now) {
            int64_t until = t->n == 0 ? WEIRI_NO_DEADLINE : t->heap[0].due;
            uint32_t e = weiri_event_prepare(&t->changed);
            pthread_mutex_unlock(&t->mu);
            weiri_event_wait(&t->changed, e, until);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        weiri_timed e = pop_min(t);
        if (!t->locked)
            pthread_mutex_unlock(&t->mu);
        e.fire(&e);
        if (!t->locked)
            pthread_mutex_lock(&t->mu);
        /* Only the last one matters to weiri_timer_await_idle. */
        if (--t->busy == 0)
            weiri_event_notify(&t->changed, UINT32_MAX);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int
weiri_timer_add(weiri_timer *t, weiri_timed e)
{
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    bool earliest = false;
    if (t->sealed) {
        rc = WEIR_ECLOSED;
        goto out;
    }
    weiri_timed *h = weiri_grow(t->heap, &t->cap, t->n + 1, sizeof(*h), 64);
    if (h == NULL) {
        rc = WEIR_ENOMEM;
        goto out;
    }
    t->heap = h;
    if (!t->running) {
        if (weiri_thread_start(&t->thread, timer_main, t) != 0) {
            rc = WEIR_ENOMEM;
            goto out;
        }
        t->running = true;
    }
    e.seq = t->seq++;
    t->heap[t->n] = e;
    /* Only a new earliest entry changes when the thread must wake. */
    earliest = sift_up(t->heap, t->n++) == 0;
    t->busy++;
out:
    pthread_mutex_unlock(&t->mu);
    if (rc == 0 && earliest)
        weiri_event_notify(&t->changed, UINT32_MAX);
    return rc;
}

size_t
weiri_timer_take(weiri_timer *t, bool (*keep)(const weiri_timed *, void *),
                 void (*drop)(weiri_timed *, void *), void *arg)
{
    pthread_mutex_lock(&t->mu);
    size_t kept = 0, n = t->n;
    for (size_t i = 0; i < n; i++) {
        if (keep != NULL && keep(&t->heap[i], arg)) {
            t->heap[kept++] = t->heap[i];
            continue;
        }
        t->busy--;
        drop(&t->heap[i], arg);
    }
    t->n = kept;
    /* Floyd's construction: O(n), and taking is rare (close, abort). */
    for (size_t i = kept / 2; i-- > 0;)
        sift_down(t->heap, kept, i);
    bool idle = t->busy == 0;
    pthread_mutex_unlock(&t->mu);
    if (idle && kept < n)
        weiri_event_notify(&t->changed, UINT32_MAX);
    return n - kept;
}

bool
weiri_timer_await_idle(weiri_timer *t, int64_t deadline)
{
    pthread_mutex_lock(&t->mu);
    while (t->busy > 0) {
        uint32_t e = weiri_event_prepare(&t->changed);
        pthread_mutex_unlock(&t->mu);
        int rc = weiri_event_wait(&t->changed, e, deadline);
        pthread_mutex_lock(&t->mu);
        if (rc == WEIR_ETIMEDOUT)
            break;
    }
    bool none = t->busy == 0;
    pthread_mutex_unlock(&t->mu);
    return none;
}

void
weiri_timer_seal(weiri_timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->sealed = true;
    pthread_mutex_unlock(&t->mu);
}

size_t
weiri_timer_busy(weiri_timer *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->busy;
    pthread_mutex_unlock(&t->mu);
    return n;
}

void
weiri_timer_stop(weiri_timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    bool running = t->running;
    pthread_mutex_unlock(&t->mu);
    weiri_event_notify(&t->changed, UINT32_MAX);
    if (running)
        weiri_thread_join(t->thread);
    weiri_free(t->heap);
    weiri_event_destroy(&t->changed);
    pthread_mutex_destroy(&t->mu);
}
