"""The edges of HTTP on a real server: which Host is served (DNS rebinding),
no redirect built from Host, the 16 KB limit on a request head, /metrics on
its own listener, and the security headers on every response Quart makes."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from contextlib import suppress

import pytest
from quart import Quart, request

from moscow_clock import create_app
from moscow_clock.core.request_head import MAX_HEAD_BYTES
from moscow_clock.core.security_headers import SECURITY_HEADERS

from .support.server import ServerProcess, free_port
from .support.timing import scaled

Start = Callable[..., ServerProcess]

EVIL = "evil.example"


async def exchange(port: int, raw: bytes, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One raw request on its own connection; (status, headers, body) of the
    reply, read until the server closes (requests here say Connection: close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(scaled(timeout)):
            reply = await reader.read(-1)
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = reply.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ", 2)[1]), headers, body


def get(target: str, host: str, *extra: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", *extra, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def handshake(host: str, origin: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    extra = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        extra.append(f"Origin: {origin}")
    lines = ["GET /ws HTTP/1.1", f"Host: {host}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def handshake_status(port: int, host: str, origin: str | None) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(handshake(host, origin))
        async with asyncio.timeout(scaled(5)):
            line = await reader.readline()
    finally:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()
    return int(line.split(b" ", 2)[1])


def head_of(size: int, target: str = "/healthz") -> bytes:
    """A GET whose head (request line, fields, blank line) is exactly `size` bytes."""
    bare = get(target, "127.0.0.1", "X-Pad: ")
    return get(target, "127.0.0.1", "X-Pad: " + "a" * (size - len(bare)))


def assert_security_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, name


# --- Host: PUBLIC_ORIGINS -------------------------------------------------------


@pytest.mark.server
async def test_public_origins_refuse_a_foreign_host(start_server: Start) -> None:
    """DNS rebinding: a page on evil.example, its name pointed at this server,
    is same-origin by Host alone. With PUBLIC_ORIGINS set, Host must be ours."""
    port = free_port()
    server = start_server(port=port, PUBLIC_ORIGINS=f"http://127.0.0.1:{port}")
    ours = f"127.0.0.1:{port}"
    assert await handshake_status(port, EVIL, f"http://{EVIL}") == 421
    assert await handshake_status(port, ours, f"http://{ours}") == 101
    assert await handshake_status(port, ours, f"http://{EVIL}") == 403
    status, headers, body = await exchange(port, get("/", EVIL))
    assert status == 421
    assert len(body) < 1024
    assert b"Traceback" not in body
    assert_security_headers(headers)
    status, _, _ = await exchange(port, get("/api/time", EVIL))
    assert status == 421
    assert (await exchange(port, get("/", ours)))[0] == 200
    assert (await exchange(port, get("/", f"127.0.0.1:{port}".upper())))[0] == 200
    # Probes address the pod, not the public name.
    assert (await exchange(port, get("/healthz", EVIL)))[0] == 200
    assert (await exchange(port, get("/readyz", EVIL)))[0] in (200, 503)  # not 421
    assert "Traceback" not in server.log()


@pytest.mark.server
async def test_without_public_origins_any_host_is_served(shared_server: ServerProcess) -> None:
    """The default is unchanged: the same-origin rule compares Origin with Host."""
    server = shared_server  # read-only
    assert await handshake_status(server.port, EVIL, f"http://{EVIL}") == 101
    assert (await exchange(server.port, get("/", EVIL)))[0] == 200


# --- No redirect built from Host ------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("target", ["/static//x", "/static//app.js", "//healthz", "/api//time"])
async def test_no_redirect_to_the_host_the_client_named(
    shared_server: ServerProcess, target: str
) -> None:
    status, headers, _ = await exchange(shared_server.port, get(target, EVIL))
    assert "location" not in headers
    assert not 300 <= status < 400
    if target.startswith("/static/"):
        assert status == 404
    assert_security_headers(headers)


# --- The 16 KB head limit ---------------------------------------------------------


@pytest.mark.server
async def test_a_head_over_16_kb_gets_431(shared_server: ServerProcess) -> None:
    port = shared_server.port  # read-only: refused requests change nothing
    assert (await exchange(port, head_of(15 * 1024)))[0] == 200
    assert (await exchange(port, head_of(MAX_HEAD_BYTES)))[0] == 200
    status, headers, body = await exchange(port, head_of(MAX_HEAD_BYTES + 1))
    assert status == 431
    assert len(body) < 1024
    assert_security_headers(headers)
    for size in (40 * 1024, 63 * 1024):  # arrives in one read: h11 alone lets it through
        assert (await exchange(port, head_of(size)))[0] == 431
    padded = handshake("127.0.0.1", None)[:-2] + b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(padded)
    async with asyncio.timeout(scaled(5)):
        line = await reader.readline()
    writer.close()
    assert line.startswith(b"HTTP/1.1 431")
    assert (await exchange(port, get("/healthz", "127.0.0.1")))[0] == 200


# --- /metrics on its own listener ---------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_metrics_port_serves_metrics_and_nothing_else(
    start_server: Start, workers: str
) -> None:
    metrics_port = free_port()
    server = start_server(WORKERS=workers, METRICS_PORT=str(metrics_port))
    status, _, _ = await exchange(server.port, get("/metrics", "127.0.0.1"))
    assert status == 404
    status, headers, body = await exchange(metrics_port, get("/metrics", "10.0.0.7:9100"))
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b"moscow_clock_websocket_clients" in body
    for target in ("/", "/healthz", "/api/time"):
        assert (await exchange(metrics_port, get(target, "127.0.0.1")))[0] == 404
    assert await handshake_status(metrics_port, "127.0.0.1", None) == 404
    assert await handshake_status(server.port, "127.0.0.1", None) == 101
    assert (await exchange(server.port, get("/healthz", "127.0.0.1")))[0] == 200
    assert server.stop() == 0


def test_metrics_port_must_differ_from_port() -> None:
    from moscow_clock.core.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="METRICS_PORT"):
        Settings.from_env({"PORT": "8000", "METRICS_PORT": "8000"})
    settings = Settings.from_env({"HOST": "::", "METRICS_PORT": "9100"})
    assert settings.metrics_bind == "[::]:9100"
    settings = Settings.from_env({"METRICS_HOST": "0.0.0.0", "METRICS_PORT": "9100"})
    assert settings.metrics_bind == "0.0.0.0:9100"
    assert Settings.from_env({}).metrics_bind is None


def test_public_origins_are_origins() -> None:
    from moscow_clock.core.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="PUBLIC_ORIGINS"):
        Settings.from_env({"PUBLIC_ORIGINS": "*"})
    with pytest.raises(ConfigError, match="PUBLIC_ORIGINS"):
        Settings.from_env({"PUBLIC_ORIGINS": "clock.example"})
    settings = Settings.from_env({"PUBLIC_ORIGINS": "https://Clock.example:443"})
    assert settings.public_origins == frozenset({"https://clock.example"})


# --- Security headers on every response Quart makes ---------------------------------


def app_with_trouble() -> Quart:
    app = create_app(clock=lambda: 0.0)

    @app.post("/upload")
    async def upload() -> str:
        return str(len(await request.get_data()))

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("boom")

    return app


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nowhere", b"", 404),
        ("POST", "/healthz", b"", 405),
        ("POST", "/upload", b"x" * (17 * 1024), 413),
        ("GET", "/boom", b"", 500),
        ("GET", "/static/clock.css", b"", 200),
        ("OPTIONS", "/", b"", 200),
    ],
)
async def test_every_quart_response_has_the_security_headers(
    method: str, path: str, body: bytes, status: int
) -> None:
    app = app_with_trouble()
    async with app.test_app():
        response = await app.test_client().open(path, method=method, data=body)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


async def test_security_headers_even_when_an_error_handler_fails() -> None:
    """Quart's last-resort 500 (its handler for an error in a handler)."""
    app = app_with_trouble()

    @app.after_request
    async def broken(_response: object) -> object:
        raise RuntimeError("after_request failed")

    async with app.test_app():
        response = await app.test_client().get("/healthz")
    assert response.status_code == 500
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
