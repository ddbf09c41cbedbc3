"""Who may open a websocket: the origin check and the per-process cap.

Decided before the handshake is accepted, so a refused client costs an HTTP
response and nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .origin import origin_allowed


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    status: int
    message: str
    headers: dict[str, str]


FOREIGN_ORIGIN = Refusal("origin", 403, "websocket origin not allowed\n", {})
# Retry-After spreads a reconnect wave; the page backs off with jitter anyway.
FULL = Refusal("full", 503, "too many connections, try again later\n", {"Retry-After": "5"})


class Gate:
    def __init__(self, max_connections: int, allowed_origins: frozenset[str]) -> None:
        self.max_connections = max_connections
        self.allowed_origins = allowed_origins
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def refusal(self, origin: str | None, host: str | None) -> Refusal | None:
        """Why this handshake is refused, or None; call `hold()` right after,
        with no await between, so the count cannot be overtaken."""
        if not origin_allowed(origin, host, self.allowed_origins):
            return FOREIGN_ORIGIN
        if self._open >= self.max_connections:
            return FULL
        return None

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._open += 1
        try:
            yield
        finally:
            self._open -= 1
