"""Pure time math: every instant is given, nothing waits for the wall clock."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import pytest

from moscow_clock.core.clock import (
    _pinned_zone,
    make_tick,
    moscow_time,
    next_second_ms,
    second_start_ms,
    short_time_text,
    sync_reply,
    time_snapshot,
)


def ms(*args: int) -> int:
    """Epoch ms of a UTC wall time."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("now_ms", "hms", "iso", "date"),
    [
        # Today, mid-second: the second that contains the instant, never rounded up.
        (
            ms(2026, 11, 26, 19, 40, 5) + 999.9,
            "22:40:05",
            "2026-11-26T22:40:05+03:00",
            "Thursday, November 26, 2026",
        ),
        # Midnight in Moscow is 21:00 UTC the day before.
        (
            ms(2026, 12, 31, 21, 0, 0),
            "00:00:00",
            "2027-01-01T00:00:00+03:00",
            "Friday, January 1, 2027",
        ),
        (
            ms(2026, 12, 31, 20, 59, 59) + 999,
            "23:59:59",
            "2026-12-31T23:59:59+03:00",
            "Thursday, December 31, 2026",
        ),
        # The zone's history comes from tzdata: summer time (MSD) in 2010 ...
        (
            ms(2010, 7, 1, 12, 0, 0),
            "16:00:00",
            "2010-07-01T16:00:00+04:00",
            "Thursday, July 1, 2010",
        ),
        # ... and permanent +04:00 from 2011 to October 2014.
        (
            ms(2013, 1, 15, 12, 0, 0),
            "16:00:00",
            "2013-01-15T16:00:00+04:00",
            "Tuesday, January 15, 2013",
        ),
        (0, "03:00:00", "1970-01-01T03:00:00+03:00", "Thursday, January 1, 1970"),
    ],
)
def test_moscow_time(now_ms: float, hms: str, iso: str, date: str) -> None:
    moment = moscow_time(now_ms)
    assert (moment.hms, moment.iso, moment.date_text("en")) == (hms, iso, date)
    assert moment.epoch_ms == second_start_ms(now_ms)
    assert moment.utc_offset_s == int(iso[-6:-3]) * 3600


@pytest.mark.parametrize(
    ("now_ms", "lang", "hours", "clock", "date"),
    [
        # CLDR, with plain spaces (the browser's Intl makes the same).
        (ms(2026, 11, 30, 19, 40, 5), "ru", 24, "22:40:05", "Понедельник, 30 ноября 2026 г."),
        (ms(2026, 11, 30, 19, 40, 5), "en", 24, "22:40:05", "Monday, November 30, 2026"),
        (ms(2026, 11, 30, 19, 40, 5), "en", 12, "10:40:05 PM", "Monday, November 30, 2026"),
        (ms(2026, 11, 30, 19, 40, 5), "ru", 12, "10:40:05 ночи", "Понедельник, 30 ноября 2026 г."),
        # Midnight and noon in 12 hours are 12, never 0.
        (ms(2026, 12, 31, 21, 0, 7), "en", 12, "12:00:07 AM", "Friday, January 1, 2027"),
        (ms(2027, 1, 1, 9, 0, 7), "en", 12, "12:00:07 PM", "Friday, January 1, 2027"),
        (ms(2027, 1, 1, 6, 5, 7), "ru", 12, "9:05:07 утра", "Пятница, 1 января 2027 г."),
        (ms(2027, 1, 1, 6, 5, 7), "ru", 24, "09:05:07", "Пятница, 1 января 2027 г."),
    ],
)
def test_localised_clock_and_date(
    now_ms: int, lang: str, hours: int, clock: str, date: str
) -> None:
    moment = moscow_time(now_ms)
    assert moment.clock_text(lang, hours) == clock
    assert moment.date_text(lang) == date


def test_short_times_for_the_sun() -> None:
    wall = moscow_time(ms(2026, 11, 30, 5, 3, 59)).wall  # 08:03:59 Moscow
    assert short_time_text(wall, "ru") == "08:03"
    assert short_time_text(wall, "en", 12) == "8:03 AM"


def test_utc_label() -> None:
    assert moscow_time(ms(2026, 1, 1)).utc_label == "UTC+03:00"
    assert moscow_time(ms(2010, 7, 1)).utc_label == "UTC+04:00"


@pytest.mark.parametrize(
    ("now_ms", "start", "following"),
    [
        (1000.0, 1000, 2000),  # exactly on a boundary: that second, the next strictly after
        (1999.999, 1000, 2000),
        (0.0, 0, 1000),
        (-0.5, -1000, 0),  # before 1970 floors, not truncates
        (1795722005250.0, 1795722005000, 1795722006000),
    ],
)
def test_second_boundaries(now_ms: float, start: int, following: int) -> None:
    assert second_start_ms(now_ms) == start
    assert next_second_ms(now_ms) == following
    assert next_second_ms(now_ms) > now_ms


def test_tick_payload_is_encoded_once_with_the_protocol_fields() -> None:
    tick = make_tick(1795722005000)
    assert tick.epoch_ms == 1795722005000
    assert json.loads(tick.text) == {
        "type": "tick",
        "epoch_ms": 1795722005000,
        "iso": "2026-11-26T22:40:05+03:00",
        "utc_offset_s": 10800,
        "tz": "Europe/Moscow",
    }
    assert " " not in tick.text  # compact: sent to every client every second


def test_time_snapshot_keeps_the_millisecond() -> None:
    assert time_snapshot(1795722005250.9) == {
        "tz": "Europe/Moscow",
        "iso": "2026-11-26T22:40:05.250+03:00",
        "epoch_ms": 1795722005250,
        "utc_offset_s": 10800,
    }


def test_sync_reply_echoes_t0_exactly() -> None:
    t0 = 1795722005123.4567
    reply = json.loads(sync_reply(t0, 1795722005200.25))
    assert reply == {"type": "sync", "t0": t0, "server_ms": 1795722005200.25, "error_ms": None}
    assert json.loads(sync_reply(t0, 1.0, 12.34567))["error_ms"] == 12.346


def test_zone_rules_come_from_tzdata_not_the_host(tmp_path: Path) -> None:
    # A host whose Europe/Moscow file holds UTC's rules: ZoneInfo() trusts it.
    (tmp_path / "Europe").mkdir()
    (tmp_path / "Europe" / "Moscow").write_bytes((files("tzdata.zoneinfo") / "UTC").read_bytes())
    instant = datetime(2026, 11, 26, 19, 40, 5, tzinfo=UTC)
    zoneinfo.reset_tzpath(to=[str(tmp_path)])
    try:
        zoneinfo.ZoneInfo.clear_cache()
        assert instant.astimezone(zoneinfo.ZoneInfo("Europe/Moscow")).utcoffset() == timedelta(0)
        pinned = _pinned_zone("Europe/Moscow")
        assert instant.astimezone(pinned).utcoffset() == timedelta(hours=3)
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
