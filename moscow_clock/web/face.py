"""What the clock face shows beyond the time itself, for index.html and
embed.html: the digits and day period apart (12 h), the zone as natives
write it, the difference-from-you line's strings, numbers with units in
their plural forms, and the countdown (`?until=`).

Plural forms: the page's script picks a form with `Intl.PluralRules`, so each
unit goes to it as {CLDR category: the catalogue's `ngettext` form for a number
of that category}: `{"one": "%(value)s день", "few": "%(value)s дня", ...}`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from babel import Locale
from babel.dates import format_date
from quart import abort, request

from ..core.clock import MoscowTime, short_time_text, uses_flexible_day_periods
from ..core.countdown import Countdown, parse_until, split_seconds
from ..core.preferences import BadParameter, Display
from .l10n import gettext as _
from .l10n import ngettext

# Numbers of each CLDR plural category, to ask gettext for that category's
# form. A category with no whole number (Russian "other": 1.5, 2.5) takes the
# form of 2 ("1,5 часа", "2,5 минуты": the genitive singular, as for 2-4).
_SAMPLES = range(1000)
_FRACTION_FALLBACK = 2


# Every unit the page writes after a number: literal ngettext calls, so
# `make translations` extracts each one's plural forms.
_UNITS: dict[str, Callable[[int], str]] = {
    "ms": lambda n: ngettext("%(value)s ms", "%(value)s ms", n),
    "s": lambda n: ngettext("%(value)s s", "%(value)s s", n),
    "min": lambda n: ngettext("%(value)s min", "%(value)s min", n),
    "h": lambda n: ngettext("%(value)s h", "%(value)s h", n),
    "day": lambda n: ngettext("%(value)s day", "%(value)s days", n),
}


@cache
def plural_samples(lang: str) -> dict[str, int]:
    """{CLDR category: a number of it} for `lang`: found once per language
    (scanning for a category costs milliseconds; a page view must not)."""
    rule = Locale.parse(lang).plural_form
    return {
        category: next((n for n in _SAMPLES if rule(n) == category), _FRACTION_FALLBACK)
        for category in sorted(rule.tags | {"other"})
    }


def plural_templates(lang: str, unit: str) -> dict[str, str]:
    """{CLDR category: form} of one unit for every plural category of `lang`."""
    return {category: _UNITS[unit](n) for category, n in plural_samples(lang).items()}


def units(lang: str) -> dict[str, dict[str, str]]:
    """Every unit in all its plural forms, for static/js/units.js."""
    return {unit: plural_templates(lang, unit) for unit in _UNITS}


def unit_text(unit: str, value: int) -> str:
    """One whole number with its unit, on the server: "7 h", «40 мин»."""
    return _UNITS[unit](value) % {"value": value}


def hours_minutes_text(hours: int, minutes: int) -> str:
    """ "7 h 40 min" (the day length), as static/js/units.js writes it."""
    return f"{unit_text('h', hours)} {unit_text('min', minutes)}"


def zone_text(now: MoscowTime) -> str:
    """ "MSK · UTC+3" (translated, as Russians write it): how people write Moscow's zone."""
    sign = "+" if now.utc_offset_s >= 0 else "-"
    hours, rest = divmod(abs(now.utc_offset_s), 3600)
    offset = f"{hours}" if rest == 0 else f"{hours}:{rest // 60:02d}"
    return f"{_('MSK')} · UTC{sign}{offset}"


def face_strings(lang: str) -> dict[str, Any]:
    """The script's strings for the difference line, units and the countdown."""
    return {
        "aheadOfYou": _("%(amount)s ahead of you"),
        "behindYou": _("%(amount)s behind you"),
        "sameAsYou": _("Same time as you"),
        "countdownUntil": _("Until %(moment)s"),
        "countdownPassed": _("%(moment)s has passed"),
        "countdownInvalid": _(
            "The countdown needs a Moscow date and time such as 2027-01-01T00:00"
        ),
        "countdownMoment": _("%(date)s, %(time)s MSK"),
    }


def page_until() -> Countdown | None:
    """The page's `?until=`, validated: a 400 with a clear message if it is
    not a moment (the page's other parameters are read by page_display())."""
    raw = request.args.get("until")
    if raw is None:
        return None
    try:
        return parse_until(raw)
    except BadParameter:
        abort(
            400,
            _("The parameter until takes a Moscow date and time such as 2027-01-01T00:00."),
        )


def carried_args() -> dict[str, str]:
    """The face's own parameters that the language and 12/24 h links keep:
    switching the language of a countdown keeps the countdown."""
    return {name: request.args[name] for name in ("until", "diff") if name in request.args}


def page_option(name: str) -> bool:
    """An on/off parameter (`?diff=1`); a 400 for any other value."""
    value = request.args.get(name)
    if value is None:
        return False
    if value.strip() not in ("0", "1"):
        abort(
            400, _("The parameter %(name)s takes %(allowed)s.") % {"name": name, "allowed": "1 | 0"}
        )
    return value.strip() == "1"


def countdown_context(
    countdown: Countdown | None, shown_second_ms: int, lang: str, hours: int
) -> dict[str, Any] | None:
    if countdown is None:
        return None
    wall = countdown.wall
    # The moment's hours and minutes as the page writes sunrise (its seconds,
    # if any, still count).
    time = short_time_text(wall, lang, hours)
    moment = _("%(date)s, %(time)s MSK") % {
        "date": format_date(wall.date(), "long", locale=lang).replace("\u202f", " "),
        "time": time,
    }
    left = countdown.seconds_left(shown_second_ms)
    if left <= 0:
        label, left_text = _("%(moment)s has passed") % {"moment": moment}, ""
    else:
        days, h, m, s = split_seconds(left)
        clock = f"{h:02d}:{m:02d}:{s:02d}"
        label = _("Until %(moment)s") % {"moment": moment}
        left_text = f"{unit_text('day', days)} {clock}" if days else clock
    return {"target_ms": countdown.target_ms, "moment": moment, "label": label, "left": left_text}


def face_context(now: MoscowTime, lang: str, display: Display) -> dict[str, Any]:
    """The time in two parts, the face's size class and the zone line."""
    digits, period = now.clock_parts(lang, display.hours, display.seconds)
    flexible = display.hours == 12 and uses_flexible_day_periods(lang)
    return {
        "clock_digits": digits,
        "clock_period": period,
        # clock.css sizes the time for its widest text: "88:88:88", "12:59:59 PM",
        # "12:59:59 вечера".
        "face_size": "h24" if display.hours == 24 else "h12-long" if flexible else "h12",
        "zone_text": zone_text(now),
        "flexible_day_periods": flexible,
    }
