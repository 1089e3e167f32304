/* SPDX-License-Identifier: MIT */
/*
 * durable_internal.h - PRIVATE to lib/: a durable subscription's feeder
 * (durable.c), the thread that hands it its messages from the journal.
 */
#ifndef WEIR_DURABLE_INTERNAL_H
#define WEIR_DURABLE_INTERNAL_H

#include "bus_internal.h"

/*
 * weiri_durable_start - start s's feeder: s->jsub's messages, those not
 * acknowledged first, go into s's queue in journal order, each waiting
 * for room (never dropped or rejected).  0 or WEIR_ENOMEM.
 */
int weiri_durable_start(weir_sub *s);

/*
 * weiri_durable_caught_up - whether s's feeder has handed s every
 * message the journal holds for it (none in its hands), or stopped for
 * good at a damaged record.  Any thread.
 */
bool weiri_durable_caught_up(weir_sub *s);

/*
 * weiri_durable_stop - stop s's feeder and join it; what it had not
 * placed stays in the journal, handed out again at the next attach.
 * Accepts an s with no feeder.
 */
void weiri_durable_stop(weir_sub *s);

#endif /* WEIR_DURABLE_INTERNAL_H */
