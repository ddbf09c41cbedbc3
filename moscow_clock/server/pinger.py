"""Liveness of websocket peers: one pinger per process, spread over the interval,
and the read timeout that reaps.

Hypercorn's own ping task per connection is off (a task and a timer each, and
it held shutdown open for an interval). Here one task pings every open
websocket once per interval, but never all at once: the interval is cut into
slices of `STEP_S` and each slice pings its share of the connections, so each
connection has its own phase. (Pinging all 10,000 in one round brought 10,000
pongs back together, and their trip through Hypercorn's read path stalled the
loop for over a second every interval: docs/PERFORMANCE.md.) Every live client
answers now and then, so a connection that reads nothing at all for three
intervals (no pong, no message) is closed by Hypercorn's read timeout: clients
that vanished without a FIN are reaped. Everything about reaping is
configured here.

Why not the kernel's mechanisms instead (TCP keepalive, `TCP_USER_TIMEOUT`):
they only see the TCP peer. A client whose kernel still ACKs but whose page
is gone or hung, and every client behind a reverse proxy (the proxy is the TCP
peer), stay "alive" to the kernel forever; a websocket ping is end to end. And
a link that dies with ticks unacknowledged is already cut by the send timeout
(`hypercorn/tcp.py`) once its buffer fills, or by the read timeout here.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import ClassVar

from hypercorn.config import Config
from hypercorn.protocol.ws_stream import WSStream
from wsproto.events import Ping

log = logging.getLogger("moscow_clock.server")

# Intervals of silence after which a peer counts as gone.
SILENT_INTERVALS = 3
# How often the pinger wakes to ping its next slice of connections: at
# 10,000 clients and a 20 s interval, 50 pings (and later 50 pongs) per slice.
STEP_S = 0.1


class _Ring:
    """Every watched websocket, in the order they are pinged (weakly held: a
    connection that ends is dropped at its next turn, not kept for it)."""

    streams: ClassVar[list[weakref.ref[WSStream]]] = []
    failed: ClassVar[int] = 0  # pings that raised, since start


def failed_pings() -> int:
    """Pings that failed with an error since start (a closing stream is not one:
    Hypercorn drops a ping it cannot send)."""
    return _Ring.failed


def configure(config: Config, interval: float) -> None:
    """Hypercorn's settings for reaping: its pings off, the read timeout on."""
    config.websocket_ping_interval = None
    config.read_timeout = SILENT_INTERVALS * interval  # type: ignore[assignment]


def watch(stream: WSStream) -> None:
    """Ping `stream` from now on (until it is gone); its first ping comes
    within two intervals, well inside the read timeout of three."""
    _Ring.streams.append(weakref.ref(stream))


def watched() -> int:
    """Websockets in the ring (some may have closed since their last turn)."""
    return len(_Ring.streams)


def slices(count: int, parts: int) -> list[tuple[int, int]]:
    """`count` items cut into `parts` contiguous runs as equal as can be."""
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


async def ping_forever(interval: float, step: float = STEP_S) -> None:
    """Ping every open websocket once per `interval`, a slice every `step`.

    A round pings the connections watched when it began; newcomers join the
    next round behind them, so between two pings of one connection there is
    at most one interval (earlier ones that ended drop out ahead of it)."""
    loop = asyncio.get_running_loop()
    parts = max(1, round(interval / step))
    started = loop.time()
    while True:
        this_round, _Ring.streams = _Ring.streams, []
        alive: list[weakref.ref[WSStream]] = []
        for number, (first, last) in enumerate(slices(len(this_round), parts), start=1):
            for ref in this_round[first:last]:
                stream = ref()
                if stream is None or stream.closed:
                    continue
                alive.append(ref)
                # Eager: a ping the kernel takes at once costs no task switch.
                asyncio.Task(_ping(stream), loop=loop, eager_start=True)
            # On the schedule, not `step` after the work: a late slice does
            # not push every later one back.
            await asyncio.sleep(max(0.0, started + number * interval / parts - loop.time()))
        _Ring.streams[:0] = alive
        started += interval
        if loop.time() - started > interval:
            started = loop.time()  # fell a whole round behind (a suspended host): restart


async def _ping(stream: WSStream) -> None:
    try:
        ping = getattr(stream, "ping", None)  # ours (hypercorn/streams.py) awaits the pong
        await (ping() if ping is not None else stream._send_wsproto_event(Ping()))
    except Exception:
        # Not a closing stream (that is no error): something is wrong, and
        # without pings vanished peers are never reaped. Counted; the first
        # with its traceback, then every hundredth.
        _Ring.failed += 1
        if _Ring.failed % 100 == 1:
            log.warning("ping failed (%d so far)", _Ring.failed, exc_info=True)
