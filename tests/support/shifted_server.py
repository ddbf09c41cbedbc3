"""`python -m tests.support.shifted_server`: the real server, its clock moved by
CLOCK_SHIFT_MS (whole seconds), so a browser test can reach Moscow midnight
without waiting for it. Everything else is `python -m moscow_clock`."""

from __future__ import annotations

import os
import sys

from moscow_clock.core.clock import wall_clock_ms
from moscow_clock.core.config import Settings
from moscow_clock.server.serve import Service, run
from moscow_clock.web.app import create_app
from moscow_clock.web.runtime import runtime_of


def build(settings: Settings) -> Service:
    shift_ms = float(os.environ["CLOCK_SHIFT_MS"])
    app = create_app(clock=lambda: wall_clock_ms() + shift_ms, settings=settings)
    return Service(app, runtime_of(app).ticker.drain)


if __name__ == "__main__":
    sys.exit(run(build, Settings.from_env()))
