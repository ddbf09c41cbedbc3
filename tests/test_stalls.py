"""Stalls, as pure decisions over injected measurements: the loop-lag and
GC-pause recorders, the collector policy, and the pinger's spreading of
pings (no timing thresholds: speed is the benchmark's). The admission gate
the loop lag feeds is tests/test_capacity.py's."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from moscow_clock.live.session import shutting_down
from moscow_clock.live.stalls import GcPauses, LoopLag
from moscow_clock.live.ticker import reconnect_spread_s
from moscow_clock.server import pinger
from moscow_clock.server.collector import GcPolicy


def test_a_stall_is_ours_if_we_were_on_the_cpu_for_it() -> None:
    lag = LoopLag(period=0.05, clock=lambda: 1.0)
    lag.record(0.5, cpu=0.5)  # busy all along: our own work
    lag.record(0.5, cpu=0.01)  # hardly ran: the host did not schedule us
    lag.record(0.05, cpu=0.0)  # not a stall
    assert lag.stalls == {"own": 1, "host": 1}


async def test_loop_lag_samples_the_running_loop() -> None:
    recorded = asyncio.Event()

    class Watched(LoopLag):
        def record(self, lag: float, cpu: float | None = None) -> None:
            super().record(lag, cpu)
            recorded.set()

    lag = Watched(period=0.01)
    task = asyncio.create_task(lag.run())
    async with asyncio.timeout(30):
        await recorded.wait()
    task.cancel()
    assert all(sample >= 0 for sample in lag.take_samples())


def test_gc_pauses_are_recorded_by_generation() -> None:
    pauses = GcPauses()
    pauses.install()
    pauses.install()  # once only
    try:
        gc.collect(1)
        gc.collect()
    finally:
        pauses.uninstall()
    assert pauses.callback not in gc.callbacks
    samples = pauses.take_samples()
    assert [generation for generation, _ in samples] == [1, 2]
    assert all(seconds >= 0 for _, seconds in samples)
    assert pauses.worst == max(seconds for _, seconds in samples)


class Node:
    def __init__(self) -> None:
        self.other: Any = None


def test_policy_freezes_survivors_and_a_sweep_finds_garbage_among_them() -> None:
    policy = GcPolicy()
    gc.collect()
    before = gc.get_freeze_count()
    try:
        policy.start_up()
        assert gc.get_freeze_count() > before
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle that survives, then dies frozen
        policy.freeze_survivors()
        frozen = gc.get_freeze_count()
        del a, b
        assert gc.collect() == 0  # the collector no longer sees it ...
        assert policy.sweep() >= 2  # ... until a sweep
        assert gc.get_freeze_count() < frozen
        assert policy.sweeps == 1
    finally:
        gc.unfreeze()


class Stopwatch:
    """The policy's clock: each reading moves it on by `step` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_policy_leaves_the_garbage_of_finished_requests_to_the_collector() -> None:
    """What was alive during young collections (a request in flight) and then
    dies in a cycle is found by the next full collection: it was not frozen
    (issue 18: the policy before froze it, and every 404 kept its ~23 KB)."""
    policy = GcPolicy(sweep_every=3600, clock=Stopwatch(0.0))
    thresholds = gc.get_threshold()
    task = asyncio.create_task(policy.run())
    try:
        await asyncio.sleep(0)  # started: frozen once, hooked in
        assert policy.on_collection in gc.callbacks
        assert gc.get_threshold()[2] == 1  # a full collection may follow every generation-1 one
        a, b = Node(), Node()
        a.other, b.other = b, a  # a request's objects, in a cycle
        gc.collect(0)
        gc.collect(1)
        gc.collect(2)  # quick: nothing frozen
        await asyncio.sleep(0)
        assert policy.freezes == 0
        del a, b  # the request is over
        assert gc.collect() >= 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert policy.on_collection not in gc.callbacks
    assert gc.get_threshold() == thresholds  # the interpreter's own back


async def test_policy_freezes_what_a_long_full_collection_left() -> None:
    """So full collections walk only what was made since: after one that
    took longer than `freeze_after` (the heap has grown by many long-lived
    objects, say a wave of new websockets), what it left is frozen; young
    collections never freeze."""
    policy = GcPolicy(sweep_every=3600, freeze_after=0.01, clock=Stopwatch(1.0))
    task = asyncio.create_task(policy.run())
    try:
        await asyncio.sleep(0)
        survivor = Node()
        gc.collect(0)
        gc.collect(1)
        await asyncio.sleep(0)
        assert policy.freezes == 0
        frozen = gc.get_freeze_count()
        gc.collect(2)  # "took" a second
        await asyncio.sleep(0)  # the freeze runs on the loop, outside the collector
        assert policy.freezes == 1
        assert gc.get_freeze_count() > frozen  # the survivor among them
        assert gc.is_tracked(survivor)
        assert not any(o is survivor for o in gc.get_objects())  # frozen: walked by none
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(("count", "parts"), [(0, 5), (7, 3), (10_000, 200), (3, 10)])
def test_slices_cover_every_connection_once_and_evenly(count: int, parts: int) -> None:
    runs = pinger.slices(count, parts)
    assert len(runs) == parts
    assert [i for first, last in runs for i in range(first, last)] == list(range(count))
    sizes = [last - first for first, last in runs]
    assert max(sizes) - min(sizes) <= 1


class FakeStream:
    """What the pinger touches on a Hypercorn WSStream."""

    def __init__(self, name: int, log: list[int | str]) -> None:
        self.name = name
        self.closed = False
        self._log = log

    async def _send_wsproto_event(self, event: object) -> None:
        self._log.append(self.name)


async def test_pings_go_out_a_slice_at_a_time_each_connection_once_per_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pinger._Ring, "streams", [])
    log: list[int | str] = []
    streams = [FakeStream(i, log) for i in range(100)]
    for stream in streams:
        pinger.watch(stream)  # type: ignore[arg-type]
    rounds_seen = 0
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        # Each slice ends in a sleep: mark it, and make the 11th (the first of
        # round two) close a connection and add a newcomer.
        nonlocal rounds_seen
        log.append("|")
        rounds_seen += 1
        if rounds_seen == 10:
            streams[0].closed = True
            late = FakeStream(100, log)
            streams.append(late)
            pinger.watch(late)  # type: ignore[arg-type]
        if rounds_seen == 20:
            raise asyncio.CancelledError
        await real_sleep(0)

    monkeypatch.setattr(pinger.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await pinger.ping_forever(interval=1.0, step=0.1)
    text = " ".join(map(str, log)).split("|")
    first_round = [[int(x) for x in part.split()] for part in text[:10]]
    second_round = [[int(x) for x in part.split()] for part in text[10:20]]
    assert [len(part) for part in first_round] == [10] * 10  # spread, not a burst
    assert sorted(x for part in first_round for x in part) == list(range(100))
    pinged = [x for part in second_round for x in part]
    assert 0 not in pinged  # closed: dropped from the ring
    assert sorted(pinged) == list(range(1, 101))  # the newcomer joined, once
    assert max(len(part) for part in second_round) <= 11  # 101 in the ring, 10 slices


@pytest.mark.parametrize(
    ("clients", "spread"), [(0, 0.0), (999, 0.0), (1000, 1.0), (10_000, 10.0), (10**6, 30.0)]
)
def test_a_busy_server_going_away_asks_for_reconnects_spread_over_time(
    clients: int, spread: float
) -> None:
    assert reconnect_spread_s(clients) == spread
    close = shutting_down(spread)
    assert close.code == 1001
    if spread:
        assert close.reason == f"server shutting down; reconnect within {round(spread * 1000)} ms"
    else:
        assert close.reason == "server shutting down"  # few clients: the page's backoff will do
    assert len(close.reason.encode()) <= 123  # fits a close frame
