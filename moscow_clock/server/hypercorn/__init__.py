"""This service's changes to Hypercorn 0.18, as subclasses (see each module's
class docstring for what changes, why, and the upstream issue that would let
it go), installed by `install()` after `guard.check()`.

    tcp.py      TCPServer: send timeout, bounded buffers, close deadline,
                the pending-connection cap (pending.py), load shedding from
                the first bytes (shed.py)
    pending.py  the cap on connections without an open websocket, whole and
                per address
    inbox.py    TaskGroup.spawn_app: a lighter app inbox that ends with the app
    streams.py  WSStream: one close path, the client's budget, pre-framed
                ticks, no compression, the server's refusals
    shed.py     the canned 503 for a websocket upgrade the app sheds
    listen.py   a long accept queue, a few connections taken per loop round,
                the listener paused at the cap, accept errors by errno
    h11.py      H11Protocol: HTTP/2 behind a setting, ambiguous framing closes,
                headers on Hypercorn's 400/431
    ping.py     a websocket ping for the process's pinger (server/pinger.py)
    guard.py    the Hypercorn series and fingerprints these were written for
"""

from __future__ import annotations

from .guard import GuardError
from .install import install
from .listen import ACCEPTS_PER_ROUND, AcceptErrors
from .options import Options, ServerConfig
from .shed import RefuseUpgrade

__all__ = [
    "ACCEPTS_PER_ROUND",
    "AcceptErrors",
    "GuardError",
    "Options",
    "RefuseUpgrade",
    "ServerConfig",
    "install",
]
