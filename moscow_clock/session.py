"""One websocket client's session: ticks out, sync answers back.

Two small loops share the socket. Sync replies are sent from the receiving
loop the moment a request arrives, so they never wait behind a tick.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from .clock import Clock
from .protocol import GOING_AWAY, Close, Reply, answer
from .ticker import Ticker, TickerClosed


class Websocket(Protocol):
    """The part of Quart's websocket a session uses (tests may pass a fake)."""

    async def receive(self) -> str | bytes: ...
    async def send(self, data: str | bytes) -> None: ...
    async def close(self, code: int, reason: str = "") -> None: ...


_SHUTTING_DOWN = Close(GOING_AWAY, "server shutting down")


async def run_session(websocket: Websocket, ticker: Ticker, clock: Clock) -> None:
    """Serve one accepted websocket until the client leaves, misbehaves or the
    server drains; ends by closing with the code that says why."""
    try:
        with ticker.subscription() as cursor:
            close = await _exchange(websocket, ticker, clock, cursor)
    except TickerClosed:
        close = _SHUTTING_DOWN
    await websocket.close(close.code, close.reason)


async def _exchange(websocket: Websocket, ticker: Ticker, clock: Clock, cursor: int) -> Close:
    loops = (
        asyncio.create_task(_forward_ticks(websocket, ticker, cursor)),
        asyncio.create_task(_answer_requests(websocket, clock)),
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


async def _answer_requests(websocket: Websocket, clock: Clock) -> Close:
    while True:
        message = await websocket.receive()
        verdict = answer(message, clock())
        if isinstance(verdict, Reply):
            await websocket.send(verdict.text)
        elif isinstance(verdict, Close):
            return verdict
