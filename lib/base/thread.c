/* SPDX-License-Identifier: MIT */
/*
 * thread.c - thread creation for the bus's workers and timers, with a
 * seam for tests that make it fail.
 */
#include <pthread.h>

#include "weir/common.h"

#include "thread_internal.h"

static int
libc_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg);
}

/*
 * Plain, not atomic: set by a test with no weir thread being started
 * (weiri_thread_set_creator).
 */
static int (*creator)(pthread_t *, void *(*)(void *), void *) = libc_create;

void
weiri_thread_set_creator(int (*create)(pthread_t *, void *(*)(void *),
                                       void *))
{
    creator = create != NULL ? create : libc_create;
}

int
weiri_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* EAGAIN (no resources) and everything else alike: nothing to retry. */
    return creator(t, fn, arg) == 0 ? 0 : WEIR_ENOMEM;
}

void
weiri_thread_join(pthread_t t)
{
    pthread_join(t, NULL);
}
