"""Sunrise and sunset in Moscow against an independent reference.

The reference is the U.S. Naval Observatory's "Almanac for Computers" (1990)
sunrise/sunset algorithm, written out here: a different method from astral's
NOAA equations, so agreement within two minutes all year checks our use of the
library (coordinates, zone, date handling), not the library against itself.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from moscow_clock.core.clock import MOSCOW
from moscow_clock.core.sun import MOSCOW_OBSERVER, day_length_parts, sun_day

TOLERANCE = timedelta(minutes=2)


def almanac(day: date, latitude: float, longitude: float, *, rising: bool) -> datetime:
    """Sunrise or sunset (UTC) by the Almanac for Computers, zenith 90°50'."""
    rad, deg = math.radians, math.degrees
    n = day.timetuple().tm_yday
    lng_hour = longitude / 15
    t = n + ((6 if rising else 18) - lng_hour) / 24
    mean_anomaly = 0.9856 * t - 3.289
    true_long = (
        mean_anomaly
        + 1.916 * math.sin(rad(mean_anomaly))
        + 0.020 * math.sin(rad(2 * mean_anomaly))
        + 282.634
    ) % 360
    ra = deg(math.atan(0.91764 * math.tan(rad(true_long)))) % 360
    ra = (ra + (true_long // 90) * 90 - (ra // 90) * 90) / 15
    sin_dec = 0.39782 * math.sin(rad(true_long))
    cos_dec = math.cos(math.asin(sin_dec))
    cos_h = (math.cos(rad(90 + 50 / 60)) - sin_dec * math.sin(rad(latitude))) / (
        cos_dec * math.cos(rad(latitude))
    )
    hour_angle = deg(math.acos(cos_h))
    hour_angle = (360 - hour_angle if rising else hour_angle) / 15
    local_mean = hour_angle + ra - 0.06571 * t - 6.622
    ut_hours = (local_mean - lng_hour) % 24
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=ut_hours)


DAYS = [date(2026, 1, 1) + timedelta(days=d) for d in range(0, 365, 5)]


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_sunrise_and_sunset_match_the_almanac(day: date) -> None:
    sun = sun_day(day)
    lat, lon = MOSCOW_OBSERVER.latitude, MOSCOW_OBSERVER.longitude
    assert abs(sun.sunrise - almanac(day, lat, lon, rising=True)) <= TOLERANCE
    assert abs(sun.sunset - almanac(day, lat, lon, rising=False)) <= TOLERANCE
    # On the Moscow date asked for, in Moscow time, and consistent.
    assert sun.sunrise.date() == sun.sunset.date() == day
    assert sun.sunrise.tzinfo is MOSCOW
    assert sun.day_length_s == round((sun.sunset - sun.sunrise).total_seconds())


def test_solstices_have_the_longest_and_shortest_days() -> None:
    lengths = {day: sun_day(day).day_length_s for day in DAYS}
    longest = max(lengths, key=lengths.__getitem__)
    shortest = min(lengths, key=lengths.__getitem__)
    assert abs((longest - date(2026, 6, 21)).days) <= 5
    assert abs((shortest - date(2026, 12, 21)).days) <= 5
    # Moscow at 55.76° N: about 17.5 h in June, 7 h in December.
    assert 17 * 3600 < lengths[longest] < 18 * 3600
    assert 6.9 * 3600 < sun_day(date(2026, 12, 21)).day_length_s < 7.1 * 3600


def test_api_json_shape() -> None:
    sun = sun_day(date(2026, 11, 30)).as_json()
    assert set(sun) == {"sunrise", "sunset", "day_length_s"}
    assert str(sun["sunrise"]).startswith("2026-11-30T08:3")
    assert str(sun["sunrise"]).endswith("+03:00")
    assert isinstance(sun["day_length_s"], int)


@pytest.mark.parametrize(
    ("seconds", "parts"),
    [(0, (0, 0)), (29, (0, 0)), (30, (0, 1)), (7 * 3600 + 59 * 60 + 30, (8, 0)), (63163, (17, 33))],
)
def test_day_length_parts(seconds: int, parts: tuple[int, int]) -> None:
    assert day_length_parts(seconds) == parts
