"""The garbage collector kept off the clock's critical path (process policy).

A full collection walks every object the collector tracks, over a hundred
per websocket (Hypercorn's and asyncio's per-connection machinery), so at
10,000 clients one stopped the whole process whenever enough had changed,
and every client's tick was late by as much.

Here whatever survives any collection is moved out of the collector's sight
with `gc.freeze()` right after it, so each collection walks only what was
made since the one before (at most what the young generation's threshold
lets in). First tried: freezing once a second (a second of a reconnect
storm brings enough new objects for full collections over them to stall
the process), then after each generation-1 collection: every connection
re-arms its pending read (a coroutine, a future, a timer) whenever data
arrives, so the long gap between generation-1 collections left live
objects of every client to walk each time (docs/PERFORMANCE.md, Figures
the code cites). Frozen objects are still freed by reference counting the
moment they are dropped; what the collector no longer finds is cyclic
garbage among them, which is why `hypercorn/tcp.py` breaks the one cycle a
finished connection left behind (with it broken, closed connections leave no
cyclic garbage at all). Whatever might still leak that way is swept, all at
once, at a long interval, right after a tick's fan-out.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("moscow_clock.server")

# Sweeps (unfreeze, collect everything, freeze) this far apart: the one full
# collection that remains, bounding what a stray cycle among frozen objects
# could keep.
SWEEP_EVERY_S = 3600.0


class GcPolicy:
    """Freeze what survives each collection; sweep everything rarely."""

    def __init__(self, *, sweep_every: float = SWEEP_EVERY_S) -> None:
        self.sweep_every = sweep_every
        self.sweeps = 0
        self.freezes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._freeze_due = False

    @staticmethod
    def start_up() -> None:
        """Everything made while starting (modules, the app) lives forever."""
        gc.collect()
        gc.freeze()

    def after_collection(self, phase: str, info: dict[str, Any]) -> None:
        """A `gc.callbacks` hook: what survived a collection is out of the
        next one's way; freeze it (soon, outside the collector)."""
        if phase != "stop" or self._freeze_due:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._freeze_due = True
            self._loop.call_soon(self.freeze_survivors)

    def freeze_survivors(self) -> None:
        self._freeze_due = False
        gc.freeze()
        self.freezes += 1

    def sweep(self) -> int:
        """Everything back in sight, one full collection, frozen again."""
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
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
        self.start_up()
        gc.callbacks.append(self.after_collection)
        try:
            while True:
                await asyncio.sleep(self.sweep_every)
                # Just after a tick's fan-out, so no tick waits for the sweep.
                await asyncio.sleep((0.3 - wall() % 1.0) % 1.0)
                self.sweep()
        finally:
            gc.callbacks.remove(self.after_collection)
            gc.unfreeze()  # the interpreter's own behaviour back
