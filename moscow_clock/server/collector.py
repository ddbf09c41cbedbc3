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
right after a tick's fan-out.

Bounded per freeze is still unbounded over time: at steady churn a freeze
comes every few minutes, and the garbage each one caught piled up until the
hourly sweep (issue 18: a sweep after 10 minutes of the hostile soak found
~6,000 dead objects among the frozen, ~1.1 MB, the soak's whole slope). A
sweep walks the whole heap, so at 10,000 clients it is a stall of its own
and stays hourly; where the next sweep is predicted cheap (the last one's
CPU time, scaled by how much the heap has grown since, in pymalloc's
allocated blocks: under `SWEEP_CHEAP_S`), it comes after `SWEEP_SOON_S`.

What the collector and reference counting free goes back to the allocator,
not always to the kernel: glibc's malloc keeps freed memory in its heaps
(fragmentation between live blocks, above all) and returns it only when a
large block at the top is free. Under steady churn that retained memory
grew the RSS by ~2 MB per 10 minutes although Python's own heap was flat
(issue 18; docs/PERFORMANCE.md, "Memory under churn"). So, once a minute
after a tick's fan-out, and after every freeze and sweep, `malloc_trim(0)`
gives the free pages of every heap back (it is glibc's: elsewhere, such as
musl, there is none, and nothing is done). It walks only the free chunks,
not the heap, so it costs a fraction of a collection.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("moscow_clock.server")

# Sweeps (unfreeze, collect everything, freeze) this far apart: bounding what
# a stray cycle among frozen objects could keep.
SWEEP_EVERY_S = 3600.0
# ... or this far apart while one is predicted to take less CPU than
# SWEEP_CHEAP_S (inside the 50-ms pause budget, with room for the host).
SWEEP_SOON_S = 300.0
SWEEP_CHEAP_S = 0.03
# A full collection of the unfrozen heap that took this much CPU freezes what
# it left: the heap has grown by enough long-lived objects that walking them
# again at every full collection would start to cost ticks. CPU time, not
# wall time: on a busy host a small collection can take long by the wall
# clock, and each freeze it asked for would keep what was in flight then.
FREEZE_AFTER_S = 0.005
# Generation-1 collections between two full ones (CPython's default: 10).
FULL_AFTER = 1
# Free memory handed back to the kernel this often (and after every freeze
# and sweep): what one minute of churn leaves in malloc's heaps.
TRIM_EVERY_S = 60.0


def malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class GcPolicy:
    """Freeze at start-up and after a full collection that took long; leave
    young collections to CPython; sweep everything rarely."""

    def __init__(
        self,
        *,
        sweep_every: float = SWEEP_EVERY_S,
        freeze_after: float = FREEZE_AFTER_S,
        trim_every: float = TRIM_EVERY_S,
        sweep_soon: float = SWEEP_SOON_S,
        clock: Callable[[], float] = time.process_time,
        trim: Callable[[], object] | None = None,
        heap: Callable[[], int] = sys.getallocatedblocks,
    ) -> None:
        self.sweep_every = sweep_every
        self.sweep_soon = sweep_soon
        self._heap = heap  # its size; 0: unknown (pymalloc is off)
        self._last_cost: tuple[float, int] | None = None  # CPU, heap size
        self.freeze_after = freeze_after
        self.trim_every = trim_every
        self.sweeps = 0
        self.freezes = 0
        self.trims = 0
        self.worst_trim_s = 0.0
        self._trim = trim if trim is not None else malloc_trim()
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: float | None = None  # of the full collection under way
        self._freeze_due = False
        self._sweeping = False

    def start_up(self) -> None:
        """Everything made while starting (modules, the app) lives forever."""
        started = self._clock()
        gc.collect()
        gc.freeze()
        self._note_cost(self._clock() - started)
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
        self.trim()

    def trim(self) -> None:
        """Free memory back to the kernel, where malloc can say so."""
        if self._trim is None:
            return
        started = time.perf_counter()
        self._trim()
        self.trims += 1
        self.worst_trim_s = max(self.worst_trim_s, time.perf_counter() - started)

    def _note_cost(self, cpu: float) -> None:
        self._last_cost = (cpu, self._heap())

    def sweep_is_cheap(self) -> bool:
        """The last sweep's cost, scaled by the heap's growth since, is small."""
        if self._last_cost is None:
            return False
        cpu, size = self._last_cost
        return size > 0 and cpu * self._heap() / size < SWEEP_CHEAP_S

    def sweep(self) -> int:
        """Everything back in sight, one full collection, frozen again."""
        started = time.perf_counter()
        cpu = self._clock()
        self._sweeping = True  # (its collection asks for no freeze: it ends in one)
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._sweeping = False
        self.sweeps += 1
        self._note_cost(self._clock() - cpu)
        self.trim()
        pause_ms = round((time.perf_counter() - started) * 1000)
        # Counting the frozen objects walks them all: done only here, where the
        # whole heap was just walked anyway. It should follow the clients, not
        # grow with the connections ever made.
        frozen = gc.get_freeze_count()
        log.info(
            "full garbage collection sweep",
            extra={
                "collected": found,
                "pause_ms": pause_ms,
                "frozen": frozen,
                "worst_trim_ms": round(self.worst_trim_s * 1000, 1),
            },
        )
        return found

    async def run(self, wall: Callable[[], float] = time.time) -> None:
        self._loop = asyncio.get_running_loop()
        thresholds = gc.get_threshold()
        self.start_up()
        gc.callbacks.append(self.on_collection)
        clock = asyncio.get_running_loop().time
        swept = clock()
        try:
            while True:
                await asyncio.sleep(min(self.trim_every, self.sweep_soon, self.sweep_every))
                # Just after a tick's fan-out, so no tick waits for the sweep.
                await asyncio.sleep((0.3 - wall() % 1.0) % 1.0)
                since = clock() - swept
                if since >= self.sweep_every or (
                    since >= self.sweep_soon and self.sweep_is_cheap()
                ):
                    swept = clock()
                    self.sweep()  # (trims too)
                else:
                    self.trim()
        finally:
            gc.callbacks.remove(self.on_collection)
            gc.unfreeze()  # the interpreter's own behaviour back
            gc.set_threshold(*thresholds)
