# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-deliver.sh - what the bus's delivery guarantees cost: a
# subscription with retries, per-key order or duplicate suppression next
# to a plain one, and a delayed publish with many pending
# (bench/deliver.c).  No in-process peer has these features; the
# reference is weir's own plain subscription.  Sourced by bench/run (see
# there and bench/lib.sh).

suite_begin deliver deliver-results.tsv

n_msgs=$((500000 / div)) n_delay=$((100000 / div))

"$CC" "${cflags[@]}" bench/deliver.c "$out/common.o" build/libweir.a \
    -pthread -o "$out/deliver"

impl weir-plain "$out/deliver" "" "plain, 1 worker"
impl retry    "$out/deliver" "" "max_attempts 3, 1 worker"
impl keyed8   "$out/deliver" "" "keyed, 8 workers"
impl ordered8 "$out/deliver" "" "ordered_by_key, 8 workers"
impl dedup    "$out/deliver" "" "dedup, 1 worker"
impl delayed  "$out/deliver" "" "delayed publish"

cases=(thru delay)
impls=([thru]="weir-plain retry keyed8 ordered8 dedup" [delay]="delayed")
title=(
    [thru]="publish then drain, 8-byte messages, 1,000 keys where keyed"
    [delay]="delayed publish, all still pending at the end"
)
kind=([thru]=rate [delay]=ns)
count[thru]=$n_msgs count[delay]=$n_delay

print_heading delivery-guarantees
cat <<EOT
compiler:  $("$CC" --version | head -1), -std=c11 -O2 -DNDEBUG
thru:      $n_msgs messages published through a topic handle, then
           weir_bus_close drains; messages/s over the whole span; every
           message must end acked.  retry: max_attempts 3, handlers never
           fail (the careful path); keyed: 1,000 keys, round robin; dedup:
           a 1 s window over those keys
delay:     $n_delay publishes delayed by an hour or more (pending until the
           close gives them up); ns per publish
$(print_runs)
EOT

suite_run <<EOT
weir/peer here: the plain subscription's messages/s over this one's in
the same round, median over rounds (above 1: the option costs that
factor).
EOT
