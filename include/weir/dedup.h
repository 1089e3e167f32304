/* SPDX-License-Identifier: MIT */
/*
 * weir/dedup.h - duplicate suppression: remembers the keys it has seen,
 * each for a time window, at most a fixed number of them, and says
 * whether a key is new.
 *
 * A subscription uses one on its messages' keys (weir_sub_opts
 * dedup_window_ns); it is also usable on its own, for instance to drop
 * repeated requests before publishing them.
 *
 * Memory is bounded and allocated up front: about 64 bytes per key the
 * table can hold, plus a copy of each key held.  When it is full, the
 * oldest key is forgotten first; a key is forgotten at the latest
 * window_ns after it was inserted (seeing it again does not extend that).
 * Thread-safe: every call takes one mutex, held for a hash lookup.
 * Keys may come from untrusted sources: each table hashes them under a
 * random seed of its own (SipHash), so nobody can pick keys that pile
 * into one hash chain and make every call walk it.
 */
#ifndef WEIR_DEDUP_H
#define WEIR_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_dedup weir_dedup;

/* Largest max_keys; a larger one is WEIR_EINVAL. */
#define WEIR_DEDUP_MAX_KEYS ((size_t)1 << 30)

/*
 * weir_dedup_create - a table remembering at most max_keys keys (0 =
 * 65536), each for window_ns (> 0).  Stores it in *d.  Returns 0,
 * WEIR_EINVAL (d NULL, window_ns <= 0, max_keys over WEIR_DEDUP_MAX_KEYS)
 * or WEIR_ENOMEM.  Free with weir_dedup_destroy.
 */
int weir_dedup_create(weir_dedup **d, size_t max_keys, int64_t window_ns);

/*
 * weir_dedup_check_and_insert - whether the len bytes at key were seen
 * within the window: 1 = new (now remembered), 0 = a duplicate, or
 * WEIR_EINVAL (d or key NULL) or WEIR_ENOMEM (the key could not be
 * copied; it is not remembered).  A key is any len bytes, 0 included,
 * with no bound of its own.  The caller keeps key.  Any thread.
 */
int weir_dedup_check_and_insert(weir_dedup *d, const void *key, size_t len);

/*
 * weir_dedup_size - how many keys are remembered now; 0 for NULL.  Any thread.
 */
size_t weir_dedup_size(weir_dedup *d);

/* weir_dedup_destroy - free d and its keys.  No call may run on d. NULL ok. */
void weir_dedup_destroy(weir_dedup *d);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_DEDUP_H */
