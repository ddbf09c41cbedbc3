"""One budget per websocket connection for everything its client sends.

The app's message limit (`ratelimit.TokenBucket`, WS_MESSAGE_RATE) sees only
complete messages; a client can cost the server far more below it: endless
empty continuation frames of a message that never ends, pings, pongs, frames
of a message too large to keep. Here every frame the server parses is charged
(data, continuation and control frames; their payload bytes too), a
fragmented message must end within a number of frames and seconds, and pings
are answered at a bounded rate. Pure: the server layer asks, with `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ratelimit import TokenBucket

# Seconds' worth of frames and bytes let through at once.
BURST_S = 3.0


@dataclass(frozen=True, slots=True)
class Limits:
    frames_per_s: float  # every frame: data, continuation, ping, pong, close
    bytes_per_s: float  # their payload bytes
    fragments: int  # frames one message may span
    message_s: float  # seconds from a message's first frame to its last
    pongs_per_s: float  # pings answered per second; the rest go unanswered

    @classmethod
    def default(cls) -> Limits:
        return cls(
            frames_per_s=30.0, bytes_per_s=16384.0, fragments=32, message_s=5.0, pongs_per_s=2.0
        )


# Close reasons (code 1008), short enough for a close frame.
TOO_MANY_FRAMES = "too many frames"
TOO_MUCH_DATA = "too much data"
TOO_FRAGMENTED = "message in too many frames"
TOO_SLOW = "message took too long"


@dataclass(slots=True)
class Budget:
    """What one connection may still send; `charge` says when it is spent."""

    limits: Limits
    now: float
    _frames: TokenBucket = field(init=False)
    _bytes: TokenBucket = field(init=False)
    _pongs: TokenBucket = field(init=False)
    _fragments: int = field(init=False, default=0)
    _message_started: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        limits = self.limits
        self._frames = _bucket(limits.frames_per_s, self.now)
        self._bytes = _bucket(limits.bytes_per_s, self.now)
        self._pongs = _bucket(limits.pongs_per_s, self.now)

    def charge(self, payload_bytes: int, frame_end: bool, now: float) -> str | None:
        """Charge what was parsed of a frame (`payload_bytes` of it; a frame is
        counted once, at its end); the reason to close with 1008 once the
        budget is spent, else None."""
        if frame_end and not self._frames.take(1.0, now):
            return TOO_MANY_FRAMES
        if payload_bytes and not self._bytes.take(float(payload_bytes), now):
            return TOO_MUCH_DATA
        return None

    def fragment(self, message_end: bool, now: float) -> str | None:
        """A data frame ended (`message_end`: it was the message's last);
        the reason to close if the message spans too many frames or too long."""
        if message_end:
            self._fragments = 0
            self._message_started = None
            return None
        if self._message_started is None:
            self._message_started = now
        self._fragments += 1
        if self._fragments >= self.limits.fragments:
            return TOO_FRAGMENTED
        if now - self._message_started > self.limits.message_s:
            return TOO_SLOW
        return None

    @property
    def message_open(self) -> bool:
        """A fragmented message has begun and not ended."""
        return self._message_started is not None

    def may_pong(self, now: float) -> bool:
        """Answer this ping? (Pings past the rate still cost frames.)"""
        return self._pongs.take(1.0, now)


def _bucket(rate: float, now: float) -> TokenBucket:
    return TokenBucket(rate=rate, burst=max(1.0, rate * BURST_S), now=now)
