/* SPDX-License-Identifier: MIT */
/*
 * alloc_internal.h - PRIVATE to lib/: cache-line aligned allocation.
 */
#ifndef WEIR_ALLOC_INTERNAL_H
#define WEIR_ALLOC_INTERNAL_H

#include <stddef.h>

/*
 * weiri_alloc_array - n elements of size bytes, zeroed, starting on a cache
 * line so the first slots share no line with unrelated data.  NULL when
 * n * size overflows or memory is short.  Free with weiri_free.
 */
void *weiri_alloc_array(size_t n, size_t size);

/* weiri_free - release what weiri_alloc_array returned; accepts NULL. */
void weiri_free(void *p);

#endif /* WEIR_ALLOC_INTERNAL_H */
