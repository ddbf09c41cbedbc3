"""The one ticker: publishes on the true second, fans out without per-client queues."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from moscow_clock.core.clock import Tick, make_tick
from moscow_clock.live.ticker import FANOUT_CHUNK, Broadcast, Subscriber, Ticker

from .fakes import FakeTime
from .support.timing import scaled


@contextlib.contextmanager
def joined(ticker: Ticker, *subscribers: Subscriber) -> Iterator[None]:
    """`subscribers` on the ticker for the block."""
    for subscriber in subscribers:
        assert ticker.join(subscriber)
    try:
        yield
    finally:
        for subscriber in subscribers:
            ticker.leave(subscriber)


async def run_until(ticker: Ticker, fake: FakeTime, count: int) -> list[tuple[int, float]]:
    """Run the ticker until it has published `count` ticks; (epoch_ms, clock at publish)."""
    published: list[tuple[int, float]] = []
    publish = ticker.publish

    async def record(tick: Tick) -> None:
        published.append((tick.epoch_ms, fake.now_ms))
        await publish(tick)
        if len(published) == count:
            ticker.close()

    ticker.publish = record  # type: ignore[method-assign]
    await asyncio.wait_for(ticker.run(), timeout=scaled(5))
    return published


async def test_ticks_are_published_on_each_whole_second() -> None:
    fake = FakeTime(start_ms=1795722005250.0)
    published = await run_until(Ticker(fake.clock, fake.sleep), fake, 3)
    assert published == [
        (1795722006000, 1795722006000.0),
        (1795722007000, 1795722007000.0),
        (1795722008000, 1795722008000.0),
    ]
    assert fake.sleeps[0] == pytest.approx(0.75)


async def test_a_sleep_that_returns_early_never_publishes_early() -> None:
    fake = FakeTime(start_ms=1000.0)
    fake.drift = 0.5  # every sleep covers only half the requested time
    published = await run_until(Ticker(fake.clock, fake.sleep), fake, 2)
    for epoch_ms, at in published:
        assert at >= epoch_ms
    assert [epoch for epoch, _ in published] == [2000, 3000]


async def test_after_a_stall_it_skips_to_the_current_second() -> None:
    fake = FakeTime(start_ms=1000.0)
    fake.stall_ms = 5400.0  # the first sleep overshoots by 5.4 s
    published = await run_until(Ticker(fake.clock, fake.sleep), fake, 2)
    assert [epoch for epoch, _ in published] == [7000, 8000]


class Recorder:
    """A subscriber that takes every offer, or refuses while `busy`."""

    def __init__(self) -> None:
        self.got: list[int] = []
        self.busy = False
        self.told_to_go = False

    def offer(self, broadcast: Broadcast) -> bool:
        if self.busy:
            return False
        self.got.append(broadcast.epoch_ms)
        return True

    def go_away(self, reconnect_within_s: float = 0.0) -> None:
        self.told_to_go = True


async def test_every_subscriber_is_offered_each_tick_once() -> None:
    ticker = Ticker()
    a, b = Recorder(), Recorder()
    with joined(ticker, a, b):
        assert ticker.clients == 2
        for second in (1000, 2000):
            await ticker.publish(make_tick(second))
    assert a.got == b.got == [1000, 2000]
    assert ticker.clients == 0


async def test_a_busy_subscriber_skips_ticks_instead_of_queueing_them() -> None:
    ticker = Ticker()
    slow, prompt = Recorder(), Recorder()
    with joined(ticker, slow, prompt):
        await ticker.publish(make_tick(1000))
        slow.busy = True
        await ticker.publish(make_tick(2000))
        await ticker.publish(make_tick(3000))
        slow.busy = False
        await ticker.publish(make_tick(4000))
    assert prompt.got == [1000, 2000, 3000, 4000]
    assert slow.got == [1000, 4000]  # no backlog: the newest tick when it is free
    assert (ticker.delivered, ticker.skipped) == (6, 2)
    assert len(ticker.take_fanout_samples()) == 4
    assert ticker.take_fanout_samples() == []  # taken once


async def test_a_newcomer_starts_with_the_next_tick() -> None:
    ticker = Ticker()
    await ticker.publish(make_tick(5000))
    late = Recorder()
    with joined(ticker, late):
        await ticker.publish(make_tick(6000))
    assert late.got == [6000]


async def test_ticks_keep_flowing_when_the_wall_clock_steps_back() -> None:
    ticker = Ticker()
    client = Recorder()
    with joined(ticker, client):
        for second in (9000, 4000, 5000):  # an NTP step of -5 s between the first two
            await ticker.publish(make_tick(second))
    assert client.got == [9000, 4000, 5000]


async def rounds_during_fanout(
    ticker: Ticker, clients: list[Recorder], each_round: Callable[[], object] = lambda: None
) -> list[int]:
    """Publish one tick to `clients` beside a task that runs once per round
    of the event loop (calling `each_round`); the rounds that ran while the
    fan-out was under way, as how many clients had the tick by then."""
    counts: list[int] = []
    running = asyncio.Event()

    async def other_work() -> None:
        running.set()
        while True:
            counts.append(sum(len(c.got) for c in clients))
            each_round()
            await asyncio.sleep(0)

    with contextlib.ExitStack() as stack:
        for client in clients:
            stack.enter_context(joined(ticker, client))
        worker = asyncio.create_task(other_work())
        await running.wait()
        counts.clear()
        await ticker.publish(make_tick(1000))
        worker.cancel()
    return [count for count in counts if 0 < count < len(clients)]


async def test_a_long_fanout_lets_other_work_run() -> None:
    clients = [Recorder() for _ in range(FANOUT_CHUNK * 4)]
    # Something else ran between chunks, not only before and after the fan-out.
    assert await rounds_during_fanout(Ticker(), clients)


def busy_round() -> None:
    """A round of other work: 30 ms on the CPU."""
    time.sleep(0.03)


async def test_a_fanout_held_up_by_other_work_stops_yielding() -> None:
    """Under a storm of connections each yield waits out a whole busy round
    of the event loop; past its yield budget the fan-out finishes the tick
    without yielding instead of handing out the rest a second late."""
    ticker = Ticker(yield_budget=0.05)
    clients = [Recorder() for _ in range(FANOUT_CHUNK * 10)]
    during = await rounds_during_fanout(ticker, clients, busy_round)
    # It did yield at first, then stopped within the budget (at 30 ms a
    # round, two rounds), not after all ten chunks.
    assert 1 <= len(during) <= 2
    assert all(c.got == [1000] for c in clients)
    assert ticker.hurried == 1


async def test_close_tells_subscribers_to_go_and_refuses_newcomers() -> None:
    ticker = Ticker()
    client = Recorder()
    with joined(ticker, client):
        ticker.close()
        assert client.told_to_go
    assert not ticker.join(Recorder())  # a newcomer is refused
    assert ticker.clients == 0


async def test_drain_waits_for_every_client_to_leave() -> None:
    ticker = Ticker()

    subscribed = [asyncio.Event(), asyncio.Event()]

    async def client(linger: float, done: asyncio.Event) -> None:
        with joined(ticker, Recorder()):
            done.set()
            await asyncio.sleep(linger)  # closing its websocket

    clients = [
        asyncio.create_task(client(0.01, subscribed[0])),
        asyncio.create_task(client(0.02, subscribed[1])),
    ]
    for event in subscribed:
        await event.wait()
    assert ticker.clients == 2
    assert await ticker.drain(timeout=scaled(2)) is True
    assert ticker.clients == 0
    await asyncio.gather(*clients)


async def test_drain_gives_up_after_its_timeout() -> None:
    ticker = Ticker()
    with joined(ticker, Recorder()):
        assert await ticker.drain(timeout=scaled(0.01)) is False
