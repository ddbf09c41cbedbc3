"""One client's session, with an in-memory websocket."""

from __future__ import annotations

import asyncio
import json

from moscow_clock.clock import make_tick
from moscow_clock.session import run_session
from moscow_clock.ticker import Ticker

from .fakes import FakeWebsocket

NOW = 1795722005250.0


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def start(ticker: Ticker) -> tuple[FakeWebsocket, asyncio.Task[None]]:
    websocket = FakeWebsocket()
    task = asyncio.create_task(run_session(websocket, ticker, lambda: NOW))
    await settle()
    return websocket, task


async def test_sync_is_answered_without_waiting_for_a_tick() -> None:
    websocket, task = await start(Ticker())
    websocket.incoming.put_nowait('{"type":"sync","t0":42.5}')
    await settle()
    assert [json.loads(m) for m in websocket.sent] == [
        {"type": "sync", "t0": 42.5, "server_ms": NOW}
    ]
    task.cancel()


async def test_ticks_are_forwarded_in_order() -> None:
    ticker = Ticker()
    websocket, task = await start(ticker)
    for second in (1000, 2000):
        ticker.publish(make_tick(second))
        await settle()
    assert [json.loads(m)["epoch_ms"] for m in websocket.sent] == [1000, 2000]
    task.cancel()


async def test_a_bad_message_closes_only_that_session() -> None:
    ticker = Ticker()
    bad, bad_task = await start(ticker)
    good, good_task = await start(ticker)
    bad.incoming.put_nowait(b"\x00")
    await asyncio.wait_for(bad_task, 1)
    assert bad.closed == (1003, "binary messages are not supported")
    assert ticker.clients == 1
    ticker.publish(make_tick(1000))
    await settle()
    assert len(good.sent) == 1
    good_task.cancel()


async def test_drain_closes_with_going_away() -> None:
    ticker = Ticker()
    websocket, task = await start(ticker)
    assert await ticker.drain(timeout=1)
    await asyncio.wait_for(task, 1)
    assert websocket.closed == (1001, "server shutting down")


async def test_a_session_opened_during_drain_is_told_to_go_away() -> None:
    ticker = Ticker()
    ticker.close()
    websocket, task = await start(ticker)
    await asyncio.wait_for(task, 1)
    assert websocket.closed == (1001, "server shutting down")


async def test_a_stalled_client_delays_no_one_and_skips_stale_ticks() -> None:
    ticker = Ticker()
    stalled, stalled_task = await start(ticker)
    stalled.unblocked.clear()
    prompt, prompt_task = await start(ticker)
    for second in (1000, 2000, 3000):
        ticker.publish(make_tick(second))
        await settle()
        assert json.loads(prompt.sent[-1])["epoch_ms"] == second
    assert stalled.sent == []
    stalled.unblocked.set()
    await settle()
    # It finishes the send it was stuck in, then jumps to the newest tick.
    assert [json.loads(m)["epoch_ms"] for m in stalled.sent] == [1000, 3000]
    stalled_task.cancel()
    prompt_task.cancel()
