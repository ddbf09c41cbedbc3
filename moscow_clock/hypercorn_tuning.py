"""Seven things this service needs from Hypercorn 0.18 that it has no setting for.

Applied once by `server.py` before serving (the versions are pinned, and the
tests exercise every one of them against the real server):

1. **Drop a peer whose socket stays full.** Hypercorn awaits
   `StreamWriter.drain()` with no limit, so a client that never reads (or
   vanished mid-write) would pin its buffers and its session forever. Here a
   drain that has not finished after `send_timeout` seconds aborts the
   connection. The buffers in front of it are bounded too: asyncio's write
   buffer pushes back at 16 KB (not 64 KB) and the kernel's send buffer is
   fixed at 32 KB (not autotuned up to 4 MB): hundreds of unsent ticks mean
   the client is gone, and at ten thousand clients the difference is memory.
2. **Closing a connection has a deadline.** Hypercorn closes a socket and
   then waits, unbounded, for its unsent bytes to drain, so a client that never
   reads kept its connection task (and a graceful shutdown) alive forever.
   After `send_timeout` the socket is reset instead.
3. **Pings end with their stream.** Hypercorn's ping task sleeps a whole
   interval before noticing the stream closed, and the connection (and a
   graceful shutdown) waits for it. Here it is cancelled when the stream closes.
4. **A close handshake has a deadline.** After the server sends its close
   frame, the connection lives until the client answers (Quart waits for the
   disconnect). A client that never answers is cut off after `send_timeout`.
5. **Nothing waits on an app that has finished.** Hypercorn feeds a
   connection's messages to the app through a bounded queue; once the app has
   returned, nobody empties it, and the reader blocked on a full queue kept
   the connection open forever. Here the queue is shut down with the app, and
   what is still arriving is dropped.
6. **No permessage-deflate.** Hypercorn always offers it and every browser
   accepts, which costs ~100 KB of zlib state per connection to compress
   ~70-byte ticks that compress to nothing worth having.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from hypercorn.asyncio.task_group import TaskGroup as HypercornTaskGroup
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.ws_stream import WSStream
from wsproto.extensions import PerMessageDeflate


class _State:
    installed = False
    send_timeout = 5.0


def apply(send_timeout: float) -> None:
    """Install the seven changes (idempotent; the last `send_timeout` wins)."""
    _State.send_timeout = send_timeout
    if _State.installed:
        return
    _State.installed = True
    TCPServer.run = _bounded_buffers(TCPServer.run)  # type: ignore[method-assign]
    TCPServer._close = _close_by_deadline(TCPServer._close)  # type: ignore[method-assign]
    TCPServer.protocol_send = _bounded_protocol_send(TCPServer.protocol_send)  # type: ignore[method-assign]
    WSStream._send_pings = _pings_until_closed  # type: ignore[method-assign]
    WSStream.handle = _cancel_timers_on_close(WSStream.handle)  # type: ignore[method-assign]
    WSStream.app_send = _close_with_deadline(WSStream.app_send)  # type: ignore[method-assign]
    HypercornTaskGroup.spawn_app = _queue_ends_with_app(HypercornTaskGroup.spawn_app)  # type: ignore[method-assign]
    ws_stream.PerMessageDeflate = _NoCompression  # type: ignore[attr-defined,misc]


WRITE_BUFFER_HIGH = 16 * 1024
KERNEL_SEND_BUFFER = 32 * 1024


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
    async def protocol_send(self: TCPServer, event: Event) -> None:
        if not isinstance(event, RawData):
            await original(self, event)
            return
        async with self.send_lock:
            writer = self.writer
            if writer.transport.is_closing():
                return  # cut off already: the bytes have nowhere to go
            try:
                writer.write(event.data)
                if writer.transport.get_write_buffer_size() == 0:
                    return  # all in the kernel already: the common case costs no timer
                async with asyncio.timeout(_State.send_timeout):
                    await writer.drain()
            except (TimeoutError, ConnectionError, RuntimeError):
                _reset(writer)
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


def _until_closed(stream: WSStream) -> None:
    """Register the running task to be cancelled when the stream closes."""
    timers: list[asyncio.Task[Any]] = stream.__dict__.setdefault("_moscow_timers", [])
    task = asyncio.current_task()
    if task is not None:
        timers.append(task)


async def _pings_until_closed(self: WSStream) -> None:
    _until_closed(self)
    interval = self.config.websocket_ping_interval
    try:
        while not self.closed:
            await self._send_wsproto_event(ws_stream.Ping())
            await asyncio.sleep(interval)
    except asyncio.CancelledError:
        if not self.closed:
            raise


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


def _close_with_deadline(
    original: Callable[[WSStream, Any], Awaitable[None]],
) -> Callable[[WSStream, Any], Awaitable[None]]:
    async def app_send(self: WSStream, message: Any) -> None:
        closing = (
            message is not None
            and message["type"] == "websocket.close"
            and self.state == ws_stream.ASGIWebsocketState.CONNECTED
        )
        await original(self, message)
        if closing and not self.closed:
            self.task_group.spawn(_end_unanswered_close, self)

    return app_send


async def _end_unanswered_close(stream: WSStream) -> None:
    _until_closed(stream)
    try:
        await asyncio.sleep(_State.send_timeout)
    except asyncio.CancelledError:
        if stream.closed:
            return  # answered in time
        raise
    if not stream.closed:
        # Close the connection under it: Hypercorn tells the app the client
        # disconnected, and closes the socket (by `_close_by_deadline`).
        await stream.send(StreamClosed(stream_id=stream.stream_id))


type _Put = Callable[[Any], Awaitable[None]]


def _queue_ends_with_app(
    original: Callable[..., Awaitable[_Put]],
) -> Callable[..., Awaitable[_Put]]:
    async def spawn_app(
        self: HypercornTaskGroup,
        app: Any,
        config: Any,
        scope: Any,
        send: Callable[[Any], Awaitable[None]],
    ) -> _Put:
        queue: asyncio.Queue[Any] | None = None

        async def send_then_end(message: Any) -> None:
            try:
                await send(message)
            finally:
                if message is None and queue is not None:  # the app has returned
                    queue.shutdown(immediate=True)

        put = await original(self, app, config, scope, send_then_end)
        queue = put.__self__  # type: ignore[attr-defined]

        async def put_while_app_runs(event: Any) -> None:
            with suppress(asyncio.QueueShutDown):
                await put(event)

        return put_while_app_runs

    return spawn_app


class _NoCompression(PerMessageDeflate):
    """Named so that no client offer matches: the handshake agrees on none."""

    name = "x-moscow-clock-no-compression"
