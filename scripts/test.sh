#!/usr/bin/env bash
# The whole test suite, as CI runs it. Installs what the tests need (Chromium for the
# browser suite, nginx and wrk for the comparisons) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/install-test-deps.sh ] || [ -f scripts/install-test-deps.sh ]; then
  bash scripts/install-test-deps.sh
fi

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== clippy, serve-only binary (no tools, no demo)"
cargo clippy -p corsgate --no-default-features --locked -- -D warnings
echo "== the engine and the configuration crate depend on no runtime, server or logging crate"
bash scripts/check-engine-deps.sh
echo "== docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== tests"
cargo test --workspace --locked --all-targets
cargo test --workspace --locked --doc
echo "== fuzz: every cargo-fuzz target for a few seconds from its seeds"
bash fuzz/smoke.sh
