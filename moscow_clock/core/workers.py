"""When a supervisor starts a worker that died again, and when it gives up:
pure, "now" a parameter (server/supervisor.py keeps the processes).

A worker that dies (a crash, the OOM killer, a SIGKILL) takes only its own
clients with it; the others' keep theirs, so the supervisor replaces it
rather than stopping the service. After a back-off, so a worker that dies
at once does not spin: 0.5 s, doubling to 10 s, back to 0.5 s once a
worker has lived a minute. Five deaths within a minute is a crash loop that
a restart will not mend: the supervisor then stops, for the orchestrator to
see and act on.
"""

from __future__ import annotations

from collections import deque

FIRST_BACKOFF_S = 0.5
MOST_BACKOFF_S = 10.0
# A worker that lived this long was healthy: the back-off starts over.
HEALTHY_AFTER_S = 60.0
CRASH_LOOP_DEATHS = 5
CRASH_LOOP_WINDOW_S = 60.0
# The file in the workers' shared metrics directory (PROMETHEUS_MULTIPROC_DIR)
# where the supervisor keeps the count of restarts, for /metrics (any worker
# answers a scrape; the supervisor has no listener). Not "*.db": that is
# prometheus-client's own.
RESTARTS_FILE = "worker-restarts"


class Restarts:
    """The supervisor's record of deaths: what to do about the next one."""

    def __init__(self) -> None:
        self._deaths: deque[float] = deque()
        self._backoff = FIRST_BACKOFF_S
        self.count = 0  # replacements started

    def died(self, now: float, lived_s: float) -> float | None:
        """A worker died at `now` after `lived_s`: the seconds to wait
        before starting its replacement, or None for a crash loop."""
        if lived_s >= HEALTHY_AFTER_S:
            self._backoff = FIRST_BACKOFF_S
        self._deaths.append(now)
        while self._deaths and self._deaths[0] <= now - CRASH_LOOP_WINDOW_S:
            self._deaths.popleft()
        if len(self._deaths) >= CRASH_LOOP_DEATHS:
            return None
        backoff = self._backoff
        self._backoff = min(MOST_BACKOFF_S, self._backoff * 2)
        return backoff
