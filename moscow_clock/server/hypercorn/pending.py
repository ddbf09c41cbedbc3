"""The cap on connections that carry no open websocket.

Hypercorn bounds none of them: an HTTP keep-alive, a request being sent, a
handshake, a websocket in its close handshake. Each holds a descriptor; under
an open-files limit, idle ones shut out new handshakes and /healthz. Here the
process keeps at most `limit` of them: a newcomer past it closes the oldest
one that has sent nothing since its last response (or, if every one is in
the middle of a request, is closed itself), so a crowd of idle sockets cannot
starve clients that send their request at once. Open websockets count toward
MAX_CONNECTIONS instead (the app's admission gate).
"""

from __future__ import annotations

from typing import Protocol


class Abortable(Protocol):
    def abort(self) -> None: ...

    @property
    def busy(self) -> bool:
        """It has sent something since its last response (a request in progress)."""
        ...


class Connections:
    """The pending connections of one process, oldest first."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._pending: dict[Abortable, None] = {}  # insertion-ordered
        self.evicted = 0  # closed to make room, since start

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self, connection: Abortable) -> None:
        """`connection` carries no open websocket (new, or its websocket is
        closing); closes the oldest pending one if that makes too many."""
        self._pending.pop(connection, None)
        self._pending[connection] = None  # newest
        if len(self._pending) <= self.limit:
            return
        # The oldest that is not in the middle of a request; if all are,
        # the newcomer itself.
        victim = next((c for c in self._pending if not c.busy), connection)
        del self._pending[victim]
        self.evicted += 1
        victim.abort()

    def upgraded(self, connection: Abortable) -> None:
        """`connection` now carries an open websocket."""
        self._pending.pop(connection, None)

    def gone(self, connection: Abortable) -> None:
        self._pending.pop(connection, None)
