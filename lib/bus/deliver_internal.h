/* SPDX-License-Identifier: MIT */
/*
 * deliver_internal.h - PRIVATE to lib/: the careful workers (deliver.c; see
 * weir_sub.careful): retries, dead letters, per-key order, dedup.
 */
#ifndef WEIR_DELIVER_INTERNAL_H
#define WEIR_DELIVER_INTERNAL_H

#include "bus_internal.h"

int weiri_deliver_setup(weir_sub *s, const weir_sub_opts *o);
void weiri_deliver_teardown(weir_sub *s);
/* A careful worker's life: returns when it is to exit. */
void weiri_deliver_run(weiri_worker *w);
/* After the workers are joined: release what they left, counted as queued. */
void weiri_deliver_release_left(weir_sub *s);
/*
 * weiri_deliver_give_up_retries - refuse new retries on bus (a failure
 * is then given up at once) and release the pending ones, counted as
 * queued: weir_bus_destroy does not wait for backoffs.
 */
void weiri_deliver_give_up_retries(weir_bus *bus);

#endif /* WEIR_DELIVER_INTERNAL_H */
