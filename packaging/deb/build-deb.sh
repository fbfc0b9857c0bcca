#!/bin/sh
# Builds the Debian package of corsgate with dpkg-deb, from this source tree:
#
#   packaging/deb/build-deb.sh [OUT_DIR]      (default: target/debian)
#
# It runs `cargo build --release --locked -p corsgate` unless CORSGATE_BIN names
# a binary already built. DEB_COMPRESSION (default xz) is passed to dpkg-deb -Z.
# The package installs:
#   /usr/bin/corsgate
#   /usr/lib/systemd/system/corsgate.service   (not enabled: edit the file first)
#   /etc/corsgate/corsgate.toml                 (a conffile: the starting point)
#   /usr/share/man/man1/corsgate*.1.gz          (generated from the CLI definition)
#   bash, zsh and fish completions, and /usr/share/doc/corsgate.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-"$root/target/debian"}
compression=${DEB_COMPRESSION:-xz}

if [ -n "${CORSGATE_BIN:-}" ]; then
  bin=$CORSGATE_BIN
else
  (cd "$root" && cargo build --release --locked -p corsgate)
  bin=$root/target/release/corsgate
fi

version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT INT TERM

# The binary, without its symbols (line tables serve backtraces in development).
install -D -m 0755 "$bin" "$stage/usr/bin/corsgate"
if command -v strip >/dev/null 2>&1; then
  strip --strip-unneeded "$stage/usr/bin/corsgate"
fi

install -D -m 0644 "$root/packaging/systemd/corsgate.service" \
  "$stage/usr/lib/systemd/system/corsgate.service"
install -D -m 0644 "$root/crates/corsgate-config/src/starting_point.toml" \
  "$stage/etc/corsgate/corsgate.toml"

"$bin" man --out-dir "$stage/usr/share/man/man1"
gzip -9n "$stage"/usr/share/man/man1/*.1

mkdir -p "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/zsh/vendor-completions" \
  "$stage/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$stage/usr/share/bash-completion/completions/corsgate"
"$bin" completions zsh >"$stage/usr/share/zsh/vendor-completions/_corsgate"
"$bin" completions fish >"$stage/usr/share/fish/vendor_completions.d/corsgate.fish"

doc=$stage/usr/share/doc/corsgate
install -D -m 0644 "$root/README.md" "$doc/README.md"
install -D -m 0644 "$root/docs/deployment.md" "$doc/deployment.md"
install -D -m 0644 "$root/docs/configuration.md" "$doc/configuration.md"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: corsgate

Files: *
License: MIT or Apache-2.0
COPYRIGHT
chmod 0644 "$doc/copyright"

# The newest glibc symbol version the binary needs is the libc6 it depends on.
glibc=$(objdump -T "$stage/usr/bin/corsgate" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)

mkdir -p "$stage/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: corsgate
Version: $version
Architecture: $arch
Maintainer: corsgate maintainers <corsgate@example.invalid>
Installed-Size: $installed_size
Depends: libc6 (>= $glibc), libgcc-s1
Section: net
Priority: optional
Homepage: https://example.invalid/corsgate
Description: CORS-terminating reverse proxy and CORS tools
 corsgate answers CORS in front of any HTTP API, configured by one TOML
 file, with per-route policies, hot reload, logs and Prometheus metrics.
 The same binary checks configurations, explains what a browser would do
 with a request, audits live servers and imports other products' CORS
 settings.
CONTROL
echo /etc/corsgate/corsgate.toml >"$stage/DEBIAN/conffiles"

# The unit is installed but neither enabled nor started: the configuration is
# a starting point with a placeholder upstream.
cat >"$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTINST
cat >"$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop corsgate.service >/dev/null 2>&1 || true
fi
PRERM
cat >"$stage/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTRM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/corsgate_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$deb" >/dev/null
echo "$deb"
