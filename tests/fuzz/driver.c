/* SPDX-License-Identifier: MIT */
/*
 * driver.c - runs a fuzz target without libFuzzer, so that make check
 * can run every target with the normal compiler and each sanitizer:
 * first every file of a seed corpus, then N pseudo-random inputs, each
 * either fresh bytes or a corpus entry mutated (bytes changed, inserted,
 * cut, spliced with another).  The sequence is fixed by a seed
 * (xorshift), so a failure found here is found again by the same run.
 *
 *   driver [CORPUS_DIR [N]]   defaults: FUZZ_CORPUS (set by the build),
 *                             FUZZ_RUNS from the environment, or 2000
 *                             (400 under a sanitizer, whose slowdown
 *                             of the bus's threads is 10-30x)
 *   FUZZ_SEED=n               another sequence
 *
 * A failed check aborts with a message; the driver then writes the input
 * it was running to FUZZ_FAILED (set by the build), which a libFuzzer
 * build replays as its argument.  A watchdog (alarm) turns a hang into a
 * failure.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#ifndef FUZZ_CORPUS
#define FUZZ_CORPUS "."
#endif
#ifndef FUZZ_FAILED
#define FUZZ_FAILED "fuzz-failed-input"
#endif
#ifndef FUZZ_NAME
#define FUZZ_NAME "fuzz"
#endif

enum { MAX_SEEDS = 256, MAX_LEN = 4096, WATCHDOG_S = 300 };

static uint8_t *seed[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static size_t nseeds;

/* The input being run, for the abort handler to write out. */
static const uint8_t *volatile current;
static volatile size_t current_len;

static void
on_abort(int sig)
{
    /* Only async-signal-safe calls: the process is going down. */
    static const char msg[] = "fuzz driver: input written to " FUZZ_FAILED
                              "\n";
    int fd = open(FUZZ_FAILED, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0 && current != NULL) {
        if (write(fd, (const void *)current, current_len) >= 0 &&
            write(2, msg, sizeof(msg) - 1) >= 0) {
        }
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void
run(const uint8_t *in, size_t len)
{
    current = in;
    current_len = len;
    LLVMFuzzerTestOneInput(in, len);
    current = NULL;
}

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static uint8_t *
read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    uint8_t *buf = malloc(MAX_LEN);
    *len = buf != NULL ? fread(buf, 1, MAX_LEN, fp) : 0;
    fclose(fp);
    return buf;
}

/* Every regular file of dir, in name order so runs repeat exactly. */
static int
by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
load_corpus(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: no corpus at %s\n", FUZZ_NAME, dir);
        exit(2);
    }
    char *names[MAX_SEEDS];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < MAX_SEEDS;)
        if (e->d_name[0] != '.')
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof(names[0]), by_name);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        size_t len;
        uint8_t *buf = read_file(path, &len);
        if (buf != NULL) {
            seed[nseeds] = buf;
            seed_len[nseeds++] = len;
        }
        free(names[i]);
    }
}

/* A new input in buf: fresh bytes, or a corpus entry mutated. */
static size_t
make_input(uint64_t *x, uint8_t *buf)
{
    size_t len;
    if (nseeds == 0 || rnd(x) % 4 == 0) {
        len = rnd(x) % 512;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rnd(x);
        return len;
    }
    size_t s = rnd(x) % nseeds;
    len = seed_len[s];
    memcpy(buf, seed[s], len);
    for (unsigned k = 1 + rnd(x) % 4; k > 0; k--) {
        uint64_t r = rnd(x);
        size_t at = len > 0 ? r % len : 0;
        switch ((r >> 32) % 5) {
        case 0: /* change a byte */
            if (len > 0)
                buf[at] = (uint8_t)rnd(x);
            break;
        case 1: /* flip a bit */
            if (len > 0)
                buf[at] ^= (uint8_t)(1u << (rnd(x) % 8));
            break;
        case 2: /* insert a byte */
            if (len < MAX_LEN) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)rnd(x);
                len++;
            }
            break;
        case 3: /* cut the tail */
            len = at;
            break;
        default: { /* splice: the tail of another entry */
            size_t o = rnd(x) % nseeds;
            size_t from = seed_len[o] > 0 ? rnd(x) % seed_len[o] : 0;
            size_t n = seed_len[o] - from;
            if (at + n > MAX_LEN)
                n = MAX_LEN - at;
            memcpy(buf + at, seed[o] + from, n);
            len = at + n;
            break;
        }
        }
    }
    return len;
}

int
main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : FUZZ_CORPUS;
    const char *runs = argc > 2 ? argv[2] : getenv("FUZZ_RUNS");
    const char *seed_env = getenv("FUZZ_SEED");
#ifdef WEIR_TEST_SANITIZED
    long n = runs != NULL ? atol(runs) : 400;
#else
    long n = runs != NULL ? atol(runs) : 2000;
#endif
    uint64_t x = seed_env != NULL ? strtoull(seed_env, NULL, 0) : 0;
    x = x * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (x == 0)
        x = 1;
    signal(SIGABRT, on_abort);
    alarm(WATCHDOG_S);
    load_corpus(dir);
    for (size_t i = 0; i < nseeds; i++)
        run(seed[i], seed_len[i]);
    static uint8_t buf[MAX_LEN];
    for (long i = 0; i < n; i++) {
        size_t len = make_input(&x, buf);
        /* A copy of exactly len bytes, so ASan sees a read past it. */
        uint8_t *in = malloc(len > 0 ? len : 1);
        memcpy(in, buf, len);
        run(in, len);
        free(in);
    }
    for (size_t i = 0; i < nseeds; i++)
        free(seed[i]);
    /* The line tests/run-all counts, in cmocka's words. */
    printf("[  PASSED  ] 1 test: %s, %zu seeds and %ld inputs\n", FUZZ_NAME,
           nseeds, n);
    return 0;
}
