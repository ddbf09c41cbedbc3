"""A cheap websocket load generator: many clients per process, no task each.

One `epoll` loop drives every socket of a worker process through a small
sans-I/O state machine (connect, handshake, frames). Arrival times come from
the kernel (`SO_TIMESTAMPNS`), not from when this loop got round to a socket,
so ten thousand ticks landing at once are timed as they arrived rather than
as late as the last one was parsed.

The measured window is a whole number of ticks: the seconds
[start, start + seconds) by the ticks' own `epoch_ms`, read until a grace
period after the last one, so a client that got every tick counts exactly
`seconds` of them. Lateness is kept per second as a histogram of whole
milliseconds (exact pooling across workers, and the worst second's p99).

With `--reconnect` a client behaves like the page (static/js/connection.js):
a lost connection (close frame, reset, a refused handshake, 4.5 s of silence,
a connect unanswered for 15 s) is retried as static/js/backoff.js says: after
a websocket that opened, "equal jitter" doubling from 250-500 ms up to 10 s;
after a connect that never opened, the page's probe (a plain GET of /ws, 5 s
at most) picks the schedule: 503 with Retry-After is busy (Retry-After..2x,
then x4 a step to 60 s), no answer is down (x2 to 4 s; a refused connect is
taken as down without a probe, as the probe would be refused too, at no cost
to the server), any other answer x4 to 60 s. A change of kind starts its
schedule afresh; a tick resets it. A 1001 close that asks to "reconnect
within N ms" is retried at a uniformly random moment within N ms instead.
As the page was before the probe: `--no-probe` (x4 to 60 s after every
connect that never opened); before that, `--no-probe --ignore-hint
--connect-timeout 4.5 --never-opened-cap 10 --never-opened-growth 2`.
Reconnects go to `--reconnect-port` (the surviving server behind a balancer).
A client's first connect is patient (no watchdog, no retry: the ramp is not
the test) unless `--retry-first`.

Run by `bench/run.py`, `bench/soak.py`, `bench/storm.py`; a worker prints one
JSON summary line when done.
"""

from __future__ import annotations

import argparse
import base64
import errno
import heapq
import json
import math
import os
import random
import re
import select
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.rawws import CLOSE, PING, PONG, TEXT, client_frame, server_frames, text_frame

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("@ll")
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)

CONNECTING, HANDSHAKING, OPEN, CLOSED, WAITING = range(5)
# The page's constants (static/js/connection.js).
SILENCE_S = 4.5
CONNECT_TIMEOUT_S = 15.0
BACKOFF_BASE_MS = 500
BACKOFF_CAP_MS = 10_000  # RETRY_CAP_MS: after a websocket that opened
NEVER_OPENED_CAP_MS = 60_000  # after a connect that never opened
NEVER_OPENED_GROWTH = 4  # the step after a connect that never opened
DOWN_CAP_MS = 4_000  # while nothing answers
MAX_RETRY_AFTER_MS = 60_000
PROBE_TIMEOUT_S = 5.0


HINT = re.compile(rb"reconnect within (\d+) ms")
MAX_SPREAD_MS = 30_000


def reconnect_within_ms(payload: bytes) -> float:
    """`reconnectWithinMs` of static/js/connection.js, from a close frame."""
    if len(payload) < 2 or int.from_bytes(payload[:2], "big") != 1001:
        return 0.0
    asked = HINT.search(payload[2:])
    return min(MAX_SPREAD_MS, int(asked[1])) if asked else 0.0


def backoff_delay_ms(
    attempt: int, rand: float, cap_ms: float = BACKOFF_CAP_MS, growth: float = 2
) -> float:
    """`backoffDelay` of static/js/connection.js, exactly."""
    ceiling = min(cap_ms, BACKOFF_BASE_MS * growth**attempt)
    return ceiling / 2 + rand * (ceiling / 2)


def retry_delay_ms(kind: str, attempt: int, rand: float, retry_after_ms: float = 0) -> float:
    """`retryDelay` of static/js/backoff.js, exactly."""
    if kind == "opened":
        return backoff_delay_ms(attempt, rand, BACKOFF_CAP_MS, 2)
    if kind == "down":
        return backoff_delay_ms(attempt, rand, DOWN_CAP_MS, 2)
    if kind == "busy":
        base = max(2 * retry_after_ms, BACKOFF_BASE_MS)
        ceiling = min(NEVER_OPENED_CAP_MS, base * NEVER_OPENED_GROWTH**attempt)
        return max(retry_after_ms, ceiling / 2 + rand * (ceiling / 2))
    return backoff_delay_ms(attempt, rand, NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH)


def classify_probe(head: bytes | None) -> tuple[str, float]:
    """`classifyProbe` of static/js/backoff.js, from the probe's response head."""
    if head is None:
        return "down", 0.0
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b""
    wait = re.search(rb"\r\nretry-after:[ \t]*(\d+)[ \t]*(?:\r\n|$)", head, re.IGNORECASE)
    if status == b"503" and wait:
        return "busy", min(int(wait[1]) * 1000, MAX_RETRY_AFTER_MS)
    if status in (b"502", b"503", b"504"):
        return "down", 0.0
    return "refused", 0.0


@dataclass(slots=True)
class Client:
    sock: socket.socket | None
    fd: int
    port: int
    state: int = CONNECTING
    inbox: bytearray = field(default_factory=bytearray)
    ticks: int = 0
    sync_sent_ms: float | None = None
    opened_wall: float = 0.0  # when the websocket last opened
    last_heard: float = 0.0  # monotonic, for the page's silence watchdog
    attempt: int = 0  # the page's backoff attempt counter
    failure: str = ""  # the kind of the last failures (backoff.js), "" after a tick
    probing: bool = False  # this socket is the page's probe, a plain GET of /ws
    lost_at: float | None = None  # wall time the first connection was lost
    back_at: float | None = None  # wall time of the first tick after that
    index: int = 0  # in `everyone`


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
    everyone: list[Client] = []
    per_second: dict[int, Counter[int]] = {}
    rtts: list[float] = []
    failures: Counter[str] = Counter()
    drops: Counter[str] = Counter()  # open clients lost, by how
    handshakes_at: list[float] = []  # wall times of successful handshakes (reconnects)
    connect_failures = 0
    dropped = 0
    retries: list[tuple[float, int]] = []  # (monotonic due, index in everyone)
    handshake = (
        "GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    )
    probe_request = "GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    probes: Counter[str] = Counter()
    started = time.monotonic()
    wall_offset = time.time() - started
    ramp_interval = 1.0 / args.rate
    next_open = started
    opened = 0
    to_open = args.clients  # grows as churn replaces clients
    ramp_end = started + args.clients / args.rate + args.settle
    window_start = math.ceil(ramp_end + wall_offset)  # whole wall seconds (epoch)
    window_end = window_start + int(args.seconds)
    measure_from = window_start - wall_offset
    stop_at = window_end + args.grace - wall_offset
    next_churn = ramp_end + 1.0
    next_sync = measure_from
    next_watchdog = started
    sync_cursor = 0

    def open_socket(client: Client, port: int) -> None:
        nonlocal connect_failures
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex((args.host, port))
        client.port = port
        client.inbox = bytearray()
        client.last_heard = time.monotonic()
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            client.sock = None
            lost(client, "connect")
            return
        client.sock, client.fd, client.state = sock, sock.fileno(), CONNECTING
        clients[client.fd] = client
        epoll.register(client.fd, select.EPOLLOUT | select.EPOLLIN)

    def close(client: Client) -> None:
        if client.sock is None:
            return
        epoll.unregister(client.fd)
        clients.pop(client.fd, None)
        client.sock.close()
        client.sock = None

    def failed_as(client: Client, kind: str) -> str:
        if kind != client.failure:
            client.attempt = 0
        client.failure = kind
        return kind

    def probed(client: Client, head: bytes | None) -> None:
        """The probe's answer (None: none): wait as that kind of failure asks."""
        close(client)
        client.probing = False
        kind, retry_after = classify_probe(head)
        probes[kind] += 1
        kind = failed_as(client, kind)
        delay = retry_delay_ms(kind, client.attempt, random.random(), retry_after) / 1000
        client.attempt += 1
        client.state = WAITING
        heapq.heappush(retries, (time.monotonic() + delay, client.index))

    def lost(client: Client, why: str, spread_ms: float = 0.0) -> None:
        """The connection failed or ended; as the page does, retry if asked to."""
        nonlocal dropped, connect_failures
        if client.probing:
            probed(client, None)
            return
        was_open = client.state == OPEN
        close(client)
        client.state = CLOSED
        if was_open:
            dropped += 1
            drops[why] += 1
        elif why != "closed":
            connect_failures += 1
            failures[why] += 1
        if not args.reconnect or (client.opened_wall == 0.0 and not args.retry_first):
            return  # a first connect is patient unless asked (--retry-first)
        now_wall = time.time()
        if client.lost_at is None:
            client.lost_at = now_wall
        if spread_ms > 0 and not args.ignore_hint:
            delay = random.random() * spread_ms / 1000
        elif not was_open and not args.no_probe:
            if why == "connect":  # refused: the probe would be too, at no cost to the server
                probed(client, None)
            else:  # the page asks /ws over plain HTTP whether the server is busy
                client.probing = True
                open_socket(client, client.port)
            return
        else:
            if was_open:
                cap, growth = BACKOFF_CAP_MS, 2.0
                failed_as(client, "opened")
            else:
                cap, growth = args.never_opened_cap * 1000, args.never_opened_growth
            delay = backoff_delay_ms(client.attempt, random.random(), cap, growth) / 1000
            client.attempt += 1
        client.state = WAITING
        heapq.heappush(retries, (time.monotonic() + delay, client.index))

    def new_client() -> None:
        client = Client(None, -1, args.port, index=len(everyone))
        everyone.append(client)
        open_socket(client, args.port)

    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if args.churn and now >= next_churn:
            # Some clients leave (closing their socket) and as many new ones join.
            open_clients = [c for c in clients.values() if c.state == OPEN]
            for client in random.sample(open_clients, min(args.churn, len(open_clients))):
                close(client)
                client.state = CLOSED
            to_open += args.churn
            next_open = max(next_open, now)
            next_churn += 1.0
        while opened < to_open and now >= next_open:
            new_client()
            opened += 1
            next_open += ramp_interval
        while retries and retries[0][0] <= now:
            _, index = heapq.heappop(retries)
            client = everyone[index]
            if client.state == WAITING:
                open_socket(client, args.reconnect_port or args.port)
        if args.reconnect and now >= next_watchdog:
            # The page's watchdog: silence (no message, no completed connect) is a dead link.
            connect_timeout = args.connect_timeout
            silent = [
                c
                for c in clients.values()
                if now - c.last_heard
                > (
                    SILENCE_S
                    if c.state == OPEN
                    else PROBE_TIMEOUT_S
                    if c.probing
                    else connect_timeout
                )
            ]
            for client in silent:
                if client.opened_wall or args.retry_first:
                    lost(client, "silence")
            next_watchdog = now + 0.1
        # A few clients at a time measure sync round trips under load.
        if args.sync_every and now >= next_sync and now >= measure_from:
            open_clients = [c for c in clients.values() if c.state == OPEN]
            if open_clients:
                for _ in range(args.sync_batch):
                    client = open_clients[sync_cursor % len(open_clients)]
                    sync_cursor += 1
                    if client.sync_sent_ms is None and client.sock is not None:
                        client.sync_sent_ms = time.time() * 1000
                        try:
                            client.sock.send(sync_frame(client.sync_sent_ms))
                        except OSError:  # reset under us: counted, not fatal
                            lost(client, "reset")
            next_sync = now + args.sync_every
        for fd, events in epoll.poll(0.05):
            client = clients.get(fd)
            if client is None or client.sock is None:
                continue
            if client.state == CONNECTING:
                if events & (select.EPOLLERR | select.EPOLLHUP):
                    lost(client, "connect")
                    continue
                key = base64.b64encode(os.urandom(16)).decode()
                request = (probe_request if client.probing else handshake).format(
                    host=args.host, port=client.port, key=key
                )
                try:
                    client.sock.send(request.encode())
                except OSError:
                    lost(client, "connect")
                    continue
                client.state = HANDSHAKING
                epoll.modify(fd, select.EPOLLIN)
                continue
            try:
                data, ancdata, _, _ = client.sock.recvmsg(65536, ANCILLARY)
            except BlockingIOError:
                continue
            except OSError:
                lost(client, "reset")
                continue
            if not data:
                lost(client, "closed" if client.state == OPEN else "reset")
                continue
            arrived_ms = kernel_time_ms(ancdata) or time.time() * 1000
            client.last_heard = time.monotonic()
            client.inbox += data
            if client.state == HANDSHAKING:
                head, sep, rest = bytes(client.inbox).partition(b"\r\n\r\n")
                if not sep:
                    continue
                if client.probing:
                    probed(client, head)
                    continue
                if not head.startswith(b"HTTP/1.1 101"):
                    status = head.split(b" ", 2)[1].decode() if b" " in head else "?"
                    lost(client, f"http {status}")
                    continue
                client.state = OPEN
                client.opened_wall = arrived_ms / 1000
                if client.lost_at is not None:
                    handshakes_at.append(client.opened_wall)
                client.inbox = bytearray(rest)
            for opcode, payload in server_frames(client.inbox):
                if opcode == PING:
                    try:
                        client.sock.send(client_frame(PONG, payload))
                    except OSError:  # reset while its ping was read: lost, not a crash
                        lost(client, "reset")
                        break
                elif opcode == CLOSE:
                    lost(client, "closed", reconnect_within_ms(payload))
                    break
                elif opcode == TEXT:
                    if payload.startswith(b'{"type":"tick"'):
                        client.attempt = 0  # only a ticking connection counts as healthy
                        client.failure = ""
                        if client.lost_at is not None and client.back_at is None:
                            client.back_at = arrived_ms / 1000
                        epoch_ms = int(payload.split(b'"epoch_ms":', 1)[1].split(b",", 1)[0])
                        second = epoch_ms // 1000
                        if window_start <= second < window_end:
                            client.ticks += 1
                            late = per_second.setdefault(second - window_start, Counter())
                            late[max(0, round(arrived_ms - epoch_ms))] += 1
                    elif client.sync_sent_ms is not None:
                        rtts.append(arrived_ms - client.sync_sent_ms)
                        client.sync_sent_ms = None

    connected = sum(1 for c in clients.values() if c.state == OPEN)
    # Clients that were open for the whole window: each should have every tick.
    whole = [
        c.ticks for c in clients.values() if c.state == OPEN and c.opened_wall < window_start - 0.5
    ]
    moved = [c for c in everyone if c.lost_at is not None]
    for client in list(clients.values()):
        close(client)
    return {
        "clients": args.clients,
        "connected": connected,
        "connect_failures": connect_failures,
        "failures": dict(failures),
        "drops": dict(drops),
        "probes": dict(probes),
        "dropped": dropped,
        "seconds": int(args.seconds),
        "window_start": window_start,
        "ticks": whole,
        "per_second": {str(s): {str(ms): n for ms, n in c.items()} for s, c in per_second.items()},
        "rtts": rtts,
        "moved": [[c.lost_at, c.back_at] for c in moved],
        "handshakes_at": handshakes_at,
        "cpu_s": time.process_time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--rate", type=float, default=2000, help="connections opened per second")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after the ramp")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds (ticks)")
    parser.add_argument("--grace", type=float, default=2.0, help="read on for late ticks")
    parser.add_argument("--sync-every", type=float, default=0.25, help="0 disables sync probes")
    parser.add_argument("--sync-batch", type=int, default=2)
    parser.add_argument("--churn", type=int, default=0, help="clients replaced per second")
    parser.add_argument("--reconnect", action="store_true", help="retry lost clients as the page")
    parser.add_argument("--reconnect-port", type=int, default=0, help="where retries go")
    parser.add_argument(
        "--retry-first",
        action="store_true",
        help="a first connect that fails is retried as well (otherwise it waits or gives up)",
    )
    parser.add_argument(
        "--ignore-hint", action="store_true", help="as the page was before: no 1001 hint"
    )
    parser.add_argument(
        "--no-probe",
        action="store_true",
        help="as the page was before: no probe of /ws after a connect that never opened",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT_S,
        help=f"seconds a connect may take (the page: {CONNECT_TIMEOUT_S}; before: {SILENCE_S})",
    )
    parser.add_argument(
        "--never-opened-cap",
        type=float,
        default=NEVER_OPENED_CAP_MS / 1000,
        help="seconds the backoff grows to after connects that never opened "
        f"(the page: {NEVER_OPENED_CAP_MS / 1000:.0f}; before: {BACKOFF_CAP_MS / 1000:.0f})",
    )
    parser.add_argument(
        "--never-opened-growth",
        type=float,
        default=NEVER_OPENED_GROWTH,
        help="the backoff's step after connects that never opened "
        f"(the page: x{NEVER_OPENED_GROWTH}; before: x2)",
    )
    print(json.dumps(run(parser.parse_args())), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
