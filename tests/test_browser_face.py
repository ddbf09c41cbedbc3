"""Issue 20 in real Chromium: the face at every size (four viewports, both
languages, 12 and 24 h) with nothing overflowing or wrapping and the footer on
screen; no layout shift on load (CLS < 0.05); the difference-from-you line in
three time zones; the countdown; axe in full screen and kiosk.

One server and one Chromium for the module (the matrix is 16 cases); each case
has its own context (viewport, language, time zone)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from moscow_clock.core.clock import MOSCOW

from .support.browser import CHROMIUM_ARGS, system_chromium, watch_console
from .support.clockstate import UNSYNCED
from .support.page import wait_until_synced
from .support.server import ServerProcess
from .support.split_proxy import SplitProxy
from .test_browser import SYNCED_12MS
from .test_clock_health import write_state

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

VIEWPORTS = {
    "phone-portrait": (375, 667),
    "phone-landscape": (667, 375),
    "laptop": (1366, 768),
    "4k": (3840, 2160),
}
MATRIX = [
    (viewport, lang, hours) for viewport in VIEWPORTS for lang in ("en", "ru") for hours in (24, 12)
]
# Set to a directory to keep a screenshot of every case (tests/support/face_sheet.py).
SHOTS = os.environ.get("FACE_SHOTS")

# Before the page's scripts: every layout shift from the first paint on.
RECORD_SHIFTS = """
window.__cls = 0;
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if (entry.hadRecentInput) continue;
    window.__cls += entry.value;
    window.__shifts.push({
      value: entry.value,
      at: Math.round(entry.startTime),
      nodes: entry.sources.map((s) => s.node?.id || s.node?.className || s.node?.nodeName),
    });
  }
}).observe({ type: "layout-shift", buffered: true });
"""

# The widest texts each line can show (a two-digit 12 h hour, the longest day
# period, weekday and month), written in, measured and put back in one go, so
# no repaint comes between.
WIDEST = {
    "en": {"digits12": "12:58:58", "period": "PM", "date": "Wednesday, September 30, 2026"},
    "ru": {
        "digits12": "12:58:58",
        "period": "вечера",
        "date": "Воскресенье, 30 сентября 2026 г.",
    },
}

MEASURE = """(widest) => {
  const clock = document.getElementById("clock");
  const digits = clock.querySelector(".digits");
  const period = clock.querySelector(".period");
  const date = document.getElementById("date");
  const saved = [clock.innerHTML, date?.textContent];
  if (digits && period) {
    digits.textContent = widest.digits12;
    period.textContent = widest.period;
  } else {
    clock.textContent = widest.hours === 12 ? `${widest.digits12} ${widest.period}` : "20:58:58";
  }
  if (date) date.textContent = widest.date;
  const lines = (element) => {
    const range = document.createRange();
    range.selectNodeContents(element);
    // A new line starts below the whole of the last one (a smaller span,
    // such as the day period, sits inside its line).
    const rects = [...range.getClientRects()].filter((r) => r.width > 0)
      .sort((a, b) => a.top - b.top);
    let count = 0, bottom = -Infinity;
    for (const r of rects) {
      if (r.top >= bottom - 1) { count += 1; bottom = r.bottom; }
      else bottom = Math.max(bottom, r.bottom);
    }
    return count;
  };
  const box = (element) => element.getBoundingClientRect();
  const problems = [];
  const W = innerWidth, H = innerHeight;
  // The face's lines, each one line (the sun's three parts may share or not).
  for (const selector of [".place", ".time", ".date", ".zone", ".difference", ".countdown p",
                          "#sun > span", ".status"]) {
    for (const element of document.querySelectorAll(selector)) {
      if (!element.textContent.trim() || element.getClientRects().length === 0) continue;
      const r = box(element);
      if (lines(element) > 1) problems.push(`${selector} wraps: ${element.textContent}`);
      if (r.left < -0.5 || r.right > W + 0.5) problems.push(`${selector} overflows sideways`);
      if (element.scrollWidth > element.clientWidth + 1) problems.push(`${selector} overflows`);
    }
  }
  const footer = document.querySelector(".footer");  // the embed has none
  const end = footer ? box(footer).bottom : 0;
  if (end > H + 0.5) problems.push(`footer ends at ${end} of ${H}`);
  const root = document.scrollingElement;
  if (root.scrollHeight > H + 1) problems.push(`page scrolls: ${root.scrollHeight} > ${H}`);
  if (root.scrollWidth > W + 1) problems.push(`page scrolls sideways: ${root.scrollWidth} > ${W}`);
  const time = box(document.querySelector(".time"));
  const result = {problems, timeShare: (time.width * time.height) / (W * H),
                  fontPx: parseFloat(getComputedStyle(clock).fontSize)};
  clock.innerHTML = saved[0];
  if (date) date.textContent = saved[1];
  return result;
}"""


@pytest.fixture(scope="module")
def shots() -> str | None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="module")
def face_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that vouches for its clock, so the accuracy line shows its
    everyday sentence (the unverified one is another issue's)."""
    root = tmp_path_factory.mktemp("face-server")
    state = root / "clock.json"
    write_state(state, SYNCED_12MS)
    with ServerProcess(root, CLOCK_STATE_FILE=str(state)) as server:
        yield server


@pytest.fixture(scope="module")
def unverified_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that cannot vouch for its clock: the accuracy line's longer text."""
    root = tmp_path_factory.mktemp("unverified-server")
    state = root / "clock.json"
    write_state(state, UNSYNCED)
    with ServerProcess(root, CLOCK_STATE_FILE=str(state)) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=system_chromium(), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


async def open_page(
    browser: Browser,
    url: str,
    *,
    viewport: tuple[int, int] = (1366, 768),
    locale: str = "en-US",
    timezone_id: str = "Europe/Berlin",
) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        locale=locale,
        timezone_id=timezone_id,
    )
    page = await context.new_page()
    problems = watch_console(page, [])
    await page.add_init_script(RECORD_SHIFTS)
    await page.goto(url)
    return context, page, problems


async def settled(page: Page) -> None:
    """Live, the device clock judged, and one more second painted after it."""
    await wait_until_synced(page)
    await page.wait_for_function("() => document.getElementById('accuracy').textContent !== ''")
    before = await page.text_content("#clock")
    await page.wait_for_function(
        f"() => document.getElementById('clock').textContent !== {before!r}", timeout=3000
    )


def footer_moves(shifts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shifts that moved the footer: a line above it grew or shrank (the
    face is centred), or the footer itself resized. Only the status dot may
    move, sideways, as its text changes."""
    return [shift for shift in shifts if "footer" in shift["nodes"]]


@pytest.mark.parametrize(("viewport", "lang", "hours"), MATRIX)
async def test_face_fits_and_holds_still_on_load(
    chromium: Browser,
    face_server: ServerProcess,
    shots: str | None,
    viewport: str,
    lang: str,
    hours: int,
) -> None:
    url = f"{face_server.url}/?lang={lang}&hours={hours}"
    context, page, problems = await open_page(chromium, url, viewport=VIEWPORTS[viewport])
    try:
        await settled(page)
        cls = await page.evaluate("window.__cls")
        shifts = await page.evaluate("window.__shifts")
        assert cls < 0.05, shifts
        assert footer_moves(shifts) == []
        measured: dict[str, Any] = await page.evaluate(MEASURE, {**WIDEST[lang], "hours": hours})
        assert measured["problems"] == []
        if hours == 12:  # the face really is in two parts, the period smaller
            assert await page.locator("#clock .period").count() == 1
        if shots:
            await page.screenshot(path=f"{shots}/{viewport}-{lang}-{hours}.png")
        assert problems == []
    finally:
        await context.close()


# When the page's last line (the last option link) was parsed, by the page's clock.
RECORD_PARSED = """
new MutationObserver((_, observer) => {
  if (document.querySelector('.options a[data-setting="seconds"]')) {
    window.__parsedAt = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""


@pytest.mark.parametrize(
    ("viewport", "lang", "hours"),
    [
        ("phone-portrait", "ru", 12),  # the full suite's flake: CLS 0.093, nav half parsed
        ("phone-landscape", "en", 24),
        ("laptop", "ru", 24),
        ("4k", "en", 12),
    ],
)
async def test_nothing_shows_before_the_whole_face_is_there(
    chromium: Browser, face_server: ServerProcess, viewport: str, lang: str, hours: int
) -> None:
    """The page arrives in two parts, the second 0.5 s later (a slow network,
    or on a busy machine the parser yielding): the first cut inside the
    footer's options. Chromium paints what it has parsed; the rest then grew
    the footer and moved the whole centred face (one shift of 0.09 at phone
    portrait in Russian). Nothing may be painted before the face is whole."""
    async with SplitProxy(face_server.port, b'data-setting="hours"', hold_s=0.5) as proxy:
        width, height = VIEWPORTS[viewport]
        context = await chromium.new_context(
            viewport={"width": width, "height": height},
            locale="en-US",
            timezone_id="Europe/Berlin",
        )
        page = await context.new_page()
        problems = watch_console(page, [])
        await page.add_init_script(RECORD_SHIFTS + RECORD_PARSED)
        try:
            await page.goto(f"{proxy.url}/?lang={lang}&hours={hours}")
            assert proxy.held == 1
            await settled(page)
            first, parsed = await page.evaluate(
                "[performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
                " window.__parsedAt]"
            )
            shifts = await page.evaluate("window.__shifts")
            assert first >= parsed, shifts
            assert await page.evaluate("window.__cls") < 0.05, shifts
            assert footer_moves(shifts) == []
            assert problems == []
        finally:
            await context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_the_fullest_face_fits_and_holds_still_too(
    chromium: Browser, unverified_server: ServerProcess, viewport: str, lang: str
) -> None:
    """Every line there is: 12 h, a countdown with days, the unverified server's
    longer accuracy text."""
    url = f"{unverified_server.url}/?lang={lang}&hours=12&until=2099-12-31T23:59"
    context, page, problems = await open_page(chromium, url, viewport=VIEWPORTS[viewport])
    try:
        await settled(page)
        assert await page.locator("#countdown").is_visible()
        cls = await page.evaluate("window.__cls")
        shifts = await page.evaluate("window.__shifts")
        assert cls < 0.05, shifts
        # The unverified server's two sentences have their lines from the start.
        assert footer_moves(shifts) == []
        measured: dict[str, Any] = await page.evaluate(MEASURE, {**WIDEST[lang], "hours": 12})
        assert measured["problems"] == []
        assert problems == []
    finally:
        await context.close()


@pytest.mark.parametrize(
    ("timezone_id", "lang", "expected"),
    [
        ("Asia/Kolkata", "en", "2 h 30 min behind you"),  # UTC+5:30: a half-hour zone
        ("America/New_York", "ru", "На {} ч впереди вас"),  # UTC-5 or -4 (DST)
        ("Europe/Moscow", "en", "Same time as you"),
    ],
)
async def test_difference_from_the_visitors_own_zone(
    chromium: Browser, face_server: ServerProcess, timezone_id: str, lang: str, expected: str
) -> None:
    context, page, problems = await open_page(
        chromium, f"{face_server.url}/?lang={lang}", timezone_id=timezone_id
    )
    try:
        if "{}" in expected:  # New York is 7 h behind Moscow in summer, 8 h in winter
            offset = await page.evaluate("new Date().getTimezoneOffset()")
            expected = expected.format(3 + offset // 60)
        line = page.locator("#difference")
        await page.wait_for_function("() => document.getElementById('difference').textContent")
        assert await line.text_content() == expected
        assert await line.get_attribute("title")  # the zone's name (ICU's: Asia/Calcutta)
        # The embed shows it only when asked.
        await page.goto(f"{face_server.url}/embed?lang={lang}")
        await repainted(page)
        assert await page.locator("#difference").count() == 0
        await page.goto(f"{face_server.url}/embed?lang={lang}&diff=1")
        await page.wait_for_function("() => document.getElementById('difference').textContent")
        assert await page.locator("#difference").text_content() == expected
        assert problems == []
    finally:
        await context.close()


async def test_difference_follows_a_change_of_zone(
    chromium: Browser, face_server: ServerProcess
) -> None:
    """A trip (or a DST change): the device's zone changes under the open page.
    Chromium emulates the new zone through the DevTools protocol."""
    context = await chromium.new_context(locale="en-US")
    page = await context.new_page()
    problems = watch_console(page, [])
    cdp = await context.new_cdp_session(page)
    await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Moscow"})
    await page.goto(f"{face_server.url}/?lang=en")
    try:
        await page.wait_for_function(
            "() => document.getElementById('difference').textContent === 'Same time as you'"
        )
        await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": ""})
        await cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Kathmandu"})
        await page.wait_for_function(
            "() => document.getElementById('difference').textContent === '2 h 45 min behind you'",
            timeout=5000,
        )
        assert problems == []
    finally:
        await context.close()


def moscow_wall(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, MOSCOW).strftime("%Y-%m-%dT%H:%M")


async def repainted(page: Page) -> None:
    """The script has painted a second of its own (not the server's HTML)."""
    before = await page.text_content("#clock")
    await page.wait_for_function(
        f"() => document.getElementById('clock').textContent !== {before!r}", timeout=3000
    )


async def test_countdown_to_a_moscow_moment(chromium: Browser, face_server: ServerProcess) -> None:
    # Two to three minutes ahead, on a whole minute, as a link would give it.
    until = moscow_wall(time.time() + 180)
    context, page, problems = await open_page(chromium, f"{face_server.url}/?lang=en&until={until}")
    try:
        label, left = page.locator("#countdown-label"), page.locator("#countdown-left")
        assert re.fullmatch(
            r"Until \w+ \d+, \d{4}, \d\d:\d\d MSK", await label.text_content() or ""
        )
        first = await left.text_content()
        assert re.fullmatch(r"00:0[1-3]:\d\d", first or ""), first
        await page.wait_for_function(
            f"() => document.getElementById('countdown-left').textContent !== {first!r}",
            timeout=3000,
        )
        # It counts down with the clock: left + shown time = the moment.
        now_left, clock = await page.evaluate(
            "[document.getElementById('countdown-left').textContent,"
            " document.getElementById('clock').dateTime]"
        )
        h, m, s = (int(part) for part in now_left.split(":"))
        shown = datetime.fromisoformat(clock)
        target = datetime.fromisoformat(until).replace(tzinfo=MOSCOW)
        assert shown + timedelta(hours=h, minutes=m, seconds=s) == target
        # In Russian, days in their plural form; in kiosk and the embed too.
        far = moscow_wall(time.time() + 5 * 86400 + 600)
        for path in (f"/?lang=ru&kiosk=1&until={far}", f"/embed?lang=ru&until={far}"):
            await page.goto(face_server.url + path)
            await repainted(page)
            assert re.fullmatch(
                r"До \d+ \w+ \d{4} г\., \d\d:\d\d МСК", await label.text_content() or ""
            )
            assert re.fullmatch(r"5 дней \d\d:\d\d:\d\d", await left.text_content() or "")
            assert await left.is_visible()
        # A moment gone by is said so, not counted.
        await page.goto(f"{face_server.url}/?lang=en&until=2020-01-01T00:00")
        for _ in range(2):  # the server's text, then the script's
            assert await label.text_content() == "January 1, 2020, 00:00 MSK has passed"
            assert await left.text_content() == ""
            await repainted(page)
        assert problems == []
    finally:
        await context.close()


@pytest.mark.parametrize("value", ["2027-02-30T00:00", "tomorrow", "2027-01-01T24:00", "9" * 40])
async def test_countdown_refuses_what_is_not_a_moment(
    chromium: Browser, face_server: ServerProcess, value: str
) -> None:
    context, page, _ = await open_page(chromium, f"{face_server.url}/?until={value}")
    try:
        response = await page.goto(f"{face_server.url}/?lang=en&until={value}")
        assert response is not None
        assert response.status == 400
        body = await page.text_content("body")
        assert body is not None
        assert "The parameter until takes a Moscow date and time such as 2027-01-01T00:00." in body
    finally:
        await context.close()


async def test_countdown_offline_from_the_kept_page(
    chromium: Browser, face_server: ServerProcess
) -> None:
    """Offline, the service worker's copy of the page counts down to the
    moment in its own URL (the copy was kept from a visit without one)."""
    context, page, _ = await open_page(chromium, f"{face_server.url}/?lang=en")
    try:
        await wait_until_synced(page)
        await page.wait_for_function(
            "navigator.serviceWorker.ready.then((r) => !!r.active)", timeout=15000
        )
        await page.reload()  # the worker now controls the page and keeps it
        await wait_until_synced(page)
        await context.set_offline(True)
        await page.goto(f"{face_server.url}/?until=2099-01-01T00:00")
        assert (await page.get_attribute("#app", "data-source") or "").startswith("cache")
        await page.wait_for_function(
            "() => document.getElementById('countdown-label').textContent"
            " === 'Until January 1, 2099, 00:00 MSK'",
            timeout=5000,
        )
        assert await page.locator("#countdown").is_visible()
    finally:
        await context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_axe_on_a_wall_screen(
    chromium: Browser, face_server: ServerProcess, scheme: str
) -> None:
    """Kiosk and full screen: no axe violations (contrast included: nothing
    dimmed), and the wall sees no sentence about the device clock."""
    context = await chromium.new_context(
        viewport={"width": 1920, "height": 1080},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    page = await context.new_page()
    axe = Axe()
    found = {}
    try:
        await page.goto(f"{face_server.url}/?kiosk=1&until=2099-01-01T00:00")
        await wait_until_synced(page)
        assert not await page.locator("#accuracy").is_visible()
        results = await axe.run(page)
        if results.violations_count:
            found["kiosk"] = results.generate_report()
        await page.goto(f"{face_server.url}/?hours=12")
        await wait_until_synced(page)
        await page.click("#fullscreen")
        await page.wait_for_function("() => document.fullscreenElement !== null")
        sizes = await page.evaluate(
            "[...document.querySelectorAll('.date, .sun, .footer')]"
            ".map((e) => parseFloat(getComputedStyle(e).fontSize))"
        )
        height = await page.evaluate("innerHeight")
        # Across a room: the date 5 %, the sun 3.2 %, the footer 2.2 % of the height.
        assert sizes == pytest.approx([0.05 * height, 0.032 * height, 0.022 * height], rel=0.02)
        results = await axe.run(page)
        if results.violations_count:
            found["full screen"] = results.generate_report()
    finally:
        await context.close()
    assert found == {}, "\n".join(f"{where}:\n{report}" for where, report in found.items())


EMBED_FRAMES = {"small": (300, 150), "snippet": (480, 200), "wide": (800, 300)}


@pytest.mark.parametrize("frame", EMBED_FRAMES)
@pytest.mark.parametrize(
    "query", ["hours=12", "hours=24&diff=1", "hours=12&diff=1&until=2099-12-31T23:59"]
)
@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_embed_fits_its_frame(
    chromium: Browser, face_server: ServerProcess, frame: str, query: str, lang: str
) -> None:
    """The embed at the sizes people frame it, with every option it has: the
    widest time, the difference line, a countdown; nothing wraps, nothing
    overflows the frame. (An iframe's viewport is the frame: the embed is
    opened at the frame's size; test_browser_i18n frames it for real.)"""
    src = f"{face_server.url}/embed?lang={lang}&{query}"
    context, embed, problems = await open_page(chromium, src, viewport=EMBED_FRAMES[frame])
    try:
        await repainted(embed)
        if "diff=1" in query:
            await embed.wait_for_function("() => document.getElementById('difference').textContent")
        measured: dict[str, Any] = await embed.evaluate(
            MEASURE, {**WIDEST[lang], "hours": 12 if "12" in query else 24}
        )
        assert measured["problems"] == []
        assert problems == []
    finally:
        await context.close()
