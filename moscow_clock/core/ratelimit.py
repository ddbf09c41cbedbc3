"""Rates, pure so tests drive their clock: a token bucket for client
messages, and the one throttle for log lines.

A page sends a handful of sync requests per minute; a client sending far
more is flooding, and each message costs the one event loop every client
shares. The bucket lets bursts through and refuses a sustained flood.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # bucket size
    now: float  # monotonic seconds at creation
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._last = self.now

    @classmethod
    def for_rate(cls, rate: float, now: float) -> TokenBucket:
        """Three seconds' worth of burst, and never fewer than a page's resync."""
        return cls(rate=rate, burst=max(30.0, 3 * rate), now=now)

    def allow(self, now: float) -> bool:
        return self.take(1.0, now)

    def take(self, amount: float, now: float) -> bool:
        """Spend `amount` tokens if there are that many (the bucket may go
        down to zero, not below): whether they were there."""
        elapsed = max(0.0, now - self._last)  # monotonic, but never trust a step back
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False


@dataclass(slots=True)
class Every:
    """The log throttle: says yes at most once per `interval` seconds for each
    key (a server, a kind of trouble; one key unless given), for a log line
    that would otherwise repeat as often as its cause. Counts the noes, so the
    line that does get out can say how many it stands for. Keys are few (they
    come from settings, not from clients): each is remembered."""

    interval: float
    _next: dict[Hashable, float] = field(init=False, default_factory=dict)
    suppressed: int = field(init=False, default=0)

    def due(self, now: float, key: Hashable = None) -> bool:
        if now < self._next.get(key, float("-inf")):
            self.suppressed += 1
            return False
        self._next[key] = now + self.interval
        return True

    def take_suppressed(self) -> int:
        """The noes since the last call, for the line that does get out."""
        taken, self.suppressed = self.suppressed, 0
        return taken
