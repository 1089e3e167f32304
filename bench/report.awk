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
#
# Ratios are taken within a round, then their median across rounds: the
# host moves the cores between placements that change every figure 3-8x,
# and a ratio across rounds would mostly measure that move.  weir/peer is
# weir's speed over the peer's, so above 1 means weir is faster in every
# row: items/s divided for throughput, the peer's ns over weir's for
# times.  A CPU figure gets no ratio: weir's is meant to be zero.

BEGIN { FS = "\t" }

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
    val[key, $1] = $5
    p99[key, $1] = $6
    third[key, $1] = $7
    if (NF >= 8) fourth[key, $1] = $8
    if (NF >= 9) fifth[key, $1] = $9
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

# Collects the rounds in which key has a result into v[1..n]; returns n.
function gather(key, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r) in val)
            v[++n] = val[key, r]
    return n
}

# The same for the second value.
function gather2(key, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r) in p99)
            v[++n] = p99[key, r]
    return n
}

# The same for the third, fourth and fifth values, when there.
function gather3(key, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r) in third && third[key, r] != "")
            v[++n] = third[key, r]
    return n
}

function gather4(key, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r) in fourth)
            v[++n] = fourth[key, r]
    return n
}

function gather5(key, v,    r, n) {
    split("", v)
    for (r = 1; r <= rounds; r++)
        if ((key, r) in fifth)
            v[++n] = fifth[key, r]
    return n
}

# weir's own latency figures (its statistics), medians over rounds in us.
function own(a, na, b, nb) {
    return na && nb ? sprintf("  own %.1f / %.1f", median(a, na) / 1e3,
                              median(b, nb) / 1e3) : ""
}

# The sum over rounds of the third value.
function total3(key,    r, s) {
    for (r = 1; r <= rounds; r++)
        if ((key, r) in third)
            s += third[key, r]
    return s + 0
}

# The sum over rounds of the second value (the ns kind's refusals).
function total2(key,    r, s) {
    for (r = 1; r <= rounds; r++)
        if ((key, r) in p99)
            s += p99[key, r]
    return s + 0
}

# The median over rounds of num / den, each a key, in the rounds with both.
function ratio(num, den,    r, n, q) {
    split("", q)
    for (r = 1; r <= rounds; r++)
        if ((num, r) in val && (den, r) in val && val[den, r] > 0)
            q[++n] = val[num, r] / val[den, r]
    return n ? sprintf("%.2f", median(q, n)) : "-"
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

function n_ok(key,    v) { return gather(key, v) }

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
        k = kind[c]
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
        n = gather(key, v)
        if (n == 0) {
            printf "  %-30s %s%s\n", rlabel[i], "no result", failures(key)
            continue
        }
        isweir = key == weir
        isfloor = rimpl[i] == "floor"
        np = gather2(key, pv)
        if (k == "rtt") {
            fmt = "%.0f"; scale = 1
            floorkey = c SUBSEP "floor"
            cell = sprintf("%.0f (%s)", median(v, n), minmax(v, n))
            printf "  %-30s %-22s %6.0f %7s %9s%s\n", rlabel[i], cell,
                   median(pv, np),
                   isfloor ? "1.00" : ratio(key, floorkey),
                   isweir || isfloor ? "-" : ratio(key, weir), failures(key)
        } else if (k == "wake") {
            fmt = "%.1f"; scale = 1e3
            cell = sprintf("%.1f (%s)", median(v, n) / 1e3, minmax(v, n))
            printf "  %-30s %-22s %7.1f %10d %9s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, total3(key),
                   isweir ? "-" : ratio(key, weir), failures(key)
        } else if (k == "cpu") {
            fmt = "%.1f"; scale = 1
            cell = sprintf("%.1f (%s)", median(v, n), minmax(v, n))
            printf "  %-30s %-37s %17.1f%s\n", rlabel[i], cell,
                   median(pv, np), failures(key)
        } else if (k == "pub") {
            fmt = "%.2f"; scale = 1e6
            cell = sprintf("%.2f (%s)", median(v, n) / 1e6, minmax(v, n))
            n3 = gather3(key, v3); n4 = gather4(key, v4)
            n5 = gather5(key, v5)
            printf "  %-30s %-25s %8.1f %8.1f %9s%s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, median(v3, n3) / 1e3,
                   isweir ? "-" : ratio(weir, key), own(v4, n4, v5, n5),
                   failures(key)
        } else if (k == "lat") {
            fmt = "%.1f"; scale = 1e3
            cell = sprintf("%.1f (%s)", median(v, n) / 1e3, minmax(v, n))
            n3 = gather3(key, v3); n4 = gather4(key, v4)
            printf "  %-30s %-25s %8.1f %9s%s%s\n", rlabel[i], cell,
                   median(pv, np) / 1e3, isweir ? "-" : ratio(key, weir),
                   own(v3, n3, v4, n4), failures(key)
        } else if (k == "cost") {
            fmt = "%.0f"; scale = 1
            cell = sprintf("%.0f (%s)", median(v, n), minmax(v, n))
            printf "  %-30s %-28s %9.1f %9s%s\n", rlabel[i], cell,
                   median(pv, np), isweir ? "-" : ratio(key, weir),
                   failures(key)
        } else if (k == "ns") {
            fmt = "%.1f"; scale = 1
            cell = sprintf("%.1f (%s)", median(v, n), minmax(v, n))
            printf "  %-30s %-25s %7d %9s%s\n", rlabel[i], cell,
                   total2(key), isweir ? "-" : ratio(key, weir),
                   failures(key)
        } else {
            fmt = "%.1f"; scale = 1e6
            cell = sprintf("%.1f (%s)", median(v, n) / 1e6, minmax(v, n))
            printf "  %-30s %-26s %9s%s\n", rlabel[i], cell,
                   isweir ? "-" : ratio(weir, key), failures(key)
        }
    }
}
