/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - what the fuzz targets share: a reader that turns the input
 * bytes into choices (running out of bytes reads zeros, so every input
 * decodes to something and a mutation never makes one invalid), and a
 * check that ends the process with a message.  The targets run under
 * libFuzzer (make fuzz) and under driver.c (make check), and abort() is
 * what both of them report as a failure.
 */
#ifndef WEIR_FUZZ_H
#define WEIR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct fz {
    const uint8_t *p;
    size_t n;
} fz;

static inline int
fz_more(const fz *f)
{
    return f->n > 0;
}

static inline uint8_t
fz_u8(fz *f)
{
    if (f->n == 0)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint16_t
fz_u16(fz *f)
{
    uint16_t hi = fz_u8(f);
    return (uint16_t)(hi << 8 | fz_u8(f));
}

/* A number in [0, n), n >= 1. */
static inline unsigned
fz_below(fz *f, unsigned n)
{
    return (n <= 256 ? fz_u8(f) : fz_u16(f)) % n;
}

/*
 * A failed check names the line and what it saw; abort() rather than
 * exit() so that libFuzzer keeps the input as a crash.
 */
#define FZ_CHECK(cond, ...)                                              \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,       \
                    __LINE__, #cond);                                    \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
            abort();                                                     \
        }                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* WEIR_FUZZ_H */
