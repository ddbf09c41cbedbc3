"""A countdown to a moment in Moscow time: `?until=2027-01-01T00:00`.

Pure: the parameter's form, the moment it names, and what is left at a given
instant ("now" is a parameter). static/js/countdown.js does the same
arithmetic in the browser, every second and on a page from the offline cache.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from .clock import MOSCOW
from .preferences import BadParameter

# A Moscow wall time to the minute or the second, or a date (its midnight).
# The year has four digits: the moments a clock page can count down to.
_UNTIL = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$")
FORM = "YYYY-MM-DDTHH:MM (Moscow time)"
MAX_CHARS = 32


@dataclass(frozen=True, slots=True)
class Countdown:
    wall: datetime  # the moment, Moscow wall time with the zone attached
    target_ms: int

    def seconds_left(self, shown_second_ms: int) -> int:
        """Whole seconds from the shown second; <= 0 once the moment is reached."""
        return math.ceil((self.target_ms - shown_second_ms) / 1000)


def parse_until(value: str) -> Countdown:
    """The moment `value` names in Moscow, or BadParameter (a 400) for
    anything that is not one: a malformed string, 2027-02-30, 24:00.
    A moment in the past is not an error: the page says it has passed."""
    match = _UNTIL.match(value.strip()) if len(value) <= MAX_CHARS else None
    if match is None:
        raise BadParameter("until", value, (FORM,))
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        wall = datetime(year, month, day, hour, minute, second, tzinfo=MOSCOW)
        # The zone's offset at that moment (tzdata), not today's.
        target_ms = round(wall.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise BadParameter("until", value, (FORM,)) from None
    return Countdown(wall=wall, target_ms=target_ms)


def split_seconds(total: int) -> tuple[int, int, int, int]:
    """(days, hours, minutes, seconds) of a number of seconds (negative: zero)."""
    seconds = max(0, total)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return days, hours, minutes, seconds
