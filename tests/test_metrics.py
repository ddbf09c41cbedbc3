"""/metrics and the structured logs, against real servers."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from typing import NoReturn

import pytest
import websockets
from quart import Quart
from websockets.exceptions import InvalidStatus

from moscow_clock.web.runtime import runtime_of

from .support.clients import next_tick, scrape
from .support.server import ServerProcess
from .support.timing import scaled, until

Start = Callable[..., ServerProcess]


async def test_metrics_page_in_the_app(app: Quart) -> None:
    async with app.test_app():
        response = await app.test_client().get("/metrics")
        text = await response.get_data(as_text=True)
    assert response.status_code == 200
    assert "# TYPE moscow_clock_websocket_clients gauge" in text
    assert "# TYPE moscow_clock_tick_fanout_seconds histogram" in text
    assert "process_resident_memory_bytes" in text
    # Admission: why it refuses (nothing, here), how many it admits at most,
    # and the supervisor's restarts (none without one).
    assert 'moscow_clock_admission_saturated{cause="loop_lag"} 0.0' in text
    assert 'moscow_clock_admission_saturated{cause="memory"} 0.0' in text
    assert "# TYPE moscow_clock_websocket_capacity gauge" in text
    assert "moscow_clock_worker_restarts_total 0.0" in text


async def test_metrics_never_walk_the_heap(app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting the frozen or tracked objects walks every one of them: done
    every second at 10,000 clients it cost ~0.16 s of CPU per second and a
    stall a second. Neither the per-second update nor a scrape may do it."""

    def walks_the_heap(*args: object) -> NoReturn:
        raise AssertionError("whole-heap walk on the metrics path")

    for name in ("get_freeze_count", "get_objects", "get_referrers"):
        monkeypatch.setattr(gc, name, walks_the_heap)
    async with app.test_app():
        runtime_of(app).update_metrics()
        response = await app.test_client().get("/metrics")
    assert response.status_code == 200


@pytest.mark.server
async def test_metrics_count_clients_ticks_syncs_and_closes(start_server: Start) -> None:
    server = start_server(ALLOWED_ORIGINS="https://ok.example")
    async with (
        websockets.connect(server.ws_url) as a,
        websockets.connect(server.ws_url) as b,
    ):
        for ws in (a, b):
            await next_tick(ws)
            await next_tick(ws)
        await a.send(json.dumps({"type": "sync", "t0": 1}))
        await a.send(json.dumps({"type": "sync", "t0": 2}))
        # Both replies read: the server has counted both requests.
        replies = 0
        while replies < 2:
            replies += json.loads(await asyncio.wait_for(a.recv(), scaled(3)))["type"] == "sync"
        live = await asyncio.to_thread(scrape, server)
        with pytest.raises(InvalidStatus):
            await websockets.connect(server.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
        await b.send(b"binary")  # closed with 1003
        await b.wait_closed()
    # Counted once the server has finished with both clients.
    after = await _scrape_until(
        server, lambda m: m["moscow_clock_websocket_clients"] == 0, "both clients gone"
    )
    assert live["moscow_clock_websocket_clients"] == 2
    assert live["moscow_clock_ticks_sent_total"] >= 4
    assert live["moscow_clock_sync_requests_total"] == 2
    assert live["moscow_clock_tick_fanout_seconds_count"] >= 1
    assert after["moscow_clock_websocket_clients"] == 0
    assert after['moscow_clock_websocket_refused_total{reason="origin"}'] == 1
    assert after['moscow_clock_websocket_closed_total{code="1003"}'] == 1
    assert after["process_resident_memory_bytes"] > 0


@pytest.mark.server
async def test_metrics_add_up_over_workers(start_server: Start) -> None:
    server = start_server(WORKERS="2")
    clients = [await websockets.connect(server.ws_url) for _ in range(12)]
    for ws in clients:
        await next_tick(ws)
    # Every worker publishes its counters each second: wait until a round of
    # scrapes (answered by either worker) all see the twelve, then take six.
    await _scrape_until(
        server,
        lambda m: m["moscow_clock_websocket_clients"] == 12,
        "every worker has published",
        rounds=6,
    )
    seen = [await asyncio.to_thread(scrape, server) for _ in range(6)]
    for ws in clients:
        await ws.close()
    # Whichever worker answers, it reports all twelve clients.
    assert {sample["moscow_clock_websocket_clients"] for sample in seen} == {12}
    assert all(sample["moscow_clock_ticks_sent_total"] >= 12 for sample in seen)


@pytest.mark.server
async def test_json_logs_one_line_per_connection(start_server: Start) -> None:
    server = start_server(LOG_JSON="true")
    async with websockets.connect(server.ws_url) as ws:
        await next_tick(ws)
    await until(lambda: "websocket closed" in server.log(), 3, "the close is logged")
    await asyncio.to_thread(scrape, server)
    server.stop()
    entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    closes = [e for e in entries if e["msg"] == "websocket closed"]
    assert len(closes) == 1
    assert closes[0]["close_code"] == "peer"
    assert closes[0]["duration_s"] > 0
    assert closes[0]["remote"] == "127.0.0.1"
    access = [e for e in entries if e["logger"] == "hypercorn.access"]
    assert {"method", "path", "status", "duration_ms", "remote"} <= access[-1].keys()
    assert any(e["path"] == "/metrics" and e["status"] == 200 for e in access)
    assert {e["level"] for e in entries} <= {"info", "warning"}


async def _scrape_until(
    server: ServerProcess, condition: Callable[[dict[str, float]], bool], what: str, rounds: int = 1
) -> dict[str, float]:
    """Scrape until `rounds` scrapes in a row satisfy `condition` (within a
    scaled deadline); the last of them."""

    def poll() -> dict[str, float]:
        deadline = time.monotonic() + scaled(5)
        while True:
            samples = [scrape(server) for _ in range(rounds)]
            if all(condition(sample) for sample in samples):
                return samples[-1]
            assert time.monotonic() < deadline, f"not within {scaled(5)} s: {what}: {samples}"
            time.sleep(0.05)

    return await asyncio.to_thread(poll)
