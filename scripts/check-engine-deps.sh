#!/usr/bin/env bash
# corsgate-policy must stay a pure engine: no async runtime, server, client or
# logging crate anywhere in its normal dependency tree.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p corsgate-policy -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
bad=$(echo "$tree" | grep -E '^(tokio|async-std|smol|futures|hyper|hyper-util|tower|tower-http|axum|actix-web|reqwest|log|tracing|env_logger|slog)$' || true)
if [ -n "$bad" ]; then
  echo "corsgate-policy depends on: $bad" >&2
  exit 1
fi
echo "corsgate-policy dependencies: $(echo "$tree" | tr '\n' ' ')"
