"""HTTP/1.1 connections: Hypercorn's `H11Protocol` with HTTP/2 behind a
setting, RFC 9112's rule for ambiguous framing, and the app's headers on the
server's own error responses.

Installed by rebinding `hypercorn.protocol.H11Protocol`, the name
`ProtocolWrapper` builds HTTP/1.1 connections with (see `install.py`).
"""

from __future__ import annotations

import dataclasses
from itertools import chain

import h11
from hypercorn.events import Event, RawData
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import Response

from .options import options_of
from .tcp import current


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
    3. **Hypercorn's own 400/431** carry the app's headers (CSP, nosniff)
       (`_send_error_response`, replaced: same response, more headers).
    """

    must_close = False  # this request's response ends the connection

    async def handle(self, event: Event) -> None:
        # For the pending-connection cap: a connection sending a request is
        # not one to close for a newcomer; one between requests is.
        connection = current.get()
        if connection is not None and isinstance(event, RawData):
            connection.busy = True
        await super().handle(event)

    async def _maybe_recycle(self) -> None:
        await super()._maybe_recycle()
        connection = current.get()
        if connection is not None:
            connection.busy = False

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
        await super().stream_send(event)

    async def _send_error_response(self, status_code: int) -> None:
        await self._send_h11_event(
            h11.Response(
                status_code=status_code,
                headers=list(
                    chain(
                        [(b"content-length", b"0"), (b"connection", b"close")],
                        self.config.response_headers("h11"),
                        options_of(self.config).headers,
                    )
                ),
            )
        )
        await self._send_h11_event(h11.EndOfMessage())
