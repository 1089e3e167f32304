/* SPDX-License-Identifier: MIT */
/*
 * weir.h - everything weir offers, in one include.
 */
#ifndef WEIR_H
#define WEIR_H

#include "weir/common.h"
#include "weir/ring.h"
#include "weir/queue.h"
#include "weir/limiter.h"
#include "weir/bus.h"
#include "weir/dedup.h"
#include "weir/journal.h"

#endif /* WEIR_H */
