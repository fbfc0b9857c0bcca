#!/usr/bin/env bash
# 10,000 concurrent clients: wrk holds 10,000 keep-alive connections, each
# sending proxied GETs (bench/gateway/get.lua) one after the other, through
# corsgate and through nginx configured as the same CORS proxy (bench/gateway/),
# to the same upstream, on loopback. Reports, per server: requests/s, errors
# (connect, read, write, timeout, non-2xx), p50/p99 latency, server CPU time
# per request and peak RSS (VmHWM; nginx: master + worker).
#
#   bench/c10k.sh                      # 10,000 connections, 10 s per run, 3 runs
#   bench/c10k.sh --duration 5 --runs 1
#
# Options: --connections N (100-10000, default 10000), --duration S (1-30,
# default 10), --runs N (1-5, default 3), --no-build, --corsgate PATH,
# --upstream-connections N (1-10000, default 1024).
# Upstream connections: nginx opens one per request in flight, without a cap
# (its `max_conns` refuses past the cap with 502; queueing is not in the open
# source version). corsgate keeps its default max_upstream_connections, 1024,
# unless --upstream-connections says otherwise (as many as --connections: the
# same conditions as nginx); past it, its requests queue for a connection, and
# the report gives how many waited and for how long
# (corsgate_upstream_queue_wait_seconds, read from its admin listener).
# Pinning as bench/gateway.sh: the servers and the upstream on core 0, wrk
# (two threads) on core 1. Every process raises its descriptor limit to the
# hard limit. Each proxied request in flight holds a client socket and an
# upstream socket, so a server needs about 2 x N descriptors: where the hard
# limit is lower (20,000 on some machines), N is lowered to what fits, and the
# report says so. Runs alternate corsgate, nginx. Needs nginx, wrk, taskset,
# curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

connections=10000
duration=10
runs=3
build=true
corsgate=
upstream_connections=
command_line="bench/c10k.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
        --connections) bounded --connections "${2:-}" 100 10000; connections=$2; shift ;;
        --duration) bounded --duration "${2:-}" 1 30; duration=$2; shift ;;
        --runs) bounded --runs "${2:-}" 1 5; runs=$2; shift ;;
        --no-build) build=false ;;
        --upstream-connections) bounded --upstream-connections "${2:-}" 1 10000; upstream_connections=$2; shift ;;
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

raise_nofile
# corsgate's own check (fdlimit.rs): 2 per connection and 64 in reserve.
fits=$(( (fd_limit - 64) / 2 ))
asked=$connections
[ "$connections" -le "$fits" ] || connections=$fits

bench_binaries
bench_workdir

read -r upstream_port corsgate_port nginx_port admin_port < <(free_ports 4)
upstream_addr="127.0.0.1:$upstream_port"
[ -n "$upstream_connections" ] || upstream_connections=1024
corsgate_config "127.0.0.1:$corsgate_port" "$upstream_addr" >"$work/corsgate.toml"
sed -i "s#^max_requests_per_connection = .*#&\nmax_connections = $connections\nmax_upstream_connections = $upstream_connections\nadmin_listen = \"127.0.0.1:$admin_port\"#" \
    "$work/corsgate.toml"
nginx_config "$work" "127.0.0.1:$nginx_port" "$upstream_addr" \
    -e "s#^    worker_connections 1024;#    worker_connections $(( 2 * connections + 64 ));#" \
    -e "s#^worker_processes 1;#&\nworker_rlimit_nofile $fd_limit;#" \
    >"$work/nginx.conf"
grep -q "worker_rlimit_nofile" "$work/nginx.conf" ||
    { echo "bench/gateway/nginx.conf changed: cannot raise its limits" >&2; exit 2; }
clk_tck=$(getconf CLK_TCK)

upstream_pid=
server_pids=()
start() { # corsgate | nginx
    start_upstream
    case "$1" in
        corsgate) start_corsgate warn ;;
        nginx) start_nginx ;;
    esac
    # The answer the benchmark counts on, once, before any load.
    curl -sS -o /dev/null -w '%{http_code}' -H 'Origin: https://app.example.com' \
        "http://127.0.0.1:$port/api/items" | grep -q '^200$' ||
        { echo "$1: the GET is not answered 200" >&2; exit 1; }
}

# corsgate's upstream queue so far: "COUNT SUM" of corsgate_upstream_queue_wait_seconds.
queue_waits() {
    curl -sS --max-time 10 "http://127.0.0.1:$admin_port/metrics" |
        awk '$1 == "corsgate_upstream_queue_wait_seconds_count" {c = $2}
             $1 == "corsgate_upstream_queue_wait_seconds_sum" {s = $2}
             END {print c + 0, s + 0}'
}

results="$work/results.tsv"
run() { # SERVER RUN
    local server=$1 n=$2 before after out requests rps p50 p99 rss errors non2xx cpu
    local waits_before="0 0" waits_after="0 0" waited=0 wait_ms=0
    start "$server"
    # wrk opens its connections as it starts: the first second is the ramp.
    taskset -c "$CLIENT_CORE" wrk -t2 -c"$connections" -d2s --timeout 10s \
        -s bench/gateway/get.lua "http://127.0.0.1:$port/api/items" >"$work/warmup.txt" 2>&1 || true
    [ "$server" != corsgate ] || waits_before=$(queue_waits)
    before=$(cpu_ticks "${server_pids[@]}")
    out=$(taskset -c "$CLIENT_CORE" wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s --latency \
        -s bench/gateway/get.lua "http://127.0.0.1:$port/api/items" 2>&1)
    after=$(cpu_ticks "${server_pids[@]}")
    rss=$(peak_rss_kib "${server_pids[@]}")
    [ "$server" != corsgate ] || waits_after=$(queue_waits)
    read -r waited wait_ms < <(python3 -c "
b, a = '$waits_before'.split(), '$waits_after'.split()
n = int(float(a[0]) - float(b[0]))
print(n, (float(a[1]) - float(b[1])) * 1e3 / max(n, 1))")
    stop "${server_pids[@]}" "$upstream_pid"
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    # "Socket errors: connect 0, read 0, write 0, timeout 0"
    errors=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    cpu=$(python3 -c "print(($after - $before) / $clk_tck * 1e6 / max($requests, 1))")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$n" "$requests" "$rps" "${errors:-0}" \
        "${non2xx:-0}" "$p50" "$p99" "$cpu" >>"$results"
    printf '%s\n' "$rss" >"$work/rss-$server-$n"
    [ "$server" != corsgate ] || printf '%s\t%s\n' "$waited" "$wait_ms" >>"$work/queue.tsv"
    printf '  %-8s run %s: %9.0f req/s  errors %s  non-2xx %s  p50 %7.2f ms  p99 %7.2f ms  %6.2f us CPU/req  peak %6.1f MiB\n' \
        "$server" "$n" "$rps" "${errors:-0}" "${non2xx:-0}" "$p50" "$p99" "$cpu" \
        "$(python3 -c "print($rss / 1024)")" >&2
    [ "$server" != corsgate ] ||
        printf '  %-8s run %s: %s requests waited for an upstream connection, %.2f ms on average\n' \
            "$server" "$n" "$waited" "$wait_ms" >&2
    grep -q "Socket errors" <<<"$out" && grep "Socket errors" <<<"$out" >&2 || true
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
[ "$connections" = "$asked" ] ||
    echo "RLIMIT_NOFILE hard limit $fd_limit holds $fits proxied connections: $connections instead of $asked" >&2
echo "c10k: $connections connections, ${duration}s x $runs runs x 2 servers" >&2
for n in $(seq "$runs"); do
    for server in corsgate nginx; do
        run "$server" "$n"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "### $connections concurrent connections, proxied GETs"
echo
echo "| server | req/s | socket errors | non-2xx | p50 | p99 | CPU per request | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
python3 - "$results" "$work" <<'EOF'
import statistics, sys, glob, os
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
for server in ("corsgate", "nginx"):
    mine = [r for r in rows if r[0] == server]
    med = lambda i: statistics.median(float(r[i]) for r in mine)
    rss = statistics.median(float(open(p).read()) for p in glob.glob(os.path.join(sys.argv[2], f"rss-{server}-*")))
    errors = sum(int(float(r[4])) for r in mine)
    non2xx = sum(int(float(r[5])) for r in mine)
    print(f"| {server} | {med(3):,.0f} | {errors} | {non2xx} | {med(6):.2f} ms | {med(7):.2f} ms | {med(8):.2f} µs | {rss / 1024:.1f} MiB |")
EOF
echo
echo "- \`$command_line\`; medians of $runs runs (errors summed); started $started_at; load average $load_before before, $load_after after"
queue_line=$(python3 - "$work/queue.tsv" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
waited = sum(int(r[0]) for r in rows)
mean = statistics.median(float(r[1]) for r in rows)
print(f"{waited} requests waited for one (corsgate_upstream_queue_wait_seconds, measured runs; median of the runs' mean waits {mean:.2f} ms)")
EOF
)
echo "- corsgate's max_upstream_connections = $upstream_connections (nginx: no cap): $queue_line"
echo "- $connections connections$([ "$connections" = "$asked" ] || echo " (asked $asked; RLIMIT_NOFILE $fd_limit holds $fits)"), wrk -t2 on core $CLIENT_CORE, servers and upstream on core $SERVER_CORE, ${duration} s per run after a 2 s ramp"
echo "- $("$nginx" -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); corsgate: $corsgate"
