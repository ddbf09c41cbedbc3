"""The Hypercorn layer (moscow_clock/server/hypercorn/) without a socket:
Hypercorn's own kind of test doubles (`AsyncMock` sends, in-memory writers),
so each change is checked in milliseconds; the real-server tests in
test_frames.py, test_hostile.py and test_server.py check them end to end."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import socket
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, Mock

import h11
import pytest
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Data, EndBody, Request, Response, StreamClosed
from hypercorn.typing import ConnectionState as ConnectionState_
from wsproto.connection import ConnectionState

from moscow_clock.core.budget import Budget, Limits
from moscow_clock.core.ratelimit import Every
from moscow_clock.core.wire import FRAME, PREFRAMED, WRITE_NOW, ends_with_client_close, text_frame
from moscow_clock.server import pinger
from moscow_clock.server.hypercorn import guard, tcp
from moscow_clock.server.hypercorn.h11 import H11Protocol, H11WSConnection, LazyEvent
from moscow_clock.server.hypercorn.inbox import AppInbox, TaskGroup
from moscow_clock.server.hypercorn.install import install
from moscow_clock.server.hypercorn.listen import ACCEPTS_PER_ROUND, ListeningSocket
from moscow_clock.server.hypercorn.options import Options, ServerConfig
from moscow_clock.server.hypercorn.shed import BODY, refusal, upgrade_path
from moscow_clock.server.hypercorn.streams import WSStream
from moscow_clock.server.hypercorn.tcp import TCPServer

from .support.rawws import client_frame, raw_frame
from .support.server import ROOT
from .support.timing import scaled, until

SEND_TIMEOUT = 0.05
HEADERS = (("Content-Security-Policy", "default-src 'self'"), ("X-Content-Type-Options", "nosniff"))


def config(**options: Any) -> ServerConfig:
    made = ServerConfig(
        Options(send_timeout=SEND_TIMEOUT, headers=Options.encode_headers(HEADERS), **options)
    )
    made._log = AsyncMock()  # Hypercorn's own tests do the same
    made.websocket_max_message_size = 4096  # WS_MAX_MESSAGE_BYTES's default
    return made


class Spawner:
    """A task group that runs what it is given (Hypercorn's tests use an AsyncMock,
    which never would)."""

    def spawn(self, func: Any, *args: Any) -> None:
        asyncio.get_running_loop().create_task(func(*args))

    async def spawn_app(self, *_: Any) -> AsyncMock:
        return AsyncMock()  # replaced by the test's own inbox


def handshake(*extra: tuple[bytes, bytes], version: bytes = b"13") -> Request:
    return Request(
        stream_id=1,
        http_version="1.1",
        headers=[
            (b"host", b"clock"),
            (b"connection", b"Upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"sec-websocket-version", version),
            *extra,
        ],
        raw_path=b"/ws",
        method="GET",
        state=ConnectionState_({}),
    )


async def accepted_stream(**options: Any) -> tuple[WSStream, AsyncMock, list[Any]]:
    """A WSStream after the handshake, as Hypercorn's tests build one: every
    event it sends lands on an AsyncMock; what the app is told, in a list."""
    send = AsyncMock()
    stream = WSStream(
        AsyncMock(), config(**options), WorkerContext(None), Spawner(), False, None, None, send, 1
    )
    await stream.handle(handshake((b"sec-websocket-extensions", b"permessage-deflate")))
    told: list[Any] = []
    inbox = AppInbox(10)
    stream.app_put = inbox
    await stream.app_send({"type": "websocket.accept"})  # type: ignore[typeddict-item]

    async def read() -> None:
        while True:
            told.append(await inbox.get())

    asyncio.get_running_loop().create_task(read())
    return stream, send, told


def written(send: AsyncMock) -> list[bytes]:
    return [call.args[0].data for call in send.call_args_list if isinstance(call.args[0], Data)]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


# --- the handshake ----------------------------------------------------------------


async def test_the_handshake_takes_no_extension_even_when_offered() -> None:
    stream, send, _ = await accepted_stream()
    (response,) = [call.args[0] for call in send.call_args_list]
    assert isinstance(response, Response)
    assert response.status_code == 101
    names = {name for name, _ in response.headers}
    assert b"sec-websocket-extensions" not in names
    assert not any(ext.enabled() for ext in stream.connection._proto.extensions)


async def test_a_version_other_than_13_gets_426_with_13_and_the_headers() -> None:
    send = AsyncMock()
    stream = WSStream(
        AsyncMock(), config(), WorkerContext(None), AsyncMock(), False, None, None, send, 1
    )
    await stream.handle(handshake(version=b"8"))
    response = send.call_args_list[0].args[0]
    assert response.status_code == 426
    headers = dict(response.headers)
    assert headers[b"sec-websocket-version"] == b"13"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert send.call_args_list[1].args[0] == EndBody(stream_id=1)


async def test_refusals_from_the_app_get_the_headers() -> None:
    send = AsyncMock()
    stream = WSStream(
        AsyncMock(), config(), WorkerContext(None), AsyncMock(), False, None, None, send, 1
    )
    await stream.handle(handshake())
    start = {"type": "websocket.http.response.start", "status": 403, "headers": []}
    await stream.app_send(start)  # type: ignore[arg-type]
    await stream.app_send({"type": "websocket.http.response.body", "body": b"no"})  # type: ignore[typeddict-item]
    response = send.call_args_list[0].args[0]
    assert response.status_code == 403
    assert (b"content-security-policy", b"default-src 'self'") in response.headers


# --- pre-framed writes ------------------------------------------------------------


async def test_the_task_group_advertises_preframed_sends() -> None:
    seen: list[Any] = []

    async def app(scope: Any, *_: Any) -> None:
        seen.append(scope)

    async with TaskGroup(asyncio.get_running_loop()) as group:
        scope: Any = {"type": "websocket", "extensions": {"websocket.http.response": {}}}
        inbox = await group.spawn_app(app, Config(), scope, AsyncMock())  # type: ignore[arg-type]
    assert PREFRAMED in seen[0]["extensions"]
    assert isinstance(inbox, AppInbox)
    assert inbox.closed  # ends with the app


async def test_a_frame_is_written_as_is_and_text_alone_is_framed() -> None:
    stream, send, _ = await accepted_stream()
    frame = text_frame("tick") + b"!"  # not what wsproto would make: proves it is untouched
    await stream.app_send({"type": "websocket.send", "text": "tick", FRAME: frame})  # type: ignore[typeddict-unknown-key]
    await stream.app_send({"type": "websocket.send", "text": "tick"})  # type: ignore[typeddict-item]
    assert written(send) == [frame, text_frame("tick")]


# --- one close path ---------------------------------------------------------------


async def test_a_server_started_close_tells_the_app_and_nothing_follows_it() -> None:
    """1009: the app hears the disconnect; ticks after it are not written;
    what the client sends next is not parsed (wsproto is not fed)."""
    stream, send, told = await accepted_stream()
    await stream.handle(Data(stream_id=1, data=raw_frame(0x81, b"x" * 5000)))
    await settle()
    assert told == [{"type": "websocket.disconnect", "code": 1009}]
    assert written(send)[-1][:4] == b"\x88\x11\x03\xf1"  # 1009 "message too big"
    assert stream.connection.state == ConnectionState.LOCAL_CLOSING
    before = len(written(send))
    await stream.app_send({"type": "websocket.send", "text": "t", FRAME: text_frame("t")})  # type: ignore[typeddict-unknown-key]
    await stream.app_send({"type": "websocket.send", "text": "t"})  # type: ignore[typeddict-item]
    await stream.handle(Data(stream_id=1, data=raw_frame(0x81, b"y" * 65536)))
    assert len(written(send)) == before
    assert stream.buffer.length == 0
    assert len(stream.connection._proto._frame_decoder.buffer) == 0  # nothing fed to wsproto
    assert stream.discarded == 65536 + 14


async def test_the_clients_close_frame_ends_the_handshake_at_once() -> None:
    stream, send, _ = await accepted_stream()
    await stream.app_send({"type": "websocket.close", "code": 1001})  # type: ignore[typeddict-item]
    assert not stream.closed
    await stream.handle(Data(stream_id=1, data=client_frame(0x8, (1001).to_bytes(2, "big"))))
    assert send.call_args_list[-1].args[0] == StreamClosed(stream_id=1)


async def test_an_unanswered_close_is_ended_after_the_send_timeout() -> None:
    stream, send, told = await accepted_stream()
    await stream.app_send({"type": "websocket.close", "code": 1001})  # type: ignore[typeddict-item]
    await settle()
    assert told == [{"type": "websocket.disconnect", "code": 1001}]
    assert StreamClosed(stream_id=1) not in [call.args[0] for call in send.call_args_list]
    await until(
        lambda: send.call_args_list[-1].args[0] == StreamClosed(stream_id=1),
        SEND_TIMEOUT + 1,
        "the end after SEND_TIMEOUT",
    )
    await stream.handle(StreamClosed(stream_id=1))
    assert stream.closed
    assert told == [{"type": "websocket.disconnect", "code": 1001}]


async def test_an_unanswered_close_resets_the_connection() -> None:
    stream, _, _ = await accepted_stream()
    stream.tcp = Mock()
    await stream.app_send({"type": "websocket.close", "code": 1000})  # type: ignore[typeddict-item]
    await until(lambda: stream.tcp.abort.called, SEND_TIMEOUT + 1, "the reset")
    stream.tcp.abort.assert_called_once()


async def test_a_protocol_error_gets_its_close_frame_then_the_end() -> None:
    stream, send, told = await accepted_stream()
    await stream.handle(Data(stream_id=1, data=raw_frame(0x81, b"\xff")))  # not UTF-8
    await settle()
    assert written(send)[-1][:4] == b"\x88" + bytes([len(written(send)[-1]) - 2]) + b"\x03\xef"
    assert send.call_args_list[-1].args[0] == StreamClosed(stream_id=1)
    assert told == [{"type": "websocket.disconnect", "code": 1007}]


# --- the budget -------------------------------------------------------------------


async def test_endless_fragments_are_closed_1008() -> None:
    stream, send, told = await accepted_stream()
    await stream.handle(Data(stream_id=1, data=raw_frame(0x01, b'{"type":"x"')))
    await stream.handle(Data(stream_id=1, data=bytes.fromhex("008011223344") * 100))
    await settle()
    assert told == [{"type": "websocket.disconnect", "code": 1008}]
    assert b"message in too many frames" in written(send)[-1]


async def test_a_stalled_message_is_closed_after_its_time() -> None:
    limits = Limits(frames_per_s=30, bytes_per_s=16384, fragments=32, message_s=0.05, pongs_per_s=2)
    stream, send, told = await accepted_stream(limits=limits)
    await stream.handle(Data(stream_id=1, data=raw_frame(0x01, b'{"type"')))
    await until(lambda: bool(told), 1, "the close after message_s")
    assert told == [{"type": "websocket.disconnect", "code": 1008}]
    assert b"message took too long" in written(send)[-1]


async def test_pings_are_answered_at_a_bounded_rate_then_closed() -> None:
    stream, send, told = await accepted_stream()
    await stream.handle(Data(stream_id=1, data=raw_frame(0x89, b"p") * 80))
    pongs = [data for data in written(send) if data[0] == 0x8A]
    assert len(pongs) == 6  # two a second, a burst of three seconds' worth
    assert told == []  # 80 frames: within the burst
    await stream.handle(Data(stream_id=1, data=raw_frame(0x8A, b"p") * 80))
    await settle()
    assert told == [{"type": "websocket.disconnect", "code": 1008}]
    assert b"too many frames" in written(send)[-1]


async def test_a_ping_unanswered_within_the_send_timeout_resets_whatever_else_comes() -> None:
    """A client that never reads cannot answer our ping: unsolicited pongs
    (and messages) do not keep it (issue 18, item 3)."""
    stream, send, _ = await accepted_stream()
    stream.tcp = Mock()
    await stream.ping()
    (ping,) = [data for data in written(send) if data[0] == 0x89]
    assert len(ping) == 2 + 4  # a payload to echo: 4 bytes the client cannot guess
    await stream.handle(Data(stream_id=1, data=raw_frame(0x8A, b"")))  # unsolicited
    await stream.handle(Data(stream_id=1, data=raw_frame(0x8A, b"\0\0\0\0")))
    await stream.handle(Data(stream_id=1, data=raw_frame(0x81, b'{"type":"x"}')))
    await until(lambda: stream.tcp.abort.called, 1, "reset after the send timeout")
    stream.tcp.abort.assert_called_once()


async def test_the_pong_to_our_ping_keeps_the_connection() -> None:
    stream, send, _ = await accepted_stream()
    stream.tcp = Mock()
    await stream.ping()
    (ping,) = [data for data in written(send) if data[0] == 0x89]
    await stream.handle(Data(stream_id=1, data=raw_frame(0x8A, ping[2:])))
    await stream.ping()  # the next round's ping goes out: the last one was answered
    assert len([data for data in written(send) if data[0] == 0x89]) == 2
    await stream.handle(Data(stream_id=1, data=raw_frame(0x8A, written(send)[-1][2:])))
    await asyncio.sleep(SEND_TIMEOUT * 3)  # a span past the deadline, not a wait for anything
    stream.tcp.abort.assert_not_called()


def test_the_budget_counts_frames_bytes_and_fragments() -> None:
    budget = Budget(Limits(10, 100, fragments=3, message_s=1, pongs_per_s=1), now=0)
    assert [budget.charge(0, True, 0) for _ in range(31)][-2:] == [None, "too many frames"]
    budget = Budget(Limits(10, 100, fragments=3, message_s=1, pongs_per_s=1), now=0)
    assert budget.charge(300, False, 0) is None  # a burst of three seconds' worth
    assert budget.charge(1, False, 0) == "too much data"
    assert budget.charge(100, False, 1.0) is None  # refilled
    assert [budget.fragment(False, 5) for _ in range(3)] == [
        None,
        None,
        "message in too many frames",
    ]
    budget = Budget(Limits(10, 100, fragments=3, message_s=1, pongs_per_s=1), now=0)
    assert budget.fragment(False, 0) is None
    assert budget.fragment(False, 1.5) == "message took too long"
    assert budget.fragment(True, 1.6) is None
    assert not budget.message_open


def test_a_client_close_frame_is_seen_at_the_end_only() -> None:
    close = client_frame(0x8, (1000).to_bytes(2, "big") + b"bye")
    assert ends_with_client_close(b"junk" + close)
    assert ends_with_client_close(client_frame(0x8, b""))
    assert not ends_with_client_close(close + b"x")
    assert not ends_with_client_close(raw_frame(0x81, b"hello"))


# --- the TCP connection -----------------------------------------------------------


class StuckTransport:
    """A transport whose peer never reads: every write stays buffered."""

    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    def set_write_buffer_limits(self, high: int) -> None:
        pass


class StuckWriter:
    """Hypercorn's MemoryWriter, but its `drain()` never returns."""

    def __init__(self) -> None:
        self.transport = StuckTransport()
        self.sock = Mock(spec=socket.socket)

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    async def drain(self) -> None:
        await asyncio.Event().wait()


def stuck_server() -> tuple[TCPServer, StuckWriter]:
    """A connection whose peer never reads, its protocol and task group doubles."""
    writer = StuckWriter()
    server = TCPServer(
        AsyncMock(),
        asyncio.get_running_loop(),
        config(),
        WorkerContext(None),
        {},
        Mock(),
        writer,  # type: ignore[arg-type]
    )
    server.protocol = AsyncMock()
    server._task_group = Mock()
    return server, writer


async def test_a_writer_that_never_drains_is_reset_after_the_send_timeout() -> None:
    server, writer = stuck_server()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(server.protocol_send(RawData(data=b"tick")), scaled(1))
    assert asyncio.get_running_loop().time() - started >= SEND_TIMEOUT
    assert writer.transport.aborted
    writer.sock.setsockopt.assert_called_with(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    server._task_group.spawn.assert_called_once_with(server.protocol.handle, Closed())
    await server.protocol_send(RawData(data=b"late"))  # cut off: dropped, no wait
    assert writer.transport.buffered == 4


# --- pings ------------------------------------------------------------------------


async def test_pings_that_fail_are_logged_and_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every failure is counted; the log gets one line (with its traceback)
    per PING_FAILED_LOG_S, not one per failure."""
    monkeypatch.setattr(pinger._Ring, "log_failed", Every(pinger.PING_FAILED_LOG_S))
    broken = Mock()
    broken._send_wsproto_event = AsyncMock(side_effect=RuntimeError("renamed upstream"))
    before = pinger.failed_pings()
    with caplog.at_level(logging.WARNING, logger="moscow_clock.server"):
        await pinger._ping(broken)
        await pinger._ping(broken)
    assert pinger.failed_pings() == before + 2
    (line,) = [r for r in caplog.records if "ping failed" in r.getMessage()]
    assert line.exc_info is not None


# --- the guard --------------------------------------------------------------------


def test_the_guard_passes_on_the_hypercorn_it_was_written_for() -> None:
    guard.check()


def test_the_guard_refuses_another_version() -> None:
    with pytest.raises(guard.GuardError) as refused:
        guard.check(version="0.19.0")
    message = str(refused.value)
    assert "\n" not in message
    assert "Hypercorn 0.19.0 is installed" in message
    assert "written for 0.18.0 (any 0.18.x with the same fingerprints)" in message


def test_the_guard_starts_a_patch_release_whose_fingerprints_match() -> None:
    """The version string alone refuses nothing within the series: a 0.18.1
    that changed none of the fingerprinted functions starts, one that changed
    any is refused with the one-line reason."""
    guard.check(version="0.18.1")
    guard.check(version="0.18.7", written_for="0.18.0")
    changed = {**guard.FINGERPRINTS, "hypercorn.protocol.h11:H11Protocol.__init__": "0" * 16}
    with pytest.raises(guard.GuardError) as refused:
        guard.check(version="0.18.1", expected=changed)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("Hypercorn 0.18.1 is installed but")
    assert "re-check hypercorn.protocol.h11:H11Protocol.__init__" in message
    assert "h11.py" in message
    with pytest.raises(guard.GuardError):
        guard.check(version="1.18.0")


def test_the_guard_names_a_changed_function() -> None:
    changed = {**guard.FINGERPRINTS, "hypercorn.asyncio.tcp_server:TCPServer._close": "0" * 16}
    with pytest.raises(guard.GuardError) as refused:
        guard.check(expected=changed)
    assert "re-check hypercorn.asyncio.tcp_server:TCPServer._close" in str(refused.value)
    assert "tcp.py" in str(refused.value)


def test_a_changed_hypercorn_refuses_to_start(tmp_path: Path) -> None:
    """End to end: a Hypercorn whose `_close` changed (here: replaced before
    start-up) stops the process with one line and no traceback."""
    (tmp_path / "changed_upstream.py").write_text(
        textwrap.dedent(
            """
            async def _close(self):
                pass  # upstream changed this
            """
        )
    )
    script = (
        "import sys, changed_upstream, hypercorn.asyncio.tcp_server as t;"
        "t.TCPServer._close = changed_upstream._close;"
        "from moscow_clock.__main__ import main; sys.exit(main())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PORT": "0"},
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("moscow_clock: Hypercorn 0.18.0 is installed but")
    assert "re-check hypercorn.asyncio.tcp_server:TCPServer._close" in line


# --- the app inbox (moved from test_hypercorn_tuning.py) -------------------------


async def test_inbox_is_fifo_and_bounded() -> None:
    inbox = AppInbox(maxsize=2)
    await inbox.put("a")
    await inbox.put("b")
    blocked = asyncio.create_task(inbox.put("c"))
    await asyncio.sleep(0)
    assert not blocked.done()  # full: the connection stops reading, TCP pushes back
    assert await inbox.get() == "a"
    await asyncio.wait_for(blocked, scaled(1))
    assert [await inbox.get(), await inbox.get()] == ["b", "c"]


async def test_a_reader_waits_for_the_next_message() -> None:
    inbox = AppInbox(maxsize=2)
    reader = asyncio.ensure_future(inbox.get())  # (an awaitable: ASGI asks no more)
    await asyncio.sleep(0)
    assert not reader.done()
    await inbox.put("hello")
    assert await asyncio.wait_for(reader, scaled(1)) == "hello"


async def test_a_reader_cancelled_while_waiting_loses_nothing() -> None:
    inbox = AppInbox(maxsize=2)
    waiting = inbox.get()
    waiting.cancel()  # its task was cancelled while it waited
    await inbox.put("kept")
    assert await inbox.get() == "kept"
    pending = inbox.get()
    inbox.finish({"type": "websocket.disconnect"})
    assert await asyncio.wait_for(pending, scaled(1)) == {"type": "websocket.disconnect"}
    await inbox.put("after the end")
    assert inbox._items == []


async def test_closing_releases_a_blocked_writer_and_drops_the_rest() -> None:
    inbox = AppInbox(maxsize=1)
    await inbox.put("kept until close")
    blocked = asyncio.create_task(inbox.put("late"))
    await asyncio.sleep(0)
    inbox.close()  # the app has returned
    await asyncio.wait_for(blocked, scaled(1))
    await asyncio.wait_for(inbox.put("later"), scaled(1))
    assert inbox._items == []


def test_renovate_keeps_hypercorn_where_the_guard_knows_it() -> None:
    """renovate.json edits the pins in requirements.txt directly: without a
    rule it would propose a Hypercorn the guard refuses."""
    config = json.loads((ROOT / "renovate.json").read_text())
    (rule,) = [r for r in config["packageRules"] if "hypercorn" in r.get("matchPackageNames", ())]
    assert rule["allowedVersions"] == f"=={guard.series(guard.WRITTEN_FOR)}.*"
    pinned = (ROOT / "requirements.txt").read_text()
    assert f"hypercorn=={guard.series(guard.WRITTEN_FOR)}." in pinned


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: clock.example\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (UPGRADE, "/ws"),
        (UPGRADE.replace(b"GET /ws ", b"GET /ws?lang=ru "), "/ws"),  # the query is not the path
        (UPGRADE.replace(b"Upgrade: websocket", b"upgrade:WebSocket "), "/ws"),
        (UPGRADE + b"GET /healthz HTTP/1.1\r\n\r\n", "/ws"),  # pipelined behind it
        (UPGRADE.replace(b"GET /ws ", b"GET /other "), "/other"),  # the app decides the path
        (UPGRADE[:40], None),  # a head still coming: Hypercorn and the app decide
        (UPGRADE.replace(b"Upgrade: websocket\r\n", b""), None),  # a plain GET
        (UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"), None),
        (UPGRADE.replace(b"GET ", b"POST "), None),
        (UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"), None),
        (UPGRADE.replace(b"GET /ws ", b"GET http://clock.example/ws "), None),  # absolute form
        # An Upgrade header only after the head ended is a body, not a header.
        (b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\nUpgrade: websocket\r\n\r\n", None),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", None),  # a TLS hello
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None),
        (b"", None),
    ],
)
def test_only_a_whole_websocket_upgrade_head_is_screened(data: bytes, path: str | None) -> None:
    assert upgrade_path(data) == path


def test_the_canned_refusal_is_a_short_503_that_closes_and_says_when_to_retry() -> None:
    import h11

    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/ws", headers=[("Host", "h")]))
    client.receive_data(refusal([(b"x-content-type-options", b"nosniff")]))
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 503
    headers = dict(response.headers)
    assert headers[b"retry-after"] == b"5"
    assert headers[b"connection"] == b"close"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"cache-control"] == b"no-store"
    body = client.next_event()
    assert isinstance(body, h11.Data)
    assert body.data == BODY == b"server busy, try again later\n"
    assert isinstance(client.next_event(), h11.EndOfMessage)


def shedding_server(data: bytes, refuse: Mock) -> tuple[TCPServer, Mock]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    writer = Mock()
    server = TCPServer(
        AsyncMock(),
        asyncio.get_running_loop(),
        config(refuse_upgrade=refuse),
        WorkerContext(None),
        {},
        reader,
        writer,
    )
    server.protocol = AsyncMock()
    server._close = AsyncMock()  # type: ignore[method-assign]
    return server, writer


async def test_a_shed_upgrade_is_answered_from_the_first_read_without_the_protocol() -> None:
    refuse = Mock(return_value=True)
    server, writer = shedding_server(UPGRADE, refuse)
    await server._read_data()
    refuse.assert_called_once_with("/ws")
    (sent,), _ = writer.write.call_args
    assert sent.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nx-content-type-options: nosniff\r\n" in sent  # the app's headers
    assert b"\r\ndate: " in sent
    server.protocol.handle.assert_not_called()  # no h11 parse, no stream, no app
    server._close.assert_awaited_once()


async def test_the_pages_probe_of_a_shed_path_gets_the_same_canned_503() -> None:
    """A browser cannot read a refused handshake's status; the page then asks
    /ws over plain HTTP (static/js/backoff.js). While the app sheds, that
    probe is refused from the first read too, as cheaply, with Retry-After."""
    refuse = Mock(return_value=True)
    server, writer = shedding_server(b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", refuse)
    await server._read_data()
    refuse.assert_called_once_with("/ws")
    (sent,), _ = writer.write.call_args
    assert sent.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nretry-after: 5\r\n" in sent
    server.protocol.handle.assert_not_called()


@pytest.mark.parametrize(
    ("data", "asked"),
    [
        (UPGRADE, True),  # not shedding now: Hypercorn and the app go on as ever
        # A plain GET is asked too (the page's probe of /ws), and goes on when not refused.
        (b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", True),
        (b"GET /healthz HTTP/1.1\r\nHost: h\r\n", False),  # a head in pieces: not asked
        (b"POST /ws HTTP/1.1\r\nHost: h\r\n\r\n", False),  # not a GET: not asked
        (b"GET /ws HTTP/1.1\r\n\x00\x01\r\n\r\n", False),  # malformed: Hypercorn's 400
    ],
)
async def test_anything_not_shed_reaches_the_protocol_as_its_first_read(
    data: bytes, asked: bool
) -> None:
    refuse = Mock(return_value=False)
    server, writer = shedding_server(data, refuse)
    await server._read_data()
    assert refuse.called is asked
    writer.write.assert_not_called()
    assert server.protocol.handle.await_args_list == [
        ((RawData(data),),),
        ((Closed(),),),  # then EOF, as Hypercorn's loop
    ]
    server._close.assert_not_called()


def test_asyncio_takes_a_few_connections_a_round_from_a_long_kernel_queue() -> None:
    """asyncio's `backlog` is both listen()'s queue and the connections taken
    per loop round; the layer's sockets keep the long queue whatever asyncio
    asks for, so a wave of connects waits in the kernel, not in one round."""
    made = config()
    made.bind = ["127.0.0.1:0"]
    made.backlog = ACCEPTS_PER_ROUND
    [listener] = made.create_sockets().insecure_sockets
    clients: list[socket.socket] = []
    try:
        assert isinstance(listener, ListeningSocket)
        listener.listen(ACCEPTS_PER_ROUND)  # what asyncio's start_server does
        address = listener.getsockname()
        # Nobody accepts: past a queue of 64 the 65th-odd connect would wait
        # for a SYN retry (1 s); with the long queue every one completes now.
        for _ in range(ACCEPTS_PER_ROUND * 3):
            client = socket.create_connection(address, timeout=scaled(0.5))
            clients.append(client)
        assert len(clients) == ACCEPTS_PER_ROUND * 3
    finally:
        for client in clients:
            client.close()
        listener.close()


def h11_protocol(app: Any, made: ServerConfig, group: TaskGroup, send: Any) -> H11Protocol:
    """A real H11Protocol over an in-memory `send`, as Hypercorn builds one."""
    return H11Protocol(
        ASGIWrapper(app),
        made,
        WorkerContext(None),
        group,
        ConnectionState_({}),
        False,
        None,
        None,
        send,
    )


# --- what a websocket holds (memory per connection) --------------------------------


async def test_after_the_upgrade_the_connection_holds_no_h11_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through H11Protocol as Hypercorn builds it: once the 101 is out, h11
    can send nothing and parses nothing, so none of it is kept (a send after
    it fails as h11's own would); no asyncio.Event for `can_read`; wsproto's
    event queue and the app call hold no deque or closures."""
    monkeypatch.setattr(hypercorn_h11, "WSStream", WSStream)
    monkeypatch.setattr(hypercorn_h11, "H11WSConnection", H11WSConnection)
    sent: list[Any] = []
    accepted = asyncio.Event()

    async def send(event: Any) -> None:
        sent.append(event)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        accepted.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with TaskGroup(asyncio.get_running_loop()) as group:
        protocol = h11_protocol(app, config(), group, send)
        assert isinstance(protocol.can_read, LazyEvent)
        request = UPGRADE.replace(
            b"Sec-WebSocket-Key: x", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        )
        await protocol.handle(RawData(request))
        await asyncio.wait_for(accepted.wait(), scaled(2))
        (response,) = [event.data for event in sent if isinstance(event, RawData)]
        assert response.startswith(b"HTTP/1.1 101 ")
        connection = protocol.connection
        assert isinstance(connection, H11WSConnection)
        assert connection.h11_connection is None
        with pytest.raises(h11.LocalProtocolError):
            connection.send(h11.Response(status_code=200, headers=[]))
        stream = protocol.stream
        assert isinstance(stream, WSStream)
        assert type(stream.connection._events) is not deque
        assert protocol.can_read._event is None
        await protocol.handle(RawData(client_frame(0x1, b'{"t":1}')))  # the bytes still pass
        await protocol.handle(Closed())


async def test_after_the_accept_nothing_of_the_server_holds_the_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ASGI scope (its header list is most of it) serves the handshake:
    once the 101 is out neither the stream nor the app call keeps it; an app
    that wants it keeps it itself."""
    monkeypatch.setattr(hypercorn_h11, "WSStream", WSStream)
    monkeypatch.setattr(hypercorn_h11, "H11WSConnection", H11WSConnection)
    scopes: list[Any] = []
    accepted = asyncio.Event()

    async def send(event: Any) -> None:
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        del scope
        await send({"type": "websocket.accept"})
        accepted.set()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    made = config()
    async with TaskGroup(asyncio.get_running_loop()) as group:
        protocol = h11_protocol(app, made, group, send)
        request = UPGRADE.replace(
            b"Sec-WebSocket-Key: x", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        )
        await protocol.handle(RawData(request))
        await asyncio.wait_for(accepted.wait(), scaled(2))
        made._log.reset_mock()  # (the test's mock access log keeps what it was given)
        (scope,) = scopes
        assert scope["type"] == "websocket"
        holders = [
            getattr(holder, "__qualname__", type(holder).__qualname__)
            for holder in gc.get_referrers(scope)
            if holder is not scopes
        ]
        assert holders == []
        del scope
        stream = protocol.stream
        assert isinstance(stream, WSStream)
        assert stream.handshake.accepted
        assert stream.handshake.key is None  # (none of its parsed headers kept)
        await protocol.handle(RawData(client_frame(0x1, b'{"t":1}')))  # the bytes still pass
        await protocol.handle(Closed())


async def test_the_transports_write_buffer_is_a_list_that_still_delivers_everything() -> None:
    """asyncio's socket transport's write buffer as a list (an empty deque
    allocates 760 bytes): bytes the kernel does not take at once are still
    sent, in order, in parts (`popleft`, `appendleft`) and all of them."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    theirs.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=ours)
    try:
        TCPServer(AsyncMock(), loop, config(), WorkerContext(None), {}, reader, writer)
        transport = writer.transport
        assert type(transport._buffer) is not deque  # type: ignore[attr-defined]
        assert not transport._buffer  # type: ignore[attr-defined]
        chunks = [bytes([n]) * 50_000 for n in range(1, 5)]
        transport.write(chunks[0])
        transport.writelines(chunks[1:3])
        transport.write(chunks[3])
        assert transport.get_write_buffer_size() > 0  # the kernel took only part
        expected = b"".join(chunks)
        received = bytearray()

        def read() -> bool:
            try:
                while data := theirs.recv(65536):
                    received.extend(data)
            except BlockingIOError:
                pass
            return len(received) >= len(expected)

        await until(read, 5, "every byte delivered")
        assert bytes(received) == expected
        await until(lambda: transport.get_write_buffer_size() == 0, 1, "buffer empty")
    finally:
        writer.close()
        theirs.close()


def test_the_internals_the_memory_savings_lean_on_are_the_ones_expected() -> None:
    """Each saving is skipped where its fingerprint differs; here, none is."""
    assert guard.holds("asyncio.streams:FlowControlMixin")
    assert guard.holds("asyncio.streams:StreamReader")
    assert guard.holds("wsproto.connection")
    assert guard.holds("asyncio.selector_events:_Selector")
    assert not guard.holds("nothing.by.this.name")
    assert guard.skipped() == []


def test_a_python_whose_internals_differ_runs_without_those_savings_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A later Python that changed a function a saving leans on starts (on
    the public path for that part) and says which function to re-check; one
    whose change was reviewed counts as the same."""
    changed = "asyncio.selector_events:_SelectorSocketTransport.writelines"
    reviewed = "asyncio.selector_events:_SelectorSocketTransport.close"
    real = guard.fingerprint
    fake = {changed: "0" * 16, reviewed: guard.OPTIONAL[reviewed][-1]}
    monkeypatch.setattr(guard, "fingerprint", lambda name: fake.get(name) or real(name))
    assert guard.skipped() == [changed]
    with caplog.at_level(logging.WARNING, "moscow_clock.server"):
        install()
    (line,) = [r.getMessage() for r in caplog.records if "running without" in r.getMessage()]
    assert changed in line
    assert reviewed not in line
    assert "moscow_clock/server/hypercorn/guard.py" in line


def coroutine_chain(task: asyncio.Task[Any]) -> list[str]:
    """The coroutines a task is suspended in, outermost first."""
    chain: list[str] = []
    coroutine: Any = task.get_coro()
    while coroutine is not None and hasattr(coroutine, "cr_frame"):
        chain.append(coroutine.__qualname__)
        coroutine = coroutine.cr_await
    return chain


async def test_an_idle_websocket_connection_holds_two_frames_and_reads_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a websocket waiting for its client's next message, the
    connection's task is suspended in our `run` and read loop only: not
    in Hypercorn's `run` under it, nor in `StreamReader.read` and its
    `_wait_for_data` (the read loop waits on the reader's future itself).
    Messages still arrive, in order and whole, as does the client's end; the
    protocol's addresses are the transport's own tuples, and Hypercorn's
    unused send lock is gone."""
    monkeypatch.setattr(hypercorn_h11, "WSStream", WSStream)
    monkeypatch.setattr(hypercorn_h11, "H11WSConnection", H11WSConnection)
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    received: list[Any] = []
    accepted = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})
        accepted.set()
        while (event := await receive())["type"] != "websocket.disconnect":
            if event["type"] == "websocket.receive":
                received.append(event)
        received.append(event)

    taken: list[int] = []  # the length of every read the loop takes
    take = tcp._take

    def counted(reader: Any, limit: int) -> bytes:
        data = take(reader, limit)
        taken.append(len(data))
        return data

    monkeypatch.setattr(tcp, "_take", counted)
    reader, writer = await asyncio.open_connection(sock=ours)
    server = TCPServer(ASGIWrapper(app), loop, config(), WorkerContext(None), {}, reader, writer)
    task = loop.create_task(server.run())
    try:
        key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        client.sendall(UPGRADE.replace(b"Sec-WebSocket-Key: x", key))
        await asyncio.wait_for(accepted.wait(), scaled(5))

        def waiting() -> bool:
            return reader._waiter is not None  # type: ignore[attr-defined]

        await until(waiting, 5, "a read waiting for the client")
        assert coroutine_chain(task) == ["TCPServer.run", "TCPServer._read_data"]
        assert not hasattr(server, "send_lock")
        assert server.protocol.client is writer.get_extra_info("peername")
        assert server.protocol.server is writer.get_extra_info("sockname")
        for n in range(3):  # one in parts, two in one segment
            frame = client_frame(0x1, json.dumps({"n": n}).encode())
            if n == 0:
                client.sendall(frame[:3])
                await until(lambda: taken[-1:] == [3], 5, "the part read")
                client.sendall(frame[3:])
            else:
                client.sendall(frame)
        await until(lambda: len(received) == 3, 5, "three messages")
        assert [json.loads(event["text"]) for event in received] == [{"n": 0}, {"n": 1}, {"n": 2}]
        client.shutdown(socket.SHUT_WR)  # the client's end, without a close frame
        await asyncio.wait_for(task, scaled(5))
        assert received[-1]["type"] == "websocket.disconnect"
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        client.close()
        writer.close()


async def test_the_read_loop_resumes_a_paused_transport_as_it_takes_the_bytes() -> None:
    """More than the reader holds (it pauses the transport) comes through
    the read loop's own wait whole and in order, and the transport is
    resumed once the loop has taken enough, as `StreamReader.read` does."""
    reader = asyncio.StreamReader(limit=1024)
    transport = Mock()
    transport.is_closing.return_value = False
    reader.set_transport(transport)
    server = TCPServer(
        AsyncMock(), asyncio.get_running_loop(), config(), WorkerContext(None), {}, reader, Mock()
    )
    server.protocol = AsyncMock()
    data = bytes(range(256)) * 400  # 100 KB
    reader.feed_data(data)
    transport.pause_reading.assert_called_once()  # over twice the limit
    reading = asyncio.get_running_loop().create_task(server._read_data())
    await until(lambda: transport.resume_reading.called, 5, "resumed")
    reader.feed_eof()
    await asyncio.wait_for(reading, scaled(1))
    handed = [call.args[0] for call in server.protocol.handle.await_args_list]
    assert handed[-1] == Closed()
    assert b"".join(event.data for event in handed[:-1]) == data


async def test_abort_after_the_connections_task_group_finished_is_quiet() -> None:
    """The pending cap's sweep may abort a connection whose run() is ending:
    its task group refuses new tasks (RuntimeError), which must not stop
    the sweep."""
    server, writer = stuck_server()
    server._task_group.spawn.side_effect = RuntimeError("TaskGroup is finished")
    server.abort()
    assert writer.transport.aborted


async def test_write_now_writes_at_once_or_not_at_all_then_holds_to_the_send_timeout() -> None:
    """A tick handed to write_now: written there and then; the next one,
    while the first still waits for the socket, not written at all (the
    app skips it); and the waiting bytes are held to SEND_TIMEOUT as any
    write is: then the connection is reset."""
    server, writer = stuck_server()
    started = asyncio.get_running_loop().time()
    assert server.write_now(b"tick")
    assert writer.transport.buffered == 4
    assert not server.write_now(b"next")  # the first still waits: skipped
    assert writer.transport.buffered == 4
    await until(lambda: writer.transport.aborted, SEND_TIMEOUT + 1, "reset after the send timeout")
    assert asyncio.get_running_loop().time() - started >= SEND_TIMEOUT
    assert not server.write_now(b"late")  # cut off: nothing written
    assert writer.transport.buffered == 4


async def real_connection(send_timeout: float = SEND_TIMEOUT) -> tuple[TCPServer, socket.socket]:
    """A TCPServer over asyncio's own socket transport, and its peer."""
    ours, peer = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    server = TCPServer(
        AsyncMock(), asyncio.get_running_loop(), config(), WorkerContext(None), {}, reader, writer
    )
    server.options = dataclasses.replace(server.options, send_timeout=send_timeout)
    server.protocol = AsyncMock()
    server._task_group = Mock()
    return server, peer


async def test_write_now_hands_a_tick_straight_to_the_socket() -> None:
    """With nothing waiting in asyncio's buffer, the frame goes to the
    socket's send() as write() itself would send it, without write()'s
    wrapping (tcp.py, change 8)."""
    server, peer = await real_connection()
    transport: Any = server.writer.transport
    transport.write = Mock(wraps=transport.write)
    with peer:
        assert server.write_now(b"tick")
        assert server.write_now(b"tock")
        assert peer.recv(64) == b"ticktock"
        transport.write.assert_not_called()
        assert server._draining is None
        server.writer.close()


async def test_what_the_kernel_does_not_take_waits_in_the_transport_in_order() -> None:
    """A frame larger than the socket takes at once: the rest waits in
    asyncio's buffer, the next tick is skipped while it does, and once the
    peer reads, every byte arrives once and in order and ticks go at once
    again."""
    server, peer = await real_connection(send_timeout=scaled(30))
    big = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer here
    with peer:
        peer.setblocking(False)
        assert server.write_now(big)
        assert server.writer.transport.get_write_buffer_size() > 0
        assert server._draining is not None
        assert not server.write_now(b"skipped")
        received = bytearray()

        def read() -> bool:
            with contextlib.suppress(BlockingIOError):
                received.extend(peer.recv(1 << 20))
            return len(received) >= len(big)

        await until(read, scaled(5), "the peer read the whole frame")
        await until(lambda: server._draining is None, scaled(5), "the drain ended")
        assert bytes(received) == big
        assert server.write_now(b"tick")
        await until(lambda: read() or bytes(received[len(big) :]) == b"tick", scaled(5), "tick")
        assert bytes(received) == big + b"tick"
        assert not server.aborted
        server.writer.close()


async def test_write_now_to_a_peer_gone_ends_the_transport_as_write_would() -> None:
    """A send that fails (the peer closed its end) is handed to asyncio's
    write(), which ends the transport as it always does; nothing is said
    written, and nothing more is tried."""
    server, peer = await real_connection()
    peer.close()
    assert not server.write_now(b"tick")
    assert server.writer.transport.is_closing()
    assert not server.write_now(b"tock")


async def test_unread_sees_bytes_in_the_kernel_and_in_the_stream_reader() -> None:
    """pending.py's "stalled" asks the connection whether bytes wait unread:
    in the kernel's queue (the loop has not got to it), or read by asyncio
    into the stream reader but not yet by Hypercorn."""
    server, peer = await real_connection()
    with peer:
        assert not server.unread()
        server.writer.transport.pause_reading()
        peer.send(b"GET / HTTP/1.1\r\n")
        await until(server.unread, scaled(5), "bytes in the kernel")
        server.writer.transport.resume_reading()
        await until(lambda: bool(server.reader._buffer), scaled(5), "read by asyncio")
        assert server.unread()
        await server.reader.read(100)
        assert not server.unread()
        server.writer.close()


async def test_a_websocket_over_http_1_1_advertises_write_now() -> None:
    """The app's scope carries the stream's write_now (core/wire.py,
    WRITE_NOW), which writes nothing outside a real connection."""
    stream, _, _ = await accepted_stream()
    scope: Any = {"type": "websocket", "extensions": {}}
    async with TaskGroup(asyncio.get_running_loop()) as group:
        await group.spawn_app(ASGIWrapper(AsyncMock()), config(), scope, stream.app_send)  # type: ignore[arg-type]
    assert scope["extensions"][PREFRAMED] == {WRITE_NOW: stream.write_now}
    assert not stream.write_now(b"tick")  # no TCP connection under it here


async def test_the_stream_protocol_drain_waiters_are_a_list() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport = Mock()
    transport.get_extra_info.return_value = None
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    TCPServer(AsyncMock(), loop, config(), WorkerContext(None), {}, reader, writer)
    assert type(protocol._drain_waiters) is list  # type: ignore[attr-defined]
    protocol.pause_writing()
    drained = loop.create_task(writer.drain())
    await settle()
    protocol.resume_writing()
    await asyncio.wait_for(drained, scaled(1))
    assert protocol._drain_waiters == []  # type: ignore[attr-defined]


async def test_a_silent_connection_is_closed_after_the_read_timeout() -> None:
    reader = asyncio.StreamReader()
    made = config()
    made.read_timeout = 0.05  # type: ignore[assignment]
    server = TCPServer(
        AsyncMock(), asyncio.get_running_loop(), made, WorkerContext(None), {}, reader, Mock()
    )
    server.protocol = AsyncMock()
    reader.feed_data(b"GET / HTTP/1.1\r\n")
    await asyncio.wait_for(server._read_data(), scaled(1))
    assert server.protocol.handle.await_args_list == [
        ((RawData(b"GET / HTTP/1.1\r\n"),),),
        ((Closed(),),),  # nothing more within the read timeout
    ]


async def test_an_app_that_raises_is_logged_and_the_stream_hears_it_returned() -> None:
    send = AsyncMock()
    made = config()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async with TaskGroup(asyncio.get_running_loop()) as group:
        scope: Any = {"type": "websocket", "extensions": {}}
        inbox = await group.spawn_app(ASGIWrapper(app), made, scope, send)  # type: ignore[arg-type]
    made._log.exception.assert_awaited_once_with("Error in ASGI Framework")
    send.assert_awaited_once_with(None)
    assert isinstance(inbox, AppInbox)
    assert inbox.closed


async def test_reads_share_one_deadline_timer_that_moves_only_when_it_fires() -> None:
    """Not a timer per read (each left in the loop's heap once cancelled)."""
    reader = asyncio.StreamReader()
    made = config()
    made.read_timeout = 3600  # type: ignore[assignment]
    server = TCPServer(
        AsyncMock(), asyncio.get_running_loop(), made, WorkerContext(None), {}, reader, Mock()
    )
    server.protocol = AsyncMock()
    reading = asyncio.get_running_loop().create_task(server._read_data())
    await settle()
    timer = server._read_deadline
    assert timer is not None
    for _ in range(5):
        reader.feed_data(b"x")
        await settle()
    assert server._read_deadline is timer
    assert not timer.cancelled()
    timer.cancel()
    server._read_overdue()  # it fires early (the read has not been blocked an hour): it moves
    assert server._read_deadline is not None
    assert server._read_deadline is not timer
    assert not reading.done()
    reader.feed_eof()
    await asyncio.wait_for(reading, scaled(1))
    assert server._read_deadline is None  # cancelled with the connection's end


async def test_hypercorns_own_500_carries_the_headers() -> None:
    """An app that fails before it answers gets Hypercorn's own 500, which
    passes through `H11Protocol.stream_send` like every stream's response:
    the security headers go on it there (one place for every stream)."""
    sent: list[Any] = []

    async def send(event: Any) -> None:
        sent.append(event)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("fails before answering")

    async with TaskGroup(asyncio.get_running_loop()) as group:
        protocol = h11_protocol(app, config(), group, send)
        await protocol.handle(RawData(b"GET / HTTP/1.1\r\nHost: clock\r\n\r\n"))
        await until(lambda: any(isinstance(e, RawData) for e in sent), 2, "a response")
        await protocol.handle(Closed())
    response = b"".join(event.data for event in sent if isinstance(event, RawData))
    assert response.startswith(b"HTTP/1.1 500 ")
    for name, value in HEADERS:
        assert f"{name.lower()}: {value}".encode() in response.lower()
