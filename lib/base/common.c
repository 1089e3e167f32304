/* SPDX-License-Identifier: MIT */
/*
 * common.c - error strings and version.
 */
#include "weir/common.h"

#define WEIR_STR2(x) #x
#define WEIR_STR(x) WEIR_STR2(x)

/* Indexed by -code; one entry per WEIR_E* code, in order. */
static const char *const weir_errors[] = {
    "success",
    "invalid argument",
    "out of memory",
    "resource temporarily unavailable (full or empty)",
    "timed out",
    "closed",
    "no such entry",
    "entry already exists",
    "would deadlock (called from the object's own handler)",
    "busy (the journal directory is in use)",
    "input/output error (the disk refused)",
    "the journal is damaged before its last record",
};

_Static_assert(sizeof(weir_errors) / sizeof(weir_errors[0]) == 1 - WEIR_ELAST,
               "every error code needs a string");

const char *
weir_strerror(int code)
{
    if (code > 0 || code < WEIR_ELAST)
        return "unknown error";
    return weir_errors[-code];
}

const char *
weir_version(void)
{
    return WEIR_STR(WEIR_VERSION_MAJOR) "." WEIR_STR(WEIR_VERSION_MINOR)
        "." WEIR_STR(WEIR_VERSION_PATCH);
}
