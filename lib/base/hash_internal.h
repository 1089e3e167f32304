/* SPDX-License-Identifier: MIT */
/*
 * hash_internal.h - PRIVATE to lib/: the two string hashes weir uses for
 * its tables, and the seeds of the keyed one.
 *
 * Which hash for what, and why:
 *
 *   weiri_hash (FNV-1a, unseeded) - topic names.  A topic exists only
 *   once the program has made it, so whoever picks its name is the
 *   program itself; nobody outside can flood one bucket with names that
 *   collide, and FNV needs no seed to be kept next to the table.
 *
 *   weiri_siphash (SipHash-1-3, seeded per table) - every table keyed by
 *   data that may come from outside: the dedup table (lib/core/dedup.c) and
 *   the per-key order table of ordered_by_key (lib/bus/deliver.c), whose keys
 *   are typically request or customer ids.  FNV-1a's low bits depend only
 *   on the key's bytes, so anyone who chooses keys can find, offline and
 *   cheaply, as many as they like that share one bucket of a power-of-two
 *   table; each publish then walks that chain under the table's mutex.
 *   With a random 128-bit seed per table, picked at create and never
 *   shown, where a key lands cannot be predicted, and a seed learnt from
 *   one table says nothing of another.  SipHash-1-3 rather than 2-4: the
 *   attacker never sees the hash values, only at most the timing of a
 *   chain walk, so the margin of 2-4 (built as a MAC) buys little for
 *   twice the rounds per block and more to finish; 1-3 is what Rust's
 *   HashMap and CPython's str hash use for the same job.  On keys of 8
 *   to 16 bytes it costs about 1.5 ns more than FNV-1a, and from 24
 *   bytes on it is faster, since FNV takes a multiply per byte.
 */
#ifndef WEIR_HASH_INTERNAL_H
#define WEIR_HASH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * weiri_hash - FNV-1a, 64-bit, of the len bytes at p.  For topic names
 * only (see above): keys are short, and it needs no setup.
 */
uint64_t weiri_hash(const void *p, size_t len);

/*
 * weiri_siphash - SipHash-1-3 of the len bytes at p under the 128-bit
 * key: key[0] is the key's first 8 bytes read little-endian, key[1] the
 * last 8 (the reference's k0 and k1).  The result is the same on every
 * byte order.  For tables keyed by outside data, with a key from
 * weiri_random_seed.  Pure; any thread.
 */
uint64_t weiri_siphash(const uint64_t key[2], const void *p, size_t len);

/*
 * weiri_siphash_cd - SipHash-c-d: c rounds per 8-byte block, d to
 * finish (weiri_siphash is c = 1, d = 3, compiled with the rounds fixed).
 * The same code with the rounds as arguments, so that tests can check it
 * against the published SipHash-2-4 vectors too.  Pure; any thread.
 */
uint64_t weiri_siphash_cd(const uint64_t key[2], const void *p, size_t len,
                          unsigned c, unsigned d);

/*
 * weiri_random_seed - 128 unpredictable bits for a table's SipHash key.
 * From getrandom() without blocking; if the kernel has none to give yet
 * (early boot) or the call is missing, from /dev/urandom; if that cannot
 * be read either (a chroot, no file descriptors left), from
 * weiri_seed_fallback.  Never fails and never waits for entropy, so a
 * create never gains a failure or a hang from it (see hash.c).  Any
 * thread.
 */
void weiri_random_seed(uint64_t out[2]);

/*
 * weiri_seed_fallback - the last resort of weiri_random_seed: the clock,
 * addresses and a process-wide counter, mixed.  Distinct on every call
 * within a process and hard to guess from outside it, but not secret
 * from code running in the process.  Exposed for the tests.  Any thread.
 */
void weiri_seed_fallback(uint64_t out[2]);

#endif /* WEIR_HASH_INTERNAL_H */
