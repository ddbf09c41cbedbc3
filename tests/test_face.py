"""Issue 20 on the server: the countdown's parameter, plural forms for the
page's units, the zone as natives write it, 12 h in parts (no server, no browser)."""

from __future__ import annotations

from datetime import datetime

import pytest
from quart import Quart

from moscow_clock.core.clock import MOSCOW, clock_parts, moscow_time
from moscow_clock.core.countdown import parse_until, split_seconds
from moscow_clock.core.preferences import BadParameter

from .conftest import FIXED_MS
from .test_pages import EN, RU, get, page_data

UNTIL_MESSAGE = "The parameter until takes a Moscow date and time such as 2027-01-01T00:00."


def test_until_names_a_moscow_moment() -> None:
    new_year = parse_until("2027-01-01T00:00")
    assert new_year.target_ms == 1798750800000  # 2026-12-31T21:00Z
    assert parse_until(" 2027-01-01 ").target_ms == new_year.target_ms  # a date: its midnight
    assert parse_until("2027-01-01T00:00:30").target_ms == new_year.target_ms + 30_000
    # Summer time in 2010 (UTC+4): the zone's offset at that moment, not today's.
    assert parse_until("2010-07-01T12:00").target_ms == 1277971200000
    assert new_year.seconds_left(new_year.target_ms - 90_061_000) == 90_061
    assert new_year.seconds_left(new_year.target_ms) == 0
    assert split_seconds(90_061) == (1, 1, 1, 1)
    assert split_seconds(-3) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "value",
    ["", "tomorrow", "2027-02-30T00:00", "2027-01-01T24:00", "2027-1-1", "2027-01-01T00:00Z",
     "2027-01-01T00:00+03:00", "9" * 100, "0000-01-01", "2027-01-01T00:00:60"],
)  # fmt: skip
def test_until_refuses_what_is_not_a_moment(value: str) -> None:
    with pytest.raises(BadParameter):
        parse_until(value)


def test_12_hours_in_two_parts_with_the_languages_day_periods() -> None:
    evening = datetime(2026, 12, 2, 18, 53, 27, tzinfo=MOSCOW)
    assert clock_parts(evening, "en", 12) == ("6:53:27", "PM")
    assert clock_parts(evening, "ru", 12) == ("6:53:27", "вечера")
    assert clock_parts(evening, "ru", 24) == ("18:53:27", "")
    # Babel's "полночь" lasts one second; the browser says "ночи" then, so does the page.
    midnight = datetime(2026, 12, 2, 0, 0, 0, tzinfo=MOSCOW)
    assert clock_parts(midnight, "ru", 12) == ("12:00:00", "ночи")


async def test_page_counts_down_and_says_when_the_moment_has_passed(app: Quart) -> None:
    # FIXED_MS is 2026-11-26 22:40:05 MSK.
    status, html, _ = await get(app, "/?until=2026-11-28T00:00", EN)
    assert status == 200
    assert (
        '<p class="countdown-label" id="countdown-label">Until November 28, 2026, 00:00 MSK</p>'
        in html
    )
    assert '<p class="countdown-left" id="countdown-left">1 day 01:19:55</p>' in html
    data = page_data(html)
    assert data["countdown"] == {
        "targetMs": 1795813200000,
        "moment": "November 28, 2026, 00:00 MSK",
    }
    _, html, _ = await get(app, "/?until=2026-12-02T00:00", RU)
    assert ">До 2 декабря 2026 г., 00:00 МСК</p>" in html
    assert ">5 дней 01:19:55</p>" in html
    _, html, _ = await get(app, "/embed?until=2026-11-26T22:00&hours=12", EN)
    assert ">November 26, 2026, 10:00 PM MSK has passed</p>" in html
    # No parameter: the line is there (hidden) for a page the offline cache keeps.
    _, html, _ = await get(app, "/", EN)
    assert '<div class="countdown" id="countdown" hidden>' in html
    assert page_data(html)["countdown"] is None


@pytest.mark.parametrize("path", ["/?until=soon", "/embed?until=2027-13-01T00:00"])
async def test_a_bad_countdown_is_a_clear_400(app: Quart, path: str) -> None:
    status, html, _ = await get(app, path, EN)
    assert status == 400
    assert UNTIL_MESSAGE in html
    assert "Traceback" not in html
    status, html, _ = await get(app, path, RU)
    assert "Параметр until принимает дату и время по Москве" in html
    response = await app.test_client().get(path, headers={"Accept": "application/json"})
    assert response.status_code == 400


async def test_difference_line_on_the_page_and_on_request_in_the_embed(app: Quart) -> None:
    _, html, _ = await get(app, "/", EN)
    assert '<p class="difference" id="difference"></p>' in html
    _, html, _ = await get(app, "/embed", EN)
    assert 'id="difference"' not in html
    _, html, _ = await get(app, "/embed?diff=1", EN)
    assert '<p class="difference" id="difference"></p>' in html
    status, html, _ = await get(app, "/embed?diff=yes", EN)
    assert status == 400
    assert "The parameter diff takes 1 | 0." in html


async def test_zone_and_units_as_natives_write_them(app: Quart) -> None:
    _, html, _ = await get(app, "/", RU)
    assert '<p class="zone" title="Europe/Moscow">МСК · UTC+3</p>' in html
    assert ">Долгота дня <time" in html
    assert moscow_time(FIXED_MS).utc_offset_s == 10800
    units = page_data(html)["units"]
    assert isinstance(units, dict)
    assert units["day"]["few"] == "%(value)s дня"
    _, html, _ = await get(app, "/", EN)
    assert '<p class="zone" title="Europe/Moscow">MSK · UTC+3</p>' in html
    assert page_data(html)["units"] == {
        "ms": {"one": "%(value)s ms", "other": "%(value)s ms"},
        "s": {"one": "%(value)s s", "other": "%(value)s s"},
        "min": {"one": "%(value)s min", "other": "%(value)s min"},
        "h": {"one": "%(value)s h", "other": "%(value)s h"},
        "day": {"one": "%(value)s day", "other": "%(value)s days"},
    }


async def test_manifest_short_name_fits_under_an_icon(app: Quart) -> None:
    response = await app.test_client().get("/manifest.webmanifest?lang=ru")
    manifest = await response.get_json()
    assert manifest["short_name"] == "Время МСК"
    assert manifest["name"] == "Московское время"


async def test_language_and_hours_links_keep_the_countdown(app: Quart) -> None:
    _, html, _ = await get(app, "/?until=2027-01-01T00:00&lang=en", EN)
    assert 'href="/?until=2027-01-01T00:00&amp;lang=ru"' in html
    assert 'href="/?lang=en&amp;hours=12&amp;until=2027-01-01T00:00"' in html
