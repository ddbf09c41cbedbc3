"""One websocket: Hypercorn's `WSStream` with one way to close, a budget for
what the client sends, pre-framed writes and no compression.

Installed by rebinding `WSStream` in `hypercorn.protocol.h11` and
`hypercorn.protocol.h2`, the modules that build streams (see `install.py`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, cast

from hypercorn.config import Config
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Data, EndBody, Event, Response, StreamClosed
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.typing import (
    AppWrapper,
    ASGISendEvent,
    TaskGroup,
    WebsocketAcceptEvent,
    WorkerContext,
)
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping, Pong
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import WEBSOCKET_VERSION

from ...core.budget import CLOSE, OVER_SHARE, PASS, PAUSE_S, TOO_SLOW, Budget, Inbound
from ...core.security_headers import merged
from ...core.wire import CLIENT_CLOSE_FRAME_MAX, FRAME, ends_with_client_close
from .. import pinger
from . import guard
from .inbound import Pause, inbound_of
from .inbox import AppInbox
from .options import options_of
from .tcp import TCPServer, current

ASGIWebsocketState = ws_stream.ASGIWebsocketState

# Bytes a client may send after the server's close frame (they are read and
# dropped, unparsed, while it waits for the client's own close frame); past
# it the client is not closing, and the connection is reset.
DISCARD_LIMIT = 1 << 20

POLICY_VIOLATION = 1008

# What every accepted stream's `handshake` is (change 10): one shared,
# accepted, empty handshake instead of each its parsed headers.
ACCEPTED = ws_stream.Handshake([], "1.1")
ACCEPTED.accepted = True


class WSStream(ws_stream.WSStream):
    """Changes, each until Hypercorn has its own (then drop the override):

    1. **Every close ends the same way** (`close`), whoever starts it: the
       app (websocket.close, or returning), the client (its close frame), or
       the server itself (1009 for a message too big, 1008 past the budget,
       1002/1007 for a protocol error; Hypercorn sent those with no word to
       the app, or none at all). The close frame is the last thing written
       (pre-framed ticks check wsproto's state too, and wsproto refuses
       anything else); the app hears `websocket.disconnect` at once, with
       the code; from then on incoming bytes are dropped unparsed (wsproto is
       not fed, the message buffer is cleared) until the client's close
       frame ends them; and the handshake has `send_timeout` before the
       connection is reset. (Upstream has no issue for this; Hypercorn's
       buffer keeps growing after a 1009.)
    2. **One budget for everything the client sends** (`_handle_events`,
       core/budget.py): frames of any kind and their bytes per second, and
       how many frames and seconds one message may take; pings past a rate go
       unanswered. Hypercorn counts nothing below a whole message. (No
       upstream issue.)
    3. **Ticks are framed once** (`app_send`): a `websocket.send` carrying
       the finished frame (core/wire.py, advertised by `inbox.TaskGroup`) is
       written as is; and over HTTP/1.1 the app may hand a frame to
       `write_now`, a plain function that writes it to the socket at once
       or says it cannot: no send, coroutine or task per client and tick.
       (An extension of this service; keep.)
    4. **No permessage-deflate** (`_accept`): Hypercorn always accepts it,
       and every browser offers it: ~100 KB of zlib state per connection to
       compress ~70-byte ticks. The client's offer is ignored. (Upstream:
       issue #307, a switch for it, open.)
    5. **The server's own refusals** (`_send_error_response`, and the app's
       `websocket.http.response.start`) carry the headers every response of
       the app carries (CSP, nosniff); a handshake with a version other than
       13 gets 426 with `Sec-WebSocket-Version: 13` (RFC 6455 4.2.2), not a
       bare 400. (No upstream issue.)
    6. Accepted websockets are handed to the process's pinger (`pinger.py`)
       instead of a ping task each (Hypercorn's is off in the config).
    7. **wsproto's event queue is a list** (`_accept`): a deque allocates
       760 bytes up front, for a queue that only ever holds the one event of
       a connection lost. (Memory per connection; skipped unless
       `guard.holds("wsproto.connection")`.)
    8. **A reader, not just a sender** (`ping`): each ping the pinger sends
       carries a payload the client cannot guess, and its pong must come
       back within `send_timeout` or the connection is reset. Only a client
       that reads what we send can answer it: before, any bytes it sent
       (unsolicited pongs every 15 s) kept a client that never read alive
       until its kernel buffers filled, minutes later. (No upstream issue.)
    9. **A share of the process, not just a budget of its own**
       (`_handle_events`, `_shed`; core/budget.py, `Inbound`): past
       INBOUND_RATE for the whole process, a connection sending more than
       its fair share has its messages dropped (pings unanswered) and is
       not read for 2-4 s (`inbound.Pause`); with `STRIKES` messages shed,
       it is closed with 1008.
       Senders at a page's rate pass however busy the process is. (An
       extension of this service; keep.)
    10. **No scope after the accept** (`_accept`): the stream lets go of
       the ASGI scope and its header list, and of the parsed handshake, once
       the 101 is sent (memory per connection; Hypercorn has no use for
       them after that but `handshake.accepted`).
    """

    _pause: Pause | None = None  # while shed (change 9): an instance's own only then

    def __init__(
        self,
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        task_group: TaskGroup,
        ssl: bool,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        send: Any,
        stream_id: int,
    ) -> None:
        super().__init__(app, config, context, task_group, ssl, client, server, send, stream_id)
        self.options = options_of(config)
        self.tcp: TCPServer | None = current.get()  # None outside a real connection (tests)
        # Over HTTP/1.1 a frame is the connection's bytes as is (over HTTP/2
        # it travels inside the protocol's own frames: `send` only).
        self._direct = isinstance(getattr(send, "__self__", None), H11Protocol)
        self.budget: Budget | None = None  # from the accept on
        self.close_sent = False  # our close frame is out (or the stream is failing)
        self.app_told = False  # the app has had its websocket.disconnect
        self.discarded = 0  # bytes dropped after our close frame
        self._tail = b""  # the last of them: does the client's close frame end them?
        self._deadline: asyncio.TimerHandle | None = None  # of the close handshake
        self._message_deadline: asyncio.TimerHandle | None = None  # of a fragmented message
        self._ping_payload = b""  # of the ping awaiting its pong (change 8)
        self._pong_deadline: asyncio.TimerHandle | None = None

    # --- reading -------------------------------------------------------

    async def handle(self, event: Event) -> None:
        if isinstance(event, Data) and self.close_sent and not self.closed:
            await self._discard(event.data)
            return
        if isinstance(event, StreamClosed) and self.app_told:
            self.closed = True  # (Hypercorn would tell the app a second time)
        else:
            await super().handle(event)
        if self.closed:
            self._cancel_timers()
            _end_parser_cycle(getattr(self, "connection", None))  # (none: never upgraded)
            if self._pause is not None:
                self._pause.wake()  # (the read loop that waits there can end)

    async def _handle_events(self) -> None:
        """Replaces Hypercorn's (which counts nothing below a whole message,
        keeps buffering after a 1009, and fails a protocol error without a
        close frame)."""
        if self.budget is None:  # (events flow only after the accept)
            self.budget = Budget(self.options.limits, time.monotonic())
        budget = self.budget
        now = time.monotonic()
        inbound = inbound_of(self.config)
        shed = False  # one of these events was shed: the rest are dropped, then a pause
        for event in self.connection.events():
            if isinstance(event, Message):
                try:
                    self.buffer.extend(event)
                except ws_stream.FrameTooLargeError:
                    self.buffer.clear()
                    await self.close(CloseReason.MESSAGE_TOO_BIG, "message too big")
                    return
                data = event.data
                size = (
                    len(data)
                    if isinstance(data, bytes | bytearray) or data.isascii()
                    else len(data.encode())
                )
                over = budget.charge(size, event.frame_finished, now)
                if over is None and event.frame_finished:
                    over = budget.fragment(event.message_finished, now)
                if over is not None:
                    self.buffer.clear()
                    await self.close(POLICY_VIOLATION, over)
                    return
                if event.message_finished:
                    self._clear_message_deadline()
                    verdict = _verdict(inbound, budget, shed, now)
                    if verdict != PASS:  # dropped
                        self.buffer.clear()
                        if verdict == CLOSE:
                            await self._over_share(inbound)
                            return
                        shed = True
                        continue
                    message = self.buffer.to_message()
                    self.buffer.clear()
                    assert self.app_put is not None
                    await self.app_put(message)
                elif self._message_deadline is None:
                    self._message_deadline = asyncio.get_running_loop().call_later(
                        budget.limits.message_s, self._message_overdue
                    )
            elif isinstance(event, Ping | Pong):
                over = budget.charge(len(event.payload), True, now)
                if over is not None:
                    await self.close(POLICY_VIOLATION, over)
                    return
                verdict = _verdict(inbound, budget, shed, now)
                if verdict == CLOSE:
                    await self._over_share(inbound)
                    return
                shed = shed or verdict != PASS
                # A shed ping goes unanswered; a pong is read all the same
                # (it may be the one our ping awaits).
                if isinstance(event, Ping) and verdict == PASS and budget.may_pong(now):
                    await self._send_wsproto_event(event.response())
                elif isinstance(event, Pong) and event.payload == self._ping_payload:
                    self._clear_pong_deadline()  # it has read up to our ping
            elif isinstance(event, CloseConnection):
                if self.connection.state == ConnectionState.REMOTE_CLOSING:
                    await self.close(event.code, event.reason or "", answer=True)
                else:  # wsproto could not parse the frames: 1002 or 1007
                    await self.close(event.code, event.reason or "", wait=False)
                return
        if shed:
            await self._shed(inbound)

    async def _over_share(self, inbound: Inbound | None) -> None:
        if inbound is not None:
            inbound.closed += 1
        await self.close(POLICY_VIOLATION, OVER_SHARE)

    async def _shed(self, inbound: Inbound | None) -> None:
        """Over its share: read nothing from this client for a while (the
        read loop waits here; the kernel holds what it sends)."""
        if self.close_sent or self.closed:
            return  # closing: its close frame is to be read
        if inbound is not None:
            inbound.paused += 1
        self._pause = Pause()
        try:
            transport = self.tcp.writer.transport if self.tcp is not None else None
            await self._pause.hold(transport)
        finally:
            del self._pause  # (back to the class's None: no slot held between pauses)

    async def _discard(self, data: bytes) -> None:
        """After our close frame: drop what arrives, unparsed, until it ends
        with the client's close frame."""
        self.discarded += len(data)
        self._tail = (self._tail + data)[-CLIENT_CLOSE_FRAME_MAX:]
        if ends_with_client_close(self._tail):
            await self._finish()
        elif self.discarded > DISCARD_LIMIT:
            self._reset()

    def _message_overdue(self) -> None:
        self._message_deadline = None
        if self._pause is not None:  # our doing, not the client's: look again after it
            self._message_deadline = asyncio.get_running_loop().call_later(
                PAUSE_S[1], self._message_overdue
            )
        elif not self.close_sent and not self.closed:
            self.task_group.spawn(self.close, POLICY_VIOLATION, TOO_SLOW)

    # --- closing -------------------------------------------------------

    async def close(
        self, code: int, reason: str = "", *, answer: bool = False, wait: bool = True
    ) -> None:
        """The one way a websocket closes. `answer`: the client's close frame
        came first (this one answers it, and the connection ends now);
        `wait=False`: the stream is failing (a protocol error), so nothing
        is waited for."""
        if self.close_sent or self.closed:
            return
        self.close_sent = True
        self.buffer.clear()
        if self._pause is not None:
            self._pause.wake()  # read again: the client's close frame is awaited
        self._clear_message_deadline()
        self._clear_pong_deadline()
        if self.tcp is not None:
            self.tcp.closing()
        self._tell_app(int(code))
        await self._send_wsproto_event(CloseConnection(code=code, reason=reason or None))
        if answer or not wait:
            await self._finish()
        elif not self.closed:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self.options.send_timeout, self._reset)

    def _tell_app(self, code: int) -> None:
        if self.app_told or self.app_put is None:
            return
        self.app_told = True
        message = {"type": "websocket.disconnect", "code": code}
        if isinstance(self.app_put, AppInbox):
            self.app_put.finish(message)  # without waiting: the app may be the one sending
        else:
            self.task_group.spawn(self.app_put, message)

    async def _finish(self) -> None:
        """The close handshake is over: end the connection (the server closes
        TCP first, RFC 6455 7.1.1)."""
        if not self.closed:
            await self.send(StreamClosed(stream_id=self.stream_id))

    def _reset(self) -> None:
        """The close handshake ran out of time (or the client would not stop
        sending): reset the connection."""
        self._deadline = None
        if self.closed:
            return
        if self.tcp is not None:
            self.tcp.abort()
        else:
            self.task_group.spawn(self.send, StreamClosed(stream_id=self.stream_id))

    def _clear_message_deadline(self) -> None:
        if self._message_deadline is not None:
            self._message_deadline.cancel()
            self._message_deadline = None

    def _clear_pong_deadline(self) -> None:
        if self._pong_deadline is not None:
            self._pong_deadline.cancel()
            self._pong_deadline = None

    def _cancel_timers(self) -> None:
        self._clear_message_deadline()
        self._clear_pong_deadline()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # --- liveness (change 8) ---------------------------------------------

    async def ping(self) -> None:
        """The pinger's ping: its pong is due within `send_timeout`."""
        if not self.writable or self._pong_deadline is not None:
            return  # closing, or the last ping's pong is still due
        self._ping_payload = os.urandom(4)
        self._pong_deadline = asyncio.get_running_loop().call_later(
            self.options.send_timeout, self._pong_overdue
        )
        await self._send_wsproto_event(Ping(self._ping_payload))

    def _pong_overdue(self) -> None:
        """It has not read our ping: reset (a close frame would not be read either)."""
        self._pong_deadline = None
        if self._pause is not None:  # its pong may be waiting unread: look again after it
            self._pong_deadline = asyncio.get_running_loop().call_later(
                self.options.send_timeout, self._pong_overdue
            )
            return
        if not self.closed and self.tcp is not None:
            self.tcp.abort()
        elif not self.closed:
            self.task_group.spawn(self.send, StreamClosed(stream_id=self.stream_id))

    # --- writing -------------------------------------------------------

    def app_send(self, message: ASGISendEvent | None) -> Coroutine[Any, Any, None]:
        """Every app message passes here, so the common case (a tick) is a
        plain function that returns the write to await: no coroutine of its own."""
        if message is None:  # the app has returned
            if self.close_sent and not self.closed:
                return _nothing()  # the close handshake's end ends the stream
            if not self.closed and self.state == ASGIWebsocketState.CONNECTED:
                return self.close(CloseReason.INTERNAL_ERROR)  # with the websocket open: 1011
            return super().app_send(message)
        kind = message["type"]
        if kind == "websocket.send":
            frame = cast(dict[str, Any], message).get(FRAME)
            if frame is not None and self.writable:
                return cast(
                    Coroutine[Any, Any, None], self.send(Data(stream_id=self.stream_id, data=frame))
                )
        elif kind == "websocket.close" and self.state == ASGIWebsocketState.CONNECTED:
            self.state = ASGIWebsocketState.CLOSED
            close = cast(dict[str, Any], message)
            return self.close(int(close.get("code", 1000)), close.get("reason") or "")
        elif kind == "websocket.http.response.start" and self.options.headers:
            headers = merged(cast(dict[str, Any], message)["headers"], self.options.headers)
            message = cast(ASGISendEvent, {**message, "headers": headers})
        return super().app_send(message)

    def write_now(self, frame: bytes) -> bool:
        """Write a finished frame now (True), or nothing if the connection
        cannot take it at once (False; core/wire.py, WRITE_NOW)."""
        tcp = self.tcp
        return tcp is not None and self._direct and self.writable and tcp.write_now(frame)

    @property
    def writable(self) -> bool:
        """A data frame may go out: accepted, and no close frame sent."""
        return (
            self.state == ASGIWebsocketState.CONNECTED
            and not self.close_sent
            and not self.closed
            and self.connection.state == ConnectionState.OPEN
        )

    async def _accept(self, message: WebsocketAcceptEvent) -> None:
        self.handshake.extensions = None  # change 4: no offer is seen, none agreed
        await super()._accept(message)
        _lighten(self.connection)  # change 7
        # Change 10: the scope (its headers are most of it) serves only the
        # handshake here: Hypercorn reads it again only for a refusal or an
        # app that returns before accepting. The app keeps it if it wants it.
        with suppress(AttributeError):  # (`del`: `__dict__` would make a dict)
            del self.scope
        # ...and the handshake's parsed headers: after the accept Hypercorn
        # asks it only whether it was accepted.
        self.handshake = ACCEPTED
        self.budget = Budget(self.options.limits, time.monotonic())
        if self.tcp is not None:
            self.tcp.upgraded()
        pinger.watch(self)

    async def _send_error_response(self, status_code: int) -> None:
        """Replaces Hypercorn's: its headers, plus the app's, plus 426 for a
        version this server does not speak."""
        headers = [(b"content-length", b"0"), (b"connection", b"close")]
        if status_code == 400 and self._wrong_version():
            status_code = 426
            headers.append((b"sec-websocket-version", WEBSOCKET_VERSION))
        headers = merged(headers, self.options.headers)
        await self.send(
            Response(stream_id=self.stream_id, status_code=status_code, headers=headers)
        )
        await self.send(EndBody(stream_id=self.stream_id))
        await self.config.log.access(
            self.scope, {"status": status_code, "headers": []}, time.time() - self.start_time
        )

    def _wrong_version(self) -> bool:
        handshake = getattr(self, "handshake", None)
        return (
            handshake is not None
            and handshake.version is not None
            and handshake.version != WEBSOCKET_VERSION
        )


async def _nothing() -> None:
    pass


def _verdict(inbound: Inbound | None, budget: Budget, shed: bool, now: float) -> int:
    """The process's word on one message or control frame (`Inbound`):
    PASS with no budget; once one of this read's events was shed, the rest
    of them are dropped too (`shed`)."""
    if inbound is None:
        return PASS
    return inbound.drop(budget) if shed else inbound.admit(budget, now)


class _Events(list[Any]):
    """The part of a deque wsproto's `Connection` uses on its `_events`."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def _lighten(connection: object) -> None:
    """wsproto's event deque, as a list (docs/PERFORMANCE.md, Memory per connection)."""
    events = getattr(connection, "_events", None)
    if type(events) is deque and guard.holds("wsproto.connection"):
        connection._events = _Events(events)  # type: ignore[attr-defined]


def _end_parser_cycle(connection: object) -> None:
    """wsproto's frame parser is a generator its FrameProtocol holds, whose
    frame holds the FrameProtocol: a cycle only the collector frees, and the
    collector no longer sees long-lived objects (server/collector.py). Once
    the stream is closed nothing is parsed, so an empty parser breaks it."""
    proto = getattr(connection, "_proto", None)
    if proto is not None and hasattr(proto, "_parse_more"):
        proto._parse_more = iter(())
