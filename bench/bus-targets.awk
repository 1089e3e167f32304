# SPDX-License-Identifier: MIT
# bench/bus-targets.awk - the bus suite's throughput targets, checked
# against the within-round ratios of its results.  Loaded after
# bench/report.awk (bench/suite-bus.sh: suite_run bench/bus-targets.awk),
# whose ratio_of it uses; its END block runs after the tables.

# One target: weir's throughput over peer's in case c at least want.
function check(c, peer, want, what,    m) {
    m = ratio_of(c SUBSEP "weir", c SUBSEP peer)
    if (m == "") {
        printf "  %-7s weir / %-9s no result\n", c, peer
        return
    }
    printf "  %-7s weir / %-9s %5.2f, target >= %s%s: %s\n", c, peer,
           m, want, what, (m >= want ? "met" : \
           sprintf("missed by %.0f %%", (1 - m / want) * 100))
}

END {
    print "\ntargets (throughput, median of within-round ratios):"
    split("t4x8 t4x256 t1x8 t1x256", cs, " ")
    for (i = 1; i <= 4; i++) {
        check(cs[i], "dis-block", 1)
        check(cs[i], "zmq", 3)
        check(cs[i], "dis-sleep", 1, " (stretch)")
    }
}
