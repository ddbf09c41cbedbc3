"""A listening socket whose kernel queue is long while each round of the
event loop takes only a few connections from it.

asyncio uses one number for both: `start_server(backlog=N)` calls
`listen(N)` and then, each time the socket is readable, accepts up to N
connections in one go, each of which is set up (transport, Hypercorn's
connection, its first read) in the same round or the next. With a queue of
4,096 for reconnect waves, a storm of handshakes (more clients offered than
a process holds, the refused ones retrying) made single rounds of the loop
long, and every yield of a tick's fan-out and the
ticker's own wake-up waited for such a round (docs/PERFORMANCE.md,
Overload). Here asyncio is given a small number (`Config.backlog`, the
connections taken per round) and the socket keeps the long queue: what does
not fit in a round waits in the kernel, where it costs nothing, and what
does not fit in the queue is a SYN the client's kernel sends again.

The same sockets pause together (`Gate`): at the pending-connection cap
(pending.py) the process stops taking connections, so they wait in that
queue rather than being accepted and reset; and when accept() fails for
want of descriptors, the listener rests briefly instead of retrying in a
loop. Pausing stops asyncio's reading of the listening socket, which no
public API offers: the reader asyncio registered is kept and put back
(its fingerprints in guard.py, `OPTIONAL`; where one differs, or on
another event loop, the gate never pauses and the cap falls back to
closing the newcomer).

And the kernel hands a TCP connection over only once its first bytes are
in (`DEFER_ACCEPT_S`): the pending cap then rarely sees a connection that
has sent nothing, which it cannot tell from a silent attacker.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from ...core.ratelimit import Every
from . import guard

log = logging.getLogger("moscow_clock.server")

# Connections waiting in the kernel for accept(): room for a reconnect wave
# (the kernel caps it at net.core.somaxconn).
KERNEL_BACKLOG = 4096
# Connections taken from that queue per round of the event loop (asyncio's
# accept loop): few enough that a round stays short while each is set up
# (docs/PERFORMANCE.md, Figures the code cites).
ACCEPTS_PER_ROUND = 64
# accept() failed for want of descriptors or memory: the listener rests this
# long (what is freed meanwhile lets it go on), not retried every round.
REST_S = 0.25
# The errors accept() reports for that (asyncio's own list).
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# The kernel hands a TCP connection to accept() once its first bytes are in,
# or, sending nothing, after about this long (TCP_DEFER_ACCEPT: Linux counts
# it in SYN-ACK resends, at 1, 3 and 7 s): a head that follows its connect late
# (a lossy link, a busy client) waits in the kernel rather than being
# accepted and judged stalled, and a silent connection costs the process
# nothing meanwhile. Every client of an HTTP server speaks first.
DEFER_ACCEPT_S = 7
# How often "out of descriptors" is logged while it lasts.
ACCEPT_ERROR_LOG_S = 10.0


class AcceptErrors:
    """Failed accepts for want of resources: counted, and logged once per
    interval with the count, whoever saw them (the gate, or asyncio's accept
    loop, whose handler this becomes: it would log each one with a
    traceback, up to a round's worth a time). Known by errno, not by
    asyncio's wording; every other loop error goes to the handler that was
    there."""

    def __init__(self, interval: float = ACCEPT_ERROR_LOG_S) -> None:
        self.count = 0
        self._every = Every(interval)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            error = context.get("exception")
            if out_of_resources(error) and "socket" in context:
                self.seen(error, time.monotonic())
            elif _late_retry(context):
                pass  # a retry the storm scheduled, firing after the listener closed
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

    def seen(self, error: object, now: float) -> None:
        """One failed accept (logged if the last report is an interval old)."""
        self.count += 1
        if self._every.due(now):
            log.error(
                "cannot accept connections: %s (%d times so far; next report in %.0f s)",
                error,
                self.count,
                self._every.interval,
            )


def out_of_resources(error: object) -> bool:
    return isinstance(error, OSError) and error.errno in OUT_OF_RESOURCES


def _late_retry(context: dict[str, Any]) -> bool:
    """asyncio schedules one retry of the listener per failed accept (up to
    the backlog per storm); those still due at shutdown fail on the closed
    socket with ValueError, each logged with a traceback."""
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    return isinstance(context.get("exception"), ValueError) and (
        getattr(callback, "__name__", "") == "_start_serving"
    )


class Gate:
    """The process's listening sockets, paused and resumed together."""

    def __init__(self, errors: AcceptErrors | None = None) -> None:
        self.errors = errors if errors is not None else AcceptErrors()
        self.full: Callable[[], bool] = lambda: False  # the pending cap's (options.py)
        self.paused = False
        self.pauses = 0  # since start
        self._accepted: set[int] = set()  # descriptors accepted, not yet started
        # fd -> (socket, asyncio's reader callback and its arguments), kept
        # while paused.
        self._readers: dict[int, tuple[socket.socket, Any, tuple[Any, ...]]] = {}
        self._sockets: list[ListeningSocket] = []
        self._resting: asyncio.TimerHandle | None = None

    def add(self, sock: ListeningSocket) -> None:
        sock.gate = self
        self._sockets.append(sock)

    # --- the accept path (ListeningSocket.accept) -------------------------

    def accepted(self, fd: int) -> None:
        self._accepted.add(fd)
        if self.full():
            self.pause()

    def started(self, fd: int) -> None:
        """The connection on `fd` is counted by the cap now. (A connection
        that failed before it started leaves its number here until the
        descriptor is reused, which is soon: the lowest free one is.)"""
        self._accepted.discard(fd)

    def unstarted(self) -> int:
        return len(self._accepted)

    # --- pausing -----------------------------------------------------------

    def pause(self) -> bool:
        """Stop taking connections (they wait in the kernel's queue); False
        if this event loop cannot be paused."""
        loop = _pausable_loop()
        if loop is None:
            return False
        if not self.paused:
            self.pauses += 1
        self.paused = True
        selector = loop._selector  # type: ignore[attr-defined]  # guarded: asyncio.selector_events
        for sock in self._sockets:
            fd = sock.fileno()
            if fd < 0:
                continue
            key = selector.get_map().get(fd)
            reader = None if key is None else key.data[0]
            if reader is None:
                continue  # not being read (already paused, or asyncio's own rest)
            if reader._callback is not None:
                self._readers[fd] = (sock, reader._callback, reader._args)
            loop.remove_reader(fd)
        return True

    def resume(self) -> None:
        if not self.paused or self._resting is not None:
            return
        self.paused = False
        loop = _pausable_loop()
        if loop is None:
            return
        selector = loop._selector  # type: ignore[attr-defined]  # guarded: asyncio.selector_events
        readers, self._readers = self._readers, {}
        for fd, (sock, callback, args) in readers.items():
            server = args[3] if len(args) > 3 else None
            if sock.fileno() != fd or (server is not None and not server.is_serving()):
                continue  # closed meanwhile (shutting down)
            key = selector.get_map().get(fd)
            if key is None or key.data[0] is None:
                loop.add_reader(fd, callback, *args)

    def rest(self, error: OSError) -> bool:
        """accept() failed for want of resources: counted, and the listener
        rests `REST_S`. False if it cannot be paused (asyncio's own handling
        then applies)."""
        self.errors.seen(error, time.monotonic())
        if self._resting is not None:
            return True
        if not self.pause():
            return False
        self._resting = asyncio.get_running_loop().call_later(REST_S, self._rested)
        return True

    def _rested(self) -> None:
        self._resting = None
        if not self.full():
            self.resume()


def _pausable_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop, if it is asyncio's selector loop as written for."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    if (
        isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
        and _listener_internals_hold()
    ):
        return loop
    return None


def _listener_internals_hold() -> bool:
    # (guard.py fingerprints more of asyncio.selector_events for tcp.py's
    # write buffer: those do not decide this.)
    return guard.holds(
        "asyncio.selector_events:BaseSelectorEventLoop", "asyncio.selector_events:events."
    )


class ListeningSocket(socket.socket):
    """`listen(n)` with asyncio's per-round count keeps the long queue;
    `accept()` answers to the gate."""

    gate: Gate | None = None

    def listen(self, backlog: int = KERNEL_BACKLOG, /) -> None:
        super().listen(max(backlog, KERNEL_BACKLOG))

    def accept(self) -> tuple[socket.socket, Any]:
        gate = self.gate
        if gate is not None and gate.paused:
            # Read anyway (asyncio's own retry after a failed accept put its
            # reader back): it is "nothing to accept", and paused again.
            gate.pause()
            raise BlockingIOError(errno.EAGAIN, "paused")
        try:
            conn, address = super().accept()
        except OSError as error:
            if gate is not None and out_of_resources(error) and gate.rest(error):
                raise BlockingIOError(errno.EAGAIN, "resting") from None
            raise
        if gate is not None:
            gate.accepted(conn.fileno())
        return conn, address


def long_queue(sock: socket.socket, gate: Gate | None = None) -> socket.socket:
    """The same listening descriptor, as a `ListeningSocket` (a datagram
    socket, which does not listen, is returned as it is)."""
    if sock.type != socket.SOCK_STREAM:
        return sock
    ours = ListeningSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    ours.listen()
    if ours.family in (socket.AF_INET, socket.AF_INET6) and hasattr(socket, "TCP_DEFER_ACCEPT"):
        ours.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_S)
    if gate is not None:
        gate.add(ours)
    return ours
