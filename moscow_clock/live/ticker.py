"""The one ticker per process and its fan-out to every connected client.

The ticker sleeps to each whole second, encodes the tick once, and offers it
to every subscriber in turn. An offer never waits: a subscriber that is idle
starts writing the tick (a write that the kernel takes at once finishes right
there, with no task switch); one still busy with an earlier write skips this
tick and gets the next. Nothing is queued per client, so a stalled client
costs no memory and delays no one. The fan-out yields to the event loop every
few hundred clients, so sync replies never wait behind all of it; but only
while yielding is cheap: once other work has held the fan-out up for
`YIELD_BUDGET_S` in total (a storm of handshakes, refusals under overload),
the rest of the tick goes out without yielding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..core.asgi import Message
from ..core.clock import Clock, Tick, make_tick, next_second_ms, second_start_ms, wall_clock_ms
from ..core.wire import FRAME, text_frame

log = logging.getLogger(__name__)

type Sleep = Callable[[float], Awaitable[object]]

# Subscribers served between two yields to the event loop during a fan-out.
FANOUT_CHUNK = 256
# The most a fan-out waits, summed over its yields, for other work. Each
# yield waits out one round of the event loop, and under a storm of
# connections a round is everything that is ready: with twice the clients
# offered, a fan-out's yields added up to seconds, every tick was late and
# the pages' silence watchdogs dropped the admitted clients too
# (docs/PERFORMANCE.md, Figures the code cites). Past
# this budget sync replies wait for the rest of the fan-out (at most its CPU,
# ~20 us a client), and only while the process is that busy; if that keeps
# the loop behind, the admission gate refuses newcomers (LOOP_LAG_BUDGET).
YIELD_BUDGET_S = 0.05
# Handshakes per second a process can take without its clients' ticks
# suffering (docs/PERFORMANCE.md, the reconnect storm): on shutdown, clients
# are asked to spread their reconnects so they arrive at about this rate.
RECONNECTS_PER_S = 1000.0
# The longest spread asked for (the page caps it too).
MAX_SPREAD_S = 30.0


def reconnect_spread_s(clients: int) -> float:
    """How long `clients` told to go away should spread their reconnects over
    (0: few enough that the page's own backoff is fine)."""
    spread = clients / RECONNECTS_PER_S
    return min(MAX_SPREAD_S, spread) if spread >= 1.0 else 0.0


@dataclass(frozen=True, slots=True)
class Broadcast:
    """One tick as every subscriber sends it: the ASGI messages are built once
    per tick, here, by the tick's owner (on the per-client path: no allocation)."""

    tick: Tick
    plain: Message  # for any ASGI server
    framed: Message  # with the finished frame, for a server that advertises it
    frame: bytes  # the finished frame, for a server that writes it at once

    @classmethod
    def of(cls, tick: Tick) -> Broadcast:
        plain = {"type": "websocket.send", "text": tick.text}
        frame = text_frame(tick.text)
        return cls(tick, plain, {**plain, FRAME: frame}, frame)

    @property
    def epoch_ms(self) -> int:
        return self.tick.epoch_ms


class Subscriber(Protocol):
    def offer(self, broadcast: Broadcast) -> bool:
        """Start sending `tick` unless still busy; never waits. Sent or not."""
        ...

    def go_away(self, reconnect_within_s: float = 0.0) -> None:
        """Start closing with 1001: the process is shutting down (clients may
        be asked to spread their reconnects over `reconnect_within_s`)."""
        ...


class Ticker:
    def __init__(
        self,
        clock: Clock = wall_clock_ms,
        sleep: Sleep = asyncio.sleep,
        yield_budget: float = YIELD_BUDGET_S,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.yield_budget = yield_budget
        self._subscribers: dict[Subscriber, None] = {}  # insertion-ordered set
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        # Plain counters, read by metrics.py once a second.
        self.delivered = 0  # ticks handed to clients
        self.skipped = 0  # ticks a busy client never got (it gets the next one)
        self.hurried = 0  # fan-outs that stopped yielding (the loop was that busy)
        self._fanout_s: list[float] = []  # how long each fan-out took, until taken

    @property
    def clients(self) -> int:
        return len(self._subscribers)

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
            await self.publish(upcoming if due == target else make_tick(due))

    def take_fanout_samples(self) -> list[float]:
        """The fan-out durations since the last call (for the metrics)."""
        samples, self._fanout_s = self._fanout_s, []
        return samples

    async def publish(self, tick: Tick) -> None:
        started = time.monotonic()
        waited = 0.0  # wall time spent in yields, others' work
        broadcast = Broadcast.of(tick)
        # A snapshot: clients may come and go while the fan-out yields.
        subscribers = list(self._subscribers)
        for done, subscriber in enumerate(subscribers, start=1):
            if subscriber.offer(broadcast):
                self.delivered += 1
            else:
                self.skipped += 1
            if done % FANOUT_CHUNK == 0 and waited < self.yield_budget:
                paused = time.monotonic()
                await asyncio.sleep(0)
                waited += time.monotonic() - paused
        if waited >= self.yield_budget:
            self.hurried += 1
        if subscribers:
            self._fanout_s.append(time.monotonic() - started)

    def join(self, subscriber: Subscriber) -> bool:
        """Offer `subscriber` every tick from the next whole second on, until
        it leaves; False (not joined) once the ticker is closing."""
        if self._closed:
            return False
        self._subscribers[subscriber] = None
        self._idle.clear()
        return True

    def leave(self, subscriber: Subscriber) -> None:
        """No more ticks for `subscriber` (it may not have joined)."""
        self._subscribers.pop(subscriber, None)
        if not self._subscribers:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Tell every client to go away and wait until they have; True if all left."""
        log.info("shutting down: closing %d websockets with 1001", self.clients)
        self.close()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d websocket clients still open after %.1f s", self.clients, timeout)
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        spread = reconnect_spread_s(len(self._subscribers))
        for subscriber in list(self._subscribers):
            subscriber.go_away(spread)
