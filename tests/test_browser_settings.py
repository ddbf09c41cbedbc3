"""Remembered choices in a real Chromium: language, 12/24 h, theme and seconds
survive a reload and a new visit, are applied before the first paint, a URL
parameter wins for its view without being remembered, and the offline copy
is the visitor's own page, not the last link followed (issue 18)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from .support.browser import open_watched
from .support.server import ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.browser

SETTINGS_KEY = "moscow-clock:settings"
EXPECTED_OFFLINE = ("WebSocket connection to", "net::ERR_INTERNET_DISCONNECTED", "Failed to load")
# Runs before anything of the page: what <html> says when <body> first exists,
# that is before anything could be painted.
FIRST_PAINT = """
window.__atBody = null;
new MutationObserver((records, observer) => {
  if (!document.body) return;
  observer.disconnect();
  const root = document.documentElement;
  window.__atBody = {
    theme: root.dataset.theme ?? null,
    seconds: root.dataset.seconds ?? null,
    bg: getComputedStyle(root).getPropertyValue("--bg").trim(),
  };
}).observe(document, { childList: true, subtree: true });
"""
LIGHT_BG, DARK_BG = "#f7f5f2", "#0d0d0f"
HMS = re.compile(r"^\d{2}:\d{2}:\d{2}$")
HM = re.compile(r"^\d{1,2}:\d{2}$")


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # The system says light: a dark page can only be the visitor's choice.
    context = await browser.new_context(color_scheme="light", locale="en-US")
    await context.add_init_script(FIRST_PAINT)
    yield context
    await context.close()


async def open_page(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    page, problems = await open_watched(context, url)
    await page.wait_for_function("() => window.__atBody !== null")
    return page, problems


async def choose(page: Page, setting: str) -> None:
    """Clicks the page's own option link for `setting` and waits for the new page."""
    async with page.expect_navigation():
        await page.click(f'a[data-setting="{setting}"]')
    await page.wait_for_function("() => window.__atBody !== null")


async def at_first_paint(page: Page) -> dict[str, str | None]:
    found: dict[str, str | None] = await page.evaluate("window.__atBody")
    return found


async def clock_text(page: Page) -> str:
    return (await page.text_content("#clock")) or ""


async def test_choices_survive_a_reload_and_a_new_visit_and_apply_before_first_paint(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url)
    assert (await at_first_paint(page))["bg"] == LIGHT_BG  # auto: the system's light
    assert HMS.match(await clock_text(page))
    await choose(page, "theme")  # auto -> light
    await choose(page, "theme")  # light -> dark
    await choose(page, "seconds")  # hide them
    await choose(page, "hours")  # 12 h
    await choose(page, "lang")  # Русский
    assert page.url == f"{server.url}/"  # the address stays the visitor's own
    stored = await page.evaluate(f"JSON.parse(localStorage.getItem({SETTINGS_KEY!r}))")
    assert stored == {"lang": "ru", "hours": "12", "theme": "dark", "seconds": "0"}
    for visit in ("reload", "new visit"):
        if visit == "reload":
            await page.reload()
            await page.wait_for_function("() => window.__atBody !== null")
        else:
            await page.close()
            page, more = await open_page(context, server.url)
            problems += more
        first = await at_first_paint(page)
        assert first == {"theme": "dark", "seconds": "0", "bg": DARK_BG}, visit
        assert await page.evaluate("document.documentElement.lang") == "ru"
        assert await page.evaluate("document.documentElement.dataset.hours") == "12"
        # Server-rendered and then painted by the script: hours and minutes only.
        await page.wait_for_function(
            "() => document.getElementById('status').dataset.state === 'live'",
            timeout=scaled(10000),
        )
        text = await clock_text(page)
        assert re.fullmatch(r"\d{1,2}:\d{2}(?: \S+)?", text), text
        assert text.count(":") == 1
    assert problems == []


async def test_a_url_parameter_wins_for_its_view_and_is_not_remembered(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url)
    await choose(page, "theme")  # light
    await choose(page, "theme")  # dark: remembered
    # A link from elsewhere: its choices show, for this view only.
    await page.goto(f"{server.url}/?lang=ru&hours=12&theme=light&seconds=0")
    await page.wait_for_function("() => window.__atBody !== null")
    assert (await at_first_paint(page))["bg"] == LIGHT_BG
    assert await page.evaluate("document.documentElement.lang") == "ru"
    assert HM.match((await clock_text(page)).split(" ")[0])
    stored = await page.evaluate(f"JSON.parse(localStorage.getItem({SETTINGS_KEY!r}))")
    assert stored == {"theme": "dark"}
    await page.goto(server.url)
    await page.wait_for_function("() => window.__atBody !== null")
    assert (await at_first_paint(page))["bg"] == DARK_BG
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert HMS.match(await clock_text(page))
    assert problems == []


async def test_remembered_without_the_cookie_the_page_applies_them_anyway(
    context: BrowserContext, server: ServerProcess
) -> None:
    """localStorage holds the choices but the cookie is gone (cleared, or
    expired): theme and seconds are applied before the first paint all the
    same, and the language comes right with one reload, not a loop."""
    page, problems = await open_page(context, server.url)
    settings = '{"lang":"ru","theme":"dark","seconds":"0"}'
    await page.evaluate(f"localStorage.setItem({SETTINGS_KEY!r}, {settings!r})")
    await context.clear_cookies()
    loads: list[str] = []
    page.on("load", lambda _: loads.append(page.url))
    await page.reload()
    await page.wait_for_function("() => document.documentElement.lang === 'ru'")
    first = await at_first_paint(page)
    assert (first["theme"], first["seconds"], first["bg"]) == ("dark", "0", DARK_BG)
    assert len(loads) <= 2
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    assert cookies["clock_settings"] == "lang=ru&theme=dark&seconds=0"
    # Storage that holds garbage changes nothing and breaks nothing.
    await page.evaluate(f"localStorage.setItem({SETTINGS_KEY!r}, '{{\"theme\":')")
    await page.reload()
    await page.wait_for_function("() => window.__atBody !== null")
    assert (await at_first_paint(page))["theme"] is None
    assert problems == []


async def test_the_offline_copy_is_the_visitors_own_page_not_the_last_link_followed(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await open_page(context, server.url)
    await page.evaluate("navigator.serviceWorker.ready")
    await page.wait_for_function(
        "() => navigator.serviceWorker.controller !== null", timeout=scaled(10000)
    )
    await page.reload()  # kept by the worker as the visitor's "/"
    # A link from another site brings the visitor to Russian and 12 hours.
    await page.goto(f"{server.url}/?lang=ru&hours=12")
    await page.wait_for_function("() => document.documentElement.lang === 'ru'")
    await context.set_offline(True)
    await page.goto(server.url)
    assert await page.get_attribute("#app", "data-source") in {"cache-corrected", "cache"}
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert await page.evaluate("document.documentElement.dataset.hours") == "24"
    # That link's own address still opens offline, as it was.
    await page.goto(f"{server.url}/?hours=12&lang=ru")
    assert await page.evaluate("document.documentElement.lang") == "ru"
    await context.set_offline(False)
    assert [p for p in problems if not any(e in p for e in EXPECTED_OFFLINE)] == []
