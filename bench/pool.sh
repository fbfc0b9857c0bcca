#!/usr/bin/env bash
# The gateway's upstream pool against hyper-util's pooled client
# (hyper_util::client::legacy::Client), in one run, on the same loopback
# upstream: one request at a time, and 32 at once. Criterion wall times
# (crates/corsgate-gateway/benches/pool.rs); the benchmark process pinned to
# core 0 and 1 when taskset is there.
#
#   bench/pool.sh                 # about a minute after the build
#   bench/pool.sh -- --test       # each case once, to check that it runs
#   bench/pool.sh concurrent      # criterion filter: only the 32-at-once cases
#
# Arguments after the script name go to criterion (a filter, --save-baseline,
# --baseline NAME to compare with an earlier run, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

pin=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin=(taskset -c 0,1)
fi
if [ "${1:-}" = "--" ]; then
  shift
fi
cargo bench --no-run -p corsgate-gateway --features bench --bench pool
"${pin[@]}" cargo bench -p corsgate-gateway --features bench --bench pool -- "$@"
