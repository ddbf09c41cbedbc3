"""A wall screen, in a real Chromium: kiosk mode, the screen wake lock, the `f` key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from .support.browser import PROBE_LOG, watch_console
from .support.page import wait_until_synced
from .support.server import ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.browser

Start = Callable[..., ServerProcess]

# Runs before the page's scripts. navigator.wakeLock is replaced by a recorder
# (headless Chromium has no screen to keep on); "hide"/"show" simulate the tab
# going to the background and back, with the browser's release on hide.
# window.__notices counts changes of the polite notice.
STUB = """
window.__wakeCalls = [];
window.__sentinels = [];
window.__wakeMode = %(mode)r;
window.__visibility = "visible";
Object.defineProperty(Document.prototype, "visibilityState", {
  configurable: true, get() { return window.__visibility; } });
Object.defineProperty(Document.prototype, "hidden", {
  configurable: true, get() { return window.__visibility !== "visible"; } });
if (window.__wakeMode === "missing") {
  delete Navigator.prototype.wakeLock;
} else {
  Object.defineProperty(Navigator.prototype, "wakeLock", { configurable: true, get() {
    return { request: async (type) => {
      window.__wakeCalls.push(type);
      if (window.__wakeMode === "refuse") {
        throw new DOMException("Wake Lock permission request denied", "NotAllowedError");
      }
      const sentinel = new EventTarget();
      sentinel.type = type;
      sentinel.released = false;
      sentinel.release = async () => {
        if (sentinel.released) return;
        sentinel.released = true;
        sentinel.dispatchEvent(new Event("release"));
      };
      window.__sentinels.push(sentinel);
      return sentinel;
    } };
  } });
}
window.__setVisibility = async (state) => {
  window.__visibility = state;
  if (state === "hidden") for (const s of window.__sentinels) await s.release();
  document.dispatchEvent(new Event("visibilitychange"));
};
window.__notices = 0;
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective}`);
});
new MutationObserver((records) => {
  const inNotice = (node) => (node.nodeType === 1 ? node : node.parentElement)?.closest("#notice");
  if (records.some((record) => inNotice(record.target) && record.target.id !== "app")) {
    window.__notices += 1;
  }
}).observe(document, { childList: true, characterData: true, subtree: true });
"""
HELD = "window.__sentinels.filter((s) => !s.released).length"


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context()
    yield context
    await context.close()


async def open_page(
    context: BrowserContext, url: str, mode: str = "grant"
) -> tuple[Page, list[str]]:
    page = await context.new_page()
    problems: list[str] = watch_console(page, [])
    await page.add_init_script(STUB % {"mode": mode})
    await page.goto(url)
    return page, problems


async def hide_and_show(page: Page) -> None:
    await page.evaluate("window.__setVisibility('hidden')")
    await page.evaluate("window.__setVisibility('visible')")


async def cursor(page: Page) -> str:
    return str(await page.evaluate("getComputedStyle(document.getElementById('clock')).cursor"))


async def test_kiosk_hides_controls_and_cursor_and_keeps_the_screen_on(
    context: BrowserContext, start_server: Start
) -> None:
    server = start_server()
    page, problems = await open_page(context, f"{server.url}/?kiosk=1")
    await wait_until_synced(page)
    assert await page.get_attribute("#app", "data-kiosk") == ""
    await expect(page.locator("#fullscreen")).to_be_hidden()
    await expect(page.locator("#keep-awake")).to_be_hidden()
    # The lock is asked for at once, without a click.
    await page.wait_for_function("() => window.__wakeCalls.length === 1")
    assert await page.evaluate(HELD) == 1

    # The browser releases it when the page is hidden; it is asked for again on return.
    await hide_and_show(page)
    await page.wait_for_function("() => window.__wakeCalls.length === 2")
    assert await page.evaluate("window.__wakeCalls") == ["screen", "screen"]
    assert await page.evaluate(HELD) == 1
    # Hidden and shown while still held (no release): no needless second lock.
    await page.evaluate("window.__visibility = 'hidden'; document.dispatchEvent(new Event('x'))")
    await page.evaluate("window.__setVisibility('visible')")
    await asyncio.sleep(0.2)
    assert await page.evaluate("window.__wakeCalls.length") == 2

    # The cursor goes after 3 s at rest and comes back on movement.
    await page.mouse.move(200, 200)
    assert await cursor(page) != "none"
    await page.wait_for_function(
        "() => getComputedStyle(document.getElementById('clock')).cursor === 'none'",
        timeout=scaled(4500),
    )
    await page.mouse.move(300, 250)
    assert await cursor(page) != "none"

    # Kiosk survives the page's reconnects: a server restart changes nothing of it.
    assert server.stop() == 0
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'reconnecting'",
        timeout=scaled(6000),
    )
    start_server(port=server.port)
    await wait_until_synced(page, timeout_ms=15000)
    await expect(page.locator("#fullscreen")).to_be_hidden()
    await expect(page.locator("#keep-awake")).to_be_hidden()
    assert await page.evaluate(HELD) == 1
    assert await page.evaluate("window.__wakeCalls.length") == 2
    assert await page.text_content("#notice") == ""
    # While the server was away the browser logged each refused websocket and
    # probe; nothing else.
    expected = ("WebSocket connection to", *PROBE_LOG)
    assert [text for text in problems if not text.startswith(expected)] == []


async def test_keep_screen_on_button(context: BrowserContext, server: ServerProcess) -> None:
    page, problems = await open_page(context, server.url)
    await wait_until_synced(page)
    button = page.get_by_role("button", name="Keep screen on")
    await expect(button).to_be_visible()
    await expect(button).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate("window.__wakeCalls.length") == 0  # nothing without a request
    await expect(page.locator("#fullscreen")).to_be_visible()
    assert await cursor(page) != "none"

    await button.click()
    await expect(button).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate(HELD) == 1
    await hide_and_show(page)
    await page.wait_for_function("() => window.__wakeCalls.length === 2")
    await expect(button).to_have_attribute("aria-pressed", "true")

    # From the keyboard: Space releases it, Enter asks again.
    await button.focus()
    await page.keyboard.press("Space")
    await expect(button).to_have_attribute("aria-pressed", "false")
    assert await page.evaluate(HELD) == 0
    await hide_and_show(page)  # not wanted: not asked for on return
    await asyncio.sleep(0.2)
    assert await page.evaluate("window.__wakeCalls.length") == 2
    await page.keyboard.press("Enter")
    await expect(button).to_have_attribute("aria-pressed", "true")
    assert await page.evaluate(HELD) == 1
    assert await page.text_content("#notice") == ""
    assert problems == []


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("refuse", "The browser did not allow keeping the screen on"),
        ("missing", "This browser cannot keep the screen on"),
    ],
)
async def test_wake_lock_refused_or_missing_is_said_once(
    context: BrowserContext, server: ServerProcess, mode: str, message: str
) -> None:
    page, problems = await open_page(context, f"{server.url}/?kiosk=1", mode=mode)
    await wait_until_synced(page)
    notice = page.locator("#notice")
    await expect(notice).to_have_text(message)
    assert await notice.get_attribute("role") == "status"  # polite, not an alert
    for _ in range(3):
        await hide_and_show(page)
    await asyncio.sleep(0.3)
    await expect(notice).to_have_text(message)
    assert await page.evaluate("window.__notices") == 1  # said once, not on every return
    if mode == "refuse":  # still asked for again each time the page is shown
        assert await page.evaluate("window.__wakeCalls.length") == 4
    # The clock itself does not care.
    assert await page.get_attribute("#status", "data-state") == "live"
    assert problems == []


async def test_without_the_api_there_is_no_button(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url, mode="missing")
    await wait_until_synced(page)
    await expect(page.locator("#keep-awake")).to_be_hidden()
    assert await page.text_content("#notice") == ""  # nothing was asked for, nothing to say
    assert problems == []


@pytest.mark.parametrize("query", ["", "?kiosk=1"])
async def test_f_toggles_full_screen(
    context: BrowserContext, server: ServerProcess, query: str
) -> None:
    page, problems = await open_page(context, f"{server.url}/{query}")
    await wait_until_synced(page)
    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement === document.documentElement")
    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement === null")
    # Ctrl+F is the browser's find, not ours.
    await page.keyboard.press("f")
    await page.wait_for_function("() => document.fullscreenElement !== null")
    await page.keyboard.press("Control+f")
    await asyncio.sleep(0.2)
    assert await page.evaluate("document.fullscreenElement !== null")
    # By the physical key too: on a Russian layout that key types a Cyrillic "a".
    asked = await page.evaluate("""() => {
      let asked = 0;
      document.exitFullscreen = async () => { asked += 1; };
      document.dispatchEvent(new KeyboardEvent("keydown", { key: "\\u0430", code: "KeyF" }));
      document.dispatchEvent(new KeyboardEvent("keydown", { key: "\\u0430", code: "KeyA" }));
      return asked;
    }""")
    assert asked == 1
    assert problems == []
