"""Remembered settings and the busy probe through Quart's test client: the
settings cookie fills what the URL leaves out, a bad cookie is ignored, the
embed's theme; plain GET /ws says whether a handshake would be refused for load."""

from __future__ import annotations

import re

import pytest
from quart import Quart

from moscow_clock.core.config import Settings
from moscow_clock.core.preferences import BadParameter, parse_display, remembered_settings
from moscow_clock.web.app import create_app

from .conftest import FIXED_MS, SYNCED

LANGS = ("en", "ru")


def html_attrs(html: str) -> str:
    found = re.search(r"<html ([^>]*)>", html)
    assert found is not None
    return found.group(1)


def test_the_cookie_gives_only_valid_choices() -> None:
    cookie = "lang=ru&hours=12&theme=dark&seconds=0"
    assert remembered_settings(cookie, LANGS) == {
        "lang": "ru",
        "hours": "12",
        "theme": "dark",
        "seconds": "0",
    }
    assert remembered_settings("lang=xx&hours=13&theme=blue&seconds=2&kiosk=1", LANGS) == {}
    assert remembered_settings("lang=ru&lang=en", LANGS) == {"lang": "ru"}  # the first
    assert remembered_settings("=&&=x;lang", LANGS) == {}
    assert remembered_settings("hours=12&" + "x" * 300, LANGS) == {}  # too long: not read
    assert remembered_settings(None, LANGS) == {}


def test_theme_and_seconds_parameters() -> None:
    display = parse_display({"theme": "Dark", "seconds": "0"}, LANGS)
    assert (display.theme, display.seconds) == ("dark", False)
    assert (parse_display({}, LANGS).theme, parse_display({}, LANGS).seconds) == (None, True)
    assert parse_display({"theme": "auto"}, LANGS).theme == "auto"  # told: not the default
    for bad in ({"theme": "blue"}, {"seconds": "no"}):
        with pytest.raises(BadParameter):
            parse_display(bad, LANGS)


async def test_the_page_renders_the_remembered_choices_and_the_url_wins(app: Quart) -> None:
    client = app.test_client()
    cookie = {"Cookie": "clock_settings=lang=ru&hours=12&theme=dark&seconds=0"}
    response = await client.get("/", headers=cookie)
    html = await response.get_data(as_text=True)
    assert html_attrs(html) == 'lang="ru" data-hours="12" data-theme="dark" data-seconds="0"'
    assert '<span class="digits">10:40</span> <span class="period">ночи</span></time>' in html
    assert "Cookie" in response.headers["Vary"]
    response = await client.get("/?lang=en&theme=light&seconds=1", headers=cookie)
    html = await response.get_data(as_text=True)
    assert html_attrs(html) == 'lang="en" data-hours="12" data-theme="light"'
    assert '<span class="digits">10:40:05</span> <span class="period">PM</span></time>' in html
    # A cookie that is damaged or from elsewhere is ignored, never an error.
    for bad in ("lang=xx&theme=%00", "\xff" * 50, "a" * 5000):
        response = await client.get("/", headers={"Cookie": f"clock_settings={bad}"})
        assert response.status_code == 200
        assert html_attrs(await response.get_data(as_text=True)) == 'lang="en" data-hours="24"'


async def test_the_embed_takes_its_theme_from_the_url_not_the_visitors_cookie(
    app: Quart,
) -> None:
    client = app.test_client()
    cookie = {"Cookie": "clock_settings=theme=dark"}
    html = await (await client.get("/embed", headers=cookie)).get_data(as_text=True)
    assert "data-theme" not in html_attrs(html)  # the system's, as before
    # Transparent: the colour scheme it is told, light if told none.
    html = await (await client.get("/embed?bg=transparent")).get_data(as_text=True)
    assert 'data-theme="light"' in html_attrs(html)
    html = await (await client.get("/embed?bg=transparent&theme=dark")).get_data(as_text=True)
    assert 'data-theme="dark"' in html_attrs(html)
    assert (await client.get("/embed?theme=purple")).status_code == 400


async def test_plain_get_of_ws_says_busy_with_the_refusals_503_while_it_would_refuse() -> None:
    client = create_app(clock=lambda: FIXED_MS, clock_source=lambda: SYNCED).test_client()
    response = await client.get("/ws")
    assert response.status_code == 426  # room: "this is a websocket endpoint"
    full = create_app(
        clock=lambda: FIXED_MS, settings=Settings(max_connections=0), clock_source=lambda: SYNCED
    )
    response = await full.test_client().get("/ws")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    assert b"try again later" in await response.get_data()
