"""One budget per websocket connection for everything its client sends.

The app's message limit (`ratelimit.TokenBucket`, WS_MESSAGE_RATE) sees only
complete messages; a client can cost the server far more below it: endless
empty continuation frames of a message that never ends, pings, pongs, frames
of a message too large to keep. Here every frame the server parses is charged
(data, continuation and control frames; their payload bytes too), a
fragmented message must end within a number of frames and seconds, and pings
are answered at a bounded rate. Pure: the server layer asks, with `now`.

Each connection's budget is its own; `Inbound` is the one the whole process
shares (INBOUND_RATE): fair shares of what the process answers, so that many
connections each under their own budget cannot together take the loop that
every client's ticks need.
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
    # Messages and control frames per second the whole process answers
    # before it sheds the heaviest senders (`Inbound`); 0: no such budget.
    inbound_per_s: float = 0.0


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
    # Its place in the process's `Inbound` budget: what it sent in the
    # window numbered `window` and in the one before, what was shed.
    window: int = field(init=False, default=-1)
    count: int = field(init=False, default=0)
    previous: int = field(init=False, default=0)
    drops: int = field(init=False, default=0)

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


# --- the process's inbound budget --------------------------------------------

# Rates are measured over sliding windows this long: long enough that a
# page's resync (five syncs in a row, a pong besides) reads as the burst it
# is, short enough that a flood is noticed within a second or two.
WINDOW_S = 4.0
# Messages per window any connection may send without ever being shed: two
# resyncs and a pong, more than a page sends (static/js/main.js: five syncs
# a minute, a pong per WS_PING_INTERVAL). However busy the process, such a
# sender is answered; the budget is taken from the heavier ones.
PAGE_MESSAGES = 12
# Messages shed from one connection before it is closed (1008, `OVER_SHARE`).
STRIKES = 20
# Seconds a shed connection is not read (its client's bytes wait in the
# kernel, then in its own buffers), drawn between these (jitter: the shed
# do not all come back in the same instant).
PAUSE_S = (2.0, 4.0)

OVER_SHARE = "server busy: too many messages"

# The websocket scope extension under which the server hands the app the
# process's `Inbound` (its counts are the app's metrics).
INBOUND = "moscow_clock.inbound"

# What `Inbound.admit` says.
PASS, SHED, CLOSE = 0, 1, 2


class Inbound:
    """The process's inbound budget: messages and control frames per second
    (`rate`) that every connection shares. Under it, everything passes. Over
    it (the process answered more than `rate` a second over the last window),
    a sender is shed only if it sends more than its fair share (`rate` over
    the senders active in the window) and more than a page ever sends
    (`PAGE_MESSAGES`): the heaviest go first, ordinary pages never. Counts
    are per fixed window, read as a sliding one (the last window weighed by
    how much of it is still inside the last `WINDOW_S` seconds): O(1) per
    message, nothing walks the connections."""

    __slots__ = (
        "_active",
        "_passed",
        "_previous_active",
        "_previous_passed",
        "_start",
        "_window",
        "closed",
        "paused",
        "rate",
        "shed",
    )

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._window = 0
        self._start = now
        self._passed = 0  # answered in this window
        self._previous_passed = 0
        self._active = 0  # senders in this window
        self._previous_active = 0
        self.shed = 0  # messages shed, since start
        self.paused = 0  # connections paused (the server layer counts them here)
        self.closed = 0  # connections closed for going on past their share

    def admit(self, sender: Budget, now: float) -> int:
        """One message or control frame from `sender`: PASS (answer it),
        SHED (drop it and stop reading from the sender for a while), or CLOSE
        (shed once too often: close with 1008, `OVER_SHARE`)."""
        if now - self._start >= WINDOW_S:
            self._roll(now)
        window = self._window
        if sender.window != window:
            sender.previous = sender.count if sender.window == window - 1 else 0
            sender.count = 0
            sender.window = window
            self._active += 1
        sender.count += 1
        weight = 1.0 - (now - self._start) / WINDOW_S  # of the previous window
        if self._passed + self._previous_passed * weight < self.rate * WINDOW_S:
            self._passed += 1
            return PASS
        sent = sender.count + sender.previous * weight
        share = self.rate * WINDOW_S / max(self._active, self._previous_active)
        if sent <= PAGE_MESSAGES or sent <= share:
            self._passed += 1
            return PASS
        self.shed += 1
        sender.drops += 1
        return CLOSE if sender.drops >= STRIKES else SHED

    def drop(self, sender: Budget) -> int:
        """A message that arrived with one already shed (read in the same
        go): dropped too. SHED, or CLOSE once `STRIKES` are reached."""
        self.shed += 1
        sender.drops += 1
        return CLOSE if sender.drops >= STRIKES else SHED

    def _roll(self, now: float) -> None:
        windows = int((now - self._start) // WINDOW_S)
        if windows == 1:
            self._previous_passed, self._previous_active = self._passed, self._active
        else:  # the last window went by with nothing at all
            self._previous_passed = self._previous_active = 0
        self._passed = self._active = 0
        self._window += windows
        self._start += windows * WINDOW_S
