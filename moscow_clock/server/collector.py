"""The garbage collector kept off the clock's critical path, without keeping
dead objects alive (process policy).

A full collection walks every object the collector tracks, ~130 per
websocket (Hypercorn's and asyncio's per-connection machinery), so at 10,000
clients one stopped the whole process for a noticeable time, and every
client's tick was late by as much (docs/PERFORMANCE.md, "Stalls"). The way
out is `gc.freeze()`: frozen objects are walked by no collection. Its cost is
that cyclic garbage among frozen objects is never found; reference counting
still frees everything else the moment it is dropped.

So what is frozen must be what lives long:

- everything made while starting (modules, the app, templates);
- what has survived a *full* collection that took enough CPU to matter
  (`FREEZE_AFTER_S`): by then the unfrozen heap is mostly the websockets
  admitted since the last freeze (long-lived), and the transient objects of
  the requests in flight at that instant are a few among them.

The young generations are collected by CPython's own thresholds (bounded:
at most a few thousand new objects each). Full collections walk only what
is not frozen, which the rule above keeps small, and are let in after every
generation-1 collection (CPython's own rule still makes them wait until the
unfrozen old generation has grown by a quarter), not after ten: at ten, the
first full collection after a reconnect wave met ten generation-1
collections' worth of new objects at once. The policy before this one froze whatever survived *any*
collection, including the objects of every request and connection still in
flight, so each one's cyclic garbage (an exception's traceback, a parser's
generator) outlived it until an hourly sweep: RSS grew with every 404, 400,
reset or reaped client (issue 18; the figures are in docs/PERFORMANCE.md,
"Memory under churn"). What a freeze can still catch (the cycles of what
was in flight at that instant) is bounded per freeze, not per event, and is
freed by the sweep: everything unfrozen, one full collection, frozen again,
at a long interval, right after a tick's fan-out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("moscow_clock.server")

# Sweeps (unfreeze, collect everything, freeze) this far apart: bounding what
# a stray cycle among frozen objects could keep.
SWEEP_EVERY_S = 3600.0
# A full collection of the unfrozen heap that took this much CPU freezes what
# it left: the heap has grown by enough long-lived objects that walking them
# again at every full collection would start to cost ticks. CPU time, not
# wall time: on a busy host a small collection can take long by the wall
# clock, and each freeze it asked for would keep what was in flight then.
FREEZE_AFTER_S = 0.005
# Generation-1 collections between two full ones (CPython's default: 10).
FULL_AFTER = 1


class GcPolicy:
    """Freeze at start-up and after a full collection that took long; leave
    young collections to CPython; sweep everything rarely."""

    def __init__(
        self,
        *,
        sweep_every: float = SWEEP_EVERY_S,
        freeze_after: float = FREEZE_AFTER_S,
        clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.sweep_every = sweep_every
        self.freeze_after = freeze_after
        self.sweeps = 0
        self.freezes = 0
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: float | None = None  # of the full collection under way
        self._freeze_due = False
        self._sweeping = False

    @staticmethod
    def start_up() -> None:
        """Everything made while starting (modules, the app) lives forever."""
        gc.collect()
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_AFTER)

    def on_collection(self, phase: str, info: dict[str, Any]) -> None:
        """A `gc.callbacks` hook: a full collection that took long asks for
        a freeze of what it left (soon, on the loop, outside the collector)."""
        if info.get("generation") != 2 or self._sweeping:
            return
        if phase == "start":
            self._started = self._clock()
            return
        started, self._started = self._started, None
        if started is None or self._freeze_due or self._clock() - started < self.freeze_after:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._freeze_due = True
            self._loop.call_soon(self.freeze_survivors)

    def freeze_survivors(self) -> None:
        """What the last full collection left is alive; out of every later
        collection's way."""
        self._freeze_due = False
        gc.freeze()
        self.freezes += 1

    def sweep(self) -> int:
        """Everything back in sight, one full collection, frozen again."""
        started = time.perf_counter()
        self._sweeping = True  # (its collection asks for no freeze: it ends in one)
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._sweeping = False
        self.sweeps += 1
        pause_ms = round((time.perf_counter() - started) * 1000)
        # Counting the frozen objects walks them all: done only here, where the
        # whole heap was just walked anyway. It should follow the clients, not
        # grow with the connections ever made.
        frozen = gc.get_freeze_count()
        log.info(
            "full garbage collection sweep",
            extra={"collected": found, "pause_ms": pause_ms, "frozen": frozen},
        )
        return found

    async def run(self, wall: Callable[[], float] = time.time) -> None:
        self._loop = asyncio.get_running_loop()
        thresholds = gc.get_threshold()
        self.start_up()
        gc.callbacks.append(self.on_collection)
        try:
            while True:
                await asyncio.sleep(self.sweep_every)
                # Just after a tick's fan-out, so no tick waits for the sweep.
                await asyncio.sleep((0.3 - wall() % 1.0) % 1.0)
                self.sweep()
        finally:
            gc.callbacks.remove(self.on_collection)
            gc.unfreeze()  # the interpreter's own behaviour back
            gc.set_threshold(*thresholds)
