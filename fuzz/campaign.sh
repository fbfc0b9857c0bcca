#!/usr/bin/env bash
# A fuzzing campaign: every target (or the ones named) runs for M minutes
# (default 10) from its seeds and its kept corpus, under `nice -n 19` so that
# it yields the CPU to everything else on the machine. Afterwards the corpus is
# minimised and kept in fuzz/corpus/<target>/, holding only the inputs that add
# coverage beyond fuzz/seeds/<target>/. Prints per target: executions, exec/s,
# coverage (`cov:` edges and `ft:` features from libFuzzer's last status line),
# corpus size and crashes.
#
#   bash fuzz/campaign.sh                      # every target, 10 min each, 1 at a time
#   bash fuzz/campaign.sh --minutes 2 origin   # one target, 2 min
#   bash fuzz/campaign.sh --jobs 2             # two targets at a time (at most 2)
#
# A crash does not end the campaign: its input is kept in
# fuzz/artifacts/<target>/ and the target restarts for the rest of its time
# (at most 20 restarts). Reproduce one with
# `cargo fuzz run <target> fuzz/artifacts/<target>/<file>`.
#
# Toolchain: as fuzz/smoke.sh (stable, RUSTC_BOOTSTRAP=1, no sanitizer; the
# crates fuzzed forbid unsafe code), but with debug assertions on, so that an
# integer overflow is a finding too. FUZZ_TOOLCHAIN=nightly uses nightly and
# AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")"

minutes=10
jobs=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
case "$minutes" in '' | *[!0-9]*) echo "--minutes takes a whole number" >&2; exit 2 ;; esac
case "$jobs" in 1 | 2) ;; *) echo "--jobs is 1 or 2 (the machine is shared)" >&2; exit 2 ;; esac

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
if [ "${FUZZ_TOOLCHAIN:-}" = nightly ]; then
    fuzz=(cargo +nightly fuzz)
    flags=(--debug-assertions)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    flags=(-s none --debug-assertions)
fi
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

# The build at the usual priority (it is short); the runs under nice.
"${fuzz[@]}" build "${flags[@]}"
fuzz=(nice -n 19 "${fuzz[@]}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The value of one `stat::NAME: value` line of libFuzzer's final stats, or 0.
stat() {
    sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$2" | tail -n 1 | grep . || echo 0
}

# One target's campaign; its summary line goes to $work/<target>.summary.
campaign() {
    local target=$1
    local scratch=$work/$target.scratch base=$work/$target.base
    mkdir -p "$scratch" "$base" "corpus/$target" "artifacts/$target"
    local seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    # The kept corpus is read; new inputs go to the scratch directory only.
    cp -r "corpus/$target/." "$scratch/"
    local deadline=$((SECONDS + minutes * 60)) runs=0 crashes=0 execs=0 left log
    while left=$((deadline - SECONDS)) && [ "$left" -gt 0 ] && [ "$runs" -le 20 ]; do
        runs=$((runs + 1))
        log=$work/$target.run$runs.log
        if "${fuzz[@]}" run "${flags[@]}" "$target" "$scratch" "${seeds[@]}" -- \
            -max_total_time="$left" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="artifacts/$target/" >"$log" 2>&1; then
            execs=$((execs + $(stat number_of_executed_units "$log")))
            break
        fi
        # A crash (or a timeout, or out of memory): libFuzzer wrote the input
        # to artifacts/; go on for the rest of the time.
        crashes=$((crashes + 1))
        execs=$((execs + $(stat number_of_executed_units "$log")))
        grep -m 1 -E '^(==[0-9]+== ?ERROR|thread .* panicked|.*panicked at)' "$log" |
            sed "s/^/  $target crashed: /" >&2 || true
    done
    # The last status line holds the coverage reached.
    local last cov ft
    last=$(cat "$work/$target".run*.log | grep -E '^#[0-9]+.*cov: ' | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    # Minimise (what `cargo fuzz cmin` does, libFuzzer's -merge=1), starting
    # from the seeds: only inputs that add coverage beyond them are copied into
    # the base directory, and those (named by their SHA-1) are the kept corpus.
    [ ${#seeds[@]} -eq 0 ] || cp -r "seeds/$target/." "$base/"
    if ! "${fuzz[@]}" run "${flags[@]}" "$target" "$base" "$scratch" -- -merge=1 \
        -timeout=10 -rss_limit_mb=2048 >"$work/$target.merge.log" 2>&1; then
        tail -n 20 "$work/$target.merge.log" >&2
        echo "minimising $target failed; corpus/$target left as it was" >&2
    else
        rm -rf "corpus/$target"
        mkdir -p "corpus/$target"
        local file
        for file in "$base"/*; do
            [ -e "seeds/$target/${file##*/}" ] || cp "$file" "corpus/$target/"
        done
    fi
    local kept size
    kept=$(find "corpus/$target" -type f | wc -l)
    size=$(( ($(find "corpus/$target" -type f -printf "%s\n" | awk "{s+=\$1} END {print s+0}") + 1023) / 1024 ))
    printf '%-16s %11s execs %7s exec/s  cov: %-5s ft: %-6s corpus: %4s files %5s KiB  crashes: %s\n' \
        "$target" "$execs" "$((execs / (minutes * 60 > 0 ? minutes * 60 : 1)))" "${cov:-?}" "${ft:-?}" \
        "$kept" "$size" "$crashes" >"$work/$target.summary"
}

running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    echo "== $target (${minutes} min)"
    campaign "$target" &
    running=$((running + 1))
done
wait || true

echo
echo "== campaign: ${minutes} min per target"
status=0
for target in "${targets[@]}"; do
    if [ -f "$work/$target.summary" ]; then
        cat "$work/$target.summary"
        grep -q 'crashes: 0$' "$work/$target.summary" || status=1
    else
        echo "$target: no summary (see above)"
        status=1
    fi
done
[ "$status" -eq 0 ] || echo "crash inputs are in fuzz/artifacts/<target>/"
exit "$status"
