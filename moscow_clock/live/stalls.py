"""Whole-process stalls, measured: event-loop lag and garbage-collection pauses.

Every client is late by as long as the process stops, so stalls are what
limits one process, not the average cost of a tick. They feed /metrics (two
histograms) and the admission gate (the process's own lag, sustained,
against LOOP_LAG_BUDGET: `LoopLag.behind`).

- `LoopLag`: a task that asks to wake every `period` and records how late it
  woke. It costs one timer per period (20 a second), nothing per client.
- `GcPauses`: the duration of every collection, from `gc.callbacks`.

How the collector is kept from stalling is process policy, in the server
layer (`server/collector.py`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..core.capacity import SustainedLag

log = logging.getLogger(__name__)

# Samples kept for the metrics between two scrapes/updates, at most.
MAX_SAMPLES = 10_000
# A pause or lag this long is logged as a warning, beside the histograms.
WORTH_LOGGING_S = 0.1
# Collections are logged from a lower bar than loop lags, with their CPU
# time: on a VM a "pause" can be mostly time the process was not running at
# all (docs/PERFORMANCE.md, Figures the code cites).
GC_WORTH_LOGGING_S = 0.05


class _Samples:
    """Recent samples for the metrics (taken once a second)."""

    __slots__ = ("samples",)

    def __init__(self) -> None:
        self.samples: list[float] = []

    def add(self, value: float) -> None:
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(value)

    def take(self) -> list[float]:
        taken, self.samples = self.samples, []
        return taken


class LoopLag:
    """How late the event loop runs a timer, sampled every `period`.

    A stall is also told apart by cause: "own" if this thread was on the CPU
    for most of it (our work, a collection), "host" if not (the process was
    not scheduled: a busy or throttled host). Only its own lag says the
    process has more work than it can do, so only that feeds `behind`: a
    host that steals the CPU would otherwise make every process on it
    refuse the clients it could serve."""

    def __init__(
        self,
        period: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        budget_s: float = 0.0,
    ) -> None:
        self.period = period
        self._clock = clock
        self._samples = _Samples()
        self.stalls: Counter[str] = Counter()  # lags over WORTH_LOGGING_S, by cause
        self.sustained = SustainedLag(budget_s)

    def record(self, lag: float, cpu: float | None = None) -> None:
        now = self._clock()
        self._samples.add(lag)
        own = cpu is None or cpu >= (lag + self.period) / 2
        if own:
            self.sustained.record(lag, now)
        if lag >= WORTH_LOGGING_S:
            cause = "own" if own else "host"
            self.stalls[cause] += 1
            log.warning(
                "event loop stalled",
                extra={
                    "lag_ms": round(lag * 1000, 1),
                    "cpu_ms": None if cpu is None else round(cpu * 1000, 1),
                    "cause": cause,
                },
            )

    def take_samples(self) -> list[float]:
        return self._samples.take()

    def behind(self) -> bool:
        """Whether the loop has fallen behind by its own work (with
        hysteresis: core/capacity.SustainedLag); False with no budget."""
        return self.sustained.behind(self._clock())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self.period
            cpu = time.thread_time()
            await asyncio.sleep(self.period)
            self.record(max(0.0, loop.time() - asked), time.thread_time() - cpu)


class GcPauses:
    """Every collection's duration (seconds) and generation, from gc.callbacks."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started = 0.0
        self._cpu_started = 0.0
        self._samples: list[tuple[int, float]] = []
        self.worst = 0.0

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
            self._cpu_started = time.thread_time()
            return
        pause = self._clock() - self._started
        generation = int(info.get("generation", 2))
        if len(self._samples) < MAX_SAMPLES:
            self._samples.append((generation, pause))
        self.worst = max(self.worst, pause)
        if pause >= GC_WORTH_LOGGING_S:
            log.warning(
                "garbage collection pause",
                extra={
                    "generation": generation,
                    "pause_ms": round(pause * 1000, 1),
                    "cpu_ms": round((time.thread_time() - self._cpu_started) * 1000, 1),
                },
            )

    def take_samples(self) -> list[tuple[int, float]]:
        taken, self._samples = self._samples, []
        return taken

    def install(self) -> None:
        if self.callback not in gc.callbacks:
            gc.callbacks.append(self.callback)

    def uninstall(self) -> None:
        if self.callback in gc.callbacks:
            gc.callbacks.remove(self.callback)
