# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-bus.sh - weir's publish/subscribe bus next to the LMAX
# Disruptor (Java, two wait strategies), ZeroMQ inproc PUB/SUB and a
# textbook fan-out: publish throughput to 1 and 4 subscriptions at 8 and
# 256 bytes with the latency of the same runs, the latency at a steady
# pace, and how the cost of a publish grows with 1, 4, 16 and 64
# subscriptions.  Sourced by bench/run (see there and bench/lib.sh).

suite_begin bus bus-results.tsv

n_msgs=$((1000000 / div)) n_paced=$((10000 / div))
n_slow=$((n_msgs / 2))

# --- peers: install what is missing, or report it as missing -------------

peer zmq c zmq.h libzmq3-dev

# java_peer: javac, java and the Disruptor's jar; installed when missing
# and possible.  Sets disruptor_jar.
java_peer() {
    local pkgs=()
    disruptor_jar=
    find_jar() {
        disruptor_jar=$(dpkg -L libdisruptor-java 2>/dev/null |
            grep -m1 '/usr/share/java/disruptor\.jar$' || true)
        [[ -n $disruptor_jar ]] ||
            disruptor_jar=$(compgen -G '/usr/share/java/disruptor*.jar' |
                head -1 || true)
    }
    find_jar
    command -v javac >/dev/null && command -v java >/dev/null ||
        pkgs+=(default-jdk-headless)
    [[ -n $disruptor_jar ]] || pkgs+=(libdisruptor-java)
    if ((${#pkgs[@]})); then
        echo "weir: installing ${pkgs[*]} for the Disruptor" >&2
        apt_install "${pkgs[@]}"
        find_jar
    fi
    have[disruptor]=0
    if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
        echo "weir: install default-jdk-headless; the Disruptor is missing" >&2
    elif [[ -z $disruptor_jar ]]; then
        echo "weir: install libdisruptor-java; the Disruptor is missing" >&2
    else
        have[disruptor]=1
    fi
}
java_peer

# --- build -----------------------------------------------------------------

"$CC" "${cflags[@]}" -c bench/bus_harness.c -o "$out/bus_harness.o"
bharness=("$out/bus_harness.o" "$out/common.o")
"$CC" "${cflags[@]}" bench/bus.c "${bharness[@]}" build/libweir.a \
    -pthread -o "$out/bus"

# shellcheck disable=SC2046 # pkg-config prints word lists
build_peer zmq "$CC" "${cflags[@]}" bench/bus_zmq.c "${bharness[@]}" \
    $(pkg-config --cflags --libs libzmq 2>/dev/null || echo -lzmq) \
    -pthread -o "$out/bus_zmq"

# The Java program, and a launcher run_one can call like the others.
disruptor_build() {
    local classes=$PWD/$out/bus_disruptor
    rm -rf "$classes" && mkdir -p "$classes" &&
        javac -Xlint:all -Werror -d "$classes" -cp "$disruptor_jar" \
            bench/bus_disruptor/BusDisruptor.java || return 1
    printf '#!/bin/sh\nexec java -cp "%s:%s" BusDisruptor "$@"\n' \
        "$classes" "$disruptor_jar" >"$out/bus_disruptor.sh"
    chmod +x "$out/bus_disruptor.sh"
}
build_peer disruptor disruptor_build

# --- what runs where -------------------------------------------------------

impl weir      "$out/bus"           ""        "weir bus"
impl dis-block "$out/bus_disruptor.sh" disruptor "Disruptor, blocking wait"
impl dis-sleep "$out/bus_disruptor.sh" disruptor "Disruptor, sleeping wait"
impl zmq       "$out/bus_zmq"       zmq       "ZeroMQ inproc PUB/SUB"
impl textbook  "$out/bus"           ""        "textbook mutex/condvar x N"

all="weir dis-block dis-sleep zmq textbook"
cases=(t1x8 t4x8 t1x256 t4x256 l4x8 s1x8 s4x8 s16x8 s64x8)
for c in "${cases[@]}"; do impls["$c"]=$all; done
title=(
    [t1x8]="publish throughput, 1 subscription, 8-byte payload"
    [t4x8]="publish throughput, 4 subscriptions, 8-byte payload"
    [t1x256]="publish throughput, 1 subscription, 256-byte payload"
    [t4x256]="publish throughput, 4 subscriptions, 256-byte payload"
    [l4x8]="latency at a steady 50,000 messages/s, 4 subscriptions, 8 bytes"
    [s1x8]="publish cost, 1 subscription, 8 bytes"
    [s4x8]="publish cost, 4 subscriptions, 8 bytes"
    [s16x8]="publish cost, 16 subscriptions, 8 bytes"
    [s64x8]="publish cost, 64 subscriptions, 8 bytes"
)
for c in t1x8 t4x8 t1x256 t4x256; do kind["$c"]=pub count["$c"]=$n_msgs; done
kind[l4x8]=lat count[l4x8]=$n_paced
for c in s1x8 s4x8 s16x8 s64x8; do kind["$c"]=cost; done
count[s1x8]=$n_msgs count[s4x8]=$n_slow
count[s16x8]=$((n_msgs / 5)) count[s64x8]=$((n_msgs / 20))
# The textbook fan-out and ZeroMQ slow down by 10-100x once there are
# more subscriber threads than cores: fewer messages, for runs of similar
# length.
for m in zmq textbook; do
    count[t4x8 $m]=$n_slow count[t4x256 $m]=$n_slow
    count[s16x8 $m]=$((n_msgs / 100)) count[s64x8 $m]=$((n_msgs / 500))
done

# --- configuration ----------------------------------------------------------

java_version=$(java -version 2>&1 | head -1 || true)
print_heading "publish/subscribe bus"
cat <<EOT
compilers: $("$CC" --version | head -1), -std=c11 -O2 -DNDEBUG
           ${java_version:-java missing}, javac, default JVM options
peers:     Disruptor $(dpkg-query -W -f '${Version}' libdisruptor-java \
    2>/dev/null || echo missing) ($disruptor_jar),
           ZeroMQ $(pkg-config --modversion libzmq 2>/dev/null || echo missing)
setup:     one publisher thread (the main thread), N subscriptions of
           one handler thread each, nothing pinned (more threads than
           CPUs from N = 2).
           weir: weir_bus_create, N x weir_bus_subscribe to one topic
           with default options (1 worker, capacity 1024, BLOCK), publish
           with weir_topic_publish on a weir_bus_topic handle; after the
           run weir_bus_close and weir_sub_get_stats: every subscription
           must show routed == acked == the count, nothing failed,
           dropped, queued or in flight.
           Disruptor: one Disruptor of 1024 preallocated events (a byte
           array of the payload's size each), ProducerType.SINGLE, N
           handlers by handleEventsWith; next(), System.arraycopy of the
           payload into the slot, publish(); BlockingWaitStrategy or
           SleepingWaitStrategy.  JIT warm-up: each run first does the
           same case untimed in the same JVM (the same count; 200,000
           unpaced for the latency case) on a Disruptor of its own, then
           the timed run on a fresh one; JVM start is not timed.
           ZeroMQ: one PUB socket, N threads with a SUB socket each on
           inproc://, subscribed to everything, ZMQ_SNDHWM and ZMQ_RCVHWM
           0 (no limit) so nothing drops; zmq_send / zmq_msg_recv.  Before
           timing, warm-up messages every 100 us until every subscriber
           has one (slow joiners).
           textbook: the payload copied into one malloc'd message with an
           atomic refcount of N, its pointer pushed into N queues (1024
           pointers, one mutex, not_full and not_empty condvars signalled
           after every item), one consumer thread each; the last consumer
           frees the message.
handler:   counts the message and, but for the cost case, reads the clock
           and adds (now - the stamp in the payload's first 8 bytes,
           CLOCK_MONOTONIC / System.nanoTime, written by the publisher
           just before each publish) to its histogram (3 % buckets).
timing:    from the first publish until the last subscription has handled
           the last message (read by that handler).  Messages published
           per second = count / that span; every subscription must have
           handled exactly count messages.
latency:   p50 and p99 over every handled message of a run (all
           subscriptions), publish to handler start.  In the throughput
           runs the publisher is always ahead, so it is mostly time spent
           queued (up to 1024 deep; ZeroMQ's queues have no bound).  The
           steady-pace case publishes one message every 20 us (spinning
           on the clock) so queues stay near empty: it measures hand-over
           and wake-up.  "own": weir's own weir_sub_get_stats p50 / p99
           (publish to handler return; the largest over subscriptions).
counts:    throughput $n_msgs messages per run (ZeroMQ and textbook
           $n_slow with 4 subscriptions); steady pace $n_paced; cost
           ${count[s1x8]} / ${count[s4x8]} / ${count[s16x8]} / ${count[s64x8]}
           for 1 / 4 / 16 / 64 subscriptions (ZeroMQ and textbook
           ${count[s16x8 zmq]} at 16, ${count[s64x8 zmq]} at 64)
cost:      span / count = ns per publish, the publisher's and handlers'
           CPU time together when threads outnumber CPUs; ns/sub = that
           over N.  No latency recorded in these runs.
$(print_runs)
EOT

# --- rounds and report ------------------------------------------------------

# The issue's targets (bench/bus-targets.awk) follow the tables.
suite_run bench/bus-targets.awk <<EOT
weir/peer: weir's throughput over the peer's (for latency and cost: the
peer's ns over weir's) in the same round, median over rounds; above 1
means weir is better.  p50, p99: medians over rounds of each run's.
EOT
