"""Installed and offline, in a real Chromium: the service worker, the kept offset, recovery."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from moscow_clock.core.clock import moscow_time

from .support.browser import PROBE_LOG, watch_console
from .support.page import RECORD_FLIPS, recorded_flips, wait_until_synced
from .support.png import png_size
from .support.server import ROOT, ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.browser

Start = Callable[..., ServerProcess]
OFFSET_KEY = "moscow-clock:offset"
# Runs before the page's scripts: CSP violations become console errors the test sees.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
});
"""
# While offline the page's websocket attempts fail, and Chromium logs each one
# (and the probe of /ws, static/js/backoff.js, while a restarted server is away).
EXPECTED_OFFLINE = ("WebSocket connection to", "net::ERR_INTERNET_DISCONNECTED", *PROBE_LOG)


class Problems(list[str]):
    def unexpected(self) -> list[str]:
        return [text for text in self if not any(known in text for known in EXPECTED_OFFLINE)]


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context()
    yield context
    await context.close()


async def open_page(context: BrowserContext, url: str, *init_scripts: str) -> tuple[Page, Problems]:
    page = await context.new_page()
    problems = watch_console(page, Problems())
    for script in (REPORT_CSP, RECORD_FLIPS, *init_scripts):
        await page.add_init_script(script)
    await page.goto(url)
    return page, problems


async def wait_for_worker(page: Page) -> None:
    """The service worker is active and controls this page (it claims it on activation)."""
    await page.evaluate("navigator.serviceWorker.ready")
    await page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=scaled(10000)
    )


async def assert_ticking(page: Page, shift_ms: float = 0.0, seconds: float = 2.4) -> None:
    """The displayed second flips every second and reads the true Moscow time (+ shift_ms)."""
    await page.evaluate("window.__flips.length = 0")
    await asyncio.sleep(seconds)
    flips = await recorded_flips(page)
    assert len(flips) >= 2, flips
    seconds_shown = [flip.second_ms for flip in flips]
    assert [b - a for a, b in itertools.pairwise(seconds_shown)] == [1000.0] * (len(flips) - 1)
    for flip in flips:
        assert flip.text == moscow_time(flip.second_ms).hms
        assert abs(flip.error_ms + shift_ms) < 250, flips  # shows true time + shift


async def test_installable_manifest_and_icons(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url)
    href = await page.eval_on_selector('link[rel="manifest"]', "link => link.href")
    response = await page.request.get(href)
    assert response.headers["content-type"] == "application/manifest+json"
    manifest = json.loads(await response.text())
    assert manifest["display"] in {"standalone", "fullscreen"}
    purposes = set()
    for icon in manifest["icons"]:
        png = await page.request.get(f"{server.url}{icon['src']}")
        assert png.headers["content-type"] == "image/png"
        width, height = png_size(await png.body())
        assert icon["sizes"] == f"{width}x{height}"
        purposes.add((width, icon["purpose"]))
    assert {(192, "any"), (512, "any"), (512, "maskable")} <= purposes
    # The worker is served from the root, with a type and caching that let updates through.
    worker = await page.request.get(f"{server.url}/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["cache-control"] == "no-cache"
    await wait_for_worker(page)
    scope = await page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{server.url}/"
    # Chromium's own reading of the manifest: no errors, and installable but
    # for Playwright's contexts being incognito.
    cdp = await context.new_cdp_session(page)
    parsed = await cdp.send("Page.getAppManifest")
    assert parsed["errors"] == []
    assert parsed["manifest"]["name"] == "Moscow time"
    installability = await cdp.send("Page.getInstallabilityErrors")
    assert {e["errorId"] for e in installability["installabilityErrors"]} <= {"in-incognito"}
    assert problems == []


async def test_offline_reload_keeps_the_clock_running_then_recovers(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url)
    await wait_until_synced(page)
    await wait_for_worker(page)
    stored = json.loads(await page.evaluate(f"localStorage.getItem({OFFSET_KEY!r})"))
    assert stored["uncertaintyMs"] < 100

    await context.set_offline(True)
    await page.reload()
    # Served by the worker from its cache, marked so, and corrected by the kept offset.
    assert await page.get_attribute("#app", "data-source") == "cache-corrected"
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'offline'", timeout=scaled(5000)
    )
    status = await page.text_content("#status")
    synced_at = moscow_time(stored["syncedAt"]).hms[:5]
    assert status == f"Offline — last synchronised {synced_at}"
    await assert_ticking(page)  # the same machine: the kept offset is right
    assert (
        await page.evaluate("document.title")
        == f"{await page.text_content('#clock')} · Moscow time"
    )

    # Network back: it reconnects and re-syncs by itself, without a reload.
    await page.evaluate("window.__sameDocument = true")
    await context.set_offline(False)
    await wait_until_synced(page, timeout_ms=15000)
    assert await page.text_content("#status") == "Live"
    assert await page.evaluate("window.__sameDocument === true")
    await assert_ticking(page)
    assert problems.unexpected() == []  # no CSP violation, no script error


async def test_offline_page_is_corrected_by_the_kept_offset(
    context: BrowserContext, server: ServerProcess
) -> None:
    """A kept offset of +1 h (the device was an hour behind) is applied: the
    cached page's own, older server time is not shown as now."""
    page, problems = await open_page(context, server.url)
    await wait_until_synced(page)
    await wait_for_worker(page)
    await page.evaluate("setTimeout(() => {}, 0)")  # let the last save land
    kept = {"v": 1, "offsetMs": 3_600_000, "uncertaintyMs": 5, "syncedAt": time.time() * 1000}
    await context.set_offline(True)
    # Stored after the page's own saves have stopped (offline, nothing syncs).
    await page.evaluate(f"localStorage.setItem({OFFSET_KEY!r}, {json.dumps(json.dumps(kept))})")
    await asyncio.sleep(1.5)  # the cached copy's server time is now at least this old
    await page.reload()
    await assert_ticking(page, shift_ms=3_600_000)
    assert await page.get_attribute("#app", "data-source") == "cache-corrected"
    assert problems.unexpected() == []


@pytest.mark.parametrize(
    "damage",
    ["corrupted", "wrong-shape", "from-the-future", "storage-blocked", "storage-full"],
)
async def test_offline_without_a_usable_offset_says_so(
    context: BrowserContext, server: ServerProcess, damage: str
) -> None:
    """No usable kept offset: the device clock, said to be unverified, and never a crash."""
    blocked = {
        "storage-blocked": """Object.defineProperty(window, "localStorage", {
            get() { throw new DOMException("blocked", "SecurityError"); } });""",
        "storage-full": """Storage.prototype.setItem = function () {
            throw new DOMException("full", "QuotaExceededError"); };""",
    }
    page, problems = await open_page(context, server.url, blocked.get(damage, ""))
    await wait_until_synced(page)
    await wait_for_worker(page)
    garbage = {
        "corrupted": '{"v":1,"offsetMs":',
        "wrong-shape": '{"v":1,"offsetMs":"12","uncertaintyMs":null,"syncedAt":[]}',
        "from-the-future": json.dumps(
            {"v": 1, "offsetMs": 0, "uncertaintyMs": 5, "syncedAt": time.time() * 1000 + 86e6}
        ),
    }
    await context.set_offline(True)
    if damage in garbage:
        await page.evaluate(f"localStorage.setItem({OFFSET_KEY!r}, {json.dumps(garbage[damage])})")
    await page.reload()
    assert await page.get_attribute("#app", "data-source") == "cache-unverified"
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'offline'", timeout=scaled(5000)
    )
    assert await page.text_content("#status") == (
        "Offline — showing this device's clock, not verified"
    )
    await assert_ticking(page)  # the device clock here is the machine's own
    if damage in ("corrupted", "wrong-shape"):  # removed, so it is not tripped over again
        assert await page.evaluate(f"localStorage.getItem({OFFSET_KEY!r})") is None
    await context.set_offline(False)
    await wait_until_synced(page, timeout_ms=15000)
    assert problems.unexpected() == []


async def test_a_deploy_replaces_the_cached_files(
    context: BrowserContext, start_server: Start, tmp_path: Path
) -> None:
    """A copy of the app is served, then "deployed" again with one module
    changed: the very next load runs the new module (the old worker, seeing
    a newer page, stops answering from its cache), the new worker takes over
    and the old cache is gone."""
    app_copy = tmp_path / "app"
    for part in ("moscow_clock", "templates", "static"):
        shutil.copytree(ROOT / part, app_copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    first = start_server(root=app_copy)
    page, problems = await open_page(context, first.url)
    await wait_until_synced(page)
    await wait_for_worker(page)
    old_caches = await page.evaluate("caches.keys()")
    assert len(old_caches) == 1
    assert await page.evaluate("globalThis.__deploy === undefined")

    assert first.stop() == 0
    render = app_copy / "static" / "js" / "render.js"
    render.write_text(render.read_text() + "\nglobalThis.__deploy = 2;\n")
    start_server(port=first.port, root=app_copy)
    await page.reload()
    assert await page.evaluate("globalThis.__deploy") == 2  # not the cached old module
    # The new worker installs, takes over and deletes the old cache.
    deadline = time.monotonic() + 15
    while len(caches := await page.evaluate("caches.keys()")) != 1 or caches == old_caches:
        assert time.monotonic() < deadline, caches
        await asyncio.sleep(0.2)
    kept = await page.evaluate(
        f"caches.open({caches[0]!r}).then((cache) => cache.match('/static/js/render.js'))"
        ".then((response) => response.text())"
    )
    assert "globalThis.__deploy = 2;" in kept
    await wait_until_synced(page)
    await page.reload()  # now from the new worker's cache
    assert await page.evaluate("globalThis.__deploy") == 2
    assert problems.unexpected() == []


async def test_offline_module_units(context: BrowserContext, server: ServerProcess) -> None:
    """offline.js's pure parts over fakes, run where they run: in the browser."""
    page = await context.new_page()
    await page.goto(f"{server.url}/healthz")
    results = await page.evaluate(
        """async () => {
      const { OffsetStore, formatSyncedAt } = await import("/static/js/offline.js");
      const memory = () => {
        const items = new Map();
        return { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => items.set(k, String(v)),
                 removeItem: (k) => items.delete(k), items };
      };
      const broken = { getItem() { throw new Error("x"); }, setItem() { throw new Error("x"); },
                       removeItem() { throw new Error("x"); } };
      const now = Date.UTC(2026, 10, 26, 19, 40, 5);
      const store = new OffsetStore(memory());
      const saved = store.save(1500, 4, now - 60_000);
      const loaded = store.load(now);
      const setBack = store.load(now - 3_600_000);  // device clock set back an hour since
      const refused = [
        store.save(NaN, 4, now), store.save(1, -1, now), store.save(1, 4, 0),
        store.save(400 * 86_400_000, 4, now),
      ];
      const damaged = new OffsetStore(memory());
      damaged.storage.setItem("moscow-clock:offset", "[1,2");
      const fromDamaged = damaged.load(now);
      const removed = damaged.storage.items.size;
      return {
        saved, loaded, setBack, refused, fromDamaged, removed,
        noStorage: [new OffsetStore(null).load(now), new OffsetStore(null).save(1, 1, now)],
        brokenStorage: [new OffsetStore(broken).load(now), new OffsetStore(broken).save(1, 1, now)],
        sameDay: formatSyncedAt(now - 60_000, now, 10800, "en"),
        otherDay: formatSyncedAt(now - 86_400_000, now, 10800, "en"),
        russian: formatSyncedAt(now - 86_400_000, now, 10800, "ru"),
        badLocale: formatSyncedAt(now, now, 10800, "not a locale!"),
      };
    }"""
    )
    assert results["saved"] is True
    assert results["loaded"] == {"offsetMs": 1500, "uncertaintyMs": 4, "syncedAt": 1795721945000}
    assert results["setBack"] is None
    assert results["refused"] == [False, False, False, False]
    assert results["fromDamaged"] is None
    assert results["removed"] == 0
    assert results["noStorage"] == [None, False]
    assert results["brokenStorage"] == [None, False]
    assert results["sameDay"] == "22:39"
    assert results["otherDay"] == "November 25 at 22:40"
    assert results["russian"] == "25 ноября в 22:40"
    assert results["badLocale"] == "22:40"
