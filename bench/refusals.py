"""What a refused websocket handshake costs the server: CPU per refusal.

A full server (`MAX_CONNECTIONS=1`, one client admitted, every later
handshake refused, as at any saturation) on core 0; from core 1, `--count` raw upgrade requests,
`--concurrency` at a time, each read until the server closes. The server's
CPU (utime + stime of its process) over the flood, divided by the
refusals. `--split` sends each head in two writes 20 ms apart, so the
server's first read is not a whole upgrade and the app's gate refuses it
(the path every refusal took before the server refused from the first
bytes):

    python -m bench.refusals            # refused by the server (shed)
    python -m bench.refusals --split    # refused by the app (full)
    python -m bench.refusals --probe    # the page's probe, a plain GET /ws (shed)

`--probe` sends the page's probe instead of a handshake (static/js/
backoff.js): a plain `GET /ws`, which the server refuses from the first
bytes like a handshake while the app sheds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time
from contextlib import suppress

from bench.run import (
    CLK_TCK,
    free_port,
    loadavg,
    machine,
    raise_open_files,
    scrape,
    server_env,
    wait_ready,
)
from tests.support.rawws import HANDSHAKE, open_raw


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


PROBE = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n"


async def refuse(port: int, split: bool, statuses: dict[int, int], probe: bool = False) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    head = (PROBE if probe else HANDSHAKE).format(port=port, key=key).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if split:
            writer.write(head[:30])
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(head[30:])
        else:
            writer.write(head)
        await writer.drain()
        reply = b""
        with suppress(ConnectionError):
            while chunk := await reader.read(65536):
                reply += chunk
                if split and reply.endswith(b"0\r\n\r\n"):
                    break  # the app's chunked reply is whole; it may keep the connection
        status = int(reply.split(b" ", 2)[1]) if reply else 0
        statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def flood(
    port: int, count: int, concurrency: int, split: bool, probe: bool = False
) -> dict[int, int]:
    statuses: dict[int, int] = {}
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            await refuse(port, split, statuses, probe)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--split", action="store_true")
    parser.add_argument("--probe", action="store_true", help="the page's plain GET /ws")
    args = parser.parse_args()
    raise_open_files()
    port = free_port()
    env = server_env(port, HOST="127.0.0.1", MAX_CONNECTIONS="1")
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "moscow_clock"],
        env=env,
        start_new_session=True,
    )
    try:
        wait_ready(port)
        admitted = open_raw(port)  # the one place: every later handshake is refused
        time.sleep(2.5)
        os.sched_setaffinity(0, {1})
        load = loadavg()
        before, started = cpu_s(process.pid), time.monotonic()
        statuses = asyncio.run(flood(port, args.count, args.concurrency, args.split, args.probe))
        used, wall = cpu_s(process.pid) - before, time.monotonic() - started
        refused = {k: v for k, v in scrape(port).items() if "refused_total" in k}
        admitted.close()
    finally:
        process.terminate()
        process.wait(15)
    print(f"# {machine()}; load {load} -> {loadavg()}")
    kind = "probes" if args.probe else "handshakes"
    print(
        f"{'split (app)' if args.split else 'whole (server)'}: {args.count} {kind},"
        f" statuses {statuses}, {refused}; server CPU {used:.2f} s in {wall:.1f} s:"
        f" {1e6 * used / args.count:.0f} us per refusal, {args.count / wall:.0f} refusals/s"
    )


if __name__ == "__main__":
    main()
