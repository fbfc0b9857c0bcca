#!/usr/bin/env bash
# A short, bounded run of every cargo-fuzz target: each starts from its seeds
# (fuzz/seeds/<target>) and the corpus the campaigns kept (fuzz/corpus/<target>)
# and runs for a few seconds, so that a target that no
# longer builds, or an invariant the seeds already break, fails the test suite.
# Campaigns that look for new bugs run longer: see fuzz/README.md.
#
#   bash fuzz/smoke.sh          # every target, FUZZ_SECONDS (default 5) each
#   FUZZ_SECONDS=20 bash fuzz/smoke.sh origin pattern
#
# cargo-fuzz is installed when missing. By default the targets build with the
# default (stable) toolchain, allowed to use the unstable flags cargo-fuzz
# passes (RUSTC_BOOTSTRAP=1), without a sanitizer (`-s none`): the invariants
# still run, only memory errors go unseen, and the engine forbids unsafe code
# anyway. This keeps the test suite's time the same on every machine.
# FUZZ_TOOLCHAIN=nightly builds with a nightly toolchain and AddressSanitizer
# (cargo-fuzz's default) instead, as the longer campaigns do.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-5}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

if [ "${FUZZ_TOOLCHAIN:-}" = nightly ]; then
    fuzz=(cargo +nightly fuzz)
    flags=()
    echo "fuzzing with the nightly toolchain and AddressSanitizer"
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
    flags=(-s none)
    echo "fuzzing with the stable toolchain (RUSTC_BOOTSTRAP=1), no sanitizer"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi

# Every target in one build; `run` then finds them built.
"${fuzz[@]}" build "${flags[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    # New inputs go to a scratch corpus (the first directory), never into the
    # committed seeds.
    mkdir -p "$work/$target"
    corpora=("$work/$target")
    [ -d "seeds/$target" ] && corpora+=("seeds/$target")
    [ -d "corpus/$target" ] && corpora+=("corpus/$target")
    echo "== fuzz $target (${seconds}s)"
    "${fuzz[@]}" run "${flags[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>"$work/$target.log" || {
        tail -n 40 "$work/$target.log" >&2
        echo "fuzz target $target failed" >&2
        exit 1
    }
    grep -E '^stat::number_of_executed_units' "$work/$target.log" | sed "s/^/  $target: /" || true
done
