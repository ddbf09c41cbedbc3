"""One factor for every timing threshold and timeout in the tests.

`TEST_TIME_SCALE` (default 1) multiplies every deadline, wait, timeout and
upper bound on lateness or duration that the tests use, so a slow or busy
machine can run the suite with, say, `TEST_TIME_SCALE=3` instead of failing
on timing (python-websockets scales its test timeouts the same way). It never
loosens a correctness bound in the other direction (a lower bound such as
"not reaped before two ping intervals" stays as it is), and it does not touch
the server settings a test is about (SEND_TIMEOUT, WS_PING_INTERVAL, ...) or
simulated durations (a proxy's delay, a fake client's linger).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator

VARIABLE = "TEST_TIME_SCALE"


def _scale_from(environ: dict[str, str] | os._Environ[str]) -> float:
    raw = environ.get(VARIABLE, "").strip() or "1"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{VARIABLE}={raw!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{VARIABLE}={raw!r} must be a positive, finite number")
    return value


SCALE = _scale_from(os.environ)


def scaled(amount: float) -> float:
    """A timing threshold or timeout (seconds or milliseconds alike), scaled."""
    return amount * SCALE


def _polls(condition: Callable[[], bool], timeout: float, what: str) -> Iterator[None]:
    """Yield until `condition()` holds; fail after `timeout` (scaled here).
    The caller waits between yields in its own way."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {scaled(timeout):.1f} s: {what or condition}")
        yield


async def until(
    condition: Callable[[], bool], timeout: float, what: str = "", interval: float = 0.02
) -> None:
    """Return as soon as `condition()` holds; fail after `timeout` (scaled here)."""
    for _ in _polls(condition, timeout, what):
        await asyncio.sleep(interval)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str = "", interval: float = 0.02
) -> None:
    """`until` for code without an event loop."""
    for _ in _polls(condition, timeout, what):
        time.sleep(interval)
