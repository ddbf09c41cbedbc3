"""Test doubles: a clock that only moves when told, and an in-memory ASGI websocket."""

from __future__ import annotations

import asyncio


class FakeTime:
    """A wall clock and a sleep that advances it instantly.

    `drift` scales how far each sleep moves the clock (0.5: the sleep returns
    when only half the time has passed); `stall_ms` is added once, on the next
    sleep, as if the host had been suspended.
    """

    def __init__(self, start_ms: float) -> None:
        self.now_ms = start_ms
        self.drift = 1.0
        self.stall_ms = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now_ms

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_ms += seconds * 1000 * self.drift + self.stall_ms
        self.stall_ms = 0.0
        await asyncio.sleep(0)


class FakeASGI:
    """Both ends of an ASGI websocket in memory: `receive` gives what the test
    puts in `incoming`; `send` records text frames and the close, and hangs
    while `unblocked` is clear (a client that stopped reading).

    Tests wait on what happened, not on a number of event-loop turns:
    `waiting` is set while the app is blocked reading with nothing to read
    (it has taken everything sent so far), and `sent_count(n)` returns once
    n text frames have been sent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.unblocked = asyncio.Event()
        self.unblocked.set()
        self.waiting = asyncio.Event()
        self._progress = asyncio.Event()

    async def sent_count(self, count: int) -> None:
        while len(self.sent) < count:
            self._progress.clear()
            await self._progress.wait()

    def client_sends(self, data: str | bytes) -> None:
        key = "text" if isinstance(data, str) else "bytes"
        self.incoming.put_nowait({"type": "websocket.receive", key: data})

    def client_leaves(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    async def receive(self) -> dict[str, object]:
        if self.incoming.empty():
            self.waiting.set()
        try:
            return await self.incoming.get()
        finally:
            self.waiting.clear()

    async def send(self, message: dict[str, object]) -> None:
        await self.unblocked.wait()
        if message["type"] == "websocket.send":
            assert isinstance(message["text"], str)
            self.sent.append(message["text"])
            self._progress.set()
        elif message["type"] == "websocket.close":
            self.closed = (int(message["code"]), str(message["reason"]))  # type: ignore[call-overload]
            self.client_leaves()  # a client answers the close
