"""Load shedding and stall metrics against a real server."""

from __future__ import annotations

import asyncio
import base64
import os
import resource
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import pytest
import websockets
from playwright.async_api import Browser
from websockets.exceptions import InvalidStatus

from .support.clients import http, request
from .support.rawws import HANDSHAKE
from .support.server import ServerProcess
from .support.timing import scaled, until
from .test_metrics import scrape
from .test_server import next_tick

pytestmark = pytest.mark.server

Start = Callable[..., ServerProcess]
# One client fills the process: every later handshake is refused as at
# any saturation (a real one, a loop that has fallen behind, cannot be made
# on demand: tests/test_capacity.py decides that one over injected readings).
FULL_AT_ONE = {"MAX_CONNECTIONS": "1"}
BUSY_BODY = b"server busy, try again later\n"  # the server's canned refusal
FULL_BODY = b"too many connections, try again later\n"  # the app's


def upgrade(port: int, target: str = "/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return HANDSHAKE.format(port=port, key=key).replace("GET /ws ", f"GET {target} ").encode()


async def exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send `parts` (pausing between them), then read until the server
    closes (a reset after the reply counts as closed): everything it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        received = b""
        async with asyncio.timeout(scaled(10)):
            with suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
        return received
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def head_only(port: int, data: bytes) -> bytes:
    """Send `data`; the head of the reply (for a connection kept open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(scaled(10)):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def headers_of(response: bytes) -> dict[bytes, bytes]:
    head = response.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")[1:]
    return {name.lower(): value.strip() for name, value in (line.split(b":", 1) for line in lines)}


@asynccontextmanager
async def shedding(start_server: Start) -> AsyncIterator[tuple[ServerProcess, list[int]]]:
    """A server that sheds, with one admitted client; yields the server and
    the epoch seconds of every tick that client gets meanwhile."""
    server = start_server(**FULL_AT_ONE)
    seconds: list[int] = []
    async with websockets.connect(server.ws_url) as first:
        await next_tick(first)

        async def watch() -> None:
            while True:
                tick, _ = await next_tick(first)
                seconds.append(int(tick["epoch_ms"]) // 1000)

        watching = asyncio.create_task(watch())
        try:
            yield server, seconds
        finally:
            watching.cancel()
            with suppress(asyncio.CancelledError):
                await watching


def consecutive(seconds: list[int]) -> bool:
    return seconds == list(range(seconds[0], seconds[0] + len(seconds)))


async def test_while_full_new_websockets_get_503_until_a_place_is_free(
    start_server: Start,
) -> None:
    server = start_server(**FULL_AT_ONE)
    async with websockets.connect(server.ws_url) as first:
        await next_tick(first)
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "5"
        assert refused.value.response.body == BUSY_BODY
        await next_tick(first)  # the admitted client is unaffected
    samples: dict[str, float] = {}

    def freed() -> bool:  # the server has seen the first one go
        samples.update(scrape(server))
        return samples["moscow_clock_websocket_clients"] == 0

    await until(freed, 5, "the place is free", interval=0.2)
    async with websockets.connect(server.ws_url) as again:
        await next_tick(again)
    samples = await asyncio.to_thread(scrape, server)
    # Refused by the server from the request's first bytes, not by the app.
    assert samples['moscow_clock_websocket_refused_total{reason="shed"}'] == 1
    assert 'moscow_clock_websocket_refused_total{reason="full"}' not in samples


# Idle websockets held open: enough to show they cost nothing toward a
# refusal, few enough for CI (the fixed fan-out budget before refused
# everyone from ~5,900 reading clients on a 2-core VM: docs/PERFORMANCE.md).
IDLE = 3000


async def idle_websocket(port: int) -> asyncio.StreamWriter:
    """A websocket that says nothing and reads nothing after its 101 (its
    ticks wait in the kernel): what an attacker's idle socket costs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade(port))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    writer.transport.pause_reading()
    return writer


async def test_thousands_of_idle_websockets_do_not_make_the_server_refuse_a_newcomer(
    start_server: Start,
) -> None:
    """With default settings, idle admitted clients cost what they really
    cost: the process keeps admitting. (Before, a fixed fan-out time budget
    counted each toward a refusal: a few thousand idle sockets, no traffic
    at all, locked everyone out.)"""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + 512
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the open-files limit {hard} cannot hold {IDLE} sockets")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    server = start_server()
    writers: list[asyncio.StreamWriter] = []
    opening = asyncio.Semaphore(64)

    async def one() -> None:
        async with opening:
            writers.append(await idle_websocket(server.port))

    try:
        async with asyncio.timeout(scaled(120)):
            await asyncio.gather(*(one() for _ in range(IDLE)))
        assert len(writers) == IDLE
        async with websockets.connect(server.ws_url) as newcomer:
            await next_tick(newcomer)
            await next_tick(newcomer)
        # The page's probe hears "not busy" too.
        assert (await http(server, request("GET", "/ws")))[0] == 426
        samples = await asyncio.to_thread(scrape, server)
        assert samples["moscow_clock_websocket_clients"] >= IDLE
        assert not any("websocket_refused_total" in name for name in samples), samples
    finally:
        for writer in writers:
            writer.close()
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "Traceback" not in server.log()


async def test_while_shedding_an_upgrade_gets_a_canned_503_without_an_app_call(
    start_server: Start,
) -> None:
    async with shedding(start_server) as (server, seconds):
        response = await exchange(server.port, upgrade(server.port))
        assert status_of(response) == 503
        headers = headers_of(response)
        assert headers[b"retry-after"] == b"5"
        assert headers[b"connection"] == b"close"
        assert headers[b"x-content-type-options"] == b"nosniff"  # the app's headers too
        assert b"content-security-policy" in headers
        assert response.split(b"\r\n\r\n", 1)[1] == BUSY_BODY  # all of it: then closed
        # The page, the health check and static files are served as ever.
        assert (await http(server, request("GET", "/healthz")))[0] == 200
        assert (await http(server, request("GET", "/")))[0] == 200
        assert (await http(server, request("GET", "/static/js/connection.js")))[0] == 200
        # A head that came in pieces is not screened: the app's gate refuses it.
        split = upgrade(server.port)
        response = await exchange(server.port, split[:30], split[30:], pause=0.2)
        assert status_of(response) == 503
        assert FULL_BODY in response  # (chunked, from the app)
        samples = await asyncio.to_thread(scrape, server)
        assert samples['moscow_clock_websocket_refused_total{reason="shed"}'] == 1
        assert samples['moscow_clock_websocket_refused_total{reason="full"}'] == 1  # the app
        assert samples["moscow_clock_websocket_clients"] == 1
        await until(lambda: len(seconds) >= 1, 3, "the admitted client ticks on")
    assert "Traceback" not in server.log()


async def test_admitted_clients_keep_every_tick_while_a_flood_of_upgrades_is_refused(
    start_server: Start,
) -> None:
    flood, rounds = 200, 3
    async with shedding(start_server) as (server, seconds):
        for _ in range(rounds):
            responses = await asyncio.gather(
                *(exchange(server.port, upgrade(server.port)) for _ in range(flood))
            )
            assert [status_of(r) for r in responses] == [503] * flood
        ticked = len(seconds)
        await until(lambda: len(seconds) >= ticked + 2, 3, "ticks after the flood")
        assert consecutive(seconds), seconds  # not one tick lost
        samples = await asyncio.to_thread(scrape, server)
        assert samples['moscow_clock_websocket_refused_total{reason="shed"}'] == flood * rounds
        assert 'moscow_clock_websocket_refused_total{reason="full"}' not in samples
    assert "Traceback" not in server.log()


async def test_pipelined_and_garbage_first_bytes_while_shedding(start_server: Start) -> None:
    async with shedding(start_server) as (server, seconds):
        port = server.port
        # An upgrade with a request pipelined behind it: refused, and closed.
        response = await exchange(port, upgrade(port) + request("GET", "/healthz"))
        assert status_of(response) == 503
        assert response.count(b"HTTP/1.1 ") == 1
        # A request with an upgrade pipelined behind it: the first is served,
        # the upgrade is refused by the app (it was not a connection's first bytes).
        response = await exchange(
            port, request("GET", "/healthz").replace(b"Connection: close", b"X: y") + upgrade(port)
        )
        assert response.startswith(b"HTTP/1.1 200")
        assert b"HTTP/1.1 503" in response
        # Garbage and other protocols go to Hypercorn as before: 400, 431, or
        # (the HTTP/2 preface) a 404 for the HTTP/1.1 request it parses as.
        for garbage in (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
            b"GET /ws HTTP/1.1\r\n\x00\x01\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
        ):
            response = await exchange(port, garbage)
            assert response == b"" or status_of(response) in (400, 404, 431), response[:80]
        # An upgrade for another path is the app's to answer, not shed.
        assert status_of(await head_only(port, upgrade(port, "/elsewhere"))) != 503
        # A connection that opens and closes without a byte costs nothing either.
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        assert (await http(server, request("GET", "/healthz")))[0] == 200
        ticked = len(seconds)
        await until(lambda: len(seconds) >= ticked + 1, 3, "the admitted client ticks on")
        assert consecutive(seconds), seconds
    assert "Traceback" not in server.log()


async def test_metrics_show_loop_lag_and_gc_pauses(start_server: Start) -> None:
    server = start_server()
    # Twenty connections allocate enough for the young generation to be collected.
    clients = [await websockets.connect(server.ws_url) for _ in range(20)]
    for ws in clients:
        await next_tick(ws)
    for ws in clients:
        await ws.close()
    samples: dict[str, float] = {}

    def updated() -> bool:
        samples.update(scrape(server))
        gc_pauses = [
            v for k, v in samples.items() if k.startswith("moscow_clock_gc_pause_seconds_count")
        ]
        return samples.get("moscow_clock_event_loop_lag_seconds_count", 0) > 0 and any(gc_pauses)

    await until(updated, 3, "the next metrics update", interval=0.2)  # once a second
    assert samples["moscow_clock_event_loop_lag_seconds_count"] > 0
    assert samples['moscow_clock_event_loop_lag_seconds_bucket{le="+Inf"}'] > 0
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
