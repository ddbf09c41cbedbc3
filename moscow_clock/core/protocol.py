"""What the server does with each message a websocket client sends.

Kept free of I/O so every input, however hostile, can be checked by tests:
the answer is a reply to send, a close code, or nothing (ignore).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from .clock import sync_reply

# RFC 6455 close codes used by the service.
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class Reply:
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


type Verdict = Reply | Close | None


def answer(
    message: str | bytes,
    server_ms: float,
    error_ms: float | None = None,
    clock: Mapping[str, object] | None = None,
) -> Verdict:
    """Answer one client message; unknown message types are ignored so newer
    pages keep working against an older server."""
    if isinstance(message, bytes):
        return Close(UNSUPPORTED_DATA, "binary messages are not supported")
    try:
        request = json.loads(message)
    except (ValueError, RecursionError):
        return Close(POLICY_VIOLATION, "messages must be JSON objects")
    if not isinstance(request, dict):
        return Close(POLICY_VIOLATION, "messages must be JSON objects")
    if request.get("type") != "sync":
        return None
    t0 = _finite_number(request.get("t0"))
    if t0 is None:
        return Close(POLICY_VIOLATION, "sync needs a numeric t0")
    return Reply(sync_reply(t0, server_ms, error_ms, clock))


def _finite_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a double
        return None
    return number if math.isfinite(number) else None
