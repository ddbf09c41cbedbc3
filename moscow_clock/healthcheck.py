"""`python -m moscow_clock.healthcheck`: exit 0 if the local server is healthy.

For container HEALTHCHECKs: needs no shell, curl or wget, only the interpreter.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from .core.config import ConfigError, Settings

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def health_url(settings: Settings) -> str:
    host = _WILDCARDS.get(settings.host, settings.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/healthz"


def main() -> int:
    try:
        url = health_url(Settings.from_env())
    except ConfigError as error:
        print(f"healthcheck: {error}", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - fixed local URL
            healthy = response.status == 200 and json.load(response).get("status") == "ok"
    except (OSError, ValueError) as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1
    print(f"healthcheck: {url}: {'ok' if healthy else 'unhealthy'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
