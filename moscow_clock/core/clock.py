"""Pure Moscow-time math and the JSON payloads built from it.

Every function takes the current time as an argument (epoch milliseconds), so
tests drive them with any instant and no sleeping.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date as _cldr_date
from babel.dates import format_datetime as _cldr_datetime

TZ_NAME = "Europe/Moscow"


def _pinned_zone(key: str) -> ZoneInfo:
    """Load a zone from the pinned `tzdata` package, never the host's files:
    `ZoneInfo(key)` would prefer /usr/share/zoneinfo, which differs (or is
    missing) from one machine or image to the next."""
    with files("tzdata.zoneinfo").joinpath(*key.split("/")).open("rb") as data:
        return ZoneInfo.from_file(data, key=key)


MOSCOW = _pinned_zone(TZ_NAME)

type Clock = Callable[[], float]
"""Returns the current wall-clock time in epoch milliseconds."""


def wall_clock_ms() -> float:
    return time.time_ns() / 1_000_000


def _dumps(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class MoscowTime:
    """One whole second of Moscow time, in the forms the page and API need."""

    epoch_ms: int
    iso: str
    hms: str
    utc_offset_s: int
    wall: datetime  # the Moscow wall time, zone attached

    def date_text(self, lang: str) -> str:
        return date_text(self.wall, lang)

    def clock_text(self, lang: str, hours: int = 24) -> str:
        return clock_text(self.wall, lang, hours)

    def clock_parts(self, lang: str, hours: int = 24, seconds: bool = True) -> tuple[str, str]:
        return clock_parts(self.wall, lang, hours, seconds)

    @property
    def tz(self) -> str:
        return TZ_NAME

    @property
    def utc_label(self) -> str:
        sign = "+" if self.utc_offset_s >= 0 else "-"
        hours, rest = divmod(abs(self.utc_offset_s), 3600)
        return f"UTC{sign}{hours:02d}:{rest // 60:02d}"


def second_start_ms(now_ms: float) -> int:
    """The whole second that contains `now_ms` (floor, also before 1970)."""
    return math.floor(now_ms / 1000) * 1000


def next_second_ms(now_ms: float) -> int:
    """The first whole second strictly after `now_ms`."""
    return second_start_ms(now_ms) + 1000


def _moscow_datetime(epoch_ms: int) -> datetime:
    # Integer arithmetic: float seconds could round 23:59:59.9999996 up a day.
    seconds, millis = divmod(epoch_ms, 1000)
    utc = datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)
    return utc.astimezone(MOSCOW)


def _utc_offset_s(local: datetime) -> int:
    offset = local.utcoffset()
    assert offset is not None  # a ZoneInfo always yields one
    return int(offset.total_seconds())


def moscow_time(now_ms: float) -> MoscowTime:
    second = second_start_ms(now_ms)
    local = _moscow_datetime(second)
    return MoscowTime(
        epoch_ms=second,
        iso=local.isoformat(timespec="seconds"),
        hms=local.strftime("%H:%M:%S"),
        utc_offset_s=_utc_offset_s(local),
        wall=local,
    )


# CLDR formats, the same ones the page asks of the browser's Intl.DateTimeFormat
# (static/js/render.js): the full date, and hours:minutes[:seconds] in 24 h
# ("HH", two digits) or 12 h ("h", no leading zero, with the day period).
_CLOCK_PATTERNS = {24: "HH:mm:ss", 12: "h:mm:ss"}
_SHORT_PATTERNS = {24: "HH:mm", 12: "h:mm"}
# CLDR puts narrow/no-break spaces in some formats (before the Russian year
# abbreviation, before "PM");
# browsers differ on whether they keep them, so both sides use plain spaces.
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


@cache
def uses_flexible_day_periods(lang: str) -> bool:
    """A language whose own clock is 24 h (CLDR's short time pattern has "H",
    as Russian's "HH:mm") writes a 12 h time with the flexible day period
    ("6:53 вечера", CLDR "B"), not "AM/PM", which it does not use."""
    return "H" in str(Locale.parse(lang).time_formats["short"].pattern)


def day_period_text(wall: datetime, lang: str) -> str:
    """ "PM", or the flexible day period ("вечера") where the language has no AM/PM."""
    if not uses_flexible_day_periods(lang):
        return _cldr_datetime(wall, "a", locale=lang).translate(_SPACES)
    # Babel names the very second of midnight "полночь"; browsers' ICU, which
    # repaints the page a second later, says "ночи" as for the rest of the night.
    if (wall.hour, wall.minute, wall.second) == (0, 0, 0):
        wall = wall.replace(second=1)
    return _cldr_datetime(wall, "BBBB", locale=lang).translate(_SPACES)


def date_text(wall: datetime, lang: str) -> str:
    """The full CLDR date: `Monday, November 30, 2026` in English; it opens a
    line, so it starts with a capital (Russian's weekday too)."""
    text = _cldr_date(wall.date(), format="full", locale=lang).translate(_SPACES)
    return text[:1].upper() + text[1:]


def clock_parts(
    wall: datetime, lang: str, hours: int = 24, seconds: bool = True
) -> tuple[str, str]:
    """(`10:40:05`, `PM`): the digits and the day period (empty in 24 h), which
    the page sets smaller; in both served languages the period follows.
    Without seconds (`?seconds=0`): (`10:40`, `PM`)."""
    patterns = _CLOCK_PATTERNS if seconds else _SHORT_PATTERNS
    digits = _cldr_datetime(wall, patterns[hours], locale=lang).translate(_SPACES)
    return digits, day_period_text(wall, lang) if hours == 12 else ""


def clock_text(wall: datetime, lang: str, hours: int = 24) -> str:
    """`22:40:05`, or `10:40:05 PM` for 12 hours."""
    return " ".join(part for part in clock_parts(wall, lang, hours) if part)


def short_time_text(wall: datetime, lang: str, hours: int = 24) -> str:
    """`08:31` / `8:31 AM`: sunrise and sunset."""
    digits = _cldr_datetime(wall, _SHORT_PATTERNS[hours], locale=lang).translate(_SPACES)
    return f"{digits} {day_period_text(wall, lang)}" if hours == 12 else digits


@dataclass(frozen=True, slots=True)
class Tick:
    """A tick for one whole second, encoded once and sent to every client."""

    epoch_ms: int
    text: str


def make_tick(epoch_ms: int) -> Tick:
    moment = moscow_time(epoch_ms)
    return Tick(
        epoch_ms=moment.epoch_ms,
        text=_dumps(
            {
                "type": "tick",
                "epoch_ms": moment.epoch_ms,
                "iso": moment.iso,
                "utc_offset_s": moment.utc_offset_s,
                "tz": TZ_NAME,
            }
        ),
    )


def time_snapshot(now_ms: float) -> dict[str, object]:
    """The body of `GET /api/time`: the exact millisecond, not just the second."""
    exact_ms = math.floor(now_ms)
    local = _moscow_datetime(exact_ms)
    return {
        "tz": TZ_NAME,
        "iso": local.isoformat(timespec="milliseconds"),
        "epoch_ms": exact_ms,
        "utc_offset_s": _utc_offset_s(local),
    }


def sync_reply(
    t0: float,
    server_ms: float,
    error_ms: float | None = None,
    clock: Mapping[str, object] | None = None,
) -> str:
    """`error_ms`: the server's own error bound (None: its time is not
    verified); `clock`: its state in full (core/clockstate.PageClock.wire)."""
    error = None if error_ms is None else round(error_ms, 3)
    payload: dict[str, object] = {
        "type": "sync",
        "t0": t0,
        "server_ms": server_ms,
        "error_ms": error,
    }
    if clock is not None:
        payload["clock"] = clock
    return _dumps(payload)
