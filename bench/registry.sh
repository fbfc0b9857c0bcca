#!/usr/bin/env bash
# The client registry at scale: N clients × 3 origins (default 100,000; an
# exact origin, a pattern, a localhost port each).
#
#   bench/registry.sh [N]              # wall clock, release build: the gateway's
#                                      # load + compile of a SQLite registry and
#                                      # its RSS growth, then the command line on
#                                      # the same file (registry status, clients
#                                      # export, explain --clients)
#   bench/registry.sh --callgrind [N]  # instructions of the snapshot build alone
#                                      # (no SQLite, no I/O): does not depend on
#                                      # the machine's load
#
# Wall-clock figures need a quiet machine; the instruction count does not.
# Needs cargo (and valgrind for --callgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
callgrind=0
if [ "${1:-}" = "--callgrind" ]; then
    callgrind=1
    shift
fi
n=${1:-100000}
cargo build --release -q -p corsgate-registry --example scale
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
scale="$target_dir/release/examples/scale"

if [ "$callgrind" = 1 ]; then
    out=$(mktemp)
    # Only RegistrySnapshot::build and what it calls is counted: making the
    # clients in memory is not.
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        --toggle-collect='corsgate_registry::snapshot::RegistrySnapshot::build*' \
        "$scale" build "$n" 2>/dev/null
    ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    rm -f "$out"
    echo "snapshot build of $n clients: $ir instructions ($((ir / n)) per client)"
    exit 0
fi

cargo build --release -q -p corsgate --bin corsgate
bin="$target_dir/release/corsgate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== load + compile (as serve does at start)"
"$scale" "$n" --keep "$work"
db="sqlite:$work/registry.db"
cat >"$work/corsgate.toml" <<TOML
[registry]
database = "$db"

[[route]]
path = "/oauth2/token"
upstream = "http://127.0.0.1:4444"
cors = { clients = { identify = ["form"] } }
TOML
timed() {
    local label=$1
    shift
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    printf '%-44s %6.3f s\n' "$label" "$(echo "$end - $start" | bc)"
}
echo "== the command line on the same file"
timed "corsgate registry status" "$bin" registry status --database "$db"
"$bin" clients export --database "$db" >"$work/clients.json"
timed "corsgate clients export" "$bin" clients export --database "$db"
timed "corsgate explain (registry from the database)" \
    "$bin" explain --config "$work/corsgate.toml" --url https://id.example/oauth2/token \
    --origin "https://app$((n - 1)).example.com" --client "client-$((n - 1))" --format json
timed "corsgate explain --clients FILE" \
    "$bin" explain --config "$work/corsgate.toml" --url https://id.example/oauth2/token \
    --origin "https://app$((n - 1)).example.com" --client "client-$((n - 1))" \
    --clients "$work/clients.json" --format json
