"""Finding and launching Chromium for the browser tests."""

from __future__ import annotations

import os
import shutil

# Flags from the machine notes: no sandbox as root, and no background
# networking that this closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def system_chromium() -> str | None:
    """The system Chromium (CHROMIUM overrides), or None to use Playwright's own."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def browser_required() -> bool:
    """In CI a browser test that cannot run must fail, never skip."""
    return os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"
