"""Issue 12 in real Chromium: both languages, 12 hours, the sun, /embed framed
by another origin, accessibility (axe-core), keyboard and reduced motion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocket,
    expect,
)

from moscow_clock.core.clock import MOSCOW, moscow_time, short_time_text
from moscow_clock.core.sun import day_length_parts, sun_day

from .support.browser import watch_console
from .support.other_origin import ParentPage
from .support.page import wait_until_synced
from .support.server import ServerProcess
from .test_browser import SYNCED_12MS
from .test_clock_health import UNSYNCED, write_state

pytestmark = pytest.mark.browser

Start = Callable[..., ServerProcess]
DAY_LENGTH = {"en": "{} h {} min", "ru": "{} ч {} мин"}

# Everything the page's script wrote, read in one go.
READ_FACE = """() => {
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  const clock = document.getElementById("clock");
  return {
    lang: document.documentElement.lang, title: document.title,
    clock: clock.textContent, iso: clock.dateTime, date: text("date"),
    sunrise: text("sunrise"), sunset: text("sunset"), dayLength: text("day-length"),
    sunriseIso: document.getElementById("sunrise")?.dateTime ?? null,
  };
}"""


async def new_page(context: BrowserContext) -> tuple[Page, list[str]]:
    page = await context.new_page()
    problems: list[str] = watch_console(page, [])
    return page, problems


@pytest.fixture
def synced_server(start_server: Start, tmp_path: Path) -> ServerProcess:
    """A server that vouches for its clock (this machine's kernel clock does
    not), so the page judges the device clock in the visitor's language."""
    state = tmp_path / "clock.json"
    write_state(state, SYNCED_12MS)
    return start_server(CLOCK_STATE_FILE=str(state))


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(locale="en-US")
    yield made
    await made.close()


async def next_flip(page: Page) -> dict[str, Any]:
    """The face right after the script's next repaint (so not the server's HTML)."""
    before = await page.text_content("#clock")
    await page.wait_for_function(
        f"() => document.getElementById('clock').textContent !== {before!r}", timeout=3000
    )
    face: dict[str, Any] = await page.evaluate(READ_FACE)
    return face


def expected_face(iso: str, lang: str, hours: int) -> dict[str, str]:
    moment = moscow_time(datetime.fromisoformat(iso).timestamp() * 1000)
    sun = sun_day(moment.wall.date())
    title = {"en": "Moscow time", "ru": "Московское время"}[lang]
    return {
        "lang": lang,
        "clock": moment.clock_text(lang, hours),
        "title": f"{moment.clock_text(lang, hours)} · {title}",
        "date": moment.date_text(lang),
        "sunrise": short_time_text(sun.sunrise, lang, hours),
        "sunset": short_time_text(sun.sunset, lang, hours),
        "dayLength": DAY_LENGTH[lang].format(*day_length_parts(sun.day_length_s)),
    }


@pytest.mark.parametrize(
    ("locale", "query", "lang", "hours", "vary"),
    [
        ("ru-RU", "", "ru", 24, True),  # by header
        ("en-US", "", "en", 24, True),
        ("de-DE", "", "en", 24, True),  # neither: English
        ("en-US", "?lang=ru", "ru", 24, False),  # by parameter, against the header
        ("ru-RU", "?lang=en", "en", 24, False),
        ("en-US", "?hours=12", "en", 12, True),
        ("ru-RU", "?hours=12", "ru", 12, True),
    ],
)
async def test_language_and_hours_live(
    browser: Browser,
    synced_server: ServerProcess,
    locale: str,
    query: str,
    lang: str,
    hours: int,
    vary: bool,
) -> None:
    server = synced_server
    context = await browser.new_context(locale=locale)  # sets Accept-Language too
    page, problems = await new_page(context)
    response = await page.goto(server.url + "/" + query)
    assert response is not None
    assert ("Accept-Language" in (await response.header_value("vary") or "")) is vary
    await wait_until_synced(page)
    face = await next_flip(page)
    assert {key: face[key] for key in expected_face(face["iso"], lang, hours)} == expected_face(
        face["iso"], lang, hours
    )
    # The script's own strings come from the page, in its language.
    await expect(page.locator("#status")).to_have_text({"en": "Live", "ru": "На связи"}[lang])
    accuracy = await page.text_content("#accuracy")
    assert accuracy
    assert accuracy.startswith({"en": "Your device clock is", "ru": "Часы вашего устройства"}[lang])
    if lang == "ru":
        assert " мс" in accuracy or " с" in accuracy  # the catalogue's units in Russian
        assert await page.text_content("h1") == "Московское время"
    assert problems == []
    await context.close()


@pytest.mark.parametrize(
    ("lang", "sentence", "live"),
    [
        (
            "ru",
            "Часы самого сервера не сверены: они могут ошибаться до 16 с.",
            "На связи",
        ),
        (
            "en",
            "The server's own clock is not verified: it may be off by up to 16 s.",
            "Live",
        ),
    ],
)
async def test_an_unverified_server_says_so_in_the_pages_language(
    browser: Browser, start_server: Start, tmp_path: Path, lang: str, sentence: str, live: str
) -> None:
    """Issue 20's sentence, through the catalogues: the server cannot vouch
    for its clock, so the page says how far off it may be, in Russian too."""
    state = tmp_path / "clock.json"
    write_state(state, UNSYNCED)
    server = start_server(CLOCK_STATE_FILE=str(state))
    context = await browser.new_context(locale="en-US")
    page, problems = await new_page(context)
    await page.goto(f"{server.url}/?lang={lang}")
    await expect(page.locator("#status")).to_have_text(live)
    await expect(page.locator("#accuracy")).to_contain_text(sentence)
    assert await page.get_attribute("#accuracy", "data-state") == "unverified"
    assert problems == []
    await context.close()


async def test_kiosk_hides_the_language_and_hours_links(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await new_page(context)
    await page.goto(server.url + "/?lang=ru&kiosk=1")
    await expect(page.locator("#status")).to_have_text("На связи")
    await expect(page.locator("nav.options")).to_be_hidden()
    await expect(page.locator("#fullscreen")).to_be_hidden()
    await expect(page.locator("#keep-awake")).to_be_hidden()
    await page.goto(server.url + "/?lang=ru")
    await expect(page.locator("nav.options")).to_be_visible()
    await expect(page.get_by_role("button", name="Не гасить экран")).to_be_visible()
    assert problems == []


async def test_the_russian_date_reads_as_cldr_writes_it(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, _ = await new_page(context)
    # An instant the page cannot reach by itself: format it with the page's own code.
    await page.goto(server.url + "/?lang=ru")
    date = await page.evaluate(
        """async () => {
      const { MoscowFormat, moscowParts } = await import("/static/js/render.js");
      return moscowParts(Date.UTC(2026, 10, 30, 9, 0, 0), 10800, new MoscowFormat("ru", 24)).date;
    }"""
    )
    assert date == "Понедельник, 30 ноября 2026 г."


async def test_without_javascript_in_russian(browser: Browser, server: ServerProcess) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="ru-RU")
    page = await context.new_page()
    before = time.time() * 1000
    await page.goto(server.url + "/?hours=12")
    face = await page.evaluate(READ_FACE)
    assert face["lang"] == "ru"
    assert face["clock"] in {
        moscow_time(before).clock_text("ru", 12),
        moscow_time(time.time() * 1000).clock_text("ru", 12),
    }
    assert face["date"] == moscow_time(before).date_text("ru")
    assert await page.text_content("#status") == "Время сервера при загрузке страницы"
    await context.close()


async def test_sun_is_refreshed_after_moscow_midnight_without_a_reload(
    context: BrowserContext, start_server: Start
) -> None:
    # The server's clock is moved so that Moscow midnight comes 12 s from now.
    now = datetime.now(MOSCOW)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    shift_s = round((midnight - now).total_seconds()) - 12
    server = start_server(module="tests.support.shifted_server", CLOCK_SHIFT_MS=str(shift_s * 1000))
    page, problems = await new_page(context)
    await page.goto(server.url + "/?lang=ru")
    await wait_until_synced(page)
    await page.evaluate("window.__sameDocument = true")
    before = await page.evaluate(READ_FACE)
    today = datetime.fromisoformat(before["iso"]).date()
    assert before["sunriseIso"].startswith(today.isoformat()), "already past midnight: too slow"
    tomorrow = today + timedelta(days=1)
    await page.wait_for_function(
        f"() => document.getElementById('sunrise').dateTime.startsWith('{tomorrow}')",
        timeout=20000,
    )
    after = await page.evaluate(READ_FACE)
    expected = expected_face(after["iso"], "ru", 24)
    assert after["date"] == expected["date"]
    assert (after["sunrise"], after["sunset"], after["dayLength"]) == (
        expected["sunrise"],
        expected["sunset"],
        expected["dayLength"],
    )
    assert after["sunriseIso"] == sun_day(tomorrow).sunrise.isoformat()
    assert await page.evaluate("window.__sameDocument === true")
    assert problems == []


EMBED_PARENT = """<!doctype html><html lang="en"><head><title>Another site</title></head><body>
<iframe id="embed" title="Moscow time" src="{clock}/embed{query}" width="480" height="200"></iframe>
<iframe id="page" title="Full page" src="{clock}/" width="480" height="200"></iframe>
</body></html>"""


async def test_embed_is_framed_by_another_origin_and_the_page_is_not(
    context: BrowserContext, start_server: Start
) -> None:
    server = start_server(EMBED_ORIGINS="*")  # written: framing is never the default
    html = EMBED_PARENT.format(clock=server.url, query="?lang=ru&hours=12&date=0")
    with ParentPage(html) as parent:
        page, problems = await new_page(context)
        sockets: list[str] = []
        frames: list[str] = []

        def on_websocket(ws: WebSocket) -> None:
            sockets.append(ws.url)
            ws.on("framereceived", lambda payload: frames.append(str(payload)))

        page.on("websocket", on_websocket)
        await page.goto(parent.url)
        embed = page.frame_locator("#embed")
        # The embed is live: its websocket (same origin as the server, so the
        # Origin check lets it in) drives the clock, second by second.
        first = await embed.locator("#clock").text_content()
        await expect(embed.locator("#clock")).not_to_have_text(first or "", timeout=4000)
        # Accepted by the Origin check: ticks and sync replies arrive over it.
        assert sockets == [server.ws_url]
        assert any('"type":"tick"' in frame for frame in frames), frames[:3]
        assert any('"type":"sync"' in frame for frame in frames), frames[:3]
        frame = page.frame(url=f"{server.url}/embed?lang=ru&hours=12&date=0")
        assert frame is not None
        face = await frame.evaluate(READ_FACE)
        assert face["lang"] == "ru"
        assert face["date"] is None  # ?date=0
        # Russian's own day periods (CLDR), not AM/PM.
        assert face["clock"].endswith(("ночи", "утра", "дня", "вечера", "полдень"))
        # The full page refuses to be framed: Chromium shows its error page instead.
        await page.wait_for_timeout(500)
        framed_page = next(
            f for f in page.frames if f.name == "" and f != page.main_frame and f != frame
        )
        assert await framed_page.evaluate("document.getElementById('clock')") is None
        assert any("frame-ancestors 'none'" in text for text in problems), problems


async def test_embed_origins_limits_who_may_frame(
    context: BrowserContext, start_server: Start
) -> None:
    with ParentPage() as parent:
        page, problems = await new_page(context)
        for origins, framed in (
            (f"http://localhost:{parent.port}", True),
            ("https://a.example", False),
            ("", False),  # unset: nobody may frame it (fails closed)
        ):
            server = start_server(EMBED_ORIGINS=origins)
            parent.html = EMBED_PARENT.format(clock=server.url, query="")
            problems.clear()
            await page.goto(parent.url)
            embed = page.frame_locator("#embed")
            if framed:
                await expect(embed.locator("#clock")).to_be_visible()
            else:
                for _ in range(50):  # the browser reports the refusal on the console
                    if any("frame-ancestors" in text for text in problems):
                        break
                    await asyncio.sleep(0.1)
                assert any("frame-ancestors" in text for text in problems), problems
                assert await embed.locator("#clock").count() == 0
            server.stop()


# --- accessibility ------------------------------------------------------------

VARIANTS = [
    "/?lang=en",
    "/?lang=ru",
    "/?lang=en&hours=12",
    "/?lang=en&kiosk=1",  # kiosk: controls hidden, the wake-lock notice
    "/?lang=ru&kiosk=1",
    "/embed?lang=en",
    "/embed?lang=ru&hours=12&date=0",
    "/?lang=ru&hours=13",  # the 400 page
    "/no/such/page?lang=ru",  # the 404 page
]


CONTRASTS = """() => {
  // WCAG 2 contrast of each text against the colour behind it (the parent's).
  const rgb = (css) => css.match(/[0-9.]+/g).slice(0, 3).map(Number);
  const lum = (css) => {
    const [r, g, b] = rgb(css).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const behind = getComputedStyle(document.body).backgroundColor;
  const doc = document.querySelector("iframe").contentDocument;
  const own = getComputedStyle(doc.body).backgroundColor;
  return { own, behind, ratios: ["#clock", "#date", "h1 a"].map((sel) => {
    const fg = lum(getComputedStyle(doc.querySelector(sel)).color);
    const bg = lum(behind);
    return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  }) };
}"""


TRANSPARENT_PARENT = """<!doctype html><html lang="en"><head><title>Another site</title>
{meta}</head>
<body style="background: Canvas; color: CanvasText"><main><h1>Another site</h1>
<iframe title="Moscow time" src="{clock}/embed?lang=ru&bg=transparent{told}" width="480"
height="200"></iframe></main></body></html>"""
# (visitor's scheme, the host page's color-scheme, what the embed is told, the host's canvas)
TRANSPARENT_HOSTS = [
    # A host that follows the visitor's scheme says so: theme=auto.
    ("light", "light dark", "&theme=auto", "rgb(255, 255, 255)"),
    ("dark", "light dark", "&theme=auto", "rgb(18, 18, 18)"),
    # A light-only host (most pages declare nothing) and a dark visitor: told
    # nothing, the embed is light, not the visitor's dark (issue 20).
    ("dark", None, "", "rgb(255, 255, 255)"),
    # A dark host tells the embed so, whatever the visitor's scheme.
    ("light", "dark", "&theme=dark", "rgb(18, 18, 18)"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_axe_finds_no_violations(
    browser: Browser, server: ServerProcess, scheme: str
) -> None:
    context = await browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = await context.new_page()
    axe = Axe()
    found = {}
    # A transparent embed standalone: axe takes white for "nothing behind",
    # which is what Chromium paints only in the light scheme; the dark case is
    # measured where it lives, framed (test_transparent_embed_is_legible).
    variants = [*VARIANTS, *(["/embed?lang=ru&bg=transparent"] if scheme == "light" else [])]
    for path in variants:
        await page.goto(server.url + path)
        await page.wait_for_load_state("load")
        await page.emulate_media(color_scheme=scheme)  # type: ignore[arg-type]
        results = await axe.run(page)
        if results.violations_count:
            found[path] = results.generate_report()
    await context.close()
    assert found == {}, "\n".join(f"{path}:\n{report}" for path, report in found.items())


async def test_keyboard_reaches_and_works_every_control(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, problems = await new_page(context)
    await page.goto(server.url + "/?lang=en")
    await expect(page.locator("#fullscreen")).to_be_visible()
    reached = []
    await expect(page.locator("#keep-awake")).to_be_visible()
    for _ in range(4):
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement.textContent.trim()"))
        # A visible focus ring on whatever has focus.
        outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", reached
    assert reached == ["Full screen", "Keep screen on", "Русский", "12-hour clock"]
    # Enter on the button goes full screen, and back.
    await page.locator("#fullscreen").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#fullscreen")).to_have_text("Exit full screen")
    await page.keyboard.press("Enter")
    await expect(page.locator("#fullscreen")).to_have_text("Full screen")
    # Enter on a link follows it: the page in Russian.
    await page.get_by_role("link", name="Русский").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("Московское время")
    assert problems == []


async def test_reduced_motion_stops_the_status_pulse(
    context: BrowserContext, server: ServerProcess
) -> None:
    page, _ = await new_page(context)
    await page.goto(server.url)
    pulse = """() => {
      const status = document.getElementById("status");
      status.dataset.state = "reconnecting";
      return getComputedStyle(status, "::before").animationName;
    }"""
    await page.emulate_media(reduced_motion="no-preference")
    assert await page.evaluate(pulse) == "pulse"
    await page.emulate_media(reduced_motion="reduce")
    assert await page.evaluate(pulse) == "none"


@pytest.mark.parametrize(("scheme", "host", "told", "canvas"), TRANSPARENT_HOSTS)
async def test_transparent_embed_is_legible(
    browser: Browser, start_server: Start, scheme: str, host: str | None, told: str, canvas: str
) -> None:
    """Framed by a page, the transparent embed shows the page's own
    background, and its text keeps WCAG AA contrast on it: it takes the
    colour scheme it is told (?theme=), light if told none, not the visitor's.
    (The parent is served at the clock's origin only so that the test can read
    into the frame; the framing itself is tested cross-origin above.)"""
    server = start_server(EMBED_ORIGINS="*")
    context = await browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = await context.new_page()
    parent = server.url + "/test-parent"
    meta = f'<meta name="color-scheme" content="{host}">' if host else ""
    html = TRANSPARENT_PARENT.format(clock=server.url, meta=meta, told=told)
    await page.route(parent, lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(parent)
    await page.frame_locator("iframe").locator("#clock").wait_for()
    found = await page.evaluate(CONTRASTS)
    assert found["own"] == "rgba(0, 0, 0, 0)"  # transparent: the parent shows through
    assert found["behind"] == canvas
    assert min(found["ratios"]) >= 4.5, found
    await context.close()
