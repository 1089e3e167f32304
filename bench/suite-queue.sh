# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-queue.sh - weir's blocking queue next to its peers: 1P1C
# and 2P2C throughput through blocking push and pop, the latency of
# waking a consumer asleep in pop, and the CPU such a consumer uses.
# Sourced by bench/run (see there and bench/lib.sh).

suite_begin queue queue-results.tsv

n_items=$((4000000 / div)) n_wake=$((300 / div)) idle_ms=200

# --- peers: install what is missing, or report it as missing -------------

multiarch=$("$CC" -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
peer apr c apr-1.0/apr_queue.h libaprutil1-dev
# glib.h includes its siblings through <glib/...>: point at its folders.
CPATH=/usr/include/glib-2.0:/usr/lib/$multiarch/glib-2.0/include \
    peer glib c glib.h libglib2.0-dev
peer tbb c++ tbb/concurrent_queue.h libtbb-dev
tool_peer go go golang-go
crate_peer channel "librust-crossbeam-channel-dev librust-libc-dev" \
    "crossbeam-channel-0.5.*" "crossbeam-utils-0.8.*" "cfg-if-1.*" \
    "libc-0.2.*"

# --- build -----------------------------------------------------------------

# pkgflags FALLBACK PKG-CONFIG-ARGS...: pkg-config's answer, else FALLBACK.
pkgflags() {
    local fallback=$1
    shift
    pkg-config "$@" 2>/dev/null || echo "$fallback"
}

"$CC" "${cflags[@]}" -c bench/queue_harness.c -o "$out/queue_harness.o"
qharness=("$out/queue_harness.o" "$out/common.o")
"$CC" "${cflags[@]}" bench/queue_weir.c "${qharness[@]}" build/libweir.a \
    -pthread -o "$out/queue_weir"

# c_peer NAME CFLAGS LIBS: the C peer bench/queue_NAME.c.
c_peer() {
    # shellcheck disable=SC2086 # flags from pkg-config are word lists
    "$CC" "${cflags[@]}" $2 "bench/queue_$1.c" "${qharness[@]}" $3 \
        -pthread -o "$out/queue_$1"
}
build_peer apr c_peer apr \
    "$(pkgflags -I/usr/include/apr-1.0 --cflags apr-util-1 apr-1)" \
    "$(pkgflags "-laprutil-1 -lapr-1" --libs apr-util-1 apr-1)"
build_peer glib c_peer glib \
    "$(pkgflags "-I/usr/include/glib-2.0
        -I/usr/lib/$multiarch/glib-2.0/include" --cflags glib-2.0)" \
    "$(pkgflags -lglib-2.0 --libs glib-2.0)"
build_peer tbb "$CXX" "${cxxflags[@]}" bench/queue_tbb.cpp \
    "${qharness[@]}" -ltbb -pthread -o "$out/queue_tbb"

# Go writes its caches under build/ only, and fetches nothing.
go_build() {
    local dest=$PWD/$out
    mkdir -p "$dest/go/tmp"
    (cd bench/queue_go && GOCACHE=$dest/go/cache GOPATH=$dest/go/path \
        GOTMPDIR=$dest/go/tmp GOFLAGS="" GOPROXY=off GO111MODULE=on \
        GOWORK=off go build -o "$dest/queue_go" .)
}
build_peer go go_build
build_peer channel cargo_build channel

# --- what runs where -------------------------------------------------------

impl weir      "$out/queue_weir" ""      "weir queue"
impl textbook  "$out/queue_weir" ""      "textbook mutex + 2 condvars"
impl apr       "$out/queue_apr"  apr     "APR apr_queue_t"
impl tbb       "$out/queue_tbb"  tbb     "TBB concurrent_bounded_queue"
impl glib      "$out/queue_glib" glib    "GLib GAsyncQueue (unbounded)"
impl go        "$out/queue_go"   go      "Go buffered channel"
impl crossbeam "$out/channel/release/weir-bench-channel" channel \
    "crossbeam-channel bounded"

all="weir crossbeam go tbb apr textbook glib"
cases=(q1 q2 wake idle)
impls=([q1]=$all [q2]=$all [wake]=$all [idle]=$all)
title=(
    [q1]="blocking push/pop, 1P1C pinned"
    [q2]="blocking push/pop, 2P2C unpinned"
    [wake]="wake-up: consumer asleep in pop, producer pushes one item"
    [idle]="consumer asleep in pop on an empty queue for $idle_ms ms"
)
kind=([q1]=rate [q2]=rate [wake]=wake [idle]=cpu)
count[q1]=$n_items count[q2]=$n_items count[wake]=$n_wake
count[idle]=$idle_ms
# Slower peers run fewer items, so that no run takes seconds.
for m in textbook apr tbb glib; do
    count[q1 $m]=$((n_items / 2)) count[q2 $m]=$((n_items / 2))
done
count[q2 tbb]=$((n_items / 4))

# --- configuration ----------------------------------------------------------

print_heading blocking-queue
print_compilers cc c++ rustc go
cat <<EOT
flags:     C -std=c11 -O2 -DNDEBUG, C++ -std=c++17 -O2 -DNDEBUG,
           Rust cargo --release, go build; each C/C++ thread function
           flattened (the queue's inline code inlined into the loop)
capacity:  1024 items for every queue but GLib's GAsyncQueue, which has
           no bound (its producer never waits; it grows a linked list)
calls:     every implementation's own blocking push and pop, no retry
           loop of ours: weir_queue_push/pop with WEIR_FOREVER,
           apr_queue_push/pop, tbb push/pop after set_capacity(1024),
           g_async_queue_push/pop, Go ch <- v and <-ch, crossbeam-channel
           bounded(1024) send/recv, and the textbook ring (bench/
           queue_weir.c: one mutex, not_full and not_empty condition
           variables, pthread_cond_signal after every item)
items:     throughput $n_items per run; textbook, APR, TBB and GLib
           $((n_items / 2)) (TBB 2P2C $((n_items / 4)))
pinning:   1P1C: producer on CPU 0, consumer on CPU 1; 2P2C: 4 threads,
           unpinned; wake-up and idle: producer CPU 0, consumer CPU 1
Go:        GOMAXPROCS at its default ($(nproc)); 1P1C and 2P2C are plain
           goroutines (pinning one needs LockOSThread, which more than
           halves 1P1C); wake-up and idle lock each goroutine to its OS
           thread (LockOSThread) and pin it, so the consumer is one thread
           that sleeps in the kernel and its CPU clock can be read
wake-up:   $n_wake timed samples per run (+10% warm-up); before each the
           producer sleeps 2 x 500 us, reading the consumer
           thread's CPU clock after each half; "not asleep" counts the
           samples (all rounds) whose consumer used CPU in the second
           half.  Then the producer reads CLOCK_MONOTONIC and pushes it;
           the consumer reads the clock when pop returns
idle:      the consumer blocks in pop on an empty queue; the producer reads
           the consumer thread's CPU clock (pthread_getcpuclockid, the
           same clock id in Go and Rust) at the start, after 20 ms and
           $idle_ms ms later, then pushes one item; CPU us per s asleep
           is over the last $idle_ms ms, "us to fall asleep" the first 20
$(print_runs)
EOT

# --- rounds and report ------------------------------------------------------

suite_run <<EOT
weir/peer: weir's speed over the peer's in the same round, median over
rounds; above 1 means weir is faster (for wake-ups: the peer's latency
over weir's).  p99: median over rounds of each run's p99.
GLib's throughput is that of an unbounded queue and compares with the
others only loosely: its producer never blocks.
EOT
