"""`python -m moscow_clock`: serve the clock with settings from the environment."""

from __future__ import annotations

import sys

from .config import ConfigError, Settings
from .server import run


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"moscow_clock: {error}", file=sys.stderr)
        return 2
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
