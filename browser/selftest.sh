#!/usr/bin/env bash
# End-to-end check of the browser harness WITHOUT corsgate: starts the Node
# fixture servers (127.0.0.1, OS-chosen ports), runs browser/harness.mjs in
# headless Chromium against them and checks the JSONL it prints.
# Needs: scripts/install-test-deps.sh (Chromium + browser/node_modules).
#   bash browser/selftest.sh            (KEEP=1 keeps the temp dir with the results)
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules/playwright-core ]; then
  echo "selftest: browser/node_modules is missing: run scripts/install-test-deps.sh" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corsgate-harness-selftest.XXXXXX")
fixture_pid=
cleanup() {
  if [ -n "$fixture_pid" ]; then
    kill "$fixture_pid" 2>/dev/null || true
    wait "$fixture_pid" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then
    echo "selftest: results kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

FIXTURE_MAX_SECONDS=180 node fixture-server.mjs >"$tmp/ports" 2>"$tmp/fixture.log" &
fixture_pid=$!

for _ in $(seq 100); do
  [ -s "$tmp/ports" ] && break
  kill -0 "$fixture_pid" 2>/dev/null || { cat "$tmp/fixture.log" >&2; exit 1; }
  sleep 0.05
done
ports=$(head -n1 "$tmp/ports")
page_port=$(node -e 'console.log(JSON.parse(process.argv[1]).pagePort)' "$ports")
api_port=$(node -e 'console.log(JSON.parse(process.argv[1]).apiPort)' "$ports")
echo "selftest: page server 127.0.0.1:$page_port, API server 127.0.0.1:$api_port"

node selftest-check.mjs scenarios "$page_port" "$api_port" "$tmp" >"$tmp/scenarios.json"

rc=0
timeout 180 node harness.mjs "$tmp/scenarios.json" >"$tmp/results.jsonl" 2>"$tmp/harness.log" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "selftest: harness exited $rc" >&2
  cat "$tmp/harness.log" >&2
  exit 1
fi
grep -v '^\[' "$tmp/harness.log" >&2 || true

node selftest-check.mjs check "$tmp/results.jsonl" "$page_port" "$api_port" "$tmp/cors-messages.md"
