"""`python -m tests.support.clock_server`: the real server with its clock
state injected from a JSON file (CLOCK_STATE_FILE, re-read on every kernel
read), for tests of states this machine's kernel is not in. The service
itself has no such hook: production reads only the kernel.

tests/support/server.py starts this module instead of `moscow_clock` when a
test passes CLOCK_STATE_FILE, so a test names the state, not the module.
"""

from __future__ import annotations

import os
import sys

from moscow_clock.core.config import Settings
from moscow_clock.server.serve import Service, run
from moscow_clock.web.app import create_app
from moscow_clock.web.runtime import runtime_of

from .clockstate import StateFile


def build(settings: Settings) -> Service:
    app = create_app(settings=settings, clock_source=StateFile(os.environ["CLOCK_STATE_FILE"]))
    return Service(app, runtime_of(app).ticker.drain)


if __name__ == "__main__":
    sys.exit(run(build, Settings.from_env()))
