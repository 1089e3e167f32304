# SPDX-License-Identifier: MIT
# bench/journal-targets.awk - issue 20's targets for durable topics,
# checked against the journal suite's results.  Loaded after
# bench/report.awk (bench/suite-journal.sh: suite_run
# bench/journal-targets.awk), whose ratio_of, gather and median it uses;
# its END block runs after the tables.

# One target: the median within-round ratio of num over den (keys as
# "case impl"), against a bound: at least lo, and at most hi if hi is
# not empty.
function check(what, num, den, lo, hi,    a, b, m, ok) {
    split(num, a, " "); split(den, b, " ")
    m = ratio_of(a[1] SUBSEP a[2], b[1] SUBSEP b[2])
    if (m == "") {
        printf "  %-46s no result\n", what
        return
    }
    ok = m >= lo && (hi == "" || m <= hi)
    printf "  %-46s %6.2f, target %s: %s\n", what, m,
           hi == "" ? ">= " lo : lo " - " hi, ok ? "met" : "not met"
}

END {
    print "\ntargets (median of within-round ratios):"
    check("BATCH 4 pubs / fdatasync floor, 1 thread", "pub4 weir-batch",
          "pub1 sync", 10)
    check("BATCH 4 pubs / fdatasync floor, 4 threads", "pub4 weir-batch",
          "pub4 sync", 10)
    check("EVERY 1 pub / fdatasync floor, 1 thread", "pub1 weir-every",
          "pub1 sync", 0.9, 1.1)
    check("EVERY 4 pubs / fdatasync floor, one fd", "pub4 weir-every",
          "pub4 sync-shared", 0.9, 1.1)
    check("BATCH no sub, 4 pubs / floor, 1 thread", "pub4 weir-batch-nosub",
          "pub1 sync", 10)
    check("EVERY no sub, 1 pub / floor, 1 thread", "pub1 weir-every-nosub",
          "pub1 sync", 0.9, 1.1)
    check("EVERY no sub, 4 pubs / floor, one fd", "pub4 weir-every-nosub",
          "pub4 sync-shared", 0.9, 1.1)
    check("NONE 1 pub / SQLite NORMAL 1 thread", "pub1 weir-none",
          "pub1 sqlite-normal", 5)
    check("NONE 4 pubs / SQLite NORMAL 4 threads", "pub4 weir-none",
          "pub4 sqlite-normal", 5)
    check("NONE no sub, 1 pub / SQLite NORMAL", "pub1 weir-none-nosub",
          "pub1 sqlite-normal", 5)
    check("NONE no sub, 4 pubs / SQLite NORMAL", "pub4 weir-none-nosub",
          "pub4 sqlite-normal", 5)
    n = gather("reopen" SUBSEP "weir-reopen", 2, v)
    if (n)
        printf "  %-46s %6.0f ms, target < 2000 ms: %s\n",
               "reopen until first message (median)", median(v, n) / 1e6,
               median(v, n) < 2e9 ? "met" : "not met"
    n = gather("reopen" SUBSEP "weir-reopen", 1, v)
    if (n)
        printf "  %-46s %6.0f ms\n", "  of which weir_bus_create",
               median(v, n) / 1e6
    split("mem-t1x8 mem-t4x8 mem-t1x256 mem-t4x256", cs, " ")
    for (i = 1; i <= 4; i++)
        check("in-memory " substr(cs[i], 5) ", HEAD / fbe305a",
              cs[i] " weir-head", cs[i] " fbe305a", 0.97)
}
