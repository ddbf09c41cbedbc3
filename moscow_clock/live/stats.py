"""Plain per-process counters the request path bumps; `metrics.py` turns them
into Prometheus metrics once a second, so the hot path pays an add, not a
metrics-library call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..core.budget import Inbound


@dataclass(slots=True)
class Stats:
    syncs: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by reason
    closed: Counter[str] = field(default_factory=Counter)  # by close code, or "peer"
    # The server's inbound budget, as the first websocket brought it (its
    # scope's `core.budget.INBOUND` extension): what it shed.
    inbound: Inbound | None = None
    # The server's own protections (pending cap, head timeout, listener
    # pauses, failed accepts): each one's counts by action, since start.
    server_protections: list[Callable[[], Mapping[str, int]]] = field(default_factory=list)
