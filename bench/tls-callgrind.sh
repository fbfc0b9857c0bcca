#!/usr/bin/env bash
# Instructions per full TLS handshake, corsgate beside nginx, under callgrind:
# each server (corsgate: release build, one worker thread; nginx: one process,
# `daemon off; master_process off;`) accepts N1 then N2 connections from the
# same client, each a full TLS 1.3 handshake (no resumption) on a new
# connection, then a close_notify; the difference of the two totals, divided
# by N2 - N1, cancels start-up and shutdown. Same ECDSA P-256 certificate as
# bench/gateway.sh --tls, TLS 1.2 and 1.3 enabled on both, session tickets
# each server's default. An instruction count does not depend on the
# machine's load.
#
#   bench/tls-callgrind.sh                 # both servers, N1=1 N2=101
#   N1=1 N2=201 bench/tls-callgrind.sh     # more handshakes
#   SERVERS=nginx bench/tls-callgrind.sh   # one of them
#   CORSGATE_BIN=path bench/tls-callgrind.sh   # another build of corsgate
#   KEEP=dir bench/tls-callgrind.sh        # keep the callgrind files in dir
#                                          # (for callgrind_annotate)
#   RESUME=1 bench/tls-callgrind.sh        # each connection after the first
#                                          # resumes the session of the one
#                                          # before, as wrk does in
#                                          # bench/gateway.sh --tls case (c),
#                                          # and sends a preflight first
#
# The client is Python's ssl module (OpenSSL): X25519 key exchange, as
# OpenSSL 3.0 clients offer first. Needs valgrind, nginx, openssl, python3
# and a release build of corsgate:
#   cargo build --release -p corsgate --bin corsgate
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${N1:-1}
n2=${N2:-101}
resume=${RESUME:-0}
servers=${SERVERS:-corsgate nginx}
target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=${CORSGATE_BIN:-$target_dir/release/corsgate}
[ -x "$bin" ] || [ "$servers" = nginx ] || { echo "build first: cargo build --release -p corsgate --bin corsgate" >&2; exit 2; }
for tool in valgrind nginx openssl python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
work=$(mktemp -d)
keep=${KEEP:-}
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
chmod 644 "$work/tls.key"

cat >"$work/corsgate.toml" <<EOF
[server]
listen = "127.0.0.1:$port"

[server.tls]
certificates = [{ cert_file = "$work/tls.pem", key_file = "$work/tls.key" }]

[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
EOF

cat >"$work/nginx.conf" <<EOF
worker_processes 1;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    fastcgi_temp_path $work/nginx-fastcgi;
    uwsgi_temp_path $work/nginx-uwsgi;
    scgi_temp_path $work/nginx-scgi;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $work/tls.pem;
        ssl_certificate_key $work/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        return 204;
    }
}
EOF

cat >"$work/client.py" <<'PY'
# N TLS 1.3 handshakes, each on a new connection, then a close_notify. Full
# handshakes; with "resume", every connection after the first offers the
# session of the one before (a ticket), sends a preflight with
# `Connection: close` and reads the answer to the end, as wrk does.
import socket, ssl, sys
port, n, ca, resume = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
preflight = (b"OPTIONS / HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://app.example.com\r\n"
             b"Access-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n")
session, resumed = None, 0
for _ in range(n):
    raw = socket.create_connection(("127.0.0.1", port), timeout=60)
    tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
    if tls.version() != "TLSv1.3":
        sys.exit(f"negotiated {tls.version()}")
    if resume:
        resumed += tls.session_reused
        tls.sendall(preflight)
        answer = b""
        try:
            while chunk := tls.recv(4096):
                answer += chunk
        except (OSError, ssl.SSLError):
            pass
        if not answer.startswith(b"HTTP/1.1 "):
            sys.exit(f"no answer: {answer[:60]!r}")
        session = tls.session
        raw.close()
        continue
    # close_notify, then the server's answer to it (its own, or the end of
    # the connection): the server has read the client's Finished by then,
    # and sent its session tickets.
    try:
        tls.unwrap()
    except (OSError, ssl.SSLError):
        pass
    raw.close()
if resume and resumed != n - 1:
    sys.exit(f"resumed {resumed} of {n - 1}")
PY

wait_port() {
    local i
    for i in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $port" >&2
    exit 1
}

total() { # SERVER N: instructions of a whole run
    local server=$1 n=$2 pid out="$work/cg.$1.$2.out"
    case $server in
        corsgate)
            RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" \
                "$bin" serve --config "$work/corsgate.toml" --threads 1 \
                >/dev/null 2>"$work/vg.log" &
            ;;
        nginx)
            valgrind --tool=callgrind --callgrind-out-file="$out" \
                nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off; master_process off;' \
                >/dev/null 2>"$work/vg.log" &
            ;;
    esac
    pid=$!
    wait_port
    python3 "$work/client.py" "$port" "$n" "$work/tls.pem" "$resume"
    kill -TERM "$pid"
    wait "$pid" || true
    [ -n "$keep" ] && mkdir -p "$keep" && cp "$out" "$keep/"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/vg.log"
}

# The probe of wait_port is a connection too (no TLS): the same in both runs,
# so it cancels out.
for server in $servers; do
    a=$(total "$server" "$n1")
    b=$(total "$server" "$n2")
    kind=handshake
    [ "$resume" = 1 ] && kind="resumed handshake and preflight"
    echo "$server: $(( (b - a) / (n2 - n1) )) instructions per $kind ($n1: $a, $n2: $b)"
done
