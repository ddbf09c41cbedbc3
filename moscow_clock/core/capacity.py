"""How many clients one process takes, and when it is saturated: pure
decisions over readings the caller makes ("now" is a parameter).

A process refuses a newcomer only when serving one more would hurt what its
visitors see: its event loop has fallen behind (its own work, not a busy
host), or it is near its memory limit. Each is decided with hysteresis, so
admission does not flap with the noise of a reading, and a client that is
connected but idle costs nothing toward either until it really costs CPU or
memory. The static cap (`MAX_CONNECTIONS`) comes from the real limits: the
memory the process may use, here, and the descriptors, in the server layer.
"""

from __future__ import annotations

# What one websocket client costs, with a margin of about two over what
# bench.run measures (docs/PERFORMANCE.md): the cap the memory limit sets is
# reached well before the limit is, and real browsers send more headers
# than the load generator.
PER_CONNECTION_BYTES = 32 * 1024
# What a process costs before its first client: interpreter, libraries,
# buffers, a collection's garbage.
BASE_BYTES = 128 * 1024 * 1024
# The most MAX_CONNECTIONS may be (core/config.py validates it so).
MOST_CONNECTIONS = 1_000_000

# Refuse newcomers once memory in use reaches this share of the limit, and
# admit again only below the lower share: memory is given back slowly, and
# each admission near the edge is the one that would reach the OOM killer.
MEMORY_HIGH = 0.9
MEMORY_LOW = 0.8
# The event loop's own lag must stay over the budget this many whole seconds
# in a row before newcomers are refused, and under `LAG_RESUME_AT` of it as
# long before they are admitted again: one slow second (a collection, a
# burst of handshakes) refuses nobody.
LAG_HOLD_S = 2
LAG_RESUME_AT = 0.8


def connections_for_memory(memory_bytes: int, processes: int = 1) -> int:
    """The clients one of `processes` processes sharing `memory_bytes` can
    hold: its share less the base cost, at `PER_CONNECTION_BYTES` each (at
    least 1, at most `MOST_CONNECTIONS`)."""
    share = memory_bytes // max(processes, 1)
    return max(1, min(MOST_CONNECTIONS, (share - BASE_BYTES) // PER_CONNECTION_BYTES))


class Watermarks:
    """Over `high` turns it on; only under `low` turns it off again."""

    __slots__ = ("high", "low", "on")

    def __init__(self, high: float = MEMORY_HIGH, low: float = MEMORY_LOW) -> None:
        self.high = high
        self.low = low
        self.on = False

    def update(self, value: float | None) -> bool:
        """Weigh a reading (None: unknown, which changes nothing)."""
        if value is not None:
            if value >= self.high:
                self.on = True
            elif value < self.low:
                self.on = False
        return self.on


class SustainedLag:
    """Whether the event loop has fallen behind: its worst lag was over
    `budget_s` in each of the last `hold_s` whole seconds (then it stays
    behind until its worst lag was under `resume_at` of the budget in as
    many). A lag counts for every second it spans, so one stall longer than
    the hold counts as a sustained one. Lags the caller does not count (the
    host did not run the process) are simply not recorded. A budget of 0
    turns it off."""

    __slots__ = ("_worst", "budget_s", "hold_s", "on", "resume_at")

    def __init__(
        self, budget_s: float, hold_s: int = LAG_HOLD_S, resume_at: float = LAG_RESUME_AT
    ) -> None:
        self.budget_s = budget_s
        self.hold_s = hold_s
        self.resume_at = resume_at
        self.on = False
        self._worst: dict[int, float] = {}  # whole second -> worst lag in it

    def record(self, lag_s: float, now: float) -> None:
        """A timer woke `lag_s` late at `now` (monotonic seconds)."""
        if not self.budget_s:
            return
        last = int(now)
        first = max(int(now - lag_s), last - self.hold_s)
        for second in range(first, last + 1):
            if lag_s > self._worst.get(second, 0.0):
                self._worst[second] = lag_s
        if len(self._worst) > 2 * self.hold_s + 2:
            for second in [s for s in self._worst if s < last - self.hold_s]:
                del self._worst[second]

    def behind(self, now: float) -> bool:
        """Decided over the last `hold_s` whole seconds before `now`."""
        if not self.budget_s:
            return False
        current = int(now)
        worst = [self._worst.get(second, 0.0) for second in range(current - self.hold_s, current)]
        if all(lag > self.budget_s for lag in worst):
            self.on = True
        elif all(lag < self.budget_s * self.resume_at for lag in worst):
            self.on = False
        return self.on
