#!/usr/bin/env bash
# Gateway benchmark: corsgate against nginx configured as the same CORS-terminating
# proxy, and against the upstream alone, under wrk, on loopback.
#
# Two cases: (a) allowed preflights, answered by the proxy itself; (b) allowed
# GETs, proxied to the upstream (bench_upstream, the same program for all three).
# Each run starts fresh servers, warms up for one second, then measures for
# --duration seconds: requests/s and p50/p99 latency (wrk --latency), server CPU
# time per request (utime+stime of the server's processes over the measured
# window, divided by the requests wrk completed), and peak RSS (VmHWM). Runs are
# interleaved (corsgate, nginx, direct, corsgate, ...) and each is repeated
# --runs times; the report gives medians, min..max, and corsgate/nginx ratios
# against the targets (bench/README.md, Gateway).
#
# Pinning, on two cores: the server side (corsgate or nginx, and the upstream)
# on core 0, wrk on core 1.
#
#   bench/gateway.sh                 # about 3 minutes after the build
#   bench/gateway.sh --record        # also write bench/RESULTS.md
#   bench/gateway.sh --duration 5 --runs 1   # a quick look
#   bench/gateway.sh --access-log    # both servers write an access log line per request
#   bench/gateway.sh --shadow        # corsgate also evaluates a shadow configuration
#   bench/gateway.sh --tls           # both servers terminate TLS, same certificate
#
# Options: --duration SECONDS (1-30, default 10), --runs N (1-5, default 3),
# --connections N (1-256, default 32), --record, --no-build, --corsgate PATH
# (measure another corsgate binary, e.g. an older build, instead of this tree's),
# --access-log (corsgate at its default log level, which writes the access log to
# a file; nginx with `access_log` to a file, its default combined format; without
# the option both have it off), --shadow (corsgate runs with a shadow
# configuration identical to the live one, the worst case: every request is
# decided twice and compared, with no divergence; checked through /shadow and
# corsgate_shadow_requests_total on an admin listener of its own).
# --tls (corsgate and nginx both terminate TLS 1.3
# with the same ECDSA P-256 certificate, made with openssl at start; wrk speaks
# https with keep-alive, and a third case, (c) handshakes, sends each preflight
# on a new connection with a handshake: `Connection: close`). wrk keeps the
# session of a connection's last handshake for the next (SSL_clear), so all but
# the first handshake of each wrk connection resume it with a TLS 1.3 ticket
# (a new X25519 exchange, no certificate signature), against both servers; the
# full handshake alone is counted by bench/tls-callgrind.sh.
# Needs nginx, wrk, taskset, curl and python3 (scripts/install-test-deps.sh
# installs nginx and wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=10
runs=3
connections=32
record=false
access_log=false
shadow=false
tls=false
build=true
corsgate=
command_line="bench/gateway.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) bounded --duration "${2:-}" 1 30; duration=$2; shift ;;
        --runs) bounded --runs "${2:-}" 1 5; runs=$2; shift ;;
        --connections) bounded --connections "${2:-}" 1 256; connections=$2; shift ;;
        --record) record=true ;;
        --access-log) access_log=true ;;
        --shadow) shadow=true ;;
        --tls) tls=true ;;
        --no-build) build=false ;;
        --corsgate) [ -x "${2:-}" ] || { echo "--corsgate needs an executable" >&2; exit 2; }; corsgate=$(realpath "$2"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

require_tools "scripts/install-test-deps.sh installs nginx and wrk" nginx wrk taskset curl python3
[ "$(nproc --all)" -ge 2 ] || { echo "needs two cores: the servers on core 0, wrk on core 1" >&2; exit 2; }
SERVER_CORE=0
CLIENT_CORE=1

bench_binaries
bench_workdir

# Four free loopback ports: the upstream, corsgate, nginx, corsgate's admin
# listener (--shadow only).
read -r upstream_port corsgate_port nginx_port admin_port < <(free_ports 4)
upstream_addr="127.0.0.1:$upstream_port"
corsgate_config "127.0.0.1:$corsgate_port" "$upstream_addr" >"$work/corsgate.toml"
nginx_config "$work" "127.0.0.1:$nginx_port" "$upstream_addr" >"$work/nginx.conf"
corsgate_log_level=warn
shadow_args=()
if $shadow; then
    # The worst case: a candidate identical to the live file decides every
    # request too, and finds nothing to report.
    cp "$work/corsgate.toml" "$work/candidate.toml"
    shadow_args=(--shadow "$work/candidate.toml" --admin-listen "127.0.0.1:$admin_port")
fi
if $access_log; then
    # info: corsgate's access log lines (on by default) reach its log file.
    corsgate_log_level=info
    sed -i "s#^    access_log off;#    access_log $work/access.log;#" "$work/nginx.conf"
    grep -q "access_log $work/access.log;" "$work/nginx.conf" ||
        { echo "nginx.conf: no 'access_log off;' line to turn on" >&2; exit 2; }
fi

scheme=http
if $tls; then
    command -v openssl >/dev/null || { echo "--tls needs openssl" >&2; exit 2; }
    scheme=https
    # One certificate for both servers: ECDSA P-256, as an ACME CA issues by
    # default, for the address wrk connects to.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
    chmod 644 "$work/tls.key"
    printf '\n[server.tls]\ncertificates = [{ cert_file = "%s", key_file = "%s" }]\n' \
        "$work/tls.pem" "$work/tls.key" >>"$work/corsgate.toml"
    # TLS 1.2 and 1.3 on both, as corsgate; with wrk both negotiate 1.3.
    # Session resumption is each server's default (wrk does not resume).
    sed -i "s#^        listen 127.0.0.1:$nginx_port reuseport;#        listen 127.0.0.1:$nginx_port reuseport ssl;\n        ssl_certificate $work/tls.pem;\n        ssl_certificate_key $work/tls.key;\n        ssl_protocols TLSv1.2 TLSv1.3;#" \
        "$work/nginx.conf"
    grep -q "ssl_certificate $work/tls.pem;" "$work/nginx.conf" ||
        { echo "nginx.conf: no 'listen @LISTEN@ reuseport;' line to add TLS to" >&2; exit 2; }
fi

clk_tck=$(getconf CLK_TCK)

# The answers the benchmark counts on, checked once per server before any load.
check_answers() { # NAME PORT
    local name=$1 port=$2 head
    local tls_args=()
    $tls && [ "$name" != direct ] && tls_args=(--cacert "$work/tls.pem")
    head=$(curl -sS --http1.1 "${tls_args[@]}" -o /dev/null -D - -X OPTIONS "$(url_of "$name" "$port")" \
        -H 'Origin: https://app.example.com' \
        -H 'Access-Control-Request-Method: PUT' \
        -H 'Access-Control-Request-Headers: authorization,content-type' | tr -d '\r')
    grep -q '^HTTP/1.1 204' <<<"$head" &&
        grep -qi '^access-control-allow-origin: https://app.example.com$' <<<"$head" &&
        grep -qi '^access-control-allow-credentials: true$' <<<"$head" &&
        grep -qi '^access-control-allow-methods: .*PUT' <<<"$head" &&
        grep -qi '^access-control-allow-headers: .*authorization' <<<"$head" &&
        grep -qi '^access-control-max-age: 3600$' <<<"$head" &&
        grep -qi '^vary: .*origin' <<<"$head" ||
        { printf '%s: unexpected preflight answer:\n%s\n' "$name" "$head" >&2; exit 1; }
    head=$(curl -sS --http1.1 "${tls_args[@]}" -o "$work/body" -D - "$(url_of "$name" "$port")" \
        -H 'Origin: https://app.example.com' | tr -d '\r')
    grep -q '^HTTP/1.1 200' <<<"$head" &&
        grep -qi '^access-control-allow-origin: https://app.example.com$' <<<"$head" &&
        grep -qi '^access-control-allow-credentials: true$' <<<"$head" &&
        grep -qi '^vary: .*origin' <<<"$head" &&
        grep -q '"items"' "$work/body" ||
        { printf '%s: unexpected GET answer:\n%s\n' "$name" "$head" >&2; exit 1; }
}

# The URL of a server: https for corsgate and nginx with --tls, http for the
# upstream (direct).
url_of() { # SERVER PORT
    if [ "$1" = direct ]; then
        echo "http://127.0.0.1:$2/api/items"
    else
        echo "$scheme://127.0.0.1:$2/api/items"
    fi
}

# Starts the server under test on core 0; sets server_pids (the processes whose
# CPU and memory are measured) and port.
upstream_pid=
server_pids=()
start() { # corsgate | nginx | direct
    start_upstream
    case "$1" in
        corsgate)
            # warn: nothing is logged per request; info (--access-log): the access log.
            start_corsgate "$corsgate_log_level" "${shadow_args[@]}"
            ;;
        nginx) start_nginx ;;
        direct)
            server_pids=("$upstream_pid")
            port=$upstream_port
            ;;
    esac
}

results="$work/results.tsv"
printf 'case\tserver\trun\trequests\trps\tp50_ms\tp99_ms\tcpu_us_per_req\tpeak_rss_kib\tupstream_cpu_us_per_req\n' >"$results"

run() { # CASE SERVER RUN
    local case=$1 server=$2 n=$3 url before after up_before up_after out requests rps p50 p99 rss
    start "$server"
    if [ "$n" = 1 ] && [ "$server" != direct ] && [ "$case" = preflight ]; then
        check_answers "$server" "$port"
    fi
    if $shadow && [ "$server" = corsgate ]; then
        wait_port "$admin_port"
        curl -sS "http://127.0.0.1:$admin_port/shadow" | grep -q '"generation": 1' ||
            { echo "corsgate: the shadow configuration is not running" >&2; exit 1; }
    fi
    url=$(url_of "$server" "$port")
    # Warm-up: connections, pools and caches, outside the measured window.
    taskset -c "$CLIENT_CORE" wrk -t1 -c"$connections" -d1s -s "bench/gateway/$case.lua" "$url" >/dev/null
    before=$(cpu_ticks "${server_pids[@]}")
    up_before=$(cpu_ticks "$upstream_pid")
    out=$(taskset -c "$CLIENT_CORE" wrk -t1 -c"$connections" -d"${duration}s" --latency \
        -s "bench/gateway/$case.lua" "$url")
    after=$(cpu_ticks "${server_pids[@]}")
    up_after=$(cpu_ticks "$upstream_pid")
    rss=$(peak_rss_kib "${server_pids[@]}")
    if $shadow && [ "$server" = corsgate ]; then
        # Every measured request was decided by the candidate too, and none
        # diverged (the candidate is the live file).
        local metrics evaluated measured
        metrics=$(curl -sS "http://127.0.0.1:$admin_port/metrics")
        evaluated=$(awk '$1 == "corsgate_shadow_requests_total" {print $2}' <<<"$metrics")
        measured=$(awk '/requests in/ {print $1}' <<<"$out")
        [ "${evaluated:-0}" -ge "$measured" ] ||
            { echo "corsgate: the shadow decided ${evaluated:-0} requests of $measured" >&2; exit 1; }
        ! grep '^corsgate_shadow_divergence_total' <<<"$metrics" | grep -qv ' 0$' ||
            { echo "corsgate: divergences with an identical candidate" >&2; exit 1; }
    fi
    if [ "$server" = direct ]; then
        stop "$upstream_pid"
    else
        stop "${server_pids[@]}" "$upstream_pid"
    fi
    if $access_log && [ "$server" != direct ]; then
        # Every request of the run (warm-up included) should have its line: a log
        # that drops lines under load would look cheaper than it is.
        local lines
        case "$server" in
            corsgate) lines=$(grep -c ' request request_id=' "$work/corsgate.log" || true) ;;
            nginx) lines=$(wc -l <"$work/access.log"); : >"$work/access.log" ;;
        esac
        printf '  %-9s %-8s run %s: %s access log lines (%s requests measured, plus the warm-up)\n' \
            "$case" "$server" "$n" "$lines" "$(awk '/requests in/ {print $1}' <<<"$out")" >&2
    fi
    if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
        printf '%s %s run %s: wrk saw errors:\n%s\n' "$case" "$server" "$n" "$out" >&2
        exit 1
    fi
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    local cpu up_cpu
    cpu=$(python3 -c "print(($after - $before) / $clk_tck * 1e6 / $requests)")
    if [ "$server" = direct ]; then
        up_cpu=$cpu
    else
        up_cpu=$(python3 -c "print(($up_after - $up_before) / $clk_tck * 1e6 / $requests)")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$server" "$n" "$requests" "$rps" \
        "$p50" "$p99" "$cpu" "$rss" "$up_cpu" >>"$results"
    printf '  %-9s %-8s run %s: %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %6.2f us CPU/req  %6.1f MiB\n' \
        "$case" "$server" "$n" "$rps" "$p50" "$p99" "$cpu" "$(python3 -c "print($rss / 1024)")" >&2
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "gateway benchmark: ${duration}s x $runs runs x 5 (case, server) pairs, $connections connections" >&2
for n in $(seq "$runs"); do
    cases="preflight get"
    $tls && cases="preflight get handshake"
    for case in $cases; do
        servers="corsgate nginx"
        [ "$case" = get ] && servers="corsgate nginx direct"
        for server in $servers; do
            run "$case" "$server" "$n"
        done
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

machine="$work/machine.md"
{
    echo "- CPU: $(cpu_description)"
    echo "- kernel: $(uname -sr)"
    echo "- $(corsgate_description)"
    echo "- $("$nginx" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(rustc -V)"
    echo "- started $started_at; load average $load_before before, $load_after after (the machine is shared: other processes may run on either core)"
    echo "- ${duration} s per run after a 1 s warm-up, $runs runs, $connections connections, one wrk thread"
    if $tls; then
        echo "- TLS on both servers: $(openssl version | cut -d' ' -f1-2) for wrk and nginx, rustls (aws-lc-rs) for corsgate; an ECDSA P-256 certificate; TLS 1.3 negotiated; (c) opens a connection per request, whose handshake resumes the session of the one before (wrk keeps it)"
    fi
    if $access_log; then
        echo "- access logs on: corsgate's (text, to a file) and nginx's (combined, to a file)"
    else
        echo "- access logs off in both servers"
    fi
    if $shadow; then
        echo "- corsgate with a shadow configuration identical to the live one (--shadow): every request decided twice, no divergence"
    fi
} >"$machine"

python3 bench/gateway/report.py "$results" "$machine" "$command_line" >"$work/report.md"
cat "$work/report.md"
if $record; then
    cp "$work/report.md" bench/RESULTS.md
    echo "written to bench/RESULTS.md" >&2
fi
