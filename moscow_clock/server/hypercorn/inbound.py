"""The process's inbound budget (core/budget.py, `Inbound`), one per server
config, so every connection of the process shares it; and the pause that
sheds a connection: its socket is not read for a few seconds.

The budget is handed to the app on each websocket scope (extension
`core.budget.INBOUND`), the way pre-framed sends are advertised, so the app's
metrics can count what it shed.
"""

from __future__ import annotations

import asyncio
import random
import time
import weakref

from hypercorn.config import Config

from ...core.budget import PAUSE_S, Inbound
from .options import options_of

_BUDGETS: weakref.WeakKeyDictionary[Config, Inbound] = weakref.WeakKeyDictionary()


def inbound_of(config: Config) -> Inbound | None:
    """The process's budget under `config` (None: INBOUND_RATE is 0)."""
    found = _BUDGETS.get(config)
    if found is None:
        rate = options_of(config).limits.inbound_per_s
        if rate <= 0:
            return None
        found = _BUDGETS[config] = Inbound(rate, time.monotonic())
    return found


class Pause:
    """Not reading one connection for `PAUSE_S` seconds (jittered): its
    client's bytes wait in the kernel's buffers and then its own, which
    fill, so a flood costs this process nothing while it lasts and no
    buffer grows here. `wake` ends it early (the connection is closing)."""

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return self._waiter is not None

    async def hold(self, transport: asyncio.BaseTransport | None) -> None:
        """Pause reading `transport` (if it reads now) for a while. With no
        transport (a stream outside a real connection), only this call waits."""
        loop = asyncio.get_running_loop()
        # (Not one the stream reader paused itself, its buffer full: the
        # reader resumes it when read again, which is after this.)
        paused = (
            transport
            if isinstance(transport, asyncio.ReadTransport) and transport.is_reading()
            else None
        )
        if paused is not None:
            paused.pause_reading()
        self._waiter = waiter = loop.create_future()
        jitter = random.uniform(*PAUSE_S)  # noqa: S311 (spreads the resumes; no secret)
        timer = loop.call_later(jitter, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
            if paused is not None and not paused.is_closing():
                paused.resume_reading()

    def wake(self) -> None:
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
