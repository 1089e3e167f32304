/* SPDX-License-Identifier: MIT */
/*
 * alloc_internal.h - PRIVATE to lib/: every allocation of the library,
 * through the allocator weir_set_allocator installed (the C library's
 * by default).  Memory from any of these is freed with weiri_free.
 */
#ifndef WEIR_ALLOC_INTERNAL_H
#define WEIR_ALLOC_INTERNAL_H

#include <stddef.h>

/* weiri_malloc, weiri_realloc - as malloc and realloc. */
void *weiri_malloc(size_t size);
void *weiri_realloc(void *p, size_t size);

/* weiri_calloc - as calloc: zeroed, NULL if n * size overflows. */
void *weiri_calloc(size_t n, size_t size);

/*
 * weiri_alloc_array - n elements of size bytes, zeroed, starting on a cache
 * line so the first slots share no line with unrelated data.  NULL when
 * n * size overflows or memory is short.
 */
void *weiri_alloc_array(size_t n, size_t size);

/*
 * weiri_grow - arr (of *cap elements of size bytes, from weiri_malloc or
 * weiri_realloc, or NULL) made to hold at least want, its capacity
 * doubled from *cap (or from first, if *cap is 0) as often as needed:
 * the array (arr itself if it held want already), *cap updated; or NULL
 * when memory is short or the size overflows, with arr and *cap
 * unchanged.  want must be at least 1.
 */
void *weiri_grow(void *arr, size_t *cap, size_t want, size_t size,
                 size_t first);

/* weiri_free - release what any of the above returned; accepts NULL. */
void weiri_free(void *p);

#endif /* WEIR_ALLOC_INTERNAL_H */
