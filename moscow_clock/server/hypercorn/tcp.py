"""One TCP connection: Hypercorn's `TCPServer` with bounded buffers, a send
timeout, a deadline on closing, and a place in the pending-connection cap.

Installed by rebinding `hypercorn.asyncio.run.TCPServer`, the one name
`worker_serve` builds connections with (see `install.py`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from contextlib import suppress
from contextvars import ContextVar
from ssl import SSLError
from typing import Any

from hypercorn.asyncio import tcp_server
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.typing import AppWrapper, ConnectionState, LifespanState
from hypercorn.utils import parse_socket_addr

from ...core.peers import group_of
from ...core.request_head import MAX_HEAD_BYTES
from ...core.security_headers import merged
from . import guard
from .options import ServerConfig, options_of
from .pending import NOTHING, PART, WHOLE, Connections
from .shed import RefuseUpgrade, probe_path, refusal, upgrade_path

log = logging.getLogger("moscow_clock.server")

# No bytes wait in user space: a write the kernel cannot take at once waits
# (at most `send_timeout`) for room, so a client that stopped reading is found
# as soon as its kernel buffer is full, not after a further 16-64 KB backlog.
WRITE_BUFFER_HIGH = 0
KERNEL_SEND_BUFFER = 32 * 1024
# How often the pending connections are looked over (heads past their
# time, room to make while the listener is paused), while there are any.
SWEEP_S = 0.25
SWEEP_PAUSED_S = 0.05  # while the listener is paused

# The connection whose task is running: the streams it creates find it here
# (Hypercorn hands them only a `send` callable). Set in `TCPServer.run`, so
# every task of that connection (its task group's) inherits it.
current: ContextVar[TCPServer | None] = ContextVar("moscow_clock_connection", default=None)


def _socket_transport() -> type | None:
    """asyncio's socket transport, if it is the one `write_now` was written
    against (change 8)."""
    if guard.holds("asyncio.selector_events:_Selector"):
        transport: type = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
        return transport
    return None


_SOCKET_TRANSPORT: Any = _socket_transport()


def _stream_reader() -> type | None:
    """asyncio's stream reader, if its `read` is the one `_read_waiter`
    and `_take` do in two plain calls (change 9)."""
    return asyncio.StreamReader if guard.holds("asyncio.streams:StreamReader") else None


_STREAM_READER: Any = _stream_reader()


class TCPServer(tcp_server.TCPServer):
    """Changes, each until Hypercorn has its own (then drop the override):

    1. **A peer whose socket stays full is reset** after `send_timeout`
       (`protocol_send`). Hypercorn awaits `drain()` with no limit, so a
       client that never reads pinned its buffers and session forever
       (upstream: PR #262, a write timeout, closed unmerged). Writes also skip
       Hypercorn's per-connection lock: one `transport.write` is atomic and
       ordered, and the lock cost a future per tick per client.
    2. **Bounded buffers** (`run`): asyncio's write buffer pushes back at
       once, the kernel's send buffer is fixed at 32 KB (not autotuned to 4 MB).
       (No upstream setting; keep.)
    3. **Closing has a deadline** (`_close`): Hypercorn waits unbounded for
       unsent bytes to drain after close; past `send_timeout` the socket is
       reset (upstream: issue #308 and PR #374 fix the shutdown hang it
       causes, not the wait itself).
    4. **Connections without a websocket are capped** (`pending.py`), in
       all and per address: at the cap the listener pauses (listen.py) and
       idle or stalled connections make room; a newcomer from an address at
       its cap is judged by what it has sent (`_arrive`); a closing
       websocket is not counted. (No upstream setting.)
    5. **A finished connection is no cycle** (`run`): the protocol is dropped,
       so the whole connection is freed by reference counting, which the
       garbage-collection policy relies on (`collector.py`). (No upstream
       equivalent; harmless to keep.)
    6. **Load shedding from the first bytes** (`_read_data`): with
       `Options.refuse_upgrade` set, a connection's first read is looked at
       before the HTTP protocol parses it; a websocket upgrade the app's
       predicate refuses is answered with a canned 503 and closed (shed.py):
       no h11 parse, stream, scope or app call. Anything else goes to the
       protocol as that read. Hypercorn's idle timeout and shutdown apply
       as before (the protocol and its idle task exist by then). (No
       upstream hook.)
    7. **Less held per connection** (memory; no upstream issue): the read
       loop (`_read_data`, replaced: the same loop) bounds each read by one
       timer per connection that moves only when it fires
       (`_read_overdue`), not by `asyncio.wait_for` around every read (its
       coroutine frame alive for the connection's lifetime, and a timeout,
       a timer handle and a context per read); and the
       stream protocol's drain waiters are a list, not a deque that allocates
       760 bytes up front for the one waiter there ever is (`__init__`,
       skipped unless `guard.holds("asyncio.streams:FlowControlMixin")`).
    8. **A tick goes straight to the socket** (`write_now`): with nothing
       in asyncio's write buffer, the frame is handed to the socket's
       `send()` as the transport's own `write()` would first do, without
       its checks for what a websocket never does (`write_eof`, `sendfile`)
       or summing the empty buffer's lengths twice: per client and tick,
       that wrapping was a large share of the process's own CPU
       (docs/PERFORMANCE.md). What the kernel does not take goes to the
       transport's `write()`, and an error on the socket too, so both end
       as they always did. (Skipped unless
       `guard.holds("asyncio.selector_events:_Selector")`, and on another
       event loop's transports.)
    9. **No coroutine frames a connection does not need** (memory; no
       upstream issue): `run` does what Hypercorn's `run` does itself
       instead of awaiting it (one frame fewer under every connection), and
       with the transport's own address tuples rather than a second copy of
       each; the read loop waits on the stream reader's future itself, as
       `StreamReader.read` and its `_wait_for_data` would (two frames
       fewer under every idle connection: `_read_waiter`, skipped unless
       `guard.holds("asyncio.streams:StreamReader")`); and Hypercorn's send
       lock, which `protocol_send` no longer takes (change 1), is dropped.
    """

    def __init__(
        self,
        app: AppWrapper,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        context: WorkerContext,
        state: LifespanState,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(app, loop, config, context, state, reader, writer)
        del self.send_lock  # never taken (change 1)
        self.options = options_of(config)
        ours = isinstance(config, ServerConfig)
        self.connections: Connections | None = config.connections if ours else None  # type: ignore[attr-defined]
        self.counted = False  # in the pending cap now
        self._draining: asyncio.Future[None] | None = None  # a write_now's drain, if waiting
        self.aborted = False
        self._reading_since: float | None = None  # a read is blocked since then
        self._read_deadline: asyncio.TimerHandle | None = None  # one timer, moved as it fires
        protocol = getattr(writer, "_protocol", None)
        waiters = getattr(protocol, "_drain_waiters", None)
        if (
            type(waiters) is deque
            and not waiters
            and guard.holds("asyncio.streams:FlowControlMixin")
        ):
            protocol._drain_waiters = []  # type: ignore[union-attr]  # a list, not a deque
        _lighten_transport(writer.transport)

    async def run(self) -> None:
        self.writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        current.set(self)
        if self.connections is not None and not self._arrive(self.connections, sock):
            self.counted = False
            self.writer.close()  # (the kernel resets it if a part of a head is unread)
            return
        try:
            # Hypercorn's `run` (fingerprinted in guard.py), in this frame.
            try:
                client, server = _addresses(self.writer, sock)
                ssl_object = self.writer.get_extra_info("ssl_object")
                ssl = ssl_object is not None
                alpn = ssl_object.selected_alpn_protocol() if ssl else "http/1.1"
                # (The names install.py rebinds, looked up as Hypercorn does.)
                group = tcp_server.TaskGroup(self.loop)  # type: ignore[attr-defined]
                async with group as task_group:
                    self._task_group = task_group
                    self.protocol = tcp_server.ProtocolWrapper(  # type: ignore[attr-defined]
                        self.app, self.config, self.context, task_group,
                        ConnectionState(self.state), ssl, client, server,
                        self.protocol_send, alpn,
                    )  # fmt: skip
                    await self.protocol.initiate()
                    await self.idle_task.restart(task_group, self._idle_timeout)
                    await self._read_data()
            except OSError:
                pass
            finally:
                await self._close()
        finally:
            self._leave()
            # The connection is over: drop the references that made it a cycle
            # (the protocol holds `self.protocol_send`; the task group holds
            # the task whose context holds `current`, this server), so
            # reference counting frees it all at once, frozen or not
            # (collector.py).
            with suppress(AttributeError):
                del self.protocol
            with suppress(AttributeError):
                del self._task_group
            # And the error that ended it (a reset, a read timeout), which the
            # reader keeps: its traceback holds frames that hold this server.
            error = self.reader.exception()
            if error is not None:
                error.__traceback__ = None

    async def _read_data(self) -> None:
        refuse = self.options.refuse_upgrade
        if refuse is not None and await self._shed_first(refuse):
            return
        # Hypercorn's loop; a read blocked `read_timeout` fails with
        # TimeoutError, as under Hypercorn's `wait_for`.
        reader, loop, timeout = self.reader, self.loop, self.config.read_timeout
        direct = type(reader) is _STREAM_READER
        if self.counted and self.connections is not None:
            self.connections.reading(self, loop.time())
        try:
            while not reader.at_eof():
                self._reading_since = loop.time()
                if timeout is not None and self._read_deadline is None:
                    self._read_deadline = loop.call_at(
                        self._reading_since + timeout, self._read_overdue
                    )
                try:
                    if direct:
                        waiter = _read_waiter(reader)
                        if waiter is not None:
                            try:
                                await waiter
                            finally:
                                reader._waiter = None  # type: ignore[attr-defined]
                        data = _take(reader, tcp_server.MAX_RECV)
                    else:
                        data = await reader.read(tcp_server.MAX_RECV)
                except (ConnectionError, OSError, TimeoutError, SSLError) as error:
                    # The reader keeps the error, whose traceback holds this
                    # frame, which holds the reader: a cycle that would keep
                    # the whole connection for the collector (collector.py).
                    error.__traceback__ = None
                    break
                finally:
                    self._reading_since = None
                if self.counted and self.connections is not None:
                    self.connections.received(self, loop.time())
                await self.protocol.handle(RawData(data))
        finally:
            if self._read_deadline is not None:
                self._read_deadline.cancel()
                self._read_deadline = None
        await self.protocol.handle(Closed())

    def _read_overdue(self) -> None:
        """The read deadline's timer: armed once and moved only when it
        fires, not set and cancelled around every read (a `Timeout`, a timer
        handle and a context per read, and cancelled handles piling up in
        the loop's heap until it purges them)."""
        self._read_deadline = None
        since, timeout = self._reading_since, self.config.read_timeout
        if timeout is None:
            return
        now = self.loop.time()
        if since is None or now < since + timeout:
            # Not reading now, or not for long enough: look again when the
            # current read (or the next one, at the soonest) could be overdue.
            due = (now if since is None else since) + timeout
            self._read_deadline = self.loop.call_at(due, self._read_overdue)
        else:
            self.reader.set_exception(TimeoutError())  # the blocked read fails

    async def _shed_first(self, refuse: RefuseUpgrade) -> bool:
        """Hypercorn's first read, looked at before its protocol sees it: a
        websocket upgrade the app sheds gets the canned 503 and the
        connection closes (True: done); anything else goes on as usual."""
        if self.counted and self.connections is not None:
            self.connections.reading(self, self.loop.time())
        try:
            data = await asyncio.wait_for(
                self.reader.read(tcp_server.MAX_RECV), self.config.read_timeout
            )
        except (OSError, TimeoutError, SSLError):  # as Hypercorn's own read loop
            await self.protocol.handle(Closed())
            return True
        if data and self.counted and self.connections is not None:
            self.connections.received(self, self.loop.time())
        path = upgrade_path(data) or probe_path(data)
        if path is not None and refuse(path):
            headers = merged(self.config.response_headers("h11"), self.options.headers)
            self.writer.write(refusal(headers))
            await self._close()  # now, not when the idle timeout would
            return True
        if data:
            await self.protocol.handle(RawData(data))
        return False  # (at EOF, Hypercorn's loop ends at once)

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            if isinstance(event, Updated) and self.counted and self.connections is not None:
                # Hypercorn's own marks: a whole request head (not idle), or
                # its response done and the next one awaited (idle).
                if event.idle:
                    self.connections.idle(self, self.loop.time())
                else:
                    self.connections.head_done(self)
            await super().protocol_send(event)
            return
        transport = self.writer.transport
        if transport.is_closing():
            return  # cut off already: the bytes have nowhere to go
        try:
            transport.write(event.data)
            if transport.get_write_buffer_size() == 0:
                return  # all in the kernel already: the common case costs no timer
            async with asyncio.timeout(self.options.send_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    def write_now(self, data: bytes) -> bool:
        """`data` written now (True), unless the socket is still busy with
        an earlier write or closing (False: nothing written). Bytes the
        kernel did not take at once are held to `send_timeout` as
        `protocol_send` holds them."""
        transport: Any = self.writer.transport
        if type(transport) is not _SOCKET_TRANSPORT:
            if transport.is_closing() or transport.get_write_buffer_size():
                return False
            transport.write(data)
            if transport.get_write_buffer_size():
                self._draining = asyncio.ensure_future(self._drained())
            return True
        if (
            transport._closing
            or transport._buffer
            or transport._conn_lost
            or transport._eof
            or transport._empty_waiter is not None
        ):
            return False
        try:
            sent = transport._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            transport.write(data)  # fails again, and the transport ends as it does
            return False
        if sent < len(data):  # the rest waits in the transport, as write() leaves it
            transport.write(memoryview(data)[sent:])
            self._draining = asyncio.ensure_future(self._drained())
        return True

    async def _drained(self) -> None:
        try:
            async with asyncio.timeout(self.options.send_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()
        finally:
            self._draining = None

    async def _close(self) -> None:
        async with asyncio.timeout(self.options.send_timeout) as deadline:
            await super()._close()
        # Hypercorn swallows the cancellation, so ask the deadline, not an exception.
        if deadline.expired():
            reset(self.writer)

    def unread(self) -> bool:
        """Bytes from the peer wait in the kernel, not yet read (pending.py:
        then it is not stalled, this process is behind). In the kernel, or
        read by asyncio's transport into the stream reader and not yet by
        Hypercorn (its `_buffer`; if that name is gone, only the kernel's
        queue is looked at)."""
        if getattr(self.reader, "_buffer", None):
            return True
        return _head_waiting(self.writer.get_extra_info("socket")) != NOTHING

    def abort(self) -> None:
        """Reset the connection now; its streams (and app) hear it closed."""
        if self.aborted:
            return
        self.aborted = True
        reset(self.writer)
        group = getattr(self, "_task_group", None)  # set by Hypercorn's run()
        if group is not None and hasattr(self, "protocol"):  # (gone once run() ends)
            # Not awaited: the app may be blocked on this very send while
            # the disconnect waits for room in the app's full queue.
            with suppress(RuntimeError):
                # Its task group finished already (run() is ending): its
                # streams have heard the end, and the sweep that called this
                # goes on to the next connection.
                group.spawn(self.protocol.handle, Closed())

    # --- the pending cap (pending.py) ------------------------------------

    def _arrive(self, connections: Connections, sock: Any) -> bool:
        """Counted in the cap; False: refused (its address past its cap;
        pending.py)."""
        gate = getattr(self.config, "gate", None)
        if gate is not None and sock is not None:
            gate.started(sock.fileno())
        peer = self.writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        exempt = self.options.trusted_proxies.trusts(host)
        self.counted = True
        group = None if exempt else group_of(host)
        admitted = connections.arrive(self, group, self.loop.time(), lambda: _head_waiting(sock))
        _keep_sweeping(connections, self.loop)
        return admitted

    def _leave(self) -> None:
        if self.counted and self.connections is not None:
            self.counted = False
            self.connections.leave(self)

    # For the streams (streams.py): where this connection counts.
    def upgraded(self) -> None:
        """An open websocket: MAX_CONNECTIONS counts it, not the pending cap."""
        self._leave()

    def closing(self) -> None:
        """Its websocket is closing: counted nowhere, never closed to make
        room (its close frame goes first), and gone within `send_timeout`."""
        self._leave()


class _WriteBuffer(list[Any]):
    """The part of a deque asyncio's socket transport uses on its write
    buffer (`_buffer`): append, extend, iterate, clear, and these two. It
    holds nothing unless the kernel refused bytes (ticks are written straight
    to the socket), and a few chunks at most (`WRITE_BUFFER_HIGH`)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


def _lighten_transport(transport: object) -> None:
    """The transport's write buffer as a list: an empty deque allocates 760
    bytes up front (docs/PERFORMANCE.md, Where the bytes per connection go).
    Only on asyncio's own socket transport whose methods that touch the
    buffer are the ones fingerprinted (guard.py); otherwise left as it is."""
    buffer = getattr(transport, "_buffer", None)
    if type(transport) is _SOCKET_TRANSPORT and type(buffer) is deque and not buffer:
        transport._buffer = _WriteBuffer()  # type: ignore[attr-defined]


def _read_waiter(reader: Any) -> asyncio.Future[None] | None:
    """The future `StreamReader.read` would wait on (in its
    `_wait_for_data`) before it has bytes to give, or None if it would not
    wait; its error, if it has one, raised as `read` raises it. The caller
    awaits the future in its own frame and then clears `_waiter`, as
    `_wait_for_data` does."""
    if reader._exception is not None:
        raise reader._exception
    if reader._buffer or reader._eof:
        return None
    if reader._waiter is not None:
        raise RuntimeError("read() called while another coroutine is already waiting")
    if reader._paused:  # waiting while paused would wait forever
        reader._paused = False
        reader._transport.resume_reading()
    waiter: asyncio.Future[None] = reader._loop.create_future()
    reader._waiter = waiter
    return waiter


def _take(reader: Any, limit: int) -> bytes:
    """What `StreamReader.read(limit)` returns once it has waited."""
    data = bytes(memoryview(reader._buffer)[:limit])
    del reader._buffer[:limit]
    reader._maybe_resume_transport()
    return data


def _addresses(writer: asyncio.StreamWriter, sock: Any) -> tuple[Any, Any]:
    """The peer's and this end's addresses, as Hypercorn's `run` makes them,
    from the tuples the transport keeps already (`parse_socket_addr` hands
    an IPv4 tuple back as it is; the transport got them from the same two
    calls when it was made). A peer gone since then is not noticed here, as
    Hypercorn's own `getpeername()` would (an `OSError`), but at the first
    read, which fails and ends the connection the same way."""
    family = sock.family
    peer = writer.get_extra_info("peername") or sock.getpeername()
    local = writer.get_extra_info("sockname") or sock.getsockname()
    return parse_socket_addr(family, peer), parse_socket_addr(family, local)


def _head_waiting(sock: Any) -> int:
    """What of a request head is in the kernel's receive queue (a peek: the
    bytes stay for Hypercorn to read): pending.WHOLE, PART or NOTHING."""
    if sock is None:
        return NOTHING
    try:
        peek = socket.socket(fileno=sock.fileno())
    except OSError:
        return NOTHING
    try:
        data = peek.recv(MAX_HEAD_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        data = b""
    finally:
        peek.detach()  # the descriptor stays the transport's
    if b"\r\n\r\n" in data:
        return WHOLE
    return PART if data else NOTHING


def _keep_sweeping(connections: Connections, loop: asyncio.AbstractEventLoop) -> None:
    """The process's one sweep timer, running while anything is pending or
    the listener is paused."""
    if connections.timer is None:
        connections.timer = loop.call_later(SWEEP_S, _sweep, connections, loop)


def _sweep(connections: Connections, loop: asyncio.AbstractEventLoop) -> None:
    connections.timer = None
    connections.sweep(loop.time())
    listener = connections.listener
    if listener is not None and listener.paused:
        # Newcomers are waiting: room is looked for sooner.
        connections.timer = loop.call_later(SWEEP_PAUSED_S, _sweep, connections, loop)
    elif len(connections):
        _keep_sweeping(connections, loop)


def reset(writer: asyncio.StreamWriter) -> None:
    """Abort with a TCP reset: a plain close would queue a FIN behind the
    unread bytes and leave the kernel holding them for minutes."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
