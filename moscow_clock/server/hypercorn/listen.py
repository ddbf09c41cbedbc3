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
"""

from __future__ import annotations

import socket

# Connections waiting in the kernel for accept(): room for a reconnect wave
# (the kernel caps it at net.core.somaxconn).
KERNEL_BACKLOG = 4096
# Connections taken from that queue per round of the event loop (asyncio's
# accept loop): few enough that a round stays short while each is set up
# (docs/PERFORMANCE.md, Figures the code cites).
ACCEPTS_PER_ROUND = 64


class ListeningSocket(socket.socket):
    """`listen(n)` with asyncio's per-round count keeps the long queue."""

    def listen(self, backlog: int = KERNEL_BACKLOG, /) -> None:
        super().listen(max(backlog, KERNEL_BACKLOG))


def long_queue(sock: socket.socket) -> socket.socket:
    """The same listening descriptor, as a `ListeningSocket` (a datagram
    socket, which does not listen, is returned as it is)."""
    if sock.type != socket.SOCK_STREAM:
        return sock
    ours = ListeningSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    ours.listen()
    return ours
