"""Well-behaved clients of a real server: websocket reads and raw HTTP exchanges."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

import websockets
from websockets.exceptions import ConnectionClosed

from .timing import scaled


class HasPort(Protocol):
    @property
    def port(self) -> int: ...

    @property
    def url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...


async def receive_json(ws: websockets.ClientConnection, timeout: float = 3) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), scaled(timeout)))
    assert isinstance(message, dict)
    return message


async def next_tick(ws: websockets.ClientConnection) -> tuple[dict[str, Any], float]:
    """The next tick and when it arrived (machine time, ms)."""
    while True:
        message = await receive_json(ws)
        if message["type"] == "tick":
            return message, time.time() * 1000


async def close_code(ws: websockets.ClientConnection, timeout: float = 5) -> int | None:
    """Read until the server closes; the close code it sent."""
    async with asyncio.timeout(scaled(timeout)):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    assert ws.close_code is not None
    return ws.close_code


@asynccontextmanager
async def watched_ticks(server: HasPort) -> AsyncIterator[list[float]]:
    """A well-behaved client in the background; yields the lateness (ms) of
    each tick it gets, so a test can check nobody else's ticks suffered."""
    lateness: list[float] = []

    async def watch() -> None:
        with suppress(ConnectionClosed):  # the test may stop the server
            async with websockets.connect(server.ws_url) as ws:
                while True:
                    tick, received_ms = await next_tick(ws)
                    lateness.append(received_ms - int(tick["epoch_ms"]))

    task = asyncio.create_task(watch())
    try:
        yield lateness
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def http(server: HasPort, raw: bytes, timeout: float = 5) -> tuple[int, bytes, bytes]:
    """Send raw bytes as one HTTP exchange; (status, head, body) of the reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(scaled(timeout)):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            body = await reader.readexactly(length) if length and b"HEAD" not in raw[:4] else b""
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    return int(head.split(b" ", 2)[1]), head, body


def request(method: str, target: str, *headers: str, body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """GET a JSON route: its status and body, also for an error status."""
    try:
        with urllib.request.urlopen(url, timeout=scaled(5)) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def scrape(server: HasPort) -> dict[str, float]:
    """/metrics as {sample name: value}."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=scaled(5)) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return parse_metrics(text)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text as {sample name with its labels: value} (also bench/run.py's)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples
