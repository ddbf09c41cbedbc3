"""One websocket client's session, spoken directly over ASGI.

Quart's websocket wrapper costs two tasks, a queue hop, a forced event-loop
round trip and two signals per message; for a message per client per second
that was most of the server's work. Here a session is one coroutine (the
ASGI app call itself, reading the client's messages) plus `offer`, which the
ticker calls to start sending a tick without waiting. Sync replies are sent
from the reading loop the moment a request arrives, never behind a tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from ..core.asgi import Message, Receive, Send
from ..core.clock import Clock
from ..core.clockstate import UNVERIFIED_PAGE, PageClock
from ..core.protocol import GOING_AWAY, POLICY_VIOLATION, Close, Reply, Verdict, answer
from ..core.ratelimit import TokenBucket
from .stats import Stats
from .ticker import Broadcast, Ticker

log = logging.getLogger("moscow_clock.websocket")

ACCEPT: Message = {"type": "websocket.accept"}
UNGATED: AbstractContextManager[object] = nullcontext()  # a session no gate counts
SHUTTING_DOWN = Close(GOING_AWAY, "server shutting down")


def shutting_down(reconnect_within_s: float) -> Close:
    """1001, with a hint the page reads (static/js/connection.js): come back
    at a random moment within this long, not all in the same half second."""
    if reconnect_within_s <= 0:
        return SHUTTING_DOWN
    return Close(
        GOING_AWAY,
        f"{SHUTTING_DOWN.reason}; reconnect within {round(reconnect_within_s * 1000)} ms",
    )


FLOODING = Close(POLICY_VIOLATION, "too many messages")


class Session:
    def __init__(
        self,
        send: Send,
        clock: Clock,
        message_rate: float,
        stats: Stats,
        *,
        preframed: bool = False,
        write_now: Callable[[bytes], bool] | None = None,
        page_clock: Callable[[], PageClock] = lambda: UNVERIFIED_PAGE,
        remote: str = "-",
    ) -> None:
        self._send = send
        self._remote = remote  # the client's address, for the log
        self._page_clock = page_clock
        self._loop = asyncio.get_running_loop()
        self._clock = clock
        self._limit = TokenBucket.for_rate(message_rate, time.monotonic())
        self._stats = stats
        # The server writes a finished frame as is (core.wire.PREFRAMED).
        self._preframed = preframed
        # ...and writes one at once, or says it cannot (core.wire.WRITE_NOW).
        self._write_now = write_now
        self._busy = False  # a tick is still being written
        # Strong references to writes still waiting for the socket.
        self._writing: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self.closed_with: Close | None = None

    def offer(self, broadcast: Broadcast) -> bool:
        """Start writing the tick; False if the last one is still being written.

        An eager task runs the write at once: when the kernel takes the bytes
        (nearly always) it is finished before this returns, with no task
        switch; only a write that must wait lives on as a task. A server
        that writes frames at once (core.wire.WRITE_NOW) is handed the frame:
        no task, no send; it skips the tick itself if the socket is still
        busy with an earlier one."""
        if self._busy or self.closed_with is not None:
            return False
        if self._write_now is not None:
            return self._write_now(broadcast.frame)
        self._busy = True
        message = broadcast.framed if self._preframed else broadcast.plain
        # (Python 3.13.0 needs the loop passed when eager_start is set.)
        task = asyncio.Task(self._write_tick(message), loop=self._loop, eager_start=True)
        if not task.done():
            self._writing = task
        return True

    async def _write_tick(self, message: Message) -> None:
        try:
            await self._send(message)
        finally:
            self._busy = False
            self._writing = None

    def go_away(self, reconnect_within_s: float = 0.0) -> None:
        """The server is shutting down: close with 1001 without waiting."""
        if self.closed_with is None:
            self._closing = asyncio.Task(
                self.close(shutting_down(reconnect_within_s)), loop=self._loop, eager_start=True
            )

    async def close(self, close: Close) -> None:
        if self.closed_with is not None:
            return
        self.closed_with = close  # before the await: no tick or reply after it
        await self._send({"type": "websocket.close", "code": close.code, "reason": close.reason})

    def _answer(self, message: str | bytes) -> Verdict:
        page_clock = self._page_clock()
        return answer(message, self._clock(), page_clock.verified_error_ms, page_clock.wire())

    async def serve(
        self,
        receive: Receive,
        ticker: Ticker,
        admission: AbstractContextManager[object] = UNGATED,
    ) -> None:
        """The websocket's whole life, in this one coroutine (the app call
        awaits it directly: no other frame of the app's is held under every
        websocket): accept it, take `ticker`'s ticks, and read the client's
        messages until it disconnects; then count and log how it closed.
        `admission` (its place in the gate) is held throughout. Then
        `closed_with` is the close this server sent (None: the client left
        first)."""
        with admission:
            await self._send(ACCEPT)
            opened = time.monotonic()
            if not ticker.join(self):  # arrived while the server drains
                await self.close(SHUTTING_DOWN)
            try:
                while (event := await receive())["type"] != "websocket.disconnect":
                    if event["type"] != "websocket.receive" or self.closed_with is not None:
                        continue  # "connect"; or closing: wait for the client's answer
                    message = event.get("text")
                    verdict = (
                        FLOODING
                        if not self._limit.allow(time.monotonic())
                        else self._answer(
                            message if message is not None else event.get("bytes") or b""
                        )
                    )
                    if isinstance(verdict, Reply):
                        self._stats.syncs += 1
                        await self._send({"type": "websocket.send", "text": verdict.text})
                    elif isinstance(verdict, Close):
                        await self.close(verdict)
            finally:
                ticker.leave(self)  # (as well if it never joined)
            self._closed(time.monotonic() - opened)

    def _closed(self, duration_s: float) -> None:
        code = "peer" if self.closed_with is None else str(self.closed_with.code)
        self._stats.closed[code] += 1
        log.info(
            "websocket closed",
            extra={"remote": self._remote, "duration_s": round(duration_s, 3), "close_code": code},
        )
