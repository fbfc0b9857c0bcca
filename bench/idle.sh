#!/usr/bin/env bash
# Idle-connection memory: how much resident memory a server grows by for each
# keep-alive client connection that made one request and then stays open,
# corsgate beside nginx configured as the same CORS proxy (bench/gateway/), in
# the same run, on loopback.
#
# For each N, protocol (HTTP/1.1; HTTP/2 with prior knowledge on cleartext) and
# server: fresh servers (the upstream and the server under test on core 0), a
# warm-up of 200 connections that each make one proxied GET and close (so that
# the upstream pools and the allocator's first growth are in the baseline),
# then VmRSS of the server's processes; then N connections, each with one
# proxied GET answered 200 with the CORS headers, all held open; three seconds
# later, VmRSS again. The growth divided by N is the cost of one idle connection. VmHWM
# (peak) growth is reported beside it. Memory does not depend on the machine's
# load, so the numbers hold on a shared machine (only the time taken moves).
#
#   bench/idle.sh                              # N = 1000 and 10000, both protocols
#   bench/idle.sh --connections 1000 --proto h1 --servers corsgate
#   bench/idle.sh --corsgate /tmp/old/corsgate # another corsgate build
#
# Options: --connections "N ..." (1-10000 each; default "1000 10000"),
# --proto "h1 h2" (default both), --servers "corsgate nginx" (default both),
# --corsgate PATH, --no-build. A run that does not get every connection
# answered stops the script. Each client run is bounded by 60 s.
# Needs nginx, taskset and python3 (scripts/install-test-deps.sh installs nginx).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

connection_counts="1000 10000"
protos="h1 h2"
servers="corsgate nginx"
build=true
corsgate=
command_line="bench/idle.sh${*:+ $*}"

while [ $# -gt 0 ]; do
    case "$1" in
        --connections)
            for n in ${2:-}; do
                [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 10000 ] ||
                    { echo "--connections: whole numbers from 1 to 10000" >&2; exit 2; }
            done
            connection_counts=$2; shift ;;
        --proto)
            for p in ${2:-}; do
                [[ "$p" = h1 || "$p" = h2 ]] || { echo "--proto: h1 and/or h2" >&2; exit 2; }
            done
            protos=$2; shift ;;
        --servers)
            for s in ${2:-}; do
                [[ "$s" = corsgate || "$s" = nginx ]] || { echo "--servers: corsgate and/or nginx" >&2; exit 2; }
            done
            servers=$2; shift ;;
        --no-build) build=false ;;
        --corsgate) [ -x "${2:-}" ] || { echo "--corsgate needs an executable" >&2; exit 2; }; corsgate=$(realpath "$2"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

require_tools "scripts/install-test-deps.sh installs nginx" nginx taskset python3
SERVER_CORE=0
CLIENT_CORE=$(( $(nproc --all) > 1 ? 1 : 0 ))

# Every process started here may need 10,000 sockets and then some: raise the
# soft limit to the hard one. corsgate counts two descriptors per client
# connection (its own and an upstream's) plus 64, and accepts no more client
# connections than fit: N above that is lowered, and the report says so.
raise_nofile
corsgate_fits=$(( (fd_limit - 64) / 2 ))

bench_binaries
bench_workdir

read -r upstream_port corsgate_port nginx_port nginx_h2_port < <(free_ports 4)
upstream_addr="127.0.0.1:$upstream_port"
# corsgate: the gateway benchmark's configuration; its listener speaks HTTP/1.1
# and, with prior knowledge, HTTP/2 on the same port. max_connections: what the
# descriptor limit holds (left at its default it would be lowered with a warning).
corsgate_config "127.0.0.1:$corsgate_port" "$upstream_addr" >"$work/corsgate.toml"
sed -i "s#^max_requests_per_connection = .*#&\nmax_connections = $(( corsgate_fits < 10000 ? corsgate_fits : 10000 ))#" \
    "$work/corsgate.toml"
# nginx: the gateway benchmark's configuration, with room for 10,000 clients
# and their upstream connections, and a second listener for HTTP/2 (nginx 1.22
# speaks HTTP/2 on cleartext only with prior knowledge, on a port of its own).
nginx_config "$work" "127.0.0.1:$nginx_port" "$upstream_addr" \
    -e "s#^    worker_connections 1024;#    worker_connections 20480;#" \
    -e "s#^worker_processes 1;#&\nworker_rlimit_nofile $fd_limit;#" \
    -e "s#^        listen 127.0.0.1:$nginx_port reuseport;#&\n        listen 127.0.0.1:$nginx_h2_port http2;#" \
    >"$work/nginx.conf"
grep -q "http2;" "$work/nginx.conf" && grep -q "worker_connections 20480" "$work/nginx.conf" ||
    { echo "bench/gateway/nginx.conf changed: cannot add the HTTP/2 listener" >&2; exit 2; }

upstream_pid=
server_pids=()
start() { # corsgate | nginx; sets server_pids and port
    start_upstream
    case "$1" in
        corsgate) start_corsgate warn ;;
        nginx) start_nginx ;;
    esac
}

results="$work/results.tsv"
run() { # N PROTO SERVER
    local n=$1 proto=$2 server=$3 client_port line rss0 hwm0 rss1 hwm1 ok failed took
    if [ "$server" = corsgate ] && [ "$n" -gt "$corsgate_fits" ]; then
        echo "  corsgate holds at most $corsgate_fits client connections under RLIMIT_NOFILE $fd_limit: N $n lowered" >&2
        n=$corsgate_fits
    fi
    start "$server"
    client_port=$port
    [ "$server" = nginx ] && [ "$proto" = h2 ] && client_port=$nginx_h2_port
    coproc CLIENT { taskset -c "$CLIENT_CORE" python3 bench/idle/client.py --port "$client_port" \
        --proto "$proto" --connections "$n" --timeout 60 2>"$work/client.err"; }
    local client_pid=$CLIENT_PID
    read -r line <&"${CLIENT[0]}" || true
    read -r _ ok failed <<<"$line"
    [ "${failed:-x}" = 0 ] ||
        { echo "$server $proto: warm-up failed ($line):" >&2; cat "$work/client.err" >&2; exit 1; }
    rss0=$(status_kib VmRSS "${server_pids[@]}")
    hwm0=$(status_kib VmHWM "${server_pids[@]}")
    echo go >&"${CLIENT[1]}"
    read -r line <&"${CLIENT[0]}" || true
    read -r _ ok failed took <<<"$line"
    # Idle for three seconds before the reading (both servers): corsgate lets
    # go of an HTTP/1.1 connection's buffers once it has been idle for 100 ms,
    # and its allocator (jemalloc) gives the freed pages back over about a
    # second.
    sleep 3
    rss1=$(status_kib VmRSS "${server_pids[@]}")
    hwm1=$(status_kib VmHWM "${server_pids[@]}")
    if [ "$server" = corsgate ]; then
        cp "/proc/${server_pids[0]}/smaps_rollup" "$work/smaps-$n-$proto" 2>/dev/null || true
    fi
    exec {CLIENT[1]}>&-
    wait "$client_pid" 2>/dev/null || true
    stop "${server_pids[@]}" "$upstream_pid"
    [ "${failed:-x}" = 0 ] && [ "${ok:-0}" = "$n" ] ||
        { echo "$server $proto N=$n: not every connection was answered ($line):" >&2; cat "$work/client.err" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$proto" "$server" "$rss0" "$rss1" "$hwm0" "$hwm1" "$took" >>"$results"
    printf '  N=%-5s %s %-8s RSS %7.1f -> %7.1f MiB: %6.2f KiB per connection (peak %6.2f); opened in %s s\n' \
        "$n" "$proto" "$server" "$(bc <<<"scale=1; $rss0/1024")" "$(bc <<<"scale=1; $rss1/1024")" \
        "$(bc <<<"scale=2; ($rss1-$rss0)/$n")" "$(bc <<<"scale=2; ($hwm1-$hwm0)/$n")" "$took" >&2
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for n in $connection_counts; do
    for proto in $protos; do
        for server in $servers; do
            run "$n" "$proto" "$server"
        done
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "### Memory per idle connection"
echo
echo "| N | protocol | server | RSS before | RSS with N idle | per connection | peak (VmHWM) per connection |"
echo "|---:|---|---|---:|---:|---:|---:|"
while IFS=$'\t' read -r n proto server rss0 rss1 hwm0 hwm1 took; do
    label=HTTP/1.1
    [ "$proto" = h2 ] && label="HTTP/2 (h2c)"
    printf '| %s | %s | %s | %.1f MiB | %.1f MiB | **%.2f KiB** | %.2f KiB |\n' "$n" "$label" "$server" \
        "$(bc <<<"scale=2; $rss0/1024")" "$(bc <<<"scale=2; $rss1/1024")" \
        "$(bc <<<"scale=3; ($rss1-$rss0)/$n")" "$(bc <<<"scale=3; ($hwm1-$hwm0)/$n")"
done <"$results"
echo
echo "- \`$command_line\`; started $started_at; load average $load_before before, $load_after after"
echo "- CPU: $(cpu_description); kernel $(uname -sr)"
echo "- $(corsgate_description); $("$nginx" -v 2>&1 | sed 's/^nginx version: //')"
echo "- servers on core $SERVER_CORE (corsgate on its single-threaded runtime, nginx with one worker; nginx's RSS is master + worker), the client on core $CLIENT_CORE; RLIMIT_NOFILE $fd_limit"
