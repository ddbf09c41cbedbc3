"""HTTP/1.1 connections: Hypercorn's `H11Protocol` with HTTP/2 behind a
setting, RFC 9112's rule for ambiguous framing, and the app's headers on the
server's own error responses.

Installed by rebinding `hypercorn.protocol.H11Protocol`, the name
`ProtocolWrapper` builds HTTP/1.1 connections with (see `install.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from itertools import chain

import h11
from hypercorn.config import Config
from hypercorn.events import Event
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import Response
from hypercorn.typing import AppWrapper, ConnectionState, H11SendableEvent, TaskGroup, WorkerContext

from ...core.security_headers import merged
from .options import options_of


class H11Protocol(hypercorn_h11.H11Protocol):
    """Changes, each until Hypercorn has its own (then drop the override):

    1. **No HTTP/2 in clear text unless `HTTP2` is set** (`_check_protocol`):
       Hypercorn switches to HTTP/2 on the prior-knowledge preface or
       `Upgrade: h2c`, where none of this layer's websocket guarantees
       (send timeout, close deadline, budget) hold. Off, the upgrade is
       ignored (the request is answered in HTTP/1.1) and the preface is
       answered as the HTTP/1.1 request it parses as, then the connection
       closes. (No upstream setting.)
    2. **A request with both `Content-Length` and `Transfer-Encoding` closes
       the connection after its response** (RFC 9112 6.1: MUST), so nothing
       smuggled behind it is read as a next request. (h11 answers it and
       keeps the connection; no upstream issue.)
    3. **Every response carries the app's headers** (CSP, nosniff), the
       ones Hypercorn and h11 write themselves too: their 400/431
       (`_send_error_response`, replaced: same response, more headers) and
       any stream's 404/500 (`stream_send`).
    4. **No `asyncio.Event` until someone waits** (`__init__`): `can_read`
       is waited on only when h11 pauses a pipelined request, but Hypercorn's
       event allocates a 760-byte deque on creation, for every connection and
       every websocket's lifetime. (Memory per connection; no upstream issue.)
    """

    must_close = False  # this request's response ends the connection

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        connection_state: ConnectionState,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Callable[[Event], Awaitable[None]],
    ) -> None:
        super().__init__(
            app, config, context, task_group, connection_state, ssl, client, server, send
        )
        self.can_read = LazyEvent()

    async def _check_protocol(self, event: h11.Request) -> None:
        names = {name.lower() for name, _ in event.headers}
        self.must_close = b"content-length" in names and b"transfer-encoding" in names
        if options_of(self.config).http2:
            await super()._check_protocol(event)
        elif event.method == b"PRI" and event.target == b"*":
            self.must_close = True  # an HTTP/2 preface: what follows is not HTTP/1.1

    async def stream_send(self, event: StreamEvent) -> None:
        if self.must_close and isinstance(event, Response) and event.status_code >= 200:
            event = dataclasses.replace(event, headers=[*event.headers, (b"connection", b"close")])
            self.must_close = False
        if isinstance(event, Response) and (extra := options_of(self.config).headers):
            # Every stream's response, Hypercorn's own 404/500 too (change 3).
            event = dataclasses.replace(event, headers=merged(event.headers, extra))
        await super().stream_send(event)

    async def _send_error_response(self, status_code: int) -> None:
        await self._send_h11_event(
            h11.Response(
                status_code=status_code,
                headers=merged(
                    chain(
                        [(b"content-length", b"0"), (b"connection", b"close")],
                        self.config.response_headers("h11"),
                    ),
                    options_of(self.config).headers,
                ),
            )
        )
        await self._send_h11_event(h11.EndOfMessage())


class LazyEvent:
    """Hypercorn's `EventWrapper` (async `set`/`clear`/`wait`, `is_set`) with
    the `asyncio.Event` made only when a wait has to block."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: asyncio.Event | None = None

    async def clear(self) -> None:
        self._set = False
        if self._event is not None:
            self._event.clear()

    async def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self._set:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def is_set(self) -> bool:
        return self._set


class H11WSConnection(hypercorn_h11.H11WSConnection):
    """What stands in for h11 once a request is a websocket upgrade, without
    h11 once the 101 is out: from then on h11 can send nothing (its state is
    SWITCHED_PROTOCOL) and reads nothing (the bytes pass through here), but
    Hypercorn keeps the whole `h11.Connection` (state machine, receive buffer,
    the request's parse) for the websocket's lifetime. A send after the 101
    fails as h11 would fail it. (docs/PERFORMANCE.md, Memory per connection; no
    upstream issue. Installed by rebinding `H11WSConnection` in
    `hypercorn.protocol.h11`, the name `_create_stream` builds it with.)"""

    def send(self, event: H11SendableEvent) -> bytes:
        spent = self.h11_connection
        if spent is None:
            raise h11.LocalProtocolError("the connection has switched to the websocket protocol")
        data = spent.send(event)
        if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
            self.h11_connection = None  # type: ignore[assignment]
        return data
