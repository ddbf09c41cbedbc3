"""Finding and launching Chromium for the browser tests, and a page that
loads the front end's modules straight from disk."""

from __future__ import annotations

import mimetypes
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"

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

# What Chromium logs for the page's probe of /ws (static/js/backoff.js) while
# its server is away or busy: a refused connect, the 503 of a refusal for
# load, the 426 of a server that is back.
PROBE_LOG = (
    "Failed to load resource: net::ERR_CONNECTION_REFUSED",
    "Failed to load resource: the server responded with a status of 426",
    "Failed to load resource: the server responded with a status of 503",
)

# An origin no server answers: Playwright fulfils every request to it.
STATIC_ORIGIN = "http://test.local"
BLANK = "<!doctype html><html lang=en><meta charset=utf-8><title>modules</title></html>"


def system_chromium() -> str | None:
    """The system Chromium (CHROMIUM overrides), or None to use Playwright's own."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def browser_required() -> bool:
    """In CI a browser test that cannot run must fail, never skip."""
    return os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"


async def _serve_from_disk(route: Route) -> None:
    """`/` is a blank page; `/static/...` the file in static/; anything else 404."""
    path = urlsplit(route.request.url).path
    if path == "/":
        await route.fulfill(status=200, content_type="text/html", body=BLANK)
        return
    file = (ROOT / path.lstrip("/")).resolve()
    if path.startswith("/static/") and file.is_relative_to(STATIC) and file.is_file():
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        await route.fulfill(status=200, content_type=kind, body=file.read_bytes())
    else:
        await route.fulfill(status=404, content_type="text/plain", body="not found")


async def static_page(browser: Browser) -> Page:
    """A blank page on STATIC_ORIGIN whose /static/ comes from the files on
    disk, with no server: ES module imports need an http(s) URL, so the
    page and its modules share an origin that Playwright answers itself."""
    page = await browser.new_page()
    await page.route(f"{STATIC_ORIGIN}/**", _serve_from_disk)
    await page.goto(f"{STATIC_ORIGIN}/")
    return page


def watch_console[L: list[str]](page: Page, problems: L) -> L:
    """Collect the page's console errors and warnings and uncaught errors into
    `problems`: a browser test fails on any it did not expect."""

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


async def open_watched(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    """A new page of `context` at `url`, and the problems its console reports."""
    page = await context.new_page()
    problems = watch_console(page, [])
    await page.goto(url)
    return page, problems
