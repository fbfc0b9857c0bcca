#!/usr/bin/env python3
"""Idle keep-alive clients for bench/idle.sh.

Opens connections to a server, makes one GET on each (HTTP/1.1, or HTTP/2 with
prior knowledge on cleartext), checks the answer, then keeps every connection
open and silent. Driven over stdin/stdout by the script, so that it can read
the server's memory between the phases:

    -> "warm <ok> <failed>"        after the warm-up (connections made and closed)
    <- "go"                        (a line on stdin)
    -> "held <ok> <failed> <s>"    every idle connection is open, each answered
    <- end of stdin                connections are closed, the process exits

Python's asyncio rather than a Rust client: nothing to build, no HTTP library
that would keep buffers or send frames of its own (window updates, pings) on
the idle connections, and the bytes on the wire are exactly the ones written
here. Bounded: at most 20,000 connections, at most --timeout seconds in all.
"""

import argparse
import asyncio
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_string(value):
    # Without Huffman coding (RFC 7541, section 5.2); every value here is short.
    data = value.encode()
    assert len(data) < 127
    return bytes([len(data)]) + data


def h2_request(authority, path, origin):
    # RFC 7541: indexed :method GET (2) and :scheme http (6); :path (4) and
    # :authority (1) as literals with an indexed name, origin as a literal with
    # a new name, all without indexing (section 6.2.2).
    block = b"\x82\x86" + b"\x04" + hpack_string(path) + b"\x01" + hpack_string(authority)
    block += b"\x00" + hpack_string("origin") + hpack_string(origin)
    return PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block)


async def h1_exchange(reader, writer, authority, path, origin):
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nOrigin: {origin}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200 "):
        raise ValueError(f"status line {lines[0]!r}")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            fields[name.strip().lower()] = value.strip()
    if fields.get("access-control-allow-origin") != origin:
        raise ValueError("no Access-Control-Allow-Origin for the origin")
    if fields.get("connection", "").lower() == "close":
        raise ValueError("the server closes the connection")
    await reader.readexactly(int(fields["content-length"]))


async def h2_exchange(reader, writer, authority, path, origin):
    writer.write(h2_request(authority, path, origin))
    status_ok = False
    while True:
        header = await reader.readexactly(9)
        length = int.from_bytes(header[:3], "big")
        kind, flags = header[3], header[4]
        stream = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        payload = await reader.readexactly(length)
        if kind == SETTINGS and not flags & ACK:
            writer.write(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            writer.write(frame(PING, ACK, 0, payload))
        elif kind in (GOAWAY, RST_STREAM):
            raise ValueError(f"frame type {kind} from the server")
        elif kind == HEADERS and stream == 1:
            block = payload
            if flags & PADDED:
                block = block[1 : len(block) - block[0]]
            if flags & PRIORITY_FLAG:
                block = block[5:]
            # :status 200 is index 8 of the static table (RFC 7541, appendix A):
            # the one byte 0x88, the way both nginx and hyper send it.
            status_ok = block[:1] == b"\x88"
            if not status_ok:
                raise ValueError(f"status field {block[:4].hex()}")
        if stream == 1 and kind in (DATA, HEADERS) and flags & END_STREAM:
            if not status_ok:
                raise ValueError("no :status 200")
            return


class Pool:
    def __init__(self, args):
        self.args = args
        self.held = []
        self.failures = {}

    def fail(self, reason):
        self.failures[reason] = self.failures.get(reason, 0) + 1

    async def one(self, gate, keep):
        args = self.args
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(args.host, args.port)
            except OSError as err:
                self.fail(f"connect: {err.strerror or err}")
                return False
            try:
                exchange = h1_exchange if args.proto == "h1" else h2_exchange
                await exchange(reader, writer, f"{args.host}:{args.port}", args.path, args.origin)
                await writer.drain()
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
                self.fail(f"{type(err).__name__}: {err}"[:120])
                writer.close()
                return False
        if keep:
            self.held.append(writer)
        else:
            writer.close()
        return True

    async def batch(self, count, keep):
        gate = asyncio.Semaphore(self.args.concurrency)
        results = await asyncio.gather(*(self.one(gate, keep) for _ in range(count)))
        ok = sum(results)
        return ok, count - ok


async def main(args):
    pool = Pool(args)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    ok, failed = await pool.batch(args.warmup, keep=False)
    print(f"warm {ok} {failed}", flush=True)
    if (await stdin.readline()).strip() != b"go":
        return 1
    started = time.monotonic()
    ok, failed = await pool.batch(args.connections, keep=True)
    print(f"held {ok} {failed} {time.monotonic() - started:.2f}", flush=True)
    for reason, count in sorted(pool.failures.items()):
        print(f"  {count} x {reason}", file=sys.stderr)
    await stdin.read()
    for writer in pool.held:
        writer.close()
    return 0


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--proto", choices=["h1", "h2"], required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--path", default="/api/items")
    p.add_argument("--origin", default="https://app.example.com")
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    if not (1 <= args.connections <= 20000 and 0 <= args.warmup <= 1000 and 1 <= args.concurrency <= 1000):
        p.error("--connections 1..20000, --warmup 0..1000, --concurrency 1..1000")
    if not 1 <= args.timeout <= 600:
        p.error("--timeout 1..600")
    return args


if __name__ == "__main__":
    args = parse()
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(args), args.timeout)))
    except asyncio.TimeoutError:
        print(f"idle client: gave up after {args.timeout:.0f} s", file=sys.stderr)
        sys.exit(3)
