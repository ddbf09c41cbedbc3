"""Liveness of websocket peers: one pinger per process, and the read timeout that reaps.

Hypercorn's own ping task per connection is off (a task and a timer each, and
it held shutdown open for an interval). Here one task pings every open
websocket once per interval; every live client answers now and then, so a
connection that reads nothing at all for three intervals (no pong, no
message) is closed by Hypercorn's read timeout: clients that vanished
without a FIN are reaped. Everything about reaping is configured here.
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

# Websockets pinged between two yields to the event loop.
PING_CHUNK = 512
# Intervals of silence after which a peer counts as gone.
SILENT_INTERVALS = 3


class _Watched:
    streams: ClassVar[weakref.WeakSet[WSStream]] = weakref.WeakSet()
    failed: ClassVar[int] = 0  # pings that raised, since start


def failed_pings() -> int:
    """Pings that failed with an error since start (a closing stream is not one:
    Hypercorn drops a ping it cannot send)."""
    return _Watched.failed


def configure(config: Config, interval: float) -> None:
    """Hypercorn's settings for reaping: its pings off, the read timeout on."""
    config.websocket_ping_interval = None
    config.read_timeout = SILENT_INTERVALS * interval  # type: ignore[assignment]


def watch(stream: WSStream) -> None:
    """Ping `stream` from now on (until it is gone)."""
    _Watched.streams.add(stream)


async def ping_forever(interval: float) -> None:
    """Ping every open websocket once per `interval`."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        for done, stream in enumerate(list(_Watched.streams), start=1):
            if stream.closed:
                continue
            # Eager: a ping the kernel takes at once costs no task switch.
            asyncio.Task(_ping(stream), loop=loop, eager_start=True)
            if done % PING_CHUNK == 0:
                await asyncio.sleep(0)


async def _ping(stream: WSStream) -> None:
    try:
        await stream._send_wsproto_event(Ping())
    except Exception:
        # Not a closing stream (that is no error): something is wrong, and
        # without pings vanished peers are never reaped. Counted; the first
        # with its traceback, then every hundredth.
        _Watched.failed += 1
        if _Watched.failed % 100 == 1:
            log.warning("ping failed (%d so far)", _Watched.failed, exc_info=True)
