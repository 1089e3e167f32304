/* SPDX-License-Identifier: MIT */
/*
 * hash.c - the string hashes of hash_internal.h and the seeds of the
 * keyed one.
 *
 * SipHash is written from its paper (Aumasson and Bernstein, "SipHash: a
 * fast short-input PRF", 2012): four 64-bit words of state, c rounds per
 * 8-byte block of input, a last block holding the rest and the length's
 * low byte, d rounds to finish.  Blocks are read byte by byte as
 * little-endian, as the paper defines them, so a table hashes alike on
 * every machine; compilers turn that into one load where the machine is
 * little-endian.
 */
#define _GNU_SOURCE /* syscall(), for getrandom on any glibc */

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/random.h>
#include <sys/syscall.h>
#endif

#include "clock_internal.h"
#include "hash_internal.h"

uint64_t
weiri_hash(const void *p, size_t len)
{
    const unsigned char *c = p;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ c[i]) * 1099511628211u;
    return h;
}

/* --- SipHash -------------------------------------------------------------- */

static inline uint64_t
rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t
load_le64(const unsigned char *b)
{
    return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
           (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 |
           (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
           (uint64_t)b[7] << 56;
}

/* n SipRounds on the state v (the paper's figure 2.1). */
static inline void
sip_rounds(uint64_t v[4], unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        v[0] += v[1];
        v[1] = rotl(v[1], 13) ^ v[0];
        v[0] = rotl(v[0], 32);
        v[2] += v[3];
        v[3] = rotl(v[3], 16) ^ v[2];
        v[0] += v[3];
        v[3] = rotl(v[3], 21) ^ v[0];
        v[2] += v[1];
        v[1] = rotl(v[1], 17) ^ v[2];
        v[2] = rotl(v[2], 32);
    }
}

/*
 * SipHash-c-d.  Inline into its two callers so that weiri_siphash gets
 * its rounds as constants and the loops unrolled; weiri_siphash_cd keeps
 * them as arguments.  Both run these same lines, which is what lets the
 * 2-4 vectors vouch for the 1-3 code path as well.
 */
static inline uint64_t
siphash(const uint64_t key[2], const void *p, size_t len, unsigned c,
        unsigned d)
{
    /* "somepseudorandomlygeneratedbytes", the paper's constants. */
    uint64_t v[4] = {
        0x736f6d6570736575u ^ key[0],
        0x646f72616e646f6du ^ key[1],
        0x6c7967656e657261u ^ key[0],
        0x7465646279746573u ^ key[1],
    };
    const unsigned char *in = p;
    const unsigned char *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = load_le64(in);
        v[3] ^= m;
        sip_rounds(v, c);
        v[0] ^= m;
    }
    /*
     * The last block: the 0 to 7 bytes left, and len mod 256 on top.  A
     * switch rather than a loop: keys are often short, and this saves
     * about a nanosecond of a hash that takes 6 to 10.
     */
    uint64_t m = (uint64_t)len << 56;
    switch (len & 7) {
    case 7:
        m |= (uint64_t)in[6] << 48;
        /* fall through */
    case 6:
        m |= (uint64_t)in[5] << 40;
        /* fall through */
    case 5:
        m |= (uint64_t)in[4] << 32;
        /* fall through */
    case 4:
        m |= (uint64_t)in[3] << 24;
        /* fall through */
    case 3:
        m |= (uint64_t)in[2] << 16;
        /* fall through */
    case 2:
        m |= (uint64_t)in[1] << 8;
        /* fall through */
    case 1:
        m |= (uint64_t)in[0];
        break;
    default:
        break;
    }
    v[3] ^= m;
    sip_rounds(v, c);
    v[0] ^= m;
    v[2] ^= 0xff;
    sip_rounds(v, d);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t
weiri_siphash(const uint64_t key[2], const void *p, size_t len)
{
    return siphash(key, p, len, 1, 3);
}

uint64_t
weiri_siphash_cd(const uint64_t key[2], const void *p, size_t len,
                 unsigned c, unsigned d)
{
    return siphash(key, p, len, c, d);
}

/* --- seeds ---------------------------------------------------------------- */

/*
 * Why three sources.  A seed must be unpredictable from outside, or the
 * attack it stops comes back; but a table's create must not gain a new
 * way to fail or to hang because the machine is short of entropy, for
 * a dedup table or an ordered subscription that could not be made would
 * be worse than one whose buckets a patient attacker might, in the worst
 * case, learn to aim at.  So each source is tried without waiting:
 *
 *  1. getrandom(GRND_NONBLOCK): the kernel's generator, no file needed.
 *     Without GRND_NONBLOCK it would wait, at early boot, until the
 *     generator is seeded, which on a VM without a hardware source has
 *     taken minutes.  It fails with EAGAIN then, or ENOSYS before Linux
 *     3.17 or under a seccomp filter that forbids it.
 *  2. /dev/urandom: never waits for entropy.  Opened O_NONBLOCK so that
 *     even a FIFO put in its place (a strange chroot) cannot stall us.
 *     Fails where /dev is not mounted or no descriptor is left.
 *  3. weiri_seed_fallback: no system call can fail it.
 */

/* Fill len bytes at buf from getrandom(); false if it could not. */
static bool
from_getrandom(unsigned char *buf, size_t len)
{
#if defined(__linux__) && defined(SYS_getrandom)
    size_t got = 0;
    while (got < len) {
        long r = syscall(SYS_getrandom, buf + got, len - got, GRND_NONBLOCK);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return false; /* 0 cannot happen; treated as failure, not a spin */
    }
    return true;
#else
    (void)buf;
    (void)len;
    return false;
#endif
}

/* Fill len bytes at buf from /dev/urandom; false if it could not. */
static bool
from_urandom(unsigned char *buf, size_t len)
{
    int fd;
    do
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return false;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            break; /* end of file, EAGAIN from a non-device, or an error */
    }
    close(fd);
    return got == len;
}

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

void
weiri_seed_fallback(uint64_t out[2])
{
    /*
     * Process-wide, against STYLE's rule, because it is what makes two
     * seeds taken in the same clock tick differ: out[1] is a bijection of
     * this count plus a salt fixed for the process, so no two calls in a
     * process give the same seed.  Relaxed: only the uniqueness of each
     * value taken matters, not its order with anything else.
     */
    static _Atomic uint64_t calls;
    uint64_t n = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
    /*
     * What an outside attacker does not know: where address-space layout
     * randomisation put our data and this thread's stack, the pid, and
     * the monotonic clock in ns (the time since boot, to the nanosecond).
     */
    uint64_t salt = mix64((uint64_t)(uintptr_t)&calls ^
                          (uint64_t)getpid() << 32);
    uint64_t t = (uint64_t)weiri_now_ns();
    out[0] = mix64(t ^ mix64((uint64_t)(uintptr_t)&n + salt));
    out[1] = mix64(salt + n);
}

void
weiri_random_seed(uint64_t out[2])
{
    int saved = errno; /* a create that succeeds leaves errno alone */
    unsigned char b[16];
    if (from_getrandom(b, sizeof(b)) || from_urandom(b, sizeof(b))) {
        out[0] = load_le64(b);
        out[1] = load_le64(b + 8);
    } else {
        weiri_seed_fallback(out);
    }
    errno = saved;
}
