"""A server clock state for tests: what the kernel reports on a machine that
is not synchronised, and a state file a real server reads (CLOCK_STATE_FILE)."""

from __future__ import annotations

import json
from pathlib import Path

from moscow_clock.core.clockstate import ClockState

# This machine's own kernel clock, as it is: STA_UNSYNC, 16 s maximum error.
UNSYNCED = ClockState(synchronized=False, max_error_ms=16000.0, estimated_error_ms=16000.0)


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
