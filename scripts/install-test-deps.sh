#!/usr/bin/env bash
# Installs what the test suites need when it is missing, and nothing else:
#   - Chromium and Firefox (Debian packages `chromium`, `firefox-esr`) for the
#     real-browser CORS suite,
#   - curl, to run the commands the demo prints exactly as printed,
#   - nginx and wrk for the comparison benchmarks (installed only, never started),
#   - the Node driver of the browser harness (browser/node_modules, via `npm ci`),
#   - pebble (Let's Encrypt's test ACME server, with pebble-challtestsrv) for
#     the ACME tests (tests/acme.rs), which start it themselves on loopback.
# Idempotent and fast (a few seconds) when everything is already there.
# Runs non-interactively; installing Debian packages needs root (as on CI).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need root to apt-get install $*" >&2
    exit 1
  fi
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need BINARY PACKAGE [FALLBACK_PACKAGE]
need() {
  local bin=$1 pkg=$2 alt=${3:-}
  if [ -x "$bin" ]; then
    echo "found $bin"
    return
  fi
  if apt_install "$pkg"; then
    :
  elif [ -n "$alt" ]; then
    apt_install "$alt"
    pkg=$alt
  else
    exit 1
  fi
  if [ ! -x "$bin" ]; then
    echo "install-test-deps: installed $pkg but $bin is still missing" >&2
    exit 1
  fi
  echo "installed $pkg ($bin)"
}

need /usr/bin/curl curl
need /usr/bin/chromium chromium
need /usr/sbin/nginx nginx-light nginx
need /usr/bin/wrk wrk
# Packaging (crates/corsgate/tests/packaging.rs): the unit is verified by
# systemd-analyze (which opens its man: pages), the .deb built by dpkg-deb.
need /usr/bin/systemd-analyze systemd
need /usr/bin/man man-db
need /usr/bin/dpkg-deb dpkg
need /usr/bin/strip binutils
need /usr/bin/pebble pebble
# Firefox for the real-browser suite (driven headless over WebDriver BiDi by
# puppeteer-core from browser/node_modules; no geckodriver, no display).
need /usr/bin/firefox-esr firefox-esr
# WebKit for the browser suite (browser/drivers/webkit.mjs): WebKitGTK's
# MiniBrowser (in libwebkit2gtk-4.1-0, which webkit2gtk-driver pulls in) under
# a virtual X display of its own.
need /usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser webkit2gtk-driver
need /usr/bin/Xvfb xvfb
# The system's root store (tests/upstream_tls.rs: an https:// upstream without
# ca_file is verified against it, and a test CA is not in it).
need /usr/sbin/update-ca-certificates ca-certificates
# The client registry on PostgreSQL (crates/corsgate/tests/registry_postgres.rs
# starts its own server from Debian's package: initdb and postgres as the
# `postgres` user the package creates, on a loopback port, in a fresh directory).
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  echo "found $(compgen -G "/usr/lib/postgresql/*/bin/postgres" | sort -V | tail -n 1)"
else
  apt_install postgresql
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || {
    echo "install-test-deps: installed postgresql but no /usr/lib/postgresql/*/bin/postgres" >&2
    exit 1
  }
  echo "installed postgresql"
fi
# The benchmarks' report (crates/corsgate/tests/bench_scripts.rs runs
# bench/gateway/report.py on a made-up run).
need /usr/bin/python3 python3-minimal

if ! command -v npm >/dev/null 2>&1; then
  echo "install-test-deps: npm is missing (Node >= 20 is needed for browser/)" >&2
  exit 1
fi
# Every dependency browser/package.json names (one driver module per engine).
browser_modules_present() {
  node -e 'const d = require("./browser/package.json").dependencies || {};
    process.exit(Object.keys(d).every((m) => require("fs").existsSync("browser/node_modules/" + m)) ? 0 : 1)'
}
# A node_modules that is a symlink is shared with other checkouts: never wiped
# by `npm ci` from here while it has every package.
if ! browser_modules_present ||
  { [ ! -L browser/node_modules ] && [ browser/package-lock.json -nt browser/node_modules ]; }; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefix browser --no-audit --no-fund --loglevel=error >/dev/null
  touch browser/node_modules
  echo "installed browser/node_modules (npm ci)"
else
  echo "found browser/node_modules"
fi
