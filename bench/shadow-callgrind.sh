#!/usr/bin/env bash
# Instructions per request that a shadow configuration costs, under callgrind:
# corsgate (release build, one thread) serves N1 then N2 requests of one kind on
# one keep-alive connection, with and without a shadow configuration identical
# to the live one (bench/gateway/corsgate.toml); the difference of the totals,
# divided by N2 - N1, cancels start-up and shutdown. An instruction count does
# not depend on the machine's load.
#
#   bench/shadow-callgrind.sh              # preflight and get, without and with shadow
#
# Needs valgrind, curl, python3 and a release build of corsgate and of the
# bench_upstream example (bench/gateway.sh builds both).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/corsgate"
upstream_bin="$target_dir/release/examples/bench_upstream"
[ -x "$bin" ] && [ -x "$upstream_bin" ] ||
    { echo "build first: cargo build --release -p corsgate --bin corsgate --example bench_upstream" >&2; exit 2; }
work=$(mktemp -d)
read -r upstream_port port admin < <(free_ports 3)
corsgate_config "127.0.0.1:$port" "127.0.0.1:$upstream_port" >"$work/live.toml"
cp "$work/live.toml" "$work/candidate.toml"
"$upstream_bin" "127.0.0.1:$upstream_port" >/dev/null 2>&1 &
upstream=$!
trap 'kill $upstream 2>/dev/null; rm -rf "$work"' EXIT

total() { # KIND SHADOW N: instructions of a whole run
    local kind=$1 shadow=$2 n=$3 pid i args
    args=(serve --config "$work/live.toml" --threads 1 --admin-listen "127.0.0.1:$admin")
    [ "$shadow" = yes ] && args+=(--shadow "$work/candidate.toml")
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$bin" "${args[@]}" >/dev/null 2>"$work/vg.log" &
    pid=$!
    for i in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    python3 bench/gateway/keepalive.py "$port" "$n" "$kind"
    if [ "$shadow" = yes ]; then
        curl -sS "http://127.0.0.1:$admin/metrics" | grep -q "^corsgate_shadow_requests_total $n$" ||
            { echo "the shadow did not decide all $n requests" >&2; exit 1; }
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/vg.log"
}

for kind in preflight get; do
    for shadow in no yes; do
        a=$(total "$kind" "$shadow" 200)
        b=$(total "$kind" "$shadow" 2200)
        echo "$kind, shadow $shadow: $(( (b - a) / 2000 )) instructions per request"
    done
done
