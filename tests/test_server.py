"""A real Hypercorn process on a real socket, driven by a real websocket client."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from unittest.mock import AsyncMock

import pytest
import websockets

from moscow_clock.core.clock import moscow_time

# receive_json, next_tick and close_code live in tests/support/clients.py;
# imported here by name, so `from .test_server import next_tick` keeps working.
from .support.clients import close_code, next_tick, receive_json
from .support.server import ROOT, ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.server

Start = Callable[..., ServerProcess]


async def test_ticks_arrive_just_after_each_second(shared_server: ServerProcess) -> None:
    async with websockets.connect(shared_server.ws_url) as ws:
        ticks = [await next_tick(ws) for _ in range(3)]
    epochs = [int(tick["epoch_ms"]) for tick, _ in ticks]
    assert all(epoch % 1000 == 0 for epoch in epochs)
    assert [b - a for a, b in itertools.pairwise(epochs)] == [1000, 1000]
    for tick, received_ms in ticks:
        epoch = int(tick["epoch_ms"])
        # Never before its second; lateness is measured by the benchmark, here
        # it only has to be clearly the tick for this second.
        assert epoch <= received_ms < epoch + scaled(500)
        moment = moscow_time(epoch)
        assert tick == {
            "type": "tick",
            "epoch_ms": epoch,
            "iso": moment.iso,
            "utc_offset_s": 10800,
            "tz": "Europe/Moscow",
        }


async def test_sync_reply_carries_the_server_time(shared_server: ServerProcess) -> None:
    async with websockets.connect(shared_server.ws_url) as ws:
        t0 = time.time() * 1000
        await ws.send(json.dumps({"type": "sync", "t0": t0}))
        while (reply := await receive_json(ws))["type"] != "sync":
            pass
        t1 = time.time() * 1000
    assert reply["t0"] == t0
    server_ms = reply["server_ms"]
    assert isinstance(server_ms, float)
    assert t0 <= server_ms <= t1  # same machine, same clock


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\x01\x02", 1003),
        ("not json", 1008),
        ('{"type": "sync", "t0": "soon"}', 1008),
        ("x" * 5000, 1009),  # over WS_MAX_MESSAGE_BYTES (4096)
    ],
)
async def test_bad_input_closes_that_client_only(
    shared_server: ServerProcess, message: str | bytes, code: int
) -> None:
    server = shared_server  # read-only: it closes one client of its own
    async with (
        websockets.connect(server.ws_url) as bystander,
        websockets.connect(server.ws_url, max_size=None) as offender,
    ):
        await offender.send(message)
        assert await close_code(offender) == code
        first, _ = await next_tick(bystander)
        second, _ = await next_tick(bystander)
        assert int(second["epoch_ms"]) - int(first["epoch_ms"]) == 1000
    async with websockets.connect(server.ws_url) as newcomer:
        await next_tick(newcomer)  # and the server still takes new clients


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_closes_websockets_with_1001_and_exits_0(
    start_server: Start, workers: str
) -> None:
    server = start_server(WORKERS=workers)
    clients = [await websockets.connect(server.ws_url) for _ in range(4)]
    for ws in clients:
        await next_tick(ws)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    codes = await asyncio.gather(*(close_code(ws) for ws in clients))
    exit_code = await asyncio.to_thread(server.wait, scaled(10))
    assert codes == [1001] * len(clients)
    assert exit_code == 0
    assert time.monotonic() - started < scaled(5)
    assert "Traceback" not in server.log()
    # Nothing (a ping task, say) held the shutdown until the hard deadline.
    assert "still open" not in server.log()


async def test_a_client_that_never_answers_the_close_cannot_hold_shutdown(
    start_server: Start,
) -> None:
    server = start_server(GRACEFUL_TIMEOUT="1")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    # From here on it never reads and never sends its half of the close.
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, scaled(10)) == 0
    assert time.monotonic() - started < scaled(
        1 + 2
    )  # GRACEFUL_TIMEOUT plus the hard deadline's 1 s
    assert "still open" in server.log()
    writer.close()


async def test_sigint_also_drains(server: ServerProcess) -> None:
    async with websockets.connect(server.ws_url) as ws:
        await next_tick(ws)
        server.signal(signal.SIGINT)
        assert await close_code(ws) == 1001
    assert await asyncio.to_thread(server.wait, scaled(10)) == 0


def test_healthcheck_command(server: ServerProcess) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "moscow_clock.healthcheck"],
        cwd=ROOT,
        env={**server.env, "HOST": "0.0.0.0"},
        capture_output=True,
        text=True,
        timeout=scaled(10),
    )
    assert ok.returncode == 0, ok.stderr
    server.stop()
    down = subprocess.run(
        [sys.executable, "-m", "moscow_clock.healthcheck"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=scaled(10),
    )
    assert down.returncode == 1
    assert "healthcheck:" in down.stderr


def test_bad_configuration_fails_fast_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moscow_clock"],
        cwd=ROOT,
        env={**os.environ, "PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=scaled(10),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "moscow_clock: PORT='eighty' is not a whole number"


def test_the_server_runs_the_endpoint_in_front_of_quart_not_quarts_call() -> None:
    """Quart's `__call__` only awaits its `asgi_app` (the /ws endpoint in
    front of Quart): served directly, no coroutine of Quart's sits under
    every websocket for its life."""
    from moscow_clock.__main__ import build
    from moscow_clock.core.config import Settings
    from moscow_clock.web.endpoint import WebsocketEndpoint

    assert isinstance(build(Settings()).app, WebsocketEndpoint)


async def test_an_admitted_websocket_is_its_sessions_one_coroutine() -> None:
    """The endpoint decides the handshake and hands back the session's own
    coroutine to await: no frame of the endpoint's sits under every
    websocket for its life, only `Session.serve`'s."""
    from moscow_clock.__main__ import build
    from moscow_clock.core.config import Settings

    endpoint = build(Settings()).app
    scope: Any = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [(b"host", b"localhost:8080")],
        "client": ("192.0.2.7", 50000),
        "server": ("127.0.0.1", 8080),
        "extensions": {},
    }
    call: Any = endpoint(scope, AsyncMock(), AsyncMock())
    try:
        assert call.__qualname__ == "Session.serve"
    finally:
        call.close()
