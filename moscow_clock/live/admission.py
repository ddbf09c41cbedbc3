"""Who may open a websocket: the origin check, the per-process cap, and
whether the process is saturated.

Decided before the handshake is accepted, so a refused client costs an HTTP
response and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.capacity import Watermarks
from ..core.origin import host_allowed, origin_allowed
from ..core.request_head import MAX_HEAD_BYTES


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    status: int
    message: str
    headers: dict[str, str]


FOREIGN_ORIGIN = Refusal("origin", 403, "websocket origin not allowed\n", {})
# Retry-After spreads a reconnect wave; the page backs off with jitter anyway.
FULL = Refusal("full", 503, "too many connections, try again later\n", {"Retry-After": "5"})
# A Host outside PUBLIC_ORIGINS (the DNS-rebinding shape): not ours to serve.
FOREIGN_HOST = Refusal("host", 421, "unknown host\n", {})
HEAD_TOO_LARGE = Refusal("headers", 431, "request headers too large\n", {})
NOT_HERE = Refusal("listener", 404, "not found\n", {})


def screen(host: str | None, head_bytes: int, public_origins: frozenset[str]) -> Refusal | None:
    """What refuses a handshake before the gate is asked: an oversized head
    or a Host that is not one of the public origins."""
    if head_bytes > MAX_HEAD_BYTES:
        return HEAD_TOO_LARGE
    if not host_allowed(host, public_origins):
        return FOREIGN_HOST
    return None


# Refused for load: the process is saturated (its event loop has fallen
# behind, or it is near its memory limit), whatever the number of clients.
BUSY = Refusal("busy", 503, "server busy, try again later\n", {"Retry-After": "5"})
MEMORY = Refusal("memory", 503, "server busy, try again later\n", {"Retry-After": "5"})


class Load:
    """Is the process saturated, so that one more client would hurt what the
    others see? Not a count of clients or a fixed fan-out time: an idle
    client costs nothing toward a refusal until it really costs CPU (then
    the loop lags) or memory. Two readings, each with hysteresis in its
    reader (core/capacity.py): whether the event loop's own lag has stayed
    over `LOOP_LAG_BUDGET` (live/stalls.LoopLag.behind; a host that does
    not schedule the process is not its load), and the share of the memory
    limit in use (None: no limit, or unknown). A refusal while saturated is
    cheap (the server answers it from the first bytes: server/hypercorn/
    shed.py), so refused pages retrying do not deepen the saturation.
    Readers are plain callables, so tests inject the load they test."""

    def __init__(
        self,
        behind: Callable[[], bool],
        memory: Callable[[], float | None] = lambda: None,
        watermarks: Watermarks | None = None,
    ) -> None:
        self._behind = behind
        self._memory = memory
        self.memory = watermarks or Watermarks()

    def refusal(self) -> Refusal | None:
        """MEMORY while memory is near its limit, BUSY while the loop is
        behind, else None."""
        if self.memory.update(self._memory()):
            return MEMORY
        if self._behind():
            return BUSY
        return None

    def saturated(self) -> dict[str, bool]:
        """Each cause, for the metrics."""
        return {"memory": self.memory.update(self._memory()), "loop_lag": self._behind()}


class Admitted:
    """A place held in the gate until the `with` block that uses it ends."""

    __slots__ = ("_gate", "_held")

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._held = True

    def __enter__(self) -> Admitted:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._held:
            self._held = False
            self._gate._open -= 1


class Gate:
    def __init__(
        self,
        max_connections: int,
        allowed_origins: frozenset[str],
        public_origins: frozenset[str] = frozenset(),
        load: Load | None = None,
    ) -> None:
        self.max_connections = max_connections
        # The service's own public origins may always open /ws.
        self.allowed_origins = allowed_origins | public_origins
        self.load = load
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def admit(self, origin: str | None, host: str | None) -> Refusal | Admitted:
        """Check and take a place in one call, so no other handshake can slip
        in between (the caller releases it with `with`)."""
        if not origin_allowed(origin, host, self.allowed_origins):
            return FOREIGN_ORIGIN
        refusal = self._no_room()
        if refusal is not None:
            return refusal
        self._open += 1
        return Admitted(self)

    def refusal_for_load(self) -> Refusal | None:
        """FULL, BUSY or MEMORY if a handshake now would be refused for
        capacity or load (without taking a place): the answer to the page's
        probe."""
        return self._no_room()

    def shedding(self) -> bool:
        """Whether a handshake now would be refused for capacity or load (FULL,
        BUSY or MEMORY), so the server may refuse it before it reaches the app."""
        return self._no_room() is not None

    def _no_room(self) -> Refusal | None:
        """The one capacity decision, for `admit` and `shedding` alike."""
        if self._open >= self.max_connections:
            return FULL
        return None if self.load is None else self.load.refusal()
