# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/suite-journal.sh - durable topics (issue 20): durable publish
# throughput and latency under each sync policy with 1 and 4 publishers,
# next to the disk's own floor (write + fdatasync, write alone) and
# SQLite in WAL mode; the time to reopen a journal of unacknowledged
# messages; and in-memory publishing before the journal (fbe305a) and
# now, by the bus suite's program.  Everything on disk goes under
# build/bench/journal-dir, on the filesystem build/ is on.  Sourced by
# bench/run (see there and bench/lib.sh).

suite_begin journal journal-results.tsv

old_rev=fbe305a
jdir=$PWD/$out/journal-dir
export WEIR_BENCH_DIR=$jdir

# --- peers: install what is missing, or report it as missing -------------

peer sqlite c sqlite3.h libsqlite3-dev

# The library as it was before the journal, built from its own sources
# (git archive, so the work tree is not touched) into $out/old; reused
# while it is there and of that commit.
old_build() {
    local dest=$out/old
    if [[ $(cat "$dest/REV" 2>/dev/null) == "$old_rev" &&
        -f $dest/src/build/libweir.a ]]; then
        return 0
    fi
    rm -rf "$dest" && mkdir -p "$dest/src" &&
        git archive "$old_rev" | tar -x -C "$dest/src" &&
        make -s -C "$dest/src" build/libweir.a >/dev/null &&
        echo "$old_rev" >"$dest/REV"
}
have[old]=0
if git rev-parse -q --verify "$old_rev^{commit}" >/dev/null 2>&1; then
    have[old]=1
else
    echo "weir: no commit $old_rev here; the old bus is missing" >&2
fi
build_peer old old_build

# --- build -----------------------------------------------------------------

# shellcheck disable=SC2046 # pkg-config prints word lists
build_peer sqlite "$CC" "${cflags[@]}" bench/journal.c "$out/common.o" \
    build/libweir.a $(pkg-config --cflags --libs sqlite3 2>/dev/null ||
    echo -lsqlite3) -pthread -o "$out/journal"
# Without SQLite the program does not build: weir's cases go with it.
need_j=sqlite

# The bus suite's program, against each library; a launcher takes the
# case's name (mem-t1x8) to the program's (t1x8).
"$CC" "${cflags[@]}" -c bench/bus_harness.c -o "$out/bus_harness.o"
mem_build() { # NAME INCLUDE LIB
    "$CC" "${cflags[@]/#-Iinclude/-I$2}" bench/bus.c "$out/bus_harness.o" \
        "$out/common.o" "$3" -pthread -o "$out/journal-bus-$1" || return 1
    # shellcheck disable=SC2016 # expanded by the launcher, not here
    printf '#!/bin/sh\nexec "%s" weir "${2#mem-}" "$3"\n' \
        "$PWD/$out/journal-bus-$1" >"$out/journal-bus-$1.sh"
    chmod +x "$out/journal-bus-$1.sh"
}
mem_build new include build/libweir.a
build_peer old mem_build old "$out/old/src/include" \
    "$out/old/src/build/libweir.a"

# --- what runs where -------------------------------------------------------

j=$out/journal
impl weir-batch      "$j" "$need_j" "weir BATCH (group commit)"
impl weir-every      "$j" "$need_j" "weir EVERY"
impl weir-none       "$j" "$need_j" "weir NONE"
impl weir-none-nosub "$j" "$need_j" "weir NONE, no subscription"
impl weir-batch-nosub "$j" "$need_j" "weir BATCH, no subscription"
impl weir-every-nosub "$j" "$need_j" "weir EVERY, no subscription"
impl sync            "$j" "$need_j" "write + fdatasync, own fd"
impl sync-shared     "$j" "$need_j" "write + fdatasync, one fd"
impl sync-over       "$j" "$need_j" "write + fdatasync, prewritten"
impl write           "$j" "$need_j" "write alone"
impl sqlite-full     "$j" "$need_j" "SQLite WAL, synchronous=FULL"
impl sqlite-normal   "$j" "$need_j" "SQLite WAL, synchronous=NORMAL"
impl weir-reopen     "$j" "$need_j" "weir, 1 durable subscription"
impl weir-head       "$out/journal-bus-new.sh" "" "weir now (HEAD)"
impl "$old_rev"      "$out/journal-bus-old.sh" old "weir at $old_rev"

cases=(pub1 pub4 reopen mem-t1x8 mem-t4x8 mem-t1x256 mem-t4x256)
durable="weir-batch weir-every weir-none weir-batch-nosub weir-every-nosub"
durable+=" weir-none-nosub sync sync-over write sqlite-full sqlite-normal"
impls=([pub1]=$durable [pub4]="$durable sync-shared" [reopen]=weir-reopen)
for c in mem-t1x8 mem-t4x8 mem-t1x256 mem-t4x256; do
    impls["$c"]="weir-head $old_rev" kind["$c"]=pub
done
title=(
    [pub1]="durable writes, 1 thread, 256-byte messages"
    [pub4]="durable writes, 4 threads, 256-byte messages"
    [reopen]="reopening a journal of $((1000000 / div)) unacked messages"
    [mem-t1x8]="in-memory publish throughput, 1 subscription, 8 bytes"
    [mem-t4x8]="in-memory publish throughput, 4 subscriptions, 8 bytes"
    [mem-t1x256]="in-memory publish throughput, 1 subscription, 256 bytes"
    [mem-t4x256]="in-memory publish throughput, 4 subscriptions, 256 bytes"
)
kind[pub1]=dur kind[pub4]=dur kind[reopen]=open

# Counts for runs of one to three seconds on a disk of about 1,500
# fdatasyncs a second: a run that syncs writes thousands, one that does
# not writes a hundred thousand.
n_sync=$((2000 / div)) n_fast=$((100000 / div)) n_mem=$((1000000 / div))
for c in pub1 pub4; do
    m=1
    [[ $c == pub4 ]] && m=4
    for i in weir-batch weir-every weir-batch-nosub weir-every-nosub sync \
        sync-shared sync-over sqlite-full; do
        count["$c $i"]=$((n_sync * m))
    done
    for i in weir-none weir-none-nosub write; do
        count["$c $i"]=$((n_fast * m))
    done
    count["$c sqlite-normal"]=$((n_fast * 2 * (m > 1 ? 2 : 1) / 5))
done
# SQLite's four connections take turns at one write lock, waiting in
# its busy handler's sleeps: fewer for a run of similar length.
count["pub4 sqlite-full"]=$((n_sync * 3 / 2))
count[reopen]=$((1000000 / div))
for c in mem-t1x8 mem-t4x8 mem-t1x256 mem-t4x256; do
    count["$c"]=$n_mem
done
limit["reopen weir-reopen"]=180

# --- configuration ----------------------------------------------------------

mkdir -p "$jdir"
fs=$(df -T "$jdir" | awk 'NR == 2 { print $1 " (" $2 ")" }')
rmdir "$jdir" 2>/dev/null || true
print_heading "durable topics (journal)"
cat <<EOT
compiler:  $("$CC" --version | head -1), -std=c11 -O2 -DNDEBUG
peers:     SQLite $(pkg-config --modversion sqlite3 2>/dev/null ||
    echo missing) (libsqlite3-dev); weir at $old_rev (git archive,
           make build/libweir.a) for the in-memory cases
disk:      $jdir
           on $fs, emptied before and removed after every run
pub:       256-byte messages, COUNT in all over 1 or 4 threads started
           together; writes/s over the span from the start to the last
           thread's end; p50 / p99 of each write's own time.  weir: a
           durable topic's handle (weir_bus_durable_topic) with one
           durable subscription whose handler returns 0 (so every
           message is acknowledged and segments trimmed), its feeder and
           worker sharing the CPUs; "no subscription": the journal's
           write (and sync) alone.  weir_bus_close drains after the
           span, untimed.
           Floors: write(2) + fdatasync per message, each thread its
           own file (own fd), 4 threads on one fd (one fd), or a file
           written and synced to size first (prewritten: no size to
           sync); write(2) alone.  SQLite: WAL, one INSERT per
           autocommit transaction, one connection per thread,
           busy_timeout 10 s.
counts:    pub1 ${count[pub1 sync]} syncing / ${count[pub1 write]} not /
           ${count[pub1 sqlite-normal]} SQLite NORMAL; pub4 \
${count[pub4 sync]} / ${count[pub4 write]} / \
${count[pub4 sqlite-normal]} (SQLite FULL ${count[pub4 sqlite-full]})
reopen:    set-up (untimed): journal_sync NONE, a durable subscription
           made and closed at once, ${count[reopen]} publishes, close, sync(2).
           create: weir_bus_create on it; ready: from the same start
           until the subscription made again (same name) has its first
           message (redelivered) in its handler.  Warm page cache.
in-memory: bench/bus.c (the bus suite's throughput case, $n_mem
           messages) linked with each library, run the same way
$(print_runs)
EOT

# --- rounds, report, instruction counts --------------------------------------

suite_run bench/journal-targets.awk <<EOT
x sync: the row's writes/s over its case's "write + fdatasync, own fd"
in the same round, median over rounds.  msg/sync: weir's publishes per
fdatasync (its statistics).  weir/peer (in-memory): HEAD over $old_rev.
EOT

# Instructions are the same from run to run where time is not: the
# in-memory cases under callgrind, once per build.
if ((have[old])) && command -v valgrind >/dev/null; then
    n_cg=$((200000 / div))
    echo
    echo "callgrind, whole program, $n_cg messages (instructions):"
    for c in t1x8 t4x8; do
        for b in old new; do
            valgrind --tool=callgrind --callgrind-out-file=/dev/null \
                "$out/journal-bus-$b" weir "$c" "$n_cg" 2>&1 >/dev/null |
                sed -n 's/.*Collected : *//p' | tail -1 >"$out/cg-$b"
        done
        awk -v c="$c" -v o="$(cat "$out/cg-old")" \
            -v n="$(cat "$out/cg-new")" 'BEGIN {
            printf "  %-6s %s %.1f M, HEAD %.1f M, HEAD / old %.4f\n",
                c, "'"$old_rev"'", o / 1e6, n / 1e6, o ? n / o : 0 }'
    done
else
    echo "callgrind: valgrind or the old library missing; not run"
fi
