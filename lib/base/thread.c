/* SPDX-License-Identifier: MIT */
/*
 * thread.c - thread creation for the bus's workers.
 */
#include <pthread.h>

#include "weir/common.h"

#include "thread_internal.h"

int
weiri_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* EAGAIN (no resources) and everything else alike: nothing to retry. */
    return pthread_create(t, NULL, fn, arg) == 0 ? 0 : WEIR_ENOMEM;
}

void
weiri_thread_join(pthread_t t)
{
    pthread_join(t, NULL);
}
