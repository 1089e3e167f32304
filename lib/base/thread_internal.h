/* SPDX-License-Identifier: MIT */
/*
 * thread_internal.h - PRIVATE to lib/: starting and joining threads, the
 * one place weir creates them (lib/base/thread.c).
 */
#ifndef WEIR_THREAD_INTERNAL_H
#define WEIR_THREAD_INTERNAL_H

#include <pthread.h>

/* weiri_thread_start - run fn(arg) on a new thread: 0 or WEIR_ENOMEM. */
int weiri_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/*
 * weiri_thread_set_creator - start threads with create (as
 * pthread_create with default attributes: 0 or an error number) instead
 * of pthread_create; NULL restores it.  A seam for tests that fail
 * thread starts; only while no weir thread is being started.
 */
void weiri_thread_set_creator(int (*create)(pthread_t *, void *(*)(void *),
                                            void *));

/* weiri_thread_join - wait for t to finish. */
void weiri_thread_join(pthread_t t);

#endif /* WEIR_THREAD_INTERNAL_H */
