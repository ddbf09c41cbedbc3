"""Put the subclasses where Hypercorn builds its objects: seven names in five modules.

Nothing is patched: each subclass calls `super()` (or, where it replaces a
method, says so and why), and Hypercorn constructs it because the name it
constructs with is rebound here. Refused (`guard.GuardError`) on a
Hypercorn other than the one these were written for.
"""

from __future__ import annotations

import importlib
import logging

from . import guard
from .h11 import H11Protocol, H11WSConnection
from .head import ProtocolWrapper
from .inbox import TaskGroup
from .streams import WSStream
from .tcp import TCPServer

# (module, name) -> this layer's class; the module's name must still hold
# Hypercorn's own class (or ours, when installed before).
REBIND: dict[tuple[str, str], type] = {
    ("hypercorn.asyncio.run", "TCPServer"): TCPServer,  # worker_serve's connections
    ("hypercorn.asyncio.tcp_server", "TaskGroup"): TaskGroup,  # TCPServer.run's task group
    ("hypercorn.asyncio.tcp_server", "ProtocolWrapper"): ProtocolWrapper,  # TCPServer.run's
    ("hypercorn.protocol", "H11Protocol"): H11Protocol,  # ProtocolWrapper's HTTP/1.1
    ("hypercorn.protocol.h11", "H11WSConnection"): H11WSConnection,  # _create_stream's upgrade
    ("hypercorn.protocol.h11", "WSStream"): WSStream,  # H11Protocol._create_stream
    ("hypercorn.protocol.h2", "WSStream"): WSStream,  # H2Protocol._create_stream (HTTP2=true)
}

log = logging.getLogger("moscow_clock.server")


def install() -> None:
    """Check Hypercorn (`GuardError` if it is not the one expected), then
    rebind. Idempotent. Says which optional parts are off (guard.OPTIONAL):
    they run on the public path, correct but slower or larger."""
    guard.check()
    off = guard.skipped()
    if off:
        log.warning(
            "running without the savings that lean on %s: they match no version "
            "reviewed in moscow_clock/server/hypercorn/guard.py (OPTIONAL)",
            ", ".join(off),
        )
    for (module_name, name), ours in REBIND.items():
        module = importlib.import_module(module_name)
        theirs = getattr(module, name)
        if theirs is not ours and ours.__mro__[1] is not theirs:
            raise guard.GuardError(
                f"{module_name}.{name} is {theirs!r}, not Hypercorn's own class; "
                "something else replaced it"
            )
        setattr(module, name, ours)


def installed() -> bool:
    return all(
        getattr(importlib.import_module(module), name) is ours
        for (module, name), ours in REBIND.items()
    )
