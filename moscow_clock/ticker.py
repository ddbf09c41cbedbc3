"""The one ticker per process and its fan-out to every connected client.

The ticker sleeps to each whole second, encodes the tick once and publishes it
by replacing an `asyncio.Event`: every waiting client wakes with the newest
tick. Nothing is queued per client, so a client that is slow to send simply
picks up the newest tick when it is ready again (stale ticks are dropped), and
a stalled client costs no memory and delays no one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from .clock import Clock, Tick, make_tick, next_second_ms, second_start_ms, wall_clock_ms

log = logging.getLogger(__name__)

type Sleep = Callable[[float], Awaitable[object]]


class TickerClosed(Exception):
    """The process is shutting down; clients should be told to go away."""


class Ticker:
    def __init__(self, clock: Clock = wall_clock_ms, sleep: Sleep = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._latest: Tick | None = None
        # Ticks are numbered: a cursor is "the last tick I sent", which stays
        # right even if the wall clock steps back and epoch_ms repeats.
        self._seq = 0
        self._published = asyncio.Event()
        self._closed = False
        self._clients = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def clients(self) -> int:
        return self._clients

    async def run(self) -> None:
        """Publish a tick just after every whole second until closed."""
        while not self._closed:
            target = next_second_ms(self._clock())
            upcoming = make_tick(target)  # encode before the boundary, not after
            while (now := self._clock()) < target:
                # asyncio sleeps on the monotonic clock; re-check the wall
                # clock in case the two drifted or the sleep returned early.
                await self._sleep((target - now) / 1000)
            due = second_start_ms(now)
            # After a stall (suspend, overloaded host) skip to the current
            # second instead of replaying the missed ones.
            self.publish(upcoming if due == target else make_tick(due))

    def publish(self, tick: Tick) -> None:
        self._latest = tick
        self._seq += 1
        published, self._published = self._published, asyncio.Event()
        published.set()

    async def next_tick(self, cursor: int) -> tuple[int, Tick]:
        """The newest tick after `cursor` and its own cursor, waiting if needed."""
        while True:
            if self._closed:
                raise TickerClosed
            if self._seq > cursor and self._latest is not None:
                return self._seq, self._latest
            await self._published.wait()

    @contextmanager
    def subscription(self) -> Iterator[int]:
        """Count a client in for its lifetime; yields the cursor for its first
        `next_tick`: a new client waits for the next whole second rather than
        getting a tick that is already up to a second old."""
        if self._closed:
            raise TickerClosed
        self._clients += 1
        self._idle.clear()
        try:
            yield self._seq
        finally:
            self._clients -= 1
            if self._clients == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Tell every client to go away and wait until they have; True if all left."""
        self.close()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d websocket clients still open after %.1f s", self._clients, timeout)
            return False
        return True

    def close(self) -> None:
        self._closed = True
        self._published.set()
