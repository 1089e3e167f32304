/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - the one place weir allocates aligned memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/common.h"

#include "alloc_internal.h"

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
    void *p = aligned_alloc(WEIR_CACHELINE, rounded);
    if (p != NULL)
        memset(p, 0, rounded);
    return p;
}

void
weiri_free(void *p)
{
    free(p);
}
