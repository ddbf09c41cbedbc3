"""Quart's websocket with a bounded inbox.

Quart queues incoming messages in an unbounded `asyncio.Queue`. A client
that keeps sending while never reading our replies would make that queue, and
the server's memory, grow without limit. With a bound, a full inbox stops
Quart taking messages from Hypercorn, Hypercorn stops reading the socket, and
TCP pushes back on the client instead.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from quart.wrappers import Websocket
from quart.wrappers.base import ClientDisconnectedError

INBOX_MESSAGES = 16


class BoundedInbox:
    """Drop-in for `quart.wrappers.websocket.Buffer`, with a size limit."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[bytes | str] = asyncio.Queue(maxsize=INBOX_MESSAGES)

    async def put(self, data: bytes | str) -> None:
        with suppress(asyncio.QueueShutDown):  # the session is over: nobody will read it
            await self._queue.put(data)

    def stop_reading(self) -> None:
        """The session has ended: drop anything queued or still arriving.

        Quart keeps feeding the inbox until the client's disconnect arrives,
        and a full inbox would block it before that disconnect gets through.
        """
        self._queue.shutdown(immediate=True)

    async def get(self) -> bytes | str:
        try:
            return await self._queue.get()
        except asyncio.QueueShutDown:
            raise ClientDisconnectedError from None

    def disconnect(self) -> None:
        self._queue.shutdown()


class BoundedWebsocket(Websocket):
    buffer_class = BoundedInbox  # type: ignore[assignment]

    def stop_reading(self) -> None:
        self.buffer.stop_reading()  # type: ignore[attr-defined]
