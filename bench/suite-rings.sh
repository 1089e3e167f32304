# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-rings.sh - weir's rings next to their peers: throughput
# (items/s) and round-trip latency.  Sourced by bench/run (see there and
# bench/lib.sh).

suite_begin rings results.tsv

n_spsc=$((20000000 / div)) n_mpmc=$((10000000 / div)) n_rtt=$((200000 / div))

# --- peers: install what is missing, or report it as missing -------------

peer ck c ck_ring.h libck-dev
peer boost c++ boost/lockfree/spsc_queue.hpp libboost-dev
peer rwq c++ readerwriterqueue/readerwriterqueue.h libreaderwriterqueue-dev
peer cq c++ concurrentqueue/concurrentqueue.h libconcurrentqueue-dev
crate_peer crossbeam "librust-crossbeam-queue-dev librust-libc-dev" \
    "crossbeam-queue-0.3.*" "libc-0.2.*"

# --- build -----------------------------------------------------------------

# A peer whose headers are missing is left out of its program.
no_peers=()
((have[ck])) || no_peers+=(-DBENCH_NO_CK)
((have[boost])) || no_peers+=(-DBENCH_NO_BOOST)
((have[rwq])) || no_peers+=(-DBENCH_NO_RWQ)
((have[cq])) || no_peers+=(-DBENCH_NO_CQ)
"$CC" "${cflags[@]}" -c bench/harness.c -o "$out/harness.o"
"$CC" "${cflags[@]}" "${no_peers[@]}" bench/rings.c "$out/harness.o" \
    "$out/common.o" build/libweir.a -pthread -o "$out/rings"
if ! "$CXX" "${cxxflags[@]}" "${no_peers[@]}" bench/rings_peers.cpp \
        "$out/harness.o" "$out/common.o" -pthread -o "$out/rings_peers"; then
    echo "weir: the C++ peers did not build; they are missing" >&2
    have[boost]=0 have[rwq]=0 have[cq]=0
fi

build_peer crossbeam cargo_build crossbeam

# --- what runs where -------------------------------------------------------

impl floor    "$out/rings"       ""        "floor (one atomic)"
impl weir-spsc "$out/rings"      ""        "weir spsc"
impl weir-mpmc "$out/rings"      ""        "weir mpmc"
impl ck-spsc  "$out/rings"       ck        "ck_ring spsc"
impl ck-mpmc  "$out/rings"       ck        "ck_ring mpmc"
impl boost-spsc "$out/rings_peers" boost   "boost spsc_queue"
impl boost-queue "$out/rings_peers" boost  "boost queue"
impl rwq      "$out/rings_peers" rwq       "moodycamel ReaderWriterQueue"
impl cq       "$out/rings_peers" cq        "moodycamel ConcurrentQueue"
impl crossbeam "$out/crossbeam/release/weir-bench-crossbeam" crossbeam \
    "crossbeam ArrayQueue"

cases=(spsc burst mpmc1 mpmc2 rtt)
floor_case=rtt
impls=(
    [spsc]="weir-spsc ck-spsc boost-spsc rwq"
    [burst]="weir-spsc boost-spsc ck-spsc rwq"
    [mpmc1]="weir-mpmc ck-mpmc boost-queue cq crossbeam"
    [mpmc2]="weir-mpmc ck-mpmc boost-queue cq crossbeam"
    [rtt]="floor weir-spsc ck-spsc boost-spsc rwq crossbeam"
)
title=(
    [spsc]="SPSC, 1 item per call, 1P1C pinned"
    [burst]="SPSC, bursts of 32, 1P1C pinned"
    [mpmc1]="MPMC, 1 item per call, 1P1C pinned"
    [mpmc2]="MPMC, 1 item per call, 2P2C unpinned"
    [rtt]="SPSC round trip, ping-pong through two rings, pinned"
)
kind=([spsc]=rate [burst]=rate [mpmc1]=rate [mpmc2]=rate [rtt]=rtt)
na=(
    [burst ck-spsc]="n/a: ck_ring has no burst call"
    [burst rwq]="n/a: ReaderWriterQueue has no burst call"
)
for c in spsc burst; do count["$c"]=$n_spsc; done
for c in mpmc1 mpmc2; do count["$c"]=$n_mpmc; done
count[rtt]=$n_rtt
# Slower peers run fewer items, so that no run takes seconds; a rate does
# not depend on the count once a run is well past its start.
count[spsc rwq]=$((n_spsc / 4))
count[mpmc1 ck-mpmc]=$((n_mpmc / 5))
count[mpmc1 boost-queue]=$((n_mpmc / 5))
count[mpmc2 boost-queue]=$((n_mpmc / 5))
count[mpmc2 ck-mpmc]=$((n_mpmc / 20))
count[mpmc2 cq]=$((n_mpmc / 10))
# Seconds before a run is cut and counted as timed out (default 60); see
# the notes printed below the tables.
limit[mpmc2 ck-mpmc]=10
limit[mpmc2 cq]=5

# --- configuration ----------------------------------------------------------

print_heading ring
print_compilers cc c++ rustc
cat <<EOT
flags:     C -std=c11 -O2 -DNDEBUG, C++ -std=c++17 -O2 -DNDEBUG,
           Rust cargo --release; each thread function flattened (the
           queue's code inlined into the loop)
capacity:  1024 items for every queue (Boost holds 1023, ck_ring 1023,
           ConcurrentQueue about 1024 per producer)
items:     SPSC $n_spsc per run, MPMC $n_mpmc, round trips $n_rtt
           (+10% warm-up);
           fewer for slow peers: ReaderWriterQueue SPSC $((n_spsc / 4)),
           ck_ring and boost queue MPMC $((n_mpmc / 5)) (2P2C ck_ring
           $((n_mpmc / 20)), ConcurrentQueue $((n_mpmc / 10)))
pinning:   1P1C and SPSC: producer on CPU 0, consumer on CPU 1; round trip:
           ping on CPU 0, pong on CPU 1; 2P2C: 4 threads, unpinned
retry:     after a failed push or pop, 1, 2, 4, ... 64 pause instructions
           on successive failures, then sched_yield() on each further one
           (same in C, C++ and Rust); the round trip retries at once after
           one pause, floor included
$(print_runs)
EOT

# --- rounds and report ------------------------------------------------------

suite_run <<EOT
weir/peer: weir's speed over the peer's in the same round, median over
rounds; above 1 means weir is faster.  x floor: round trip over the
floor's in the same round.  p99: median over rounds of each run's p99.
ck_ring mpmc: its producers publish in claim order, each waiting for the
one before; a producer preempted in between stalls the other for a time
slice when 4 threads share 2 cores.  2P2C runs are cut after
${limit[mpmc2 ck-mpmc]} s.
ConcurrentQueue 2P2C: bounded by try_enqueue, one producer can take every
block of the preallocated pool and keep them, after which the other's
try_enqueue fails for good; such a run is cut after ${limit[mpmc2 cq]} s.
EOT
