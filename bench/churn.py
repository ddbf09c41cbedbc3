"""Memory under churn: does the server's RSS come back after everyday events?

    python -m bench.churn --events 3000 --checkout main=/work/wt-e-base

For each server (this checkout as `moscow_clock`, and every `--checkout
NAME=PATH`) and each kind of event, a fresh server (core 0, default settings
except `WS_PING_INTERVAL`, so the read timeout reaps in seconds) takes
`--warmup` events, then `--events` more; its RSS after the warm-up and after
the events (every connection finished) gives the growth per 1,000 events.
The client runs in this process (pin it: `taskset -c 1`). The kinds:

- `404-new`: a request for a missing page on a new connection each;
- `404-keepalive`: the same over 8 keep-alive connections;
- `400`: a malformed request (Hypercorn's 400) on a new connection each;
- `ws-reset`: a websocket handshake, then a TCP reset;
- `ws-reaped`: a websocket handshake, then silence (no pong, nothing sent)
  until the server's read timeout closes it;
- `mixed`: the five above in turn.

Servers run interleaved kind by kind, so the machine's noise falls on all.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.run import (
    ROOT,
    SERVERS,
    free_port,
    loadavg,
    machine,
    process_tree,
    raise_open_files,
    rss_bytes,
    server_env,
    wait_ready,
)

# The soak's hostile mix, per second: ~2,000 events a minute of every kind
# (keep-alive: 10 requests a connection).
HOSTILE_RATES = "404-new=15,404-keepalive=1.5,400=5,ws-clean=2,ws-vanished=1,ws-reset=2"
KINDS = ("404-new", "404-keepalive", "400", "ws-reset", "ws-reaped", "mixed")
PING_INTERVAL = 1.0  # WS_PING_INTERVAL: the read timeout reaps after 3 s of silence
HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
NOT_FOUND = b"GET /no-such-page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n"


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def _one_response(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)


async def request_new(port: int, raw: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    with contextlib.suppress(ConnectionError):
        await _until_eof(reader)
    writer.close()


async def handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(HANDSHAKE.format(port=port, key=key).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:40])
    return reader, writer


async def ws_reset(port: int) -> None:
    _, writer = await handshake(port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def ws_reaped(port: int) -> None:
    reader, writer = await handshake(port)
    with contextlib.suppress(ConnectionError):
        await asyncio.wait_for(_until_eof(reader), 30)  # reads, never answers
    writer.close()


async def ws_clean(port: int, stay: float = 2.0) -> None:
    """A websocket that stays a while, then closes politely (1000)."""
    reader, writer = await handshake(port)
    await asyncio.sleep(stay)
    mask = os.urandom(4)
    code = (1000).to_bytes(2, "big")
    writer.write(bytes((0x88, 0x82)) + mask + bytes(b ^ mask[i] for i, b in enumerate(code)))
    with contextlib.suppress(ConnectionError, TimeoutError):
        await asyncio.wait_for(_until_eof(reader), 10)
    writer.close()


async def ws_vanished(port: int, gone: float = 120.0) -> None:
    """A websocket whose client vanishes without a FIN: from the handshake on
    it reads nothing and sends nothing (no pong); the socket is dropped long
    after the server should have given up on it."""
    _, writer = await handshake(port)
    await asyncio.sleep(gone)
    writer.transport.abort()


async def hostile(port: int, seconds: float, per_s: dict[str, float]) -> dict[str, dict[str, int]]:
    """Every kind of churn at once, each at its own steady rate, for
    `seconds`: the soak's `--hostile-mix`. Counts what was done and failed."""
    makers: dict[str, Callable[[], Awaitable[None]]] = {
        "404-new": lambda: request_new(port, NOT_FOUND),
        "404-keepalive": lambda: keepalive(port, 10, 1),
        "400": lambda: request_new(port, BAD),
        "ws-clean": lambda: ws_clean(port),
        "ws-vanished": lambda: ws_vanished(port),
        "ws-reset": lambda: ws_reset(port),
    }
    done = dict.fromkeys(per_s, 0)
    failed = dict.fromkeys(per_s, 0)
    unfinished = dict.fromkeys(per_s, 0)  # still under way at the end
    tasks: set[asyncio.Task[None]] = set()

    def finished(kind: str, task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if task.cancelled():
            unfinished[kind] += 1
        elif task.exception() is not None:
            failed[kind] += 1
        else:
            done[kind] += 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    owed = dict.fromkeys(per_s, 0.0)
    while loop.time() - started < seconds:
        for kind, rate in per_s.items():
            owed[kind] += rate / 10
            while owed[kind] >= 1:
                owed[kind] -= 1
                task = asyncio.create_task(makers[kind]())
                tasks.add(task)
                task.add_done_callback(lambda t, k=kind: finished(k, t))
        await asyncio.sleep(0.1)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"done": done, "failed": failed, "unfinished": unfinished}


async def keepalive(port: int, count: int, connections: int = 8) -> None:
    async def one(share: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(share):
            writer.write(NOT_FOUND)
            await _one_response(reader)
        writer.close()

    await asyncio.gather(*(one(count // connections) for _ in range(connections)))


SINGLE: dict[str, Callable[[int], Awaitable[None]]] = {
    "404-new": lambda port: request_new(port, NOT_FOUND),
    "400": lambda port: request_new(port, BAD),
    "ws-reset": ws_reset,
    "ws-reaped": ws_reaped,
}


async def events(kind: str, port: int, count: int, parallel: int) -> None:
    if kind == "404-keepalive":
        await asyncio.wait_for(keepalive(port, count), 600)
        return
    if kind == "mixed":
        kinds = itertools.cycle(("404-new", "404-keepalive", "400", "ws-reset", "ws-reaped"))
    else:
        kinds = itertools.repeat(kind)
    width = 300 if kind == "ws-reaped" else parallel  # they take seconds each
    left = count
    while left > 0:
        batch = min(left, width)
        todo: list[Awaitable[None]] = []
        for _ in range(batch):
            each = next(kinds)
            one = keepalive(port, 8, 1) if each == "404-keepalive" else SINGLE[each](port)
            todo.append(asyncio.wait_for(one, 60))  # a server that stops answering fails, not hangs
        results = await asyncio.gather(*todo, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            print(f"#   {len(failed)} of {batch} failed, e.g. {failed[0]!r}", flush=True)
        left -= batch


def measure(name: str, kind: str, args: argparse.Namespace) -> dict[str, object]:
    port = free_port()
    env = server_env(port, HOST="127.0.0.1", WS_PING_INTERVAL=str(PING_INTERVAL))
    server = subprocess.Popen(
        ["taskset", "-c", args.server_cores, *SERVERS["moscow_clock"]],
        cwd=args.checkouts.get(name, ROOT),
        env=env,
        preexec_fn=raise_open_files,
    )
    try:
        wait_ready(port)
        asyncio.run(events(kind, port, args.warmup, args.parallel))
        time.sleep(1)
        before = rss_bytes(process_tree(server.pid))
        started = time.monotonic()
        asyncio.run(events(kind, port, args.events, args.parallel))
        took = time.monotonic() - started
        time.sleep(1)
        after = rss_bytes(process_tree(server.pid))
    finally:
        server.terminate()
        server.wait(15)
    growth = (after - before) / 1e6
    return {
        "server": name,
        "kind": kind,
        "events": args.events,
        "seconds": round(took, 1),
        "rss_before_mb": round(before / 1e6, 1),
        "rss_after_mb": round(after / 1e6, 1),
        "mb_per_1000": round(growth * 1000 / args.events, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=20, help="events in flight at once")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--server-cores", default="0")
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--hostile",
        type=int,
        metavar="PORT",
        help="instead: run the hostile mix against the server on PORT (bench/soak.py)",
    )
    parser.add_argument("--seconds", type=float, default=60, help="with --hostile")
    parser.add_argument(
        "--rates",
        default=HOSTILE_RATES,
        help="with --hostile: KIND=PER_SECOND,... (404-new, 404-keepalive, 400, ws-clean, "
        "ws-vanished, ws-reset)",
    )
    args = parser.parse_args()
    if args.hostile is not None:
        rates = {k: float(v) for k, v in (item.split("=") for item in args.rates.split(","))}
        print(json.dumps(asyncio.run(hostile(args.hostile, args.seconds, rates))))
        return
    args.checkouts = {}
    for item in args.checkout:
        name, path = item.split("=", 1)
        args.checkouts[name] = Path(path).resolve()
    raise_open_files()
    names = ["moscow_clock", *args.checkouts]
    print(f"# {machine()}; {args.events} events after {args.warmup}; load {loadavg()}")
    print(f"{'kind':<15}" + "".join(f"{n + ' MB/1000':>22}" for n in names), flush=True)
    rows = []
    for kind in args.kinds.split(","):
        found = [measure(name, kind, args) for name in names]
        rows.extend(found)
        print(f"{kind:<15}" + "".join(f"{r['mb_per_1000']:>22.2f}" for r in found), flush=True)
    print(f"# load after {loadavg()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
