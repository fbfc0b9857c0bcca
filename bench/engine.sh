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
        *64KiB | *1MiB) echo "1 21" ;;
        *8KiB | *4096 | *4KiB | *4KiB-*) echo "1 101" ;;
        *) echo "1 401" ;;
    esac
}

results="$work/results.tsv"
: >"$results"
while read -r kind scenario; do
    read -r lo hi < <(iterations "$scenario")
    case "$kind" in
        layer)
            for impl in none bare corsgate tower-http tower-http-hashset; do
                printf 'instr\tlayer\t%s\t%s\t%s\n' "$scenario" "$impl" \
                    "$(per_request "$lo" "$hi" layer "$scenario" "$impl")" >>"$results"
            done ;;
        decide | parse)
            printf 'instr\t%s\t%s\tcorsgate\t%s\n' "$kind" "$scenario" \
                "$(per_request "$lo" "$hi" "$kind" "$scenario")" >>"$results" ;;
    esac
done < <("$cost" list)

"$allocs" | sed 's/^/allocs\t/' >>"$results"
if [ -n "${ENGINE_RESULTS_TSV:-}" ]; then cp "$results" "$ENGINE_RESULTS_TSV"; fi

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
order = []
for line in open(sys.argv[1]):
    fields = line.rstrip("\n").split("\t")
    metric, kind, scenario, impl = fields[:4]
    if (kind, scenario) not in rows:
        order.append((kind, scenario))
    rows[(kind, scenario)][(metric, impl)] = float(fields[4])
    if metric == "allocs":
        rows[(kind, scenario)][("bytes", impl)] = float(fields[5])

def fmt(x):
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:,.1f}".rstrip("0").rstrip(".") if x != int(x) else f"{x:,.0f}"

verdicts = []
def target(ok, text):
    verdicts.append(f"- {'met' if ok else '**NOT met**'}: {text}")

def baseline(s):
    # A layer answers preflights itself and never calls the app: its own work
    # is what it adds to building and dropping the request. Other requests go
    # through the app: its own work is what it adds to the app alone.
    return "none" if s.startswith("preflight") else "bare"

print("### Layer: its own work per request\n")
print("Own work = the layer's run minus the baseline: `none` (the request built and dropped)")
print("for preflights, which no layer passes to the app; `bare` (the app alone) otherwise.\n")
print("| case | baseline | corsgate | tower-http (list) | tower-http (HashSet) | ratio to list | ratio to HashSet | allocs corsgate / list / HashSet |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for (k, s) in order:
    if k != "layer":
        continue
    r = rows[(k, s)]
    base = baseline(s)
    own = {i: r[("instr", i)] - r[("instr", base)] for i in ("corsgate", "tower-http", "tower-http-hashset")}
    al = {i: r[("allocs", i)] - r[("allocs", base)] for i in ("corsgate", "tower-http", "tower-http-hashset")}
    ratio_list = own["corsgate"] / own["tower-http"]
    ratio_set = own["corsgate"] / own["tower-http-hashset"]
    print(f"| {s} | {base} {fmt(r[('instr', base)])} | {fmt(own['corsgate'])} | {fmt(own['tower-http'])} | "
          f"{fmt(own['tower-http-hashset'])} | {ratio_list:.2f} | {ratio_set:.2f} | "
          f"{fmt(al['corsgate'])} / {fmt(al['tower-http'])} / {fmt(al['tower-http-hashset'])} |")
    worst = max(ratio_list, ratio_set)
    target(worst <= 0.4, f"{s}: corsgate's own work {fmt(own['corsgate'])} instructions, "
           f"{worst:.2f}× the cheaper tower-http variant's (at most 0.40 wanted)")
print()

print("### Policy::decide alone\n")
print("| scenario | instr per call | allocs per call | bytes of Access-Control-Request-Headers | instr per byte |")
print("|---|---:|---:|---:|---:|")
sizes = {
    "acrh-commas-8KiB": 8 << 10, "acrh-commas-64KiB": 64 << 10, "acrh-commas-1MiB": 1 << 20,
    "acrh-tokens-4096": len(",".join((["content-type", "x-api-key"] * 2048))),
    "acrh-one-letter-64KiB": 64 << 10, "acrh-longest-allowed-4KiB": 4096,
    "acrh-64-one-letter-names": 127, "acrh-65-one-letter-names": 129,
    "acrh-longest-allowed-4KiB-underscores": 4096,
}
for (k, s) in order:
    if k != "decide":
        continue
    r = rows[(k, s)]
    n = sizes.get(s)
    per_byte = f"{r[('instr', 'corsgate')] / n:.2f}" if n else ""
    print(f"| {s} | {fmt(r[('instr', 'corsgate')])} | {fmt(r[('allocs', 'corsgate')])} | {fmt(n) if n else ''} | {per_byte} |")
    target(r[("allocs", "corsgate")] == 0, f"decide {s}: {fmt(r[('allocs', 'corsgate')])} allocations (zero wanted)")
print()

print("### The same preflight heads: decide beside hyper's parsing of their bytes\n")
print("| head with Access-Control-Request-Headers of | head bytes | hyper (httparse + HeaderMap) instr | decide instr | decide / parsing |")
print("|---|---:|---:|---:|---:|")
for (k, s) in order:
    if k != "parse":
        continue
    parse = rows[(k, s)][("instr", "corsgate")]
    decide = rows[("decide", s)][("instr", "corsgate")]
    print(f"| {s} | {fmt(sizes[s] + 140)} | {fmt(parse)} | {fmt(decide)} | {decide / parse:.3f} |")
    target(decide <= parse, f"{s}: decide costs {decide / parse:.3f}× hyper's parsing of the same head (at most 1× wanted)")
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
hostile = [s for s in sizes if ("decide", s) in rows]
worst = max(hostile, key=instr)
print(f"- the costliest Access-Control-Request-Headers of all: {worst}, {fmt(instr(worst))} instructions per decide")
target(instr("acrh-commas-1MiB") <= 2 * instr("acrh-commas-8KiB"),
       "hostile request headers: a 1 MiB list costs no more than an 8 KiB one (bounded, not linear)")
print()
print("### Targets\n")
print("\n".join(verdicts))
PY
