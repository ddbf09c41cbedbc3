"""A cheap websocket load generator: many clients per process, no task each.

One `epoll` loop drives every socket of a worker process through a small
sans-I/O state machine (connect, handshake, frames). Arrival times come from
the kernel (`SO_TIMESTAMPNS`), not from when this loop got round to a socket,
so ten thousand ticks landing at once are timed as they arrived rather than
as late as the last one was parsed.

Run by `bench/run.py`; a worker prints one JSON summary line when done.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import random
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from tests.support.rawws import CLOSE, PING, PONG, TEXT, client_frame, server_frames, text_frame

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("@ll")
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)

CONNECTING, HANDSHAKING, OPEN, CLOSED = range(4)


@dataclass(slots=True)
class Client:
    sock: socket.socket
    fd: int
    state: int = CONNECTING
    inbox: bytearray = field(default_factory=bytearray)
    ticks: int = 0
    sync_sent_ms: float | None = None


def sync_frame(t0: float) -> bytes:
    return text_frame(json.dumps({"type": "sync", "t0": t0}))


def kernel_time_ms(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanos = TIMESPEC.unpack_from(data)
            return seconds * 1000 + nanos / 1e6
    return None


def run(args: argparse.Namespace) -> dict[str, object]:
    epoll = select.epoll()
    clients: dict[int, Client] = {}
    lateness: list[float] = []
    rtts: list[float] = []
    connect_failures = 0
    dropped = 0
    handshake = (
        f"GET /ws HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
    started = time.monotonic()
    ramp_interval = 1.0 / args.rate
    next_open = started
    opened = 0
    to_open = args.clients  # grows as churn replaces clients
    next_churn = started + args.clients / args.rate + args.settle + 1.0
    measure_from = started + args.clients / args.rate + args.settle
    measure_until = measure_from + args.seconds
    next_sync = measure_from
    sync_cursor = 0

    def close(client: Client, lost: bool) -> None:
        nonlocal dropped
        if client.state == CLOSED:
            return
        if lost and client.state == OPEN:
            dropped += 1
        client.state = CLOSED
        epoll.unregister(client.sock.fileno())
        client.sock.close()

    while True:
        now = time.monotonic()
        if now >= measure_until:
            break
        if args.churn and now >= next_churn:
            # Some clients leave (closing their socket) and as many new ones join.
            open_clients = [c for c in clients.values() if c.state == OPEN]
            for client in random.sample(open_clients, min(args.churn, len(open_clients))):
                close(client, lost=False)
                del clients[client.fd]
            to_open += args.churn
            next_open = max(next_open, now)
            next_churn += 1.0
        while opened < to_open and now >= next_open:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex((args.host, args.port))
            if err not in (0, errno.EINPROGRESS):
                connect_failures += 1
                sock.close()
            else:
                clients[sock.fileno()] = Client(sock, sock.fileno())
                epoll.register(sock.fileno(), select.EPOLLOUT | select.EPOLLIN)
            opened += 1
            next_open += ramp_interval
        # A few clients at a time measure sync round trips under load.
        if args.sync_every and now >= next_sync and now >= measure_from:
            open_clients = [c for c in clients.values() if c.state == OPEN]
            if open_clients:
                for _ in range(args.sync_batch):
                    client = open_clients[sync_cursor % len(open_clients)]
                    sync_cursor += 1
                    if client.sync_sent_ms is None:
                        client.sync_sent_ms = time.time() * 1000
                        client.sock.send(sync_frame(client.sync_sent_ms))
            next_sync = now + args.sync_every
        for fd, events in epoll.poll(0.05):
            client = clients[fd]
            if client.state == CONNECTING:
                if events & (select.EPOLLERR | select.EPOLLHUP):
                    connect_failures += 1
                    close(client, lost=False)
                    continue
                key = base64.b64encode(os.urandom(16)).decode()
                client.sock.send(handshake.format(key=key).encode())
                client.state = HANDSHAKING
                epoll.modify(fd, select.EPOLLIN)
                continue
            try:
                data, ancdata, _, _ = client.sock.recvmsg(65536, ANCILLARY)
            except BlockingIOError:
                continue
            except OSError:
                close(client, lost=True)
                continue
            if not data:
                close(client, lost=True)
                continue
            arrived_ms = kernel_time_ms(ancdata) or time.time() * 1000
            client.inbox += data
            if client.state == HANDSHAKING:
                head, sep, rest = bytes(client.inbox).partition(b"\r\n\r\n")
                if not sep:
                    continue
                if not head.startswith(b"HTTP/1.1 101"):
                    connect_failures += 1
                    close(client, lost=False)
                    continue
                client.state = OPEN
                client.inbox = bytearray(rest)
            measuring = measure_from <= time.monotonic() < measure_until
            for opcode, payload in server_frames(client.inbox):
                if opcode == PING:
                    client.sock.send(client_frame(PONG, payload))
                elif opcode == CLOSE:
                    close(client, lost=True)
                    break
                elif opcode == TEXT:
                    if payload.startswith(b'{"type":"tick"'):
                        if measuring:
                            client.ticks += 1
                            epoch_ms = int(payload.split(b'"epoch_ms":', 1)[1].split(b",", 1)[0])
                            lateness.append(arrived_ms - epoch_ms)
                    elif client.sync_sent_ms is not None:
                        rtts.append(arrived_ms - client.sync_sent_ms)
                        client.sync_sent_ms = None

    connected = sum(1 for c in clients.values() if c.state == OPEN)
    ticks = [c.ticks for c in clients.values() if c.state == OPEN]
    for client in list(clients.values()):
        close(client, lost=False)
    random.shuffle(lateness)
    return {
        "clients": args.clients,
        "connected": connected,
        "connect_failures": connect_failures,
        "dropped": dropped,
        "seconds": args.seconds,
        "ticks": ticks,
        "lateness_sample": lateness[: args.sample],
        "lateness_count": len(lateness),
        "rtts": rtts,
        "cpu_s": time.process_time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000, help="connections opened per second")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the ramp")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--sync-every", type=float, default=0.25, help="0 disables sync probes")
    parser.add_argument("--sync-batch", type=int, default=2)
    parser.add_argument("--sample", type=int, default=200_000)
    parser.add_argument("--churn", type=int, default=0, help="clients replaced per second")
    print(json.dumps(run(parser.parse_args())), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
