"""Sunrise, sunset and day length in Moscow for one Moscow date (pure).

Computed with astral (NOAA's solar equations) for the centre of Moscow at sea
level, with the standard refraction and solar radius (zenith 90.833°), as
almanacs and time.is publish them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from astral import Observer
from astral.sun import sunrise, sunset

from .clock import MOSCOW

# The centre of Moscow (Red Square), degrees north and east.
MOSCOW_OBSERVER = Observer(latitude=55.7558, longitude=37.6173, elevation=0.0)


@dataclass(frozen=True, slots=True)
class SunDay:
    sunrise: datetime  # Moscow wall time, zone attached
    sunset: datetime

    @property
    def day_length_s(self) -> int:
        return round((self.sunset - self.sunrise).total_seconds())

    def as_json(self) -> dict[str, object]:
        """The `sun` object of `/api/time`: whole seconds, Moscow offset."""
        return {
            "sunrise": self.sunrise.isoformat(timespec="seconds"),
            "sunset": self.sunset.isoformat(timespec="seconds"),
            "day_length_s": self.day_length_s,
        }


@lru_cache(maxsize=8)
def sun_day(day: date) -> SunDay:
    """Moscow never has polar day or night, so both events always exist."""
    return SunDay(
        sunrise=sunrise(MOSCOW_OBSERVER, day, tzinfo=MOSCOW).replace(microsecond=0),
        sunset=sunset(MOSCOW_OBSERVER, day, tzinfo=MOSCOW).replace(microsecond=0),
    )


def day_length_parts(seconds: int) -> tuple[int, int]:
    """Hours and minutes, the minutes rounded (7 h 59.5 min is 8 h 0 min)."""
    minutes = (seconds + 30) // 60
    return divmod(minutes, 60)
