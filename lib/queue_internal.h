/*
 * queue_internal.h - PRIVATE to lib/: what the bus needs from weir_queue
 * beyond its public API.
 */
#ifndef WEIR_QUEUE_INTERNAL_H
#define WEIR_QUEUE_INTERNAL_H

#include <stdint.h>

#include "weir/queue.h"

/*
 * weiri_queue_pushed - how many pushes have ever claimed a place in q
 * (completed or in progress).  Never decreases.  Any thread.
 */
uint64_t weiri_queue_pushed(const weir_queue *q);

#endif /* WEIR_QUEUE_INTERNAL_H */
