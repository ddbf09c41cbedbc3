"""Test doubles: a clock that only moves when told, and an in-memory websocket."""

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


class FakeWebsocket:
    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.unblocked = asyncio.Event()
        self.unblocked.set()

    async def receive(self) -> str | bytes:
        return await self.incoming.get()

    async def send(self, data: str | bytes) -> None:
        assert isinstance(data, str)
        await self.unblocked.wait()  # a stalled client: send never completes
        self.sent.append(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
