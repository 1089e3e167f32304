/* SPDX-License-Identifier: MIT */
/*
 * test_hash.c - the hashes of lib/base/hash.c and the seeds of the tables
 * keyed by outside data: SipHash against its published vectors, keys
 * crafted to collide under FNV-1a spreading under the seeded hash (in
 * the hash and in a real dedup table), and seeds that differ per table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dedup_internal.h"
#include "hash_internal.h"
#include "support/support.h"
#include "weir.h"

/* The reference key, bytes 00 01 .. 0f, as the two words SipHash reads. */
static const uint64_t ref_key[2] = { 0x0706050403020100u, 0x0f0e0d0c0b0a0908u };

/*
 * SipHash-2-4 of the messages 00, 00 01, .. 00 01 .. 3e (lengths 0 to
 * 63) under ref_key: the reference implementation's vectors.h
 * (github.com/veorq/SipHash), as 64-bit values; entry 15 is the
 * worked example of the paper's appendix A.
 */
static const uint64_t sip24_vectors[64] = {
    0x726fdb47dd0e0e31u, 0x74f839c593dc67fdu, 0x0d6c8009d9a94f5au,
    0x85676696d7fb7e2du, 0xcf2794e0277187b7u, 0x18765564cd99a68du,
    0xcbc9466e58fee3ceu, 0xab0200f58b01d137u, 0x93f5f5799a932462u,
    0x9e0082df0ba9e4b0u, 0x7a5dbbc594ddb9f3u, 0xf4b32f46226bada7u,
    0x751e8fbc860ee5fbu, 0x14ea5627c0843d90u, 0xf723ca908e7af2eeu,
    0xa129ca6149be45e5u, 0x3f2acc7f57c29bdbu, 0x699ae9f52cbe4794u,
    0x4bc1b3f0968dd39cu, 0xbb6dc91da77961bdu, 0xbed65cf21aa2ee98u,
    0xd0f2cbb02e3b67c7u, 0x93536795e3a33e88u, 0xa80c038ccd5ccec8u,
    0xb8ad50c6f649af94u, 0xbce192de8a85b8eau, 0x17d835b85bbb15f3u,
    0x2f2e6163076bcfadu, 0xde4daaaca71dc9a5u, 0xa6a2506687956571u,
    0xad87a3535c49ef28u, 0x32d892fad841c342u, 0x7127512f72f27cceu,
    0xa7f32346f95978e3u, 0x12e0b01abb051238u, 0x15e034d40fa197aeu,
    0x314dffbe0815a3b4u, 0x027990f029623981u, 0xcadcd4e59ef40c4du,
    0x9abfd8766a33735cu, 0x0e3ea96b5304a7d0u, 0xad0c42d6fc585992u,
    0x187306c89bc215a9u, 0xd4a60abcf3792b95u, 0xf935451de4f21df2u,
    0xa9538f0419755787u, 0xdb9acddff56ca510u, 0xd06c98cd5c0975ebu,
    0xe612a3cb9ecba951u, 0xc766e62cfcadaf96u, 0xee64435a9752fe72u,
    0xa192d576b245165au, 0x0a8787bf8ecb74b2u, 0x81b3e73d20b49b6fu,
    0x7fa8220ba3b2eceau, 0x245731c13ca42499u, 0xb78dbfaf3a8d83bdu,
    0xea1ad565322a1a0bu, 0x60e61c23a3795013u, 0x6606d7e446282b93u,
    0x6ca4ecb15c5f91e1u, 0x9f626da15c9625f3u, 0xe51b38608ef25f57u,
    0x958a324ceb064572u,
};

/*
 * SipHash-1-3 of the same messages under the same key, as published with
 * the Rust standard library's SipHasher13 tests (library/core/tests/hash/
 * sip.rs, there as little-endian bytes) and Firedancer's
 * src/ballet/siphash13 test, which agree.
 */
static const uint64_t sip13_vectors[64] = {
    0xabac0158050fc4dcu, 0xc9f49bf37d57ca93u, 0x82cb9b024dc7d44du,
    0x8bf80ab8e7ddf7fbu, 0xcf75576088d38328u, 0xdef9d52f49533b67u,
    0xc50d2b50c59f22a7u, 0xd3927d989bb11140u, 0x369095118d299a8eu,
    0x25a48eb36c063de4u, 0x79de85ee92ff097fu, 0x70c118c1f94dc352u,
    0x78a384b157b4d9a2u, 0x306f760c1229ffa7u, 0x605aa111c0f95d34u,
    0xd320d86d2a519956u, 0xcc4fdd1a7d908b66u, 0x9cf2689063dbd80cu,
    0x8ffc389cb473e63eu, 0xf21f9de58d297d1cu, 0xc0dc2f46a6cce040u,
    0xb992abfe2b45f844u, 0x7ffe7b9ba320872eu, 0x525a0e7fdae6c123u,
    0xf464aeb267349c8cu, 0x45cd5928705b0979u, 0x3a3e35e3ca9913a5u,
    0xa91dc74e4ade3b35u, 0xfb0bed02ef6cd00du, 0x88d93cb44ab1e1f4u,
    0x540f11d643c5e663u, 0x2370dd1f8c21d1bcu, 0x81157b6c16a7b60du,
    0x4d54b9e57a8ff9bfu, 0x759f12781f2a753eu, 0xcea1a3bebf186b91u,
    0x2cf508d3ada26206u, 0xb6101c2da3c33057u, 0xb3f47496ae3a36a1u,
    0x626b57547b108392u, 0xc1d2363299e41531u, 0x667cc1923f1ad944u,
    0x65704ffec8138825u, 0x24f280d1c28949a6u, 0xc2ca1cedfaf8876bu,
    0xc2164bfc9f042196u, 0xa16e9c9368b1d623u, 0x49fb169c8b5114fdu,
    0x9f3143f8df074c46u, 0xc6fdaf2412cc86b3u, 0x7eaf49d10a52098fu,
    0x1cf313559d292f9au, 0xc44a30dda2f41f12u, 0x36fae98943a71ed0u,
    0x318fb34c73f0bce6u, 0xa27abf3670a7e980u, 0xb4bcc0db243c6d75u,
    0x23f8d852fdb71513u, 0x8f035f4da67d8a08u, 0xd89cd0e5b7e8f148u,
    0xf6f4e6bcf7a644eeu, 0xaec59ad80f1837f2u, 0xc3b2f6154b6694e0u,
    0x9d199062b7bbb3a8u,
};

static void
test_hash_siphash24_matches_reference_vectors(void **state)
{
    (void)state;
    unsigned char msg[64];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    for (size_t len = 0; len < 64; len++)
        assert_int_equal(weiri_siphash_cd(ref_key, msg, len, 2, 4),
                         sip24_vectors[len]);
}

static void
test_hash_siphash13_matches_published_vectors(void **state)
{
    (void)state;
    unsigned char msg[64];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    for (size_t len = 0; len < 64; len++) {
        assert_int_equal(weiri_siphash(ref_key, msg, len), sip13_vectors[len]);
        /* The fixed-round build runs the same code as the general one. */
        assert_int_equal(weiri_siphash_cd(ref_key, msg, len, 1, 3),
                         sip13_vectors[len]);
    }
}

/* Bytes are read one by one, so where they sit in memory cannot matter. */
static void
test_hash_siphash_ignores_alignment(void **state)
{
    (void)state;
    unsigned char buf[64 + 8];
    for (size_t off = 0; off < 8; off++) {
        for (size_t i = 0; i < 64; i++)
            buf[off + i] = (unsigned char)i;
        for (size_t len = 0; len < 64; len++)
            assert_int_equal(weiri_siphash(ref_key, buf + off, len),
                             sip13_vectors[len]);
    }
}

/* FNV-1a 64 stays what topic hashing was: the published values. */
static void
test_hash_fnv1a_matches_published_values(void **state)
{
    (void)state;
    assert_int_equal(weiri_hash("", 0), 0xcbf29ce484222325u);
    assert_int_equal(weiri_hash("a", 1), 0xaf63dc4c8601ec8cu);
    assert_int_equal(weiri_hash("foobar", 6), 0x85944171f73967e8u);
}

/* --- keys crafted against FNV-1a ------------------------------------------ */

enum {
    N_KEYS = 100000,
    CRAFT_BITS = 20,         /* they collide in tables up to 2^20 buckets */
    PREFIX_LEN = 11,         /* "req-" and 7 digits */
    KEY_LEN = PREFIX_LEN + 4,
    TABLE_BITS = 17,         /* the size both tables have at 100,000 keys */
    /*
     * Most keys in one bucket that a random hash makes plausible: 100,000
     * keys in 2^17 buckets are 0.76 a bucket, and a bucket of 16 or more
     * has odds of about 1 in 10^10 in a run.  FNV puts all 100,000 in one.
     */
    MAX_SPREAD_CHAIN = 16,
};

#define FNV_PRIME 1099511628211u

static const char alphabet[64] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

/*
 * 100,000 distinct printable keys, KEY_LEN bytes each (no NUL), whose
 * FNV-1a hash has its low CRAFT_BITS bits zero, so that masked to any
 * power-of-two table up to 2^CRAFT_BITS buckets they all share bucket 0.
 *
 * How: FNV-1a's low bits after a byte depend only on the low bits before
 * it (xor touches the low 8, and a product's low bits depend only on the
 * factors' low bits).  So a 4-character suffix that takes the low-bit
 * state s to 0 is found by running the steps backwards from 0 with the
 * prime's inverse, over all 64^4 suffixes, which reach every state with
 * near certainty; then each "req-NNNNNNN" gets the suffix for the state
 * its prefix leaves.  Returns a malloc'd N_KEYS * KEY_LEN array.
 */
static char *
craft_fnv_collisions(void)
{
    const uint64_t mask = ((uint64_t)1 << CRAFT_BITS) - 1;
    /* The prime's inverse mod 2^64, by Newton's iteration (odd numbers
     * have one; each step doubles the correct low bits, 3 to 96). */
    uint64_t inv = FNV_PRIME;
    for (int i = 0; i < 5; i++)
        inv *= 2 - FNV_PRIME * inv;
    assert_int_equal(inv * FNV_PRIME, 1);

    /* suffix[s]: 1 + the four alphabet indices, 6 bits each; 0 = none. */
    uint32_t *suffix = calloc((size_t)1 << CRAFT_BITS, sizeof(uint32_t));
    assert_non_null(suffix);
    for (uint32_t d = 0; d < 64; d++) {
        /* The state before the last byte, if the state after it is 0. */
        uint64_t s3 = (unsigned char)alphabet[d];
        for (uint32_t c = 0; c < 64; c++) {
            uint64_t s2 = ((s3 * inv) ^ (unsigned char)alphabet[c]) & mask;
            for (uint32_t b = 0; b < 64; b++) {
                uint64_t s1 = ((s2 * inv) ^ (unsigned char)alphabet[b]) & mask;
                for (uint32_t a = 0; a < 64; a++) {
                    uint64_t s0 =
                        ((s1 * inv) ^ (unsigned char)alphabet[a]) & mask;
                    suffix[s0] = 1 + (a | b << 6 | c << 12 | d << 18);
                }
            }
        }
    }

    char *keys = malloc((size_t)N_KEYS * KEY_LEN);
    assert_non_null(keys);
    size_t made = 0;
    for (uint32_t i = 0; made < N_KEYS; i++) {
        assert_true(i < 10000000); /* the prefix's 7 digits */
        char *k = keys + made * KEY_LEN;
        char prefix[PREFIX_LEN + 1];
        snprintf(prefix, sizeof(prefix), "req-%07u", (unsigned)i);
        memcpy(k, prefix, PREFIX_LEN);
        uint32_t x = suffix[weiri_hash(k, PREFIX_LEN) & mask];
        if (x == 0)
            continue; /* a state no suffix reaches: next prefix */
        x -= 1;
        for (int j = 0; j < 4; j++)
            k[PREFIX_LEN + j] = alphabet[(x >> (6 * j)) & 63];
        made++;
    }
    free(suffix);
    return keys;
}

/* The most keys that share one bucket of a 2^bits table under hash h. */
static size_t
longest_bucket(const char *keys, unsigned bits, const uint64_t *seed)
{
    size_t buckets = (size_t)1 << bits;
    uint32_t *n = calloc(buckets, sizeof(uint32_t));
    assert_non_null(n);
    size_t most = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *k = keys + i * KEY_LEN;
        uint64_t h = seed != NULL ? weiri_siphash(seed, k, KEY_LEN)
                                  : weiri_hash(k, KEY_LEN);
        uint32_t c = ++n[h & (buckets - 1)];
        if (c > most)
            most = c;
    }
    free(n);
    return most;
}

static void
test_hash_crafted_fnv_collisions_spread_under_siphash(void **state)
{
    (void)state;
    char *keys = craft_fnv_collisions();
    /* The attack works on the old hash: one chain of 100,000 ... */
    for (size_t i = 0; i < N_KEYS; i++)
        assert_int_equal(weiri_hash(keys + i * KEY_LEN, KEY_LEN) &
                         (((uint64_t)1 << CRAFT_BITS) - 1), 0);
    assert_int_equal(longest_bucket(keys, TABLE_BITS, NULL), N_KEYS);
    /* ... of distinct keys (their prefixes increase) ... */
    for (size_t i = 1; i < N_KEYS; i++)
        assert_true(memcmp(keys + (i - 1) * KEY_LEN, keys + i * KEY_LEN,
                           PREFIX_LEN) < 0);
    /* ... and not on a seeded SipHash, whatever the seed and table size. */
    for (int round = 0; round < 3; round++) {
        uint64_t seed[2];
        weiri_random_seed(seed);
        assert_true(longest_bucket(keys, TABLE_BITS, seed) <= MAX_SPREAD_CHAIN);
        for (unsigned bits = 12; bits <= CRAFT_BITS; bits += 2) {
            /*
             * Twice the mean (rounded up) and room for chance: with 24
             * keys a bucket at 2^12, the fullest of 4,096 holds about 45.
             */
            size_t mean = (N_KEYS >> bits) + 1;
            assert_true(longest_bucket(keys, bits, seed) <=
                        2 * mean + MAX_SPREAD_CHAIN);
        }
    }
    free(keys);
}

/*
 * The same keys into a real dedup table: its chains stay short.  Checked
 * after the first thousand too, so that a table hashing with FNV fails
 * here at once instead of first walking 5 * 10^9 chain links.
 */
static void
test_hash_dedup_table_spreads_crafted_keys(void **state)
{
    (void)state;
    char *keys = craft_fnv_collisions();
    weir_dedup *d;
    assert_int_equal(weir_dedup_create(&d, N_KEYS, 3600 * WEIR_SEC), 0);
    uint64_t seed[2];
    size_t longest;
    for (size_t i = 0; i < N_KEYS; i++) {
        assert_int_equal(weir_dedup_check_and_insert(d, keys + i * KEY_LEN,
                                                     KEY_LEN), 1);
        if (i == 999) {
            weiri_dedup_inspect(d, seed, &longest);
            assert_true(longest <= MAX_SPREAD_CHAIN);
        }
    }
    assert_int_equal(weir_dedup_size(d), N_KEYS);
    weiri_dedup_inspect(d, seed, &longest);
    assert_true(longest <= MAX_SPREAD_CHAIN);
    /* Every key is still found: a repeat of each is a duplicate. */
    for (size_t i = 0; i < N_KEYS; i += 97)
        assert_int_equal(weir_dedup_check_and_insert(d, keys + i * KEY_LEN,
                                                     KEY_LEN), 0);
    weir_dedup_destroy(d);
    free(keys);
}

/* Each table draws its own seed: one learnt says nothing of another. */
static void
test_hash_tables_get_different_seeds(void **state)
{
    (void)state;
    enum { TABLES = 8 };
    weir_dedup *d[TABLES];
    uint64_t seed[TABLES][2];
    for (int i = 0; i < TABLES; i++) {
        size_t longest;
        assert_int_equal(weir_dedup_create(&d[i], 16, WEIR_SEC), 0);
        weiri_dedup_inspect(d[i], seed[i], &longest);
        assert_int_equal(longest, 0);
        assert_false(seed[i][0] == 0 && seed[i][1] == 0);
        for (int j = 0; j < i; j++)
            assert_false(seed[i][0] == seed[j][0] && seed[i][1] == seed[j][1]);
    }
    for (int i = 0; i < TABLES; i++)
        weir_dedup_destroy(d[i]);

    uint64_t a[2], b[2];
    weiri_random_seed(a);
    weiri_random_seed(b);
    assert_false(a[0] == b[0] && a[1] == b[1]);
}

static int
cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The last resort still gives every call a seed of its own. */
static void
test_hash_seed_fallback_differs_per_call(void **state)
{
    (void)state;
    enum { CALLS = 4096 };
    uint64_t *w0 = malloc(CALLS * sizeof(uint64_t));
    uint64_t *w1 = malloc(CALLS * sizeof(uint64_t));
    assert_non_null(w0);
    assert_non_null(w1);
    for (int i = 0; i < CALLS; i++) {
        uint64_t s[2];
        weiri_seed_fallback(s);
        w0[i] = s[0];
        w1[i] = s[1];
    }
    /*
     * The second word is a bijection of the call count, so it alone
     * differs on every call; the first rides on the clock and may repeat
     * on a coarse one, so it is only checked not to be constant.
     */
    qsort(w1, CALLS, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < CALLS; i++)
        assert_true(w1[i] != w1[i - 1]);
    qsort(w0, CALLS, sizeof(uint64_t), cmp_u64);
    assert_true(w0[0] != w0[CALLS - 1]);
    free(w0);
    free(w1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_siphash24_matches_reference_vectors),
        cmocka_unit_test(test_hash_siphash13_matches_published_vectors),
        cmocka_unit_test(test_hash_siphash_ignores_alignment),
        cmocka_unit_test(test_hash_fnv1a_matches_published_values),
        cmocka_unit_test(test_hash_crafted_fnv_collisions_spread_under_siphash),
        cmocka_unit_test(test_hash_dedup_table_spreads_crafted_keys),
        cmocka_unit_test(test_hash_tables_get_different_seeds),
        cmocka_unit_test(test_hash_seed_fallback_differs_per_call),
    };
    return cmocka_run_group_tests_name("hash", tests, ts_watchdog_group, NULL);
}
