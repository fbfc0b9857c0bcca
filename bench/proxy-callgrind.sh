#!/usr/bin/env bash
# corsgate beside nginx in instructions and system calls per request, which do
# not depend on the machine's load (bench/gateway.sh measures CPU time, which
# does, on a quiet machine).
#
# Both servers are configured as in bench/gateway.sh (bench/gateway/corsgate.toml
# and nginx.conf: the same policy, the same upstream reached over kept-alive
# connections, CORS headers added the same way), nginx as one process
# (`master_process off; daemon off; worker_processes 1`) and corsgate on one
# thread (`--threads 1`, which is what bench/gateway.sh's pinning to one core
# gives it). Each server runs under valgrind's callgrind twice, serving N1 and
# then N2 requests of one kind on one keep-alive connection from a client
# outside valgrind (python3, bounded by a timeout); the upstream
# (bench_upstream) runs outside valgrind too. The difference of the two totals,
# divided by N2 - N1, is one request without start-up, shutdown and the first,
# connecting request. The same two runs under `strace -c -f` give the system
# calls per request.
#
# Cases: an allowed proxied GET and an allowed preflight, each with the access
# logs off and on (corsgate's text access log to a file at RUST_LOG=info;
# nginx's combined access_log to a file).
#
#   bench/proxy-callgrind.sh                  # every case, about five minutes after the build
#   bench/proxy-callgrind.sh --cases get      # only proxied GETs (logs off and on)
#   bench/proxy-callgrind.sh --keep DIR       # keep the callgrind outputs (N2 runs) for callgrind_annotate
#
# Options: --cases "get preflight" (default both), --logs "off on" (default
# both), --n1 N (default 1), --n2 N (default 1001), --no-strace, --keep DIR,
# --corsgate PATH (another corsgate binary, e.g. an older build).
#
# Instructions are not CPU time: system calls, cache misses and the scheduler's
# hand-offs between threads cost time that callgrind does not count, and the
# kernel's work inside a system call is not counted at all; the strace table
# counts those calls. Under valgrind a multi-threaded program runs one thread at
# a time, so corsgate is measured on one thread.
#
# Needs valgrind, strace, nginx, python3 and a release build of corsgate and of
# the bench_upstream example:
#   cargo build --release -p corsgate --bin corsgate --example bench_upstream
set -euo pipefail
cd "$(dirname "$0")/.."

cases="get preflight"
logs="off on"
n1=1
n2=1001
do_strace=true
keep=
corsgate=
usage() { sed -n "2,$(( $(grep -n "^set -euo" "$0" | cut -d: -f1) - 1 ))p" "$0"; }
bounded() { # NAME VALUE MIN MAX
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] ||
        { echo "$1 must be a whole number from $3 to $4" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
    case "$1" in
        --cases) cases=${2:-}; shift ;;
        --logs) logs=${2:-}; shift ;;
        --n1) bounded --n1 "${2:-}" 1 10000; n1=$2; shift ;;
        --n2) bounded --n2 "${2:-}" 2 20000; n2=$2; shift ;;
        --no-strace) do_strace=false ;;
        --keep) keep=${2:-}; [ -n "$keep" ] || { echo "--keep needs a directory" >&2; exit 2; }; shift ;;
        --corsgate) [ -x "${2:-}" ] || { echo "--corsgate needs an executable" >&2; exit 2; }; corsgate=$(realpath "$2"); shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$n2" -gt "$n1" ] || { echo "--n2 must be larger than --n1" >&2; exit 2; }
for c in $cases; do
    [ "$c" = get ] || [ "$c" = preflight ] || { echo "unknown case: $c (get, preflight)" >&2; exit 2; }
done
for l in $logs; do
    [ "$l" = off ] || [ "$l" = on ] || { echo "unknown log setting: $l (off, on)" >&2; exit 2; }
done
tools="valgrind nginx python3"
$do_strace && tools="$tools strace"
for tool in $tools; do
    command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
[ -n "$corsgate" ] || corsgate="$target_dir/release/corsgate"
upstream_bin="$target_dir/release/examples/bench_upstream"
[ -x "$corsgate" ] && [ -x "$upstream_bin" ] ||
    { echo "build first: cargo build --release -p corsgate --bin corsgate --example bench_upstream" >&2; exit 2; }
nginx=$(command -v nginx)
[ -z "$keep" ] || mkdir -p "$keep"

work=$(mktemp -d)
chmod 755 "$work"
upstream_pid=
server_pid=
cleanup() {
    [ -z "$server_pid" ] || kill -KILL "$server_pid" 2>/dev/null || true
    [ -z "$upstream_pid" ] || kill "$upstream_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r upstream_port corsgate_port nginx_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
upstream_addr="127.0.0.1:$upstream_port"
sed -e "s#@LISTEN@#127.0.0.1:$corsgate_port#; s#@UPSTREAM@#$upstream_addr#" \
    bench/gateway/corsgate.toml >"$work/corsgate.toml"
sed -e "s#@WORK@#$work#g; s#@LISTEN@#127.0.0.1:$nginx_port#; s#@UPSTREAM@#$upstream_addr#" \
    -e "s#^master_process on;#master_process off;#" \
    bench/gateway/nginx.conf >"$work/nginx-off.conf"
grep -q '^master_process off;' "$work/nginx-off.conf" ||
    { echo "nginx.conf: no 'master_process on;' line to turn off" >&2; exit 2; }
sed -e "s#^    access_log off;#    access_log $work/access.log;#" "$work/nginx-off.conf" >"$work/nginx-on.conf"
grep -q "access_log $work/access.log;" "$work/nginx-on.conf" ||
    { echo "nginx.conf: no 'access_log off;' line to turn on" >&2; exit 2; }


"$upstream_bin" "$upstream_addr" >/dev/null 2>&1 &
upstream_pid=$!

# Waits up to 60 s (valgrind starts slowly) for a port to accept connections.
wait_port() { # PORT PID: waits while PID lives
    local i
    for i in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { echo "the process serving port $1 exited while starting" >&2; return 1; }
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 60 s" >&2
    return 1
}
wait_port "$upstream_port" "$upstream_pid"

# Runs one server under TOOL (callgrind or strace), N requests of KIND, then
# stops it; checks that every request has its access-log line when logs are on.
# Leaves the tool's report in $work/report.
measure() { # TOOL SERVER KIND LOGS N
    local tool=$1 server=$2 kind=$3 logs=$4 n=$5 port cmd lines
    case "$server" in
        corsgate)
            port=$corsgate_port
            cmd=("$corsgate" serve --config "$work/corsgate.toml" --threads 1)
            ;;
        nginx)
            port=$nginx_port
            cmd=("$nginx" -p "$work" -c "$work/nginx-$logs.conf")
            : >"$work/access.log"
            ;;
    esac
    local level=warn
    [ "$logs" = on ] && level=info
    case "$tool" in
        callgrind)
            RUST_LOG=$level valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
                "${cmd[@]}" >/dev/null 2>"$work/server.log" &
            ;;
        strace)
            RUST_LOG=$level strace -c -f -o "$work/strace.out" \
                "${cmd[@]}" >/dev/null 2>"$work/server.log" &
            ;;
    esac
    server_pid=$!
    wait_port "$port" "$server_pid"
    python3 bench/gateway/keepalive.py "$port" "$n" "$kind"
    # SIGTERM to the server itself (under strace, strace's child): corsgate
    # drains and exits (writing its buffered log lines); nginx exits at once.
    # Bounded: SIGKILL after 60 s.
    local target=$server_pid
    if [ "$tool" = strace ]; then
        target=$(cat "/proc/$server_pid/task/$server_pid/children")
        target=${target%% *}
    fi
    kill -TERM "$target"
    local i
    for i in $(seq 600); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if [ "$logs" = on ]; then
        case "$server" in
            corsgate) lines=$(grep -c ' request request_id=' "$work/server.log" || true) ;;
            nginx) lines=$(wc -l <"$work/access.log") ;;
        esac
        [ "$lines" -eq "$n" ] ||
            { echo "$server: $lines access log lines for $n requests" >&2; exit 1; }
    fi
    case "$tool" in
        callgrind) sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/server.log" >"$work/report" ;;
        strace) cp "$work/strace.out" "$work/report" ;;
    esac
}

# strace -c's table as "syscall calls" lines.
syscalls() {
    awk '$NF != "total" && $1 ~ /^[0-9.]+$/ && NF >= 5 { print $NF, $4 }' "$1"
}

results="$work/results.tsv"
: >"$results"
for kind in $cases; do
    for log in $logs; do
        for server in corsgate nginx; do
            measure callgrind "$server" "$kind" "$log" "$n1"
            a=$(cat "$work/report")
            measure callgrind "$server" "$kind" "$log" "$n2"
            b=$(cat "$work/report")
            [ -z "$keep" ] || cp "$work/cg.out" "$keep/$server-$kind-logs-$log.callgrind"
            per=$(( (b - a) / (n2 - n1) ))
            printf 'instr\t%s\t%s\t%s\t%s\n' "$kind" "$log" "$server" "$per" >>"$results"
            echo "  $kind, logs $log, $server: $per instructions per request" >&2
            if $do_strace; then
                measure strace "$server" "$kind" "$log" "$n1"
                syscalls "$work/report" >"$work/sys-a"
                measure strace "$server" "$kind" "$log" "$n2"
                syscalls "$work/report" >"$work/sys-b"
                python3 - "$work/sys-a" "$work/sys-b" "$((n2 - n1))" "$kind" "$log" "$server" >>"$results" <<'PY'
import sys
def read(path):
    calls = {}
    for line in open(path):
        name, count = line.split()
        calls[name] = int(count)
    return calls
a, b = read(sys.argv[1]), read(sys.argv[2])
n = int(sys.argv[3])
for name in sorted(set(a) | set(b)):
    per = (b.get(name, 0) - a.get(name, 0)) / n
    if per >= 0.005:
        print(f"sys\t{sys.argv[4]}\t{sys.argv[5]}\t{sys.argv[6]}\t{name}\t{per:.2f}")
PY
            fi
        done
    done
done

python3 - "$results" "$n1" "$n2" <<'PY'
import sys
from collections import defaultdict
results, n1, n2 = sys.argv[1], sys.argv[2], sys.argv[3]
instr = {}
sys_calls = defaultdict(dict)
for line in open(results):
    f = line.rstrip("\n").split("\t")
    if f[0] == "instr":
        instr[(f[1], f[2], f[3])] = int(f[4])
    else:
        sys_calls[(f[1], f[2], f[3])][f[4]] = float(f[5])
names = {"get": "proxied GET", "preflight": "preflight"}
print(f"Instructions per request (callgrind; runs of {n1} and {n2} requests, the difference):\n")
print("| case | access logs | corsgate | nginx | corsgate / nginx |")
print("|---|---|---|---|---|")
for (kind, log, server), value in instr.items():
    if server != "corsgate":
        continue
    other = instr.get((kind, log, "nginx"))
    ratio = f"{value / other:.2f}×" if other else "–"
    print(f"| {names[kind]} | {log} | {value:,} | {other:,} | **{ratio}** |")
if sys_calls:
    print(f"\nSystem calls per request (strace -c -f; the same difference):\n")
    print("| case | access logs | server | total | calls per request |")
    print("|---|---|---|---|---|")
    for (kind, log, server), calls in sys_calls.items():
        total = sum(calls.values())
        detail = ", ".join(f"{name} {per:.2f}" for name, per in
                           sorted(calls.items(), key=lambda kv: -kv[1]))
        print(f"| {names[kind]} | {log} | {server} | {total:.2f} | {detail} |")
PY
