# SPDX-License-Identifier: MIT
# bench/report.awk - the tables printed at the end of each suite of
# bench/run.
#
# Input, in order: the rows file (case, impl, label, state: run, missing
# or "n/a ...", kind, case title), then the results file (round, case,
# impl, status, value, second value, third value), both tab-separated.
# The kind of a case says what its values are and how its table looks:
#   rate  items/s
#   rtt   round trip ns and p99, with a column relative to the floor
#   wake  wake-up ns and p99, and samples whose consumer was not asleep
#   cpu   CPU us per second asleep, and CPU us before falling asleep
#   ns    ns per call, and calls refused
#   pub   messages published/s, p50 and p99 latency ns, and for weir its
#         own statistics' p50 and p99 ns as fourth and fifth values
#   lat   p50 and p99 latency ns, and weir's own p50 and p99 as third
#         and fourth values
#   cost  ns per publish, and ns per publish per subscription
#   dur   durable writes/s, p50 and p99 latency ns, and for weir the
#         writes each fdatasync served; its ratio column is the
#         throughput over that of the case's "sync" (the disk's floor)
#   open  ns to open a journal, ns until its first message is handed
#         out, and the rate at which it was written (messages/s)
#
# Ratios are taken within a round, then their median across rounds: the
# host moves the cores between placements that change every figure 3-8x,
# and a ratio across rounds would mostly measure that move.  weir/peer is
# weir's speed over the peer's, so above 1 means weir is faster in every
# row: items/s divided for throughput, the peer's ns over weir's for
# times.  A CPU figure gets no ratio: weir's is meant to be zero.

BEGIN {
    FS = "\t"
    # Each kind's first value: its format in the table, the divisor that
    # gives the table's unit, and whether higher is better (a rate).
    split("rtt wake cpu pub lat cost ns rate dur open", kinds, " ")
    split("%.0f %.1f %.1f %.2f %.1f %.0f %.1f %.1f %.2f %.0f", fmts, " ")
    split("1 1e3 1 1e6 1e3 1 1 1e6 1e3 1e6", scales, " ")
    split("0 0 0 1 0 0 0 1 1 0", highs, " ")
    for (i = 1; i in kinds; i++) {
        fmtof[kinds[i]] = fmts[i]
        scaleof[kinds[i]] = scales[i]
        higher[kinds[i]] = highs[i] + 0
    }
}

FILENAME == ARGV[1] {
    nrows++
    rcase[nrows] = $1; rimpl[nrows] = $2; rlabel[nrows] = $3
    rstate[nrows] = $4; kind[$1] = $5; title[$1] = $6
    next
}

{
    key = $2 SUBSEP $3
    if ($4 != "ok") {
        bad[key]++
        badhow[key] = $4
        next
    }
    # fig[key, round, i]: the i-th value of the run (1 to 5); the first
    # always, the others where the program printed them.
    fig[key, $1, 1] = $5
    for (i = 2; i <= 5 && i + 4 <= NF; i++)
        if ($(i + 4) != "")
            fig[key, $1, i] = $(i + 4)
    if ($1 > rounds)
        rounds = $1
}

function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

# Collects the i-th value of key, in the rounds that have it, into
# v[1..n]; returns n.
function gather(key, i, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r, i) in fig)
            v[++n] = fig[key, r, i]
    return n
}

# weir's own latency figures (its statistics), medians over rounds in us.
function own(a, na, b, nb) {
    return na && nb ? sprintf("  own %.1f / %.1f", median(a, na) / 1e3,
                              median(b, nb) / 1e3) : ""
}

# The sum over rounds of the i-th value (wake-ups not asleep, refusals).
function total(key, i,    r, s) {
    for (r = 1; r <= rounds; r++)
        if ((key, r, i) in fig)
            s += fig[key, r, i]
    return s + 0
}

# The median over rounds of num / den, each a key, in the rounds with
# both; "" if there is none.
function ratio_of(num, den,    r, n, q) {
    split("", q)
    for (r = 1; r <= rounds; r++)
        if ((num, r, 1) in fig && (den, r, 1) in fig && fig[den, r, 1] > 0)
            q[++n] = fig[num, r, 1] / fig[den, r, 1]
    return n ? median(q, n) : ""
}

# The same as printed in a table.
function ratio(num, den,    m) {
    m = ratio_of(num, den)
    return m == "" ? "-" : sprintf("%.2f", m)
}

function minmax(v, n,    i, lo, hi) {
    lo = hi = v[1]
    for (i = 2; i <= n; i++) {
        if (v[i] < lo) lo = v[i]
        if (v[i] > hi) hi = v[i]
    }
    return sprintf(fmt, lo / scale) "-" sprintf(fmt, hi / scale)
}

function failures(key) {
    return key in bad ? sprintf("  (%d of %d runs %s)", bad[key],
                                bad[key] + n_ok(key), badhow[key]) : ""
}

function n_ok(key,    v) { return gather(key, 1, v) }

function header(k) {
    if (k == "rtt")
        printf "  %-30s %-22s %6s %7s %9s\n", "implementation",
               "ns: median (min-max)", "p99", "x floor", "weir/peer"
    else if (k == "wake")
        printf "  %-30s %-22s %7s %10s %9s\n", "implementation",
               "us: median (min-max)", "p99 us", "not asleep", "weir/peer"
    else if (k == "cpu")
        printf "  %-30s %-37s %17s\n", "implementation",
               "CPU us per s asleep: median (min-max)", "us to fall asleep"
    else if (k == "pub")
        printf "  %-30s %-25s %8s %8s %9s\n", "implementation",
               "Mmsg/s: median (min-max)", "p50 us", "p99 us", "weir/peer"
    else if (k == "lat")
        printf "  %-30s %-25s %8s %9s\n", "implementation",
               "p50 us: median (min-max)", "p99 us", "weir/peer"
    else if (k == "cost")
        printf "  %-30s %-26s %9s %9s\n", "implementation",
               "ns/publish: median (min-max)", "ns/sub", "weir/peer"
    else if (k == "dur")
        printf "  %-30s %-25s %8s %8s %8s %7s\n", "implementation",
               "kmsg/s: median (min-max)", "p50 us", "p99 us", "msg/sync",
               "x sync"
    else if (k == "open")
        printf "  %-30s %-27s %9s %13s\n", "implementation",
               "create ms: median (min-max)", "ready ms", "set-up kmsg/s"
    else if (k == "ns")
        printf "  %-30s %-25s %7s %9s\n", "implementation",
               "ns/call: median (min-max)", "refused", "weir/peer"
    else
        printf "  %-30s %-26s %9s\n", "implementation",
               "Mitems/s: median (min-max)", "weir/peer"
}

END {
    for (i = 1; i <= nrows; i++) {
        c = rcase[i]
        k = (kind[c] in fmtof) ? kind[c] : "rate"
        if (c != lastcase) {
            printf "\n%s\n", title[c]
            header(k)
            lastcase = c
            weir = ""
            for (j = 1; j <= nrows; j++)
                if (rcase[j] == c && rimpl[j] ~ /^weir/)
                    weir = c SUBSEP rimpl[j]
        }
        key = c SUBSEP rimpl[i]
        if (rstate[i] != "run") {
            printf "  %-30s %s\n", rlabel[i], rstate[i]
            continue
        }
        n = gather(key, 1, v)
        if (n == 0) {
            printf "  %-30s %s%s\n", rlabel[i], "no result", failures(key)
            continue
        }
        isweir = key == weir
        isfloor = rimpl[i] == "floor"
        np = gather(key, 2, pv)
        fmt = fmtof[k]; scale = scaleof[k]
        cell = sprintf(fmt " (%s)", median(v, n) / scale, minmax(v, n))
        # weir/peer: weir's speed over the peer's, whichever way is up.
        vs = isweir ? "-" : higher[k] ? ratio(weir, key) : ratio(key, weir)
        if (k == "rtt") {
            printf "  %-30s %-22s %6.0f %7s %9s%s\n", rlabel[i], cell,
                   median(pv, np),
                   isfloor ? "1.00" : ratio(key, c SUBSEP "floor"),
                   isfloor ? "-" : vs, failures(key)
        } else if (k == "wake") {
            printf "  %-30s %-22s %7.1f %10d %9s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, total(key, 3), vs, failures(key)
        } else if (k == "cpu") {
            printf "  %-30s %-37s %17.1f%s\n", rlabel[i], cell,
                   median(pv, np), failures(key)
        } else if (k == "pub") {
            n3 = gather(key, 3, v3); n4 = gather(key, 4, v4)
            n5 = gather(key, 5, v5)
            printf "  %-30s %-25s %8.1f %8.1f %9s%s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, median(v3, n3) / 1e3, vs,
                   own(v4, n4, v5, n5), failures(key)
        } else if (k == "lat") {
            n3 = gather(key, 3, v3); n4 = gather(key, 4, v4)
            printf "  %-30s %-25s %8.1f %9s%s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, vs, own(v3, n3, v4, n4),
                   failures(key)
        } else if (k == "cost") {
            printf "  %-30s %-28s %9.1f %9s%s\n", rlabel[i], cell,
                   median(pv, np), vs, failures(key)
        } else if (k == "dur") {
            n3 = gather(key, 3, v3); n4 = gather(key, 4, v4)
            printf "  %-30s %-25s %8.1f %8.1f %8s %7s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, median(v3, n3) / 1e3,
                   n4 ? sprintf("%.2f", median(v4, n4)) : "-",
                   ratio(key, c SUBSEP "sync"), failures(key)
        } else if (k == "open") {
            n3 = gather(key, 3, v3)
            printf "  %-30s %-27s %9.0f %13.1f%s\n", rlabel[i], cell,
                   median(pv, np) / 1e6, median(v3, n3) / 1e3, failures(key)
        } else if (k == "ns") {
            printf "  %-30s %-25s %7d %9s%s\n", rlabel[i], cell,
                   total(key, 2), vs, failures(key)
        } else {
            printf "  %-30s %-26s %9s%s\n", rlabel[i], cell, vs,
                   failures(key)
        }
    }
}
