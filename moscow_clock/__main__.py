"""`python -m moscow_clock`: serve the clock with settings from the environment.

The composition root: the one place that knows both the app and the server,
so that the server layer never imports the app.
"""

from __future__ import annotations

import sys

from .core.config import ConfigError, Settings
from .server.serve import Service, run


def build(settings: Settings) -> Service:
    from .web.app import SECURITY_HEADERS, create_app  # not needed by a WORKERS>1 supervisor
    from .web.endpoint import shed_upgrades
    from .web.runtime import runtime_of

    app = create_app(settings=settings)
    runtime = runtime_of(app)
    return Service(
        # Quart's own `__call__` only awaits `asgi_app` (the /ws endpoint in
        # front of Quart): served directly, no coroutine frame of Quart's sits
        # under every websocket for its lifetime.
        app.asgi_app,
        runtime.ticker.drain,
        tuple(SECURITY_HEADERS.items()),
        shed_upgrades(runtime),
        runtime.stats.server_protections.append,
    )


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"moscow_clock: {error}", file=sys.stderr)
        return 2
    return run(build, settings)


if __name__ == "__main__":
    sys.exit(main())
