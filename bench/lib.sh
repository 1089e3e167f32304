# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2034,SC2154
# bench/lib.sh - what every suite of bench/run shares: finding or
# installing peers, the tables a suite fills, the rounds and the report.
# Sourced by bench/run, from the repository root, with out, rounds, div,
# CC, CXX, cflags, cxxflags, cargo and rustc set.
#
# A suite (bench/suite-*.sh) calls suite_begin, declares its
# implementations with impl and fills cases, impls, count and, where it
# needs them, limit and na; it builds its programs (build_peer), prints
# its configuration (print_heading ... print_runs), then calls suite_run
# with its notes.

declare -A have

# apt_install PACKAGE...: installs the Debian PACKAGEs quietly where
# this runs as root with apt-get, else does nothing; the caller checks
# afterwards whether what it wanted is there.
apt_install() {
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        return 0
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" \
        >/dev/null 2>&1 || true
}

# peer NAME LANG HEADER PACKAGE...: have[NAME] says whether HEADER is
# there, after installing PACKAGEs if it was not and that is possible.
peer() {
    local name=$1
    shift
    if .ci/ensure-pkg "$@"; then have[$name]=1; else have[$name]=0; fi
}

# crate_peer NAME "PACKAGE..." PATTERN...: the same for Rust crates
# that cargo builds offline from /usr/share/cargo/registry (see
# bench/.cargo/config.toml); PATTERNs are crate directories there.
crate_peer() {
    local name=$1 pkgs=$2
    shift 2
    crates_there() {
        local p
        for p; do
            compgen -G "/usr/share/cargo/registry/$p" >/dev/null || return 1
        done
    }
    have[$name]=0
    if ! crates_there "$@"; then
        echo "weir: crates for $name not found; installing $pkgs" >&2
        # shellcheck disable=SC2086 # pkgs is a list of package names
        apt_install $pkgs
    fi
    if ! crates_there "$@"; then
        echo "weir: install $pkgs; $name is missing" >&2
    elif [[ ! -x $cargo ]]; then
        echo "weir: cargo not found; $name is missing" >&2
    else
        have[$name]=1
    fi
}

# tool_peer NAME COMMAND PACKAGE: the same for a compiler on the PATH.
tool_peer() {
    local name=$1 tool=$2 pkg=$3
    have[$name]=0
    if ! command -v "$tool" >/dev/null; then
        echo "weir: $tool not found; installing $pkg" >&2
        apt_install "$pkg"
    fi
    if command -v "$tool" >/dev/null; then
        have[$name]=1
    else
        echo "weir: install $pkg; $name is missing" >&2
    fi
}

# suite_begin NAME RESULTS: empties the tables of the suite before.
suite_begin() {
    suite=$1
    results=$out/$2
    unset bin label need count limit na impls kind title
    declare -gA bin=() label=() need=() count=() limit=() na=() impls=()
    declare -gA kind=() title=()
    cases=()
    # The case whose table shows the floor (it is then an implementation
    # of that case, run at the start of each round); empty for none.
    floor_case=
}

# build_peer NAME COMMAND...: runs COMMAND, which builds NAME's peer,
# if the peer is there; if COMMAND fails, the peer is missing from then
# on.
build_peer() {
    local name=$1
    shift
    ((have[$name])) || return 0
    "$@" && return 0
    echo "weir: the $name peer did not build; it is missing" >&2
    have[$name]=0
}

# cargo_build NAME: the crate bench/NAME, built offline (see
# bench/.cargo/config.toml) into $out/NAME.
cargo_build() {
    (cd "bench/$1" && "$cargo" build --release --offline --quiet \
        --target-dir "../../$out/$1")
}

impl() { # name binary peer-it-needs label
    bin[$1]=$2 need[$1]=$3 label[$1]=$4
}

# print_heading WHAT: the first lines of every suite's configuration,
# what it measures, when and on what machine.
print_heading() {
    local model
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    echo "weir $1 benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:   $(nproc) CPUs, $model, $(uname -sr)"
}

# print_compilers TOOL...: a line per TOOL (cc, c++, rustc or go), the
# version it gives or that it is missing, under one "compilers:" label.
print_compilers() {
    local tool line tag=compilers:
    for tool; do
        case $tool in
        cc) line=$("$CC" --version | head -1) ;;
        c++) line=$("$CXX" --version | head -1) ;;
        rustc) line=$("$rustc" --version 2>/dev/null) || line="rustc missing"
            ;;
        go) line=$(go version 2>/dev/null) || line="go missing" ;;
        esac
        printf '%-10s %s\n' "$tag" "$line"
        tag=
    done
}

# The last lines of every suite's configuration: how the rounds go.
print_runs() {
    cat <<EOT
runs:      $rounds rounds; each: floor round trip, then every case with its
           implementations interleaved (order rotated each round), then
           the floor again; ratios within a round, median across rounds
EOT
}

# run_one ROUND CASE IMPL: one run, appended to the results as ok or
# not; prints the first figure and succeeds if it is ok.
run_one() {
    local key="$2 $3" line status=ok
    line=$(timeout "${limit[$key]:-60}" "${bin[$3]}" "$3" "$2" \
        "${count[$key]:-${count[$2]}}" 2>"$out/last.err") || status=$?
    if [[ $status == 124 ]]; then
        status="timed out"
    elif [[ $status != ok ]]; then
        status=failed
        sed 's/^/    /' "$out/last.err" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$status" \
        "$(tr ' ' '\t' <<<"$line")" >>"$results"
    [[ $status == ok ]] && echo "${line%% *}"
}

runnable() { # CASE IMPL
    [[ -z ${na["$1 $2"]:-} ]] || return 1
    [[ -z ${need[$2]} ]] || ((have[${need[$2]}]))
}

# The core-to-core floor: the median round trip through one cache line
# (bench/rings.c), measured at the start and the end of every round.
floor_now() {
    local line
    line=$("$floor_bin" floor rtt "$n_floor" 2>/dev/null) || line="?"
    echo "${line%% *}"
}

# Every round: the floor, then every case with its implementations
# interleaved (the order rotated each round), then the floor again.
suite_rounds() {
    local r c i n m start end
    local -a list
    : >"$results"
    echo
    for ((r = 1; r <= rounds; r++)); do
        if [[ -n $floor_case ]]; then
            start=$(run_one "$r" "$floor_case" floor || echo "?")
        else
            start=$(floor_now)
        fi
        for c in "${cases[@]}"; do
            read -ra list <<<"${impls[$c]}"
            n=${#list[@]}
            for ((i = 0; i < n; i++)); do
                m=${list[(i + r) % n]}
                [[ $m == floor ]] && continue
                if runnable "$c" "$m"; then
                    run_one "$r" "$c" "$m" >/dev/null || true
                fi
            done
        done
        # Not recorded: only the start floor is the round's reference.
        end=$(floor_now)
        printf 'round %d/%d: floor round trip %s ns at start, %s ns at end\n' \
            "$r" "$rounds" "$start" "$end"
    done
}

# The tables (bench/report.awk, then any AWK files given, which may use
# its functions); rows of the suite in the order given.
suite_report() {
    local rows=$out/$suite-rows.tsv c m state f
    local -a extra=()
    : >"$rows"
    for c in "${cases[@]}"; do
        for m in ${impls[$c]}; do
            state=run
            if [[ -n ${na["$c $m"]:-} ]]; then
                state=${na["$c $m"]}
            elif [[ -n ${need[$m]} ]] && ! ((have[${need[$m]}])); then
                state=missing
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$m" "${label[$m]}" \
                "$state" "${kind[$c]}" "${title[$c]}" >>"$rows"
        done
    done
    for f; do extra+=(-f "$f"); done
    awk -f bench/report.awk "${extra[@]}" "$rows" "$results"
}

# suite_run [AWK...] <<NOTES: the rounds, the report (with the AWK files
# of suite_report), then the notes read from stdin and where the figures
# of every run are.
suite_run() {
    local notes
    notes=$(cat)
    suite_rounds </dev/null
    suite_report "$@"
    printf '\n%s\nPer-run figures: %s\n' "$notes" "$results"
}
