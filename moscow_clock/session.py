"""One websocket client's session: ticks out, sync answers back.

Two small loops share the socket. Sync replies are sent from the receiving
loop the moment a request arrives, so they never wait behind a tick.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from .clock import Clock
from .protocol import GOING_AWAY, POLICY_VIOLATION, Close, Reply, answer
from .ratelimit import TokenBucket
from .ticker import Ticker, TickerClosed


class Websocket(Protocol):
    """The part of Quart's websocket a session uses (tests may pass a fake)."""

    async def receive(self) -> str | bytes: ...
    async def send(self, data: str | bytes) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


_SHUTTING_DOWN = Close(GOING_AWAY, "server shutting down")
_FLOODING = Close(POLICY_VIOLATION, "too many messages")
DEFAULT_MESSAGE_RATE = 10.0


async def run_session(
    websocket: Websocket,
    ticker: Ticker,
    clock: Clock,
    message_rate: float = DEFAULT_MESSAGE_RATE,
) -> None:
    """Serve one accepted websocket until the client leaves, misbehaves or the
    server drains; ends by closing with the code that says why."""
    limit = TokenBucket.for_rate(message_rate, time.monotonic())
    try:
        with ticker.subscription() as cursor:
            close = await _exchange(websocket, ticker, clock, cursor, limit)
    except TickerClosed:
        close = _SHUTTING_DOWN
    await websocket.close(close.code, close.reason)


async def _exchange(
    websocket: Websocket, ticker: Ticker, clock: Clock, cursor: int, limit: TokenBucket
) -> Close:
    loops = (
        asyncio.create_task(_forward_ticks(websocket, ticker, cursor)),
        asyncio.create_task(_answer_requests(websocket, clock, limit)),
    )
    try:
        done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for loop in loops:
            loop.cancel()
    return done.pop().result()


async def _forward_ticks(websocket: Websocket, ticker: Ticker, cursor: int) -> Close:
    while True:
        try:
            cursor, tick = await ticker.next_tick(cursor)
        except TickerClosed:
            return _SHUTTING_DOWN
        await websocket.send(tick.text)


async def _answer_requests(websocket: Websocket, clock: Clock, limit: TokenBucket) -> Close:
    while True:
        message = await websocket.receive()
        if not limit.allow(time.monotonic()):
            return _FLOODING
        verdict = answer(message, clock())
        if isinstance(verdict, Reply):
            await websocket.send(verdict.text)
        elif isinstance(verdict, Close):
            return verdict
