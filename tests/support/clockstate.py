"""A server clock state for tests: what the kernel reports on a machine that
is not synchronised, and a state file that a real test server reads
(tests/support/clock_server.py) in place of the kernel."""

from __future__ import annotations

import json
import math
from pathlib import Path

from moscow_clock.core.clockstate import UNKNOWN, ClockState

# This machine's own kernel clock, as it is: STA_UNSYNC, 16 s maximum error.
UNSYNCED = ClockState(synchronized=False, max_error_ms=16000.0, estimated_error_ms=16000.0)

# A state file is a few dozen bytes; anything larger is not one.
MAX_STATE_BYTES = 4096


def write_state(path: Path, state: ClockState) -> None:
    """Replace the state file in one step, so a server never reads half of it."""
    staged = path.with_suffix(".tmp")
    staged.write_text(
        json.dumps(
            {
                "synchronized": state.synchronized,
                "max_error_ms": state.max_error_ms,
                "estimated_error_ms": state.estimated_error_ms,
            }
        )
    )
    staged.replace(path)


class StateFile:
    """The clock state from a JSON file, `{"synchronized": true,
    "max_error_ms": 12, "estimated_error_ms": 3}`; missing, malformed,
    oversized or not a regular file reads as UNKNOWN."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def __call__(self) -> ClockState:
        try:
            if not self.path.is_file() or self.path.stat().st_size > MAX_STATE_BYTES:
                return UNKNOWN
            data = json.loads(self.path.read_text())
            synchronized = data.get("synchronized")
            if not isinstance(synchronized, bool | None):
                return UNKNOWN
            numbers = [data.get("max_error_ms"), data.get("estimated_error_ms")]
            errors = [None if n is None else float(n) for n in numbers]
            if any(e is not None and not math.isfinite(e) for e in errors):
                return UNKNOWN
            return ClockState(synchronized, errors[0], errors[1])
        except (OSError, ValueError, TypeError, AttributeError):
            return UNKNOWN
