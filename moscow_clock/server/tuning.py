"""What this service needs from Hypercorn 0.18 that it has no setting for.

Applied once by `server.py` before serving. Hypercorn is pinned to 0.18.x,
and each change is exercised by the tests against the real server (most
were found by a test that failed without them; docs/SECURITY.md and
docs/PERFORMANCE.md say which).

Robustness:

1. **Drop a peer whose socket stays full.** Hypercorn awaits
   `StreamWriter.drain()` with no limit, so a client that never reads (or
   vanished mid-write) would pin its buffers and its session forever. Here a
   drain that has not finished after `send_timeout` seconds resets the
   connection. The buffers in front of it are bounded too: asyncio's write
   buffer pushes back as soon as anything waits in it (not at 64 KB) and the
   kernel's send buffer is fixed at 32 KB (not autotuned up to 4 MB).
2. **Closing a connection has a deadline.** Hypercorn closes a socket and
   then waits, unbounded, for its unsent bytes to drain; after `send_timeout`
   the socket is reset instead.
3. **A close handshake has a deadline.** After the server's close frame the
   connection lives until the client answers; one that never does is cut off
   after `send_timeout`.
4. **Nothing waits on an app that has finished.** Hypercorn feeds messages to
   the app through a bounded queue that nobody empties once the app has
   returned, so a reader blocked on it kept the connection open forever. Here
   the inbox closes with the app and late messages are dropped (and it is a
   lighter inbox than an `asyncio.Queue`: see `AppInbox`).

Cost per client (one tick per client per second is the whole load):

5. **One pinger per process** (`pinger.py`). Hypercorn runs a ping task per
   connection (a task and a timer each, and it held shutdown open for an
   interval); here accepted websockets are handed to the process's pinger.
6. **Ticks are framed once.** A `websocket.send` that carries the finished
   frame (`core.wire`: advertised as the `PREFRAMED` ASGI extension) is
   written as is, instead of wsproto framing the same text again for every
   client; and writes skip Hypercorn's
   per-connection lock (a single `transport.write` is already atomic and
   ordered).
7. **No permessage-deflate.** Hypercorn always offers it and every browser
   accepts, which costs ~100 KB of zlib state per connection to compress
   ~70-byte ticks.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from contextlib import suppress
from functools import partial
from typing import Any

from hypercorn.asyncio.task_group import TaskGroup as HypercornTaskGroup
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import Data, StreamClosed
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from wsproto.extensions import PerMessageDeflate

from ..core.wire import FRAME, PREFRAMED
from . import pinger

# No bytes wait in user space: a write the kernel cannot take at once waits
# (at most `send_timeout`) for room, so a client that stopped reading is found
# as soon as its kernel buffer is full, not after a further 16-64 KB backlog.
WRITE_BUFFER_HIGH = 0
KERNEL_SEND_BUFFER = 32 * 1024


class _State:
    installed = False
    send_timeout = 5.0


def apply(send_timeout: float) -> None:
    """Install the changes (idempotent; the last `send_timeout` wins)."""
    _State.send_timeout = send_timeout
    if _State.installed:
        return
    _State.installed = True
    TCPServer.run = _bounded_buffers(TCPServer.run)  # type: ignore[method-assign,assignment]
    TCPServer._close = _close_by_deadline(TCPServer._close)  # type: ignore[method-assign,assignment]
    TCPServer.protocol_send = _bounded_protocol_send(TCPServer.protocol_send)  # type: ignore[method-assign,assignment]
    WSStream.handle = _cancel_timers_on_close(WSStream.handle)  # type: ignore[method-assign,assignment,arg-type]
    WSStream.app_send = _app_send(WSStream.app_send)  # type: ignore[method-assign,assignment]
    HypercornTaskGroup.spawn_app = _queue_ends_with_app(HypercornTaskGroup.spawn_app)  # type: ignore[method-assign,assignment]
    ws_stream.PerMessageDeflate = _NoCompression  # type: ignore[attr-defined]


def _bounded_buffers(
    original: Callable[[TCPServer], Awaitable[None]],
) -> Callable[[TCPServer], Awaitable[None]]:
    async def run(self: TCPServer) -> None:
        self.writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        await original(self)

    return run


def _bounded_protocol_send(
    original: Callable[[TCPServer, Event], Awaitable[None]],
) -> Callable[[TCPServer, Event], Awaitable[None]]:
    """Changes 1 and 6: write without the lock, wait for room only so long."""

    async def protocol_send(self: TCPServer, event: Event) -> None:
        if not isinstance(event, RawData):
            await original(self, event)
            return
        transport = self.writer.transport
        if transport.is_closing():
            return  # cut off already: the bytes have nowhere to go
        try:
            transport.write(event.data)
            if transport.get_write_buffer_size() == 0:
                return  # all in the kernel already: the common case costs no timer
            async with asyncio.timeout(_State.send_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, RuntimeError):
            _reset(self.writer)
            # Not awaited: the app may be blocked on this very send while
            # the disconnect waits for room in the app's full queue.
            self._task_group.spawn(self.protocol.handle, Closed())

    return protocol_send


def _close_by_deadline(
    original: Callable[[TCPServer], Awaitable[None]],
) -> Callable[[TCPServer], Awaitable[None]]:
    async def close(self: TCPServer) -> None:
        async with asyncio.timeout(_State.send_timeout) as deadline:
            await original(self)
        # Hypercorn swallows the cancellation, so ask the deadline, not an exception.
        if deadline.expired():
            _reset(self.writer)

    return close


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP reset: a plain close would queue a FIN behind the
    unread bytes and leave the kernel holding them for minutes."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _app_send(
    original: Callable[[WSStream, Any], Awaitable[None]],
) -> Callable[[WSStream, Any], Awaitable[None]]:
    """Changes 3, 5 and 6 at the one place every app message passes.

    A plain function that returns the awaitable to run: the common case adds
    no coroutine of its own."""

    def app_send(self: WSStream, message: Any) -> Awaitable[None]:
        if message is not None:
            kind = message["type"]
            if kind == "websocket.send":
                frame = message.get(FRAME)
                if (
                    frame is not None
                    and not self.closed
                    and self.state == ASGIWebsocketState.CONNECTED
                ):
                    return self.send(Data(stream_id=self.stream_id, data=frame))
            elif kind == "websocket.accept":
                pinger.watch(self)
            elif kind == "websocket.close" and self.state == ASGIWebsocketState.CONNECTED:
                return _close_then_wait(self, original, message)
        return original(self, message)

    return app_send


async def _close_then_wait(
    stream: WSStream, original: Callable[[WSStream, Any], Awaitable[None]], message: Any
) -> None:
    await original(stream, message)
    if not stream.closed:
        stream.task_group.spawn(_end_unanswered_close, stream)


async def _end_unanswered_close(stream: WSStream) -> None:
    _until_closed(stream)
    try:
        await asyncio.sleep(_State.send_timeout)
    except asyncio.CancelledError:
        if stream.closed:
            return  # answered in time
        raise
    if not stream.closed:
        # Close the connection under it: the app hears a disconnect, and the
        # socket is closed (within `_close_by_deadline`).
        await stream.send(StreamClosed(stream_id=stream.stream_id))


def _until_closed(stream: WSStream) -> None:
    """Register the running task to be cancelled when the stream closes."""
    timers: list[asyncio.Task[Any]] = stream.__dict__.setdefault("_moscow_timers", [])
    task = asyncio.current_task()
    if task is not None:
        timers.append(task)


def _cancel_timers_on_close(
    original: Callable[[WSStream, Event], Awaitable[None]],
) -> Callable[[WSStream, Event], Awaitable[None]]:
    async def handle(self: WSStream, event: Event) -> None:
        await original(self, event)
        if self.closed:
            for timer in self.__dict__.get("_moscow_timers", ()):
                if timer is not asyncio.current_task():
                    timer.cancel()

    return handle


type _Put = Callable[[Any], Awaitable[None]]


class AppInbox:
    """The messages from one connection to its app: bounded, one reader, one
    writer, and closed when the app returns.

    Stands in for the `asyncio.Queue` Hypercorn makes per connection, which
    allocates three deques (~2.3 KB) whether or not anything ever waits; here
    a waiter's future exists only while someone waits."""

    __slots__ = ("_closed", "_getter", "_items", "_loop", "_maxsize", "_putter")

    def __init__(self, maxsize: int) -> None:
        self._items: list[Any] = []
        self._maxsize = max(1, maxsize)
        self._loop = asyncio.get_running_loop()
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None
        self._closed = False

    async def get(self) -> Any:
        while not self._items:
            self._getter = self._loop.create_future()
            try:
                await self._getter
            finally:
                self._getter = None
        item = self._items.pop(0)
        _wake(self._putter)
        return item

    async def put(self, item: Any) -> None:
        while len(self._items) >= self._maxsize and not self._closed:
            self._putter = self._loop.create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        if self._closed:
            return  # the app has returned: nobody will read it
        self._items.append(item)
        _wake(self._getter)

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        _wake(self._putter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _queue_ends_with_app(
    original: Callable[..., Awaitable[_Put]],
) -> Callable[..., Awaitable[_Put]]:
    """Change 4: Hypercorn's spawn_app, with an inbox that closes with the app."""
    from hypercorn.asyncio.task_group import _handle  # the app runner spawn_app uses

    async def spawn_app(
        self: HypercornTaskGroup,
        app: Any,
        config: Any,
        scope: Any,
        send: Callable[[Any], Awaitable[None]],
    ) -> _Put:
        inbox = AppInbox(config.max_app_queue_size)
        if scope["type"] == "websocket":
            scope["extensions"][PREFRAMED] = {}  # change 6: app_send writes its frames as is

        async def end(message: None) -> None:
            try:
                await send(message)
            finally:
                inbox.close()

        def send_then_end(message: Any) -> Awaitable[None]:
            # None: the app has returned. Anything else passes straight through.
            return end(message) if message is None else send(message)

        loop = asyncio.get_running_loop()

        def call_soon(func: Callable[..., Any], *args: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

        self.spawn(
            _handle, app, config, scope, inbox.get, send_then_end,
            partial(loop.run_in_executor, None), call_soon,
        )  # fmt: skip
        return inbox.put

    return spawn_app


class _NoCompression(PerMessageDeflate):
    """Change 7: named so that no client offer matches, the handshake agrees on none."""

    name = "x-moscow-clock-no-compression"
