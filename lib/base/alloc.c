/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the one place weir takes memory: through the allocator the
 * program set (weir_set_allocator), else the C library's.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/common.h"

#include "alloc_internal.h"

static void *
libc_malloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void *
libc_realloc(void *p, size_t size, void *ctx)
{
    (void)ctx;
    return realloc(p, size);
}

static void
libc_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}

static void *
libc_aligned(size_t alignment, size_t size, void *ctx)
{
    (void)ctx;
    return aligned_alloc(alignment, size);
}

/*
 * Plain, not atomic: weir_set_allocator is documented to run with no
 * other weir call at the same time, before any object it would outlive.
 */
static weir_allocator current = { libc_malloc, libc_realloc, libc_free,
                                  libc_aligned, NULL };

int
weir_set_allocator(const weir_allocator *a)
{
    if (a == NULL) {
        current = (weir_allocator){ libc_malloc, libc_realloc, libc_free,
                                    libc_aligned, NULL };
        return 0;
    }
    if (a->malloc_fn == NULL || a->realloc_fn == NULL ||
        a->free_fn == NULL || a->aligned_fn == NULL)
        return WEIR_EINVAL;
    current = *a;
    return 0;
}

void *
weiri_malloc(size_t size)
{
    return current.malloc_fn(size, current.ctx);
}

void *
weiri_realloc(void *p, size_t size)
{
    return current.realloc_fn(p, size, current.ctx);
}

void *
weiri_grow(void *arr, size_t *cap, size_t want, size_t size, size_t first)
{
    if (*cap >= want)
        return arr;
    size_t n = *cap != 0 ? *cap : first != 0 ? first : 1;
    while (n < want) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = weiri_realloc(arr, n * size);
    if (p != NULL)
        *cap = n;
    return p;
}

void *
weiri_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = weiri_malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *
weiri_alloc_array(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    size_t bytes = n * size;
    /* aligned_alloc wants a multiple of the alignment. */
    size_t rounded = (bytes + WEIR_CACHELINE - 1) &
                     ~(size_t)(WEIR_CACHELINE - 1);
    if (rounded < bytes || rounded == 0)
        return NULL;
    void *p = current.aligned_fn(WEIR_CACHELINE, rounded, current.ctx);
    if (p != NULL)
        memset(p, 0, rounded);
    return p;
}

void
weiri_free(void *p)
{
    if (p != NULL)
        current.free_fn(p, current.ctx);
}
