"""Who may open a websocket: the origin check and the per-process cap.

Decided before the handshake is accepted, so a refused client costs an HTTP
response and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.headers import MAX_HEAD_BYTES
from ..core.origin import host_allowed, origin_allowed


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
    ) -> None:
        self.max_connections = max_connections
        # The service's own public origins may always open /ws.
        self.allowed_origins = allowed_origins | public_origins
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def admit(self, origin: str | None, host: str | None) -> Refusal | Admitted:
        """Check and take a place in one call, so no other handshake can slip
        in between (the caller releases it with `with`)."""
        if not origin_allowed(origin, host, self.allowed_origins):
            return FOREIGN_ORIGIN
        if self._open >= self.max_connections:
            return FULL
        self._open += 1
        return Admitted(self)
