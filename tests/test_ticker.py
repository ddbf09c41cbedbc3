"""The one ticker: publishes on the true second, fans out without per-client queues."""

from __future__ import annotations

import asyncio

import pytest

from moscow_clock.clock import Tick, make_tick
from moscow_clock.ticker import Ticker, TickerClosed

from .fakes import FakeTime


async def run_until(ticker: Ticker, fake: FakeTime, count: int) -> list[tuple[int, float]]:
    """Run the ticker until it has published `count` ticks; (epoch_ms, clock at publish)."""
    published: list[tuple[int, float]] = []
    publish = ticker.publish

    def record(tick: Tick) -> None:
        published.append((tick.epoch_ms, fake.now_ms))
        publish(tick)
        if len(published) == count:
            ticker.close()

    ticker.publish = record  # type: ignore[method-assign]
    await asyncio.wait_for(ticker.run(), timeout=5)
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


async def test_a_slow_reader_gets_the_newest_tick_not_a_backlog() -> None:
    ticker = Ticker()
    ticker.publish(make_tick(1000))
    with ticker.subscription() as cursor:
        for second in (2000, 3000, 4000):
            ticker.publish(make_tick(second))
        cursor, tick = await ticker.next_tick(cursor)
        assert tick.epoch_ms == 4000


async def test_a_new_subscriber_waits_for_the_next_tick() -> None:
    ticker = Ticker()
    ticker.publish(make_tick(5000))
    with ticker.subscription() as cursor:
        assert ticker.clients == 1
        waiter = asyncio.create_task(ticker.next_tick(cursor))
        await asyncio.sleep(0)
        assert not waiter.done()  # the tick for 5000 is already old
        ticker.publish(make_tick(6000))
        _, tick = await asyncio.wait_for(waiter, 1)
        assert tick.epoch_ms == 6000
    assert ticker.clients == 0


async def test_ticks_keep_flowing_when_the_wall_clock_steps_back() -> None:
    ticker = Ticker()
    with ticker.subscription() as cursor:
        received = []
        for second in (9000, 4000, 5000):  # an NTP step of -5 s between the first two
            ticker.publish(make_tick(second))
            cursor, tick = await asyncio.wait_for(ticker.next_tick(cursor), 1)
            received.append(tick.epoch_ms)
    assert received == [9000, 4000, 5000]


async def test_close_wakes_waiters_and_refuses_newcomers() -> None:
    ticker = Ticker()
    waiter = asyncio.create_task(ticker.next_tick(0))
    await asyncio.sleep(0)
    ticker.close()
    with pytest.raises(TickerClosed):
        await asyncio.wait_for(waiter, 1)
    with pytest.raises(TickerClosed), ticker.subscription():
        pass


async def test_drain_waits_for_every_client_to_leave() -> None:
    ticker = Ticker()

    async def client(linger: float) -> None:
        with ticker.subscription() as cursor:
            with pytest.raises(TickerClosed):
                await ticker.next_tick(cursor)
            await asyncio.sleep(linger)  # closing its websocket

    clients = [asyncio.create_task(client(0.01)), asyncio.create_task(client(0.02))]
    await asyncio.sleep(0)
    assert ticker.clients == 2
    assert await ticker.drain(timeout=2) is True
    assert ticker.clients == 0
    await asyncio.gather(*clients)


async def test_drain_gives_up_after_its_timeout() -> None:
    ticker = Ticker()
    with ticker.subscription():
        assert await ticker.drain(timeout=0.01) is False
