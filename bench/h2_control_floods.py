#!/usr/bin/env python3
"""What HTTP/2 control-frame floods cost the gateway (the exhaustion review's E11).

Starts `corsgate serve` on a free loopback port, opens one h2c connection per
flood, sends WINDOW_UPDATE frames (increment 1, on the connection) or PRIORITY
frames (over 100 000 idle stream ids) as fast as it can for --seconds while
reading everything the gateway sends, and prints the frames sent and the CPU
time the gateway used (from /proc/PID/stat). Standard library only.

    python3 bench/h2_control_floods.py --bin target/release/corsgate
"""

import argparse
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(binary):
    conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    conf.write('[server]\nlisten = "127.0.0.1:0"\nmax_requests_per_connection = 1000000000\n')
    conf.close()
    proc = subprocess.Popen(
        [binary, "serve", "--config", conf.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stdout:
        if "listening on http://" in line:
            host, port = line.rsplit("http://", 1)[1].strip().rsplit(":", 1)
            return proc, (host, int(port))
    raise SystemExit("corsgate did not start")


def flood(addr, pid, seconds, batch, h2=True):
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if h2:
        sock.sendall(PREFACE + frame(0x4, 0, 0, b""))
    closed = threading.Event()

    def drain():
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
        closed.set()

    threading.Thread(target=drain, daemon=True).start()
    if h2:
        sock.sendall(frame(0x4, 0x1, 0, b""))  # ACK the gateway's SETTINGS
    before = cpu_seconds(pid)
    sent = 0
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds and not closed.is_set():
            sock.sendall(batch(sent))
            sent += 1
    except OSError:
        pass
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - before
    sock.close()
    return elapsed, cpu, closed.is_set(), sent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    proc, addr = start(args.bin)
    try:
        per_batch = 1000
        window_updates = b"".join(frame(0x8, 0, 0, struct.pack(">I", 1)) for _ in range(per_batch))

        def priorities(n):
            base = (n * per_batch) % 100_000
            return b"".join(
                frame(0x2, 0, 2 * ((base + i) % 100_000) + 1, struct.pack(">IB", 0, 15))
                for i in range(per_batch)
            )

        # For comparison: the cheapest request, answered by the gateway itself
        # (no route: 404), pipelined over HTTP/1.1.
        requests = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n" * per_batch
        floods = [
            ("WINDOW_UPDATE", lambda n: window_updates, True),
            ("PRIORITY", priorities, True),
            ("HTTP/1.1 GET (404)", lambda n: requests, False),
        ]
        for name, batch, h2 in floods:
            rss_before = rss_kib(proc.pid)
            elapsed, cpu, closed, batches = flood(addr, proc.pid, args.seconds, batch, h2)
            rss_after = rss_kib(proc.pid)
            frames = batches * per_batch
            size = len(batch(0))
            print(
                f"{name}: {frames} frames ({frames // per_batch * size / 2**20:.0f} MiB) in {elapsed:.1f}s, "
                f"gateway CPU {cpu:.2f}s ({100 * cpu / elapsed:.0f}% of a core), "
                f"{1e9 * cpu / max(frames, 1):.0f} ns per frame ({1e9 * cpu / max(frames // per_batch * size, 1):.0f} ns per byte), "
                f"rss {rss_before} -> {rss_after} KiB, connection closed by the gateway: {closed}"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
