#!/usr/bin/env bash
# Endurance: the corsgate binary under steady load (8 clients, keep-alive,
# proxied GETs) while its configuration is reloaded every 500 ms (valid and
# invalid files in turn, by SIGHUP) and its upstream, every 1.5 s in turn, goes
# down (connections refused, its connections reset), comes back, answers past
# response_timeout, comes back, sends malformed responses, comes back.
# Checks, every round of a minute: every request got one answer, the
# upstream's or the gateway's own 502/503/504 with the route's CORS headers,
# none lost; then, at the end, RSS within 10% of the first (warm-up) round's,
# descriptors back to their idle count, and a clean exit on SIGTERM.
# The same as `crates/corsgate/tests/endurance.rs` (its `soak` test), for as
# long as asked; the 20-second form of it runs in the test suite.
#
#   bench/soak.sh                    # 10 minutes
#   bench/soak.sh --duration 3600    # an hour
#
# Options: --duration SECONDS (20-86400, default 600). Loopback only; the
# clients, the upstream and the test harness run in one process beside the
# gateway's.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=600
while [ $# -gt 0 ]; do
    case "$1" in
        --duration)
            [[ "${2:-}" =~ ^[0-9]+$ ]] && [ "$2" -ge 20 ] && [ "$2" -le 86400 ] ||
                { echo "--duration: whole seconds from 20 to 86400" >&2; exit 2; }
            duration=$2; shift ;;
        -h | --help) sed -n "2,$(( $(grep -n "^set -euo" "$0" | cut -d: -f1) - 1 ))p" "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

echo "soak: ${duration} s; started $(date -u +%Y-%m-%dT%H:%M:%SZ); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
CORSGATE_SOAK_SECONDS=$duration cargo test --release -p corsgate --test endurance -- \
    --ignored --exact soak --nocapture
echo "soak: done $(date -u +%Y-%m-%dT%H:%M:%SZ); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
