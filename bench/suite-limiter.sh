# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-limiter.sh - the cost of weir_limiter_acquire(l, 1,
# WEIR_NOWAIT) when it always succeeds, alone and with two threads on one
# limiter (bench/limiter.c).  No peer: two references instead, one atomic
# fetch-and-add on a shared word, and one clock read.  Sourced by
# bench/run (see there and bench/lib.sh).

suite_begin limiter limiter-results.tsv

n_one=$((5000000 / div)) n_two=$((1000000 / div))

"$CC" "${cflags[@]}" bench/limiter.c "$out/common.o" build/libweir.a \
    -pthread -o "$out/limiter"

impl weir   "$out/limiter" "" "weir_limiter_acquire"
impl atomic "$out/limiter" "" "ref: atomic fetch_add"
impl clock  "$out/limiter" "" "ref: clock_gettime MONOTONIC"

cases=(one two)
impls=([one]="weir atomic clock" [two]="weir atomic clock")
title=(
    [one]="try-acquire, 1 thread pinned to CPU 0, uncontended"
    [two]="try-acquire, 2 threads pinned to CPUs 0 and 1, one limiter"
)
kind=([one]=ns [two]=ns)
count[one]=$n_one count[two]=$n_two
# The references are cheaper: more calls, for a run of similar length.
count[one atomic]=$((n_one * 4)) count[two atomic]=$((n_two * 5))
count[one clock]=$((n_one * 2)) count[two clock]=$((n_two * 8))

print_heading rate-limiter
cat <<EOT
compiler:  $("$CC" --version | head -1), -std=c11 -O2 -DNDEBUG
limiter:   weir_limiter_init(&l, 1e9, 1e9) (CLOCK_MONOTONIC), then
           weir_limiter_acquire(&l, 1, WEIR_NOWAIT) in a loop: always due,
           so every call takes the fast path (one clock read, one CAS);
           "refused" counts calls that were not granted (all rounds)
calls:     weir $n_one per run alone, $n_two per thread with two threads;
           references: atomic $((n_one * 4)) / $((n_two * 5)), clock
           $((n_one * 2)) / $((n_two * 8))
figure:    ns per call per thread: the span from the start line to the
           last join, over the calls each thread made
$(print_runs)
EOT

suite_run <<EOT
weir/peer: the reference's ns over weir's in the same round, median over
rounds (below 1: weir's call costs more than the reference alone).
EOT
