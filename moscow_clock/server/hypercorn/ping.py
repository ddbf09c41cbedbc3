"""A websocket ping, sent the way Hypercorn's own ping task sends it.

Hypercorn has no public call for it: its per-connection ping task (off here,
one pinger per process instead: server/pinger.py) calls the stream's private
`_send_wsproto_event`, fingerprinted by guard.py. This is the one place
outside the subclasses that calls it, so the rest of the server uses no
private name of Hypercorn's.
"""

from __future__ import annotations

from hypercorn.protocol.ws_stream import WSStream
from wsproto.events import Ping


async def send_ping(stream: WSStream) -> None:
    """Ping `stream`'s peer; a closing stream drops it, as Hypercorn's does.
    Our own stream (streams.py) also holds the pong due within its send
    timeout; a plain Hypercorn stream is pinged as Hypercorn pings it."""
    ping = getattr(stream, "ping", None)
    await (ping() if ping is not None else stream._send_wsproto_event(Ping()))
