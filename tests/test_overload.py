"""Load shedding and stall metrics against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import websockets
from playwright.async_api import Browser
from websockets.exceptions import InvalidStatus

from .support.server import ServerProcess
from .test_metrics import scrape
from .test_server import next_tick

pytestmark = pytest.mark.server

Start = Callable[..., ServerProcess]


async def test_over_the_fanout_budget_new_websockets_get_503_until_the_load_drops(
    start_server: Start,
) -> None:
    # A budget no fan-out can keep: one client is admitted (nothing measured
    # yet), a second would double a fan-out already over it.
    server = start_server(FANOUT_BUDGET="0.00000001", LOOP_LAG_BUDGET="0")
    async with websockets.connect(server.ws_url) as first:
        await next_tick(first)
        await next_tick(first)  # a fan-out to one client has been measured
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "5"
        assert refused.value.response.body == b"server busy, try again later\n"
        await next_tick(first)  # the admitted client is unaffected
    # Nobody left to serve: the next tick measures no load, and a newcomer is in.
    await asyncio.sleep(1.5)
    async with websockets.connect(server.ws_url) as again:
        await next_tick(again)
    samples = await asyncio.to_thread(scrape, server)
    assert samples['moscow_clock_websocket_refused_total{reason="busy"}'] == 1


async def test_metrics_show_loop_lag_and_gc_pauses(start_server: Start) -> None:
    server = start_server()
    # Twenty connections allocate enough for the young generation to be collected.
    clients = [await websockets.connect(server.ws_url) for _ in range(20)]
    for ws in clients:
        await next_tick(ws)
    for ws in clients:
        await ws.close()
    await asyncio.sleep(1.2)  # one more metrics update
    samples = await asyncio.to_thread(scrape, server)
    assert samples["moscow_clock_event_loop_lag_seconds_count"] > 0
    assert samples['moscow_clock_event_loop_lag_seconds_bucket{le="+Inf"}'] > 0
    assert samples["moscow_clock_gc_frozen_objects"] > 0  # frozen at start-up
    assert any(
        name.startswith("moscow_clock_gc_pause_seconds_count") and value > 0
        for name, value in samples.items()
    )


@pytest.mark.browser
async def test_the_page_reads_the_spread_a_server_going_away_asks_for(
    browser: Browser, server: ServerProcess
) -> None:
    page = await browser.new_page()
    await page.goto(f"{server.url}/healthz")
    spreads = await page.evaluate(
        """async () => {
      const { reconnectWithinMs } = await import("/static/js/connection.js");
      return [
        reconnectWithinMs(1001, "server shutting down; reconnect within 10000 ms"),
        reconnectWithinMs(1001, "server shutting down"),
        reconnectWithinMs(1000, "reconnect within 10000 ms"),
        reconnectWithinMs(1001, "reconnect within 999999999 ms"),
        reconnectWithinMs(1006, undefined),
      ];
    }"""
    )
    await page.close()
    assert spreads == [10000, 0, 0, 30000, 0]  # only a 1001 asks; capped at 30 s
