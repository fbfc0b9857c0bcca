# The set-up the benchmark scripts share, sourced by them (not run on its own)
# from the repository's root: argument checks, the release build, a work
# directory removed on exit with every process started, free loopback ports,
# the servers (the upstream, corsgate, nginx with bench/gateway/'s
# configurations) on the server core, and what is read from /proc. Every wait
# is bounded.
#
# Variables the functions read or set: work, started, build, corsgate,
# target_dir, upstream_bin, nginx, SERVER_CORE, upstream_addr, upstream_port,
# corsgate_port, nginx_port, upstream_pid, server_pids, port, fd_limit.

# Prints the comment block at the top of the calling script (its --help).
usage() { sed -n "2,$(( $(grep -n "^set -euo" "$0" | cut -d: -f1) - 1 ))p" "$0"; }

bounded() { # NAME VALUE MIN MAX
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] ||
        { echo "$1 must be a whole number from $3 to $4" >&2; exit 2; }
}

require_tools() { # HINT TOOL...: exits 2 naming the first tool missing
    local hint=$1 tool
    shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$tool not found ($hint)" >&2; exit 2; }
    done
}

# Builds corsgate and the bench upstream (release) unless $build is false, and
# sets target_dir, corsgate (unless given), upstream_bin and nginx.
bench_binaries() {
    if $build; then
        cargo build --quiet --release -p corsgate --bin corsgate --example bench_upstream
    fi
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    [ -n "$corsgate" ] || corsgate="$target_dir/release/corsgate"
    upstream_bin="$target_dir/release/examples/bench_upstream"
    [ -x "$upstream_bin" ] || upstream_bin="$(dirname "$corsgate")/examples/bench_upstream"
    nginx=$(command -v nginx || true)
}

# A work directory in $work, removed on exit, when every process in $started
# is stopped too.
bench_workdir() {
    work=$(mktemp -d)
    # nginx's worker may run as another user (nobody): it must read its temp paths.
    chmod 755 "$work"
    started=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local pid
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

free_ports() { # N: prints N free loopback ports on one line
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
}

# bench/gateway/corsgate.toml with its addresses.
corsgate_config() { # LISTEN UPSTREAM
    sed -e "s#@LISTEN@#$1#; s#@UPSTREAM@#$2#" bench/gateway/corsgate.toml
}

# bench/gateway/nginx.conf with its work directory and addresses; further sed
# arguments (-e SCRIPT ...) apply after those.
nginx_config() { # WORK LISTEN UPSTREAM [SED-ARGUMENTS...]
    local dir=$1 listen=$2 upstream=$3
    shift 3
    sed -e "s#@WORK@#$dir#g; s#@LISTEN@#$listen#; s#@UPSTREAM@#$upstream#" "$@" bench/gateway/nginx.conf
}

# Raises the soft descriptor limit to the hard one; sets fd_limit.
raise_nofile() {
    ulimit -n "$(ulimit -Hn)"
    fd_limit=$(ulimit -n)
}

# Waits up to 5 s for a TCP port on 127.0.0.1 to accept connections.
wait_port() {
    local i
    for i in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 5 s" >&2
    return 1
}

# Stops the given processes and waits for them, for at most 5 s each.
stop() {
    local pid i
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    started=()
}

# CPU time (utime + stime, clock ticks) of processes, all their threads included.
cpu_ticks() {
    local pid total=0 fields
    for pid in "$@"; do
        # The command name (field 2) may hold spaces: split after its ')'.
        fields=$(sed 's/^.*) //' "/proc/$pid/stat")
        set -- $fields
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# A field of /proc/PID/status (KiB), summed over processes.
status_kib() { # FIELD PID...
    local field=$1 pid total=0
    shift
    for pid in "$@"; do
        total=$((total + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# Peak resident set size (VmHWM, KiB), summed over processes.
peak_rss_kib() { status_kib VmHWM "$@"; }

# Converts a wrk duration (812.00us, 1.23ms, 2.00s) to milliseconds.
to_ms() {
    python3 -c 'import sys; v=sys.argv[1]
for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
    if v.endswith(unit):
        print(float(v[:-len(unit)]) * scale); break
else:
    sys.exit("unknown duration: " + v)' "$1"
}

# The upstream (bench_upstream) on $SERVER_CORE at $upstream_addr; sets upstream_pid.
start_upstream() {
    taskset -c "$SERVER_CORE" "$upstream_bin" "$upstream_addr" >"$work/upstream.log" 2>&1 &
    upstream_pid=$!
    started+=("$upstream_pid")
    wait_port "$upstream_port"
}

# `corsgate serve --config $work/corsgate.toml ARGS` on $SERVER_CORE with
# RUST_LOG=LEVEL; sets server_pids and port.
start_corsgate() { # LEVEL [ARGS...]
    local level=$1
    shift
    RUST_LOG=$level taskset -c "$SERVER_CORE" "$corsgate" serve --config "$work/corsgate.toml" \
        "$@" >"$work/corsgate.log" 2>&1 &
    server_pids=($!)
    port=$corsgate_port
    started+=("${server_pids[@]}")
    wait_port "$port"
}

# nginx on $work/nginx.conf on $SERVER_CORE; sets server_pids (the master and
# its one worker) and port.
start_nginx() {
    local worker= i
    taskset -c "$SERVER_CORE" "$nginx" -p "$work" -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
    server_pids=($!)
    port=$nginx_port
    started+=("${server_pids[@]}")
    wait_port "$port"
    for i in $(seq 50); do
        worker=$(cat "/proc/${server_pids[0]}/task/${server_pids[0]}/children")
        [ -n "$worker" ] && break
        sleep 0.1
    done
    [ -n "$worker" ] || { echo "nginx started no worker" >&2; exit 1; }
    server_pids+=($worker)
}

# The machine, for a report: "MODEL, N cores[, virtual machine (VENDOR)]".
cpu_description() {
    local hypervisor
    hypervisor=$(lscpu | sed -n 's/^Hypervisor vendor: *//p')
    echo "$(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores${hypervisor:+, virtual machine ($hypervisor)}"
}

# Which corsgate was measured, for a report.
corsgate_description() {
    if [ "$corsgate" = "$target_dir/release/corsgate" ]; then
        echo "corsgate built from $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' plus uncommitted changes under crates/') (release profile)"
    else
        echo "corsgate binary: $corsgate"
    fi
}
