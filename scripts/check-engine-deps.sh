#!/usr/bin/env bash
# The library crates below the gateway stay free of what they do not need:
# - corsgate-policy is a pure engine: no async runtime, server, client or logging
#   crate anywhere in its normal dependency tree;
# - corsgate-config (file -> model -> route table) is read by the gateway, the
#   tools and the fuzzer: the same, and no CLI or application-error crate either;
# - corsgate-explain (the browser simulation) is shared by `corsgate explain` and
#   the gateway's admin listener: the same rules as corsgate-config;
# - corsgate-policy also reads no file format: a policy is built in code or
#   deserialized by its user with the serde format of their choice (the
#   gateway's TOML file, its key lists and "off"/"closed" are corsgate-config's);
# - corsgate-tower is middleware for any tower server: tower's two trait crates
#   and nothing that picks a runtime, a server or a logger for its users.
set -euo pipefail
cd "$(dirname "$0")/.."
runtime='tokio|async-std|smol|futures|hyper|hyper-util|tower|tower-http|axum|actix-web|reqwest|log|tracing|env_logger|slog'
check() {
  local crate=$1 forbidden=$2
  local tree bad
  tree=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
  bad=$(echo "$tree" | grep -E "^($forbidden)\$" || true)
  if [ -n "$bad" ]; then
    echo "$crate depends on: $bad" >&2
    exit 1
  fi
  echo "$crate dependencies: $(echo "$tree" | tr '\n' ' ')"
}
fileformat='toml|toml_edit|toml_parser|serde_json|serde_yaml|saphyr'
check corsgate-policy "$runtime|$fileformat"
check corsgate-tower "$(echo "$runtime" | sed 's/|tower|/|/')|clap|anyhow"
check corsgate-config "$runtime|clap|clap_builder|anyhow"
check corsgate-explain "$runtime|clap|clap_builder|anyhow"
