#!/usr/bin/env bash
# Engine benchmark: instructions and heap allocations per request of corsgate's
# tower layer against tower-http's CorsLayer, and of Policy::decide alone.
#
# Instructions are counted by callgrind, which is deterministic: the numbers do
# not depend on the load of the machine. Each (case, implementation) runs twice,
# with N_LO and N_HI requests, collecting only the instructions of the request
# loop (--toggle-collect); the difference divided by N_HI - N_LO is the cost of
# one request, without start-up and without the first, warming request.
# Allocations are counted by a counting global allocator (examples/allocs.rs).
#
#   bench/engine.sh              # the tables, in about a minute after the build
#   bench/engine.sh --criterion  # also criterion wall times of the layer bench
#
# Needs valgrind (apt-get install -y valgrind) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

criterion=false
for arg in "$@"; do
    case "$arg" in
        --criterion) criterion=true ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 2; }

cargo build --quiet --release -p corsgate-tower --example cost --example allocs
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cost="$target_dir/release/examples/cost"
allocs="$target_dir/release/examples/allocs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Instructions collected in the request loop for N requests.
instructions() {
    local n=$1; shift
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
        --toggle-collect='cost::measured' "$cost" "$@" "$n" 2>"$work/valgrind.log" >/dev/null
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/valgrind.log"
}

# Instructions per request: (I(N_HI) - I(N_LO)) / (N_HI - N_LO).
per_request() {
    local lo=$1 hi=$2; shift 2
    local a b
    a=$(instructions "$lo" "$@")
    b=$(instructions "$hi" "$@")
    python3 -c "print(($b - $a) / ($hi - $lo))"
}

# Enough requests for an exact difference, few enough for callgrind's pace.
iterations() {
    case "$1" in
        acrh-commas-1MiB) echo "1 3" ;;
        acrh-commas-64KiB | acrh-one-letter-64KiB) echo "1 21" ;;
        acrh-commas-8KiB | acrh-tokens-4096) echo "1 101" ;;
        *) echo "1 1001" ;;
    esac
}

results="$work/results.tsv"
: >"$results"
while read -r kind scenario; do
    read -r lo hi < <(iterations "$scenario")
    if [ "$kind" = layer ]; then
        for impl in bare corsgate tower-http; do
            printf 'instr\tlayer\t%s\t%s\t%s\n' "$scenario" "$impl" \
                "$(per_request "$lo" "$hi" layer "$scenario" "$impl")" >>"$results"
        done
    else
        printf 'instr\tdecide\t%s\tcorsgate\t%s\n' "$scenario" \
            "$(per_request "$lo" "$hi" decide "$scenario")" >>"$results"
    fi
done < <("$cost" list)

"$allocs" | sed 's/^/allocs\t/' >>"$results"

if $criterion; then
    cargo bench --quiet -p corsgate-tower --bench layer -- \
        --warm-up-time 0.5 --measurement-time 2 --noplot >"$work/criterion.log" 2>&1
    for estimates in "$target_dir"/criterion/layer_*/*/new/estimates.json; do
        scenario=$(basename "$(dirname "$(dirname "$(dirname "$estimates")")")")
        impl=$(basename "$(dirname "$(dirname "$estimates")")")
        ns=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$estimates")
        printf 'time\tlayer\t%s\t%s\t%s\n' "${scenario#layer_}" "$impl" "$ns" >>"$results"
    done
fi

python3 - "$results" <<'PY'
import sys
from collections import defaultdict

rows = defaultdict(dict)
for line in open(sys.argv[1]):
    fields = line.rstrip("\n").split("\t")
    metric, kind, scenario, impl = fields[:4]
    rows[(kind, scenario)][(metric, impl)] = float(fields[4])
    if metric == "allocs":
        rows[(kind, scenario)][("bytes", impl)] = float(fields[5])

def fmt(x):
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}".replace(".0", "") if x == int(x) else f"{x:,.1f}"

verdicts = []
def target(ok, text):
    verdicts.append(f"- {'met' if ok else '**NOT met**'}: {text}")

layer = [s for (k, s) in rows if k == "layer"]
timed = any(m == "time" for r in rows.values() for (m, _) in r)
print("### Layer: cost added to the bare inner service, per request\n")
head = "| case | bare instr | corsgate instr | tower-http instr | ratio | corsgate allocs | tower-http allocs |"
rule = "|---|---:|---:|---:|---:|---:|---:|"
if timed:
    head += " time added, ns (corsgate / tower-http) | time ratio |"
    rule += "---:|---:|"
print(head)
print(rule)
for s in layer:
    r = rows[("layer", s)]
    bare = r[("instr", "bare")]
    ours = r[("instr", "corsgate")] - bare
    theirs = r[("instr", "tower-http")] - bare
    a_ours = r[("allocs", "corsgate")] - r[("allocs", "bare")]
    a_theirs = r[("allocs", "tower-http")] - r[("allocs", "bare")]
    line = (f"| {s} | {fmt(bare)} | {fmt(ours)} | {fmt(theirs)} | {ours / theirs:.2f} "
            f"| {fmt(a_ours)} | {fmt(a_theirs)} |")
    if timed and ("time", "bare") in r:
        t_bare = r[("time", "bare")]
        t_ours = r[("time", "corsgate")] - t_bare
        t_theirs = r[("time", "tower-http")] - t_bare
        line += f" {t_ours:.0f} / {t_theirs:.0f} | {t_ours / t_theirs:.2f} |"
    print(line)
    target(ours <= theirs / 2, f"{s}: corsgate adds {fmt(ours)} instructions, at most half of tower-http's {fmt(theirs)} (ratio {ours / theirs:.2f})")
print()
print("Instructions and allocations are what the layer adds to the bare service (whose own")
print("cost is in the first column); ratio = corsgate / tower-http.")
print()

decide = [s for (k, s) in rows if k == "decide"]
print("### Policy::decide alone\n")
print("| scenario | instr per call | allocs per call | instr per byte of Access-Control-Request-Headers |")
print("|---|---:|---:|---:|")
sizes = {"acrh-commas-8KiB": 8 << 10, "acrh-commas-64KiB": 64 << 10, "acrh-commas-1MiB": 1 << 20,
         "acrh-tokens-4096": len(",".join((["content-type", "x-api-key"] * 2048))),
         "acrh-one-letter-64KiB": 64 << 10}
for s in decide:
    r = rows[("decide", s)]
    per_byte = f"{r[('instr', 'corsgate')] / sizes[s]:.1f}" if s in sizes else ""
    print(f"| {s} | {fmt(r[('instr', 'corsgate')])} | {fmt(r[('allocs', 'corsgate')])} | {per_byte} |")
    target(r[("allocs", "corsgate")] == 0, f"decide {s}: {fmt(r[('allocs', 'corsgate')])} allocations (zero wanted)")
print()

def instr(s):
    return rows[("decide", s)][("instr", "corsgate")]

print("### Derived\n")
for base in ["actual-allowed", "actual-denied", "preflight-allowed"]:
    one, many = f"{base}-1-origin", f"{base}-1000-origins"
    if ("decide", one) in rows and ("decide", many) in rows:
        ratio = instr(many) / instr(one)
        print(f"- {base}: 1000 origins / 1 origin = {fmt(instr(many))} / {fmt(instr(one))} = **{ratio:.2f}×**")
        target(ratio <= 1.5, f"decide {base}: 1000 origins cost {ratio:.2f}× one origin (at most 1.5×)")
small, big = instr("acrh-commas-8KiB"), instr("acrh-commas-1MiB")
slope = (big - small) / ((1 << 20) - (8 << 10))
print(f"- hostile Access-Control-Request-Headers (commas): {small / (8 << 10):.1f} instr/byte at 8 KiB, "
      f"{big / (1 << 20):.1f} at 1 MiB; marginal {slope:.1f} instr/byte (linear: same per byte at both sizes)")
tokens = instr("acrh-tokens-4096") / sizes["acrh-tokens-4096"]
print(f"- 4096 allowed names ({sizes['acrh-tokens-4096']:,} bytes): {tokens:.1f} instr/byte")
if ("decide", "acrh-one-letter-64KiB") in rows:
    letters = instr("acrh-one-letter-64KiB") / sizes["acrh-one-letter-64KiB"]
    print(f"- one-letter names (a,a,a,... 64 KiB, each listed; not one of the targeted inputs): "
          f"{letters:.1f} instr/byte, {instr('acrh-one-letter-64KiB') / (32 << 10):.0f} per name")
worst = max(big / (1 << 20), small / (8 << 10), tokens)
target(worst <= 20, f"hostile request headers: at most {worst:.1f} instructions per byte (about 20 at most wanted)")
target(abs(big / (1 << 20) - small / (8 << 10)) <= 0.1 * (big / (1 << 20)), "hostile request headers: cost linear in the length (8 KiB and 1 MiB cost the same per byte)")
print()
print("### Targets\n")
print("\n".join(verdicts))
PY
