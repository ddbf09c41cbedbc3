"""Pure choices about language and display: Accept-Language negotiation and
the page's query parameters. No I/O, so unit and property tests cover it all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

DEFAULT_LANGUAGE = "en"

# A header this long is hostile or broken; past it, only the start is read.
MAX_HEADER_CHARS = 2048
MAX_ENTRIES = 32

# RFC 4647 language range: "*" or alphanumeric subtags of 1-8 characters.
_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
# RFC 9110 qvalue: 0, 0.5, 1, 1.000 ...
_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")

type Hours = Literal[12, 24]
type Theme = Literal["auto", "light", "dark"]
THEMES: tuple[Theme, ...] = ("auto", "light", "dark")
# What the page remembers (static/js/settings.js), in this cookie, in the
# query-string form: `lang=ru&hours=12&theme=dark&seconds=0`.
SETTINGS_COOKIE = "clock_settings"
REMEMBERED = ("lang", "hours", "theme", "seconds")
MAX_COOKIE_CHARS = 256


def parse_accept_language(header: str | None) -> list[tuple[str, float]]:
    """The header's language ranges (lower case) with their q-values, best
    first and in header order among equals. Malformed entries are skipped,
    never an error: a browser's header is not ours to reject."""
    if not header:
        return []
    ranges: list[tuple[str, float, int]] = []
    for position, item in enumerate(header[:MAX_HEADER_CHARS].split(",")[:MAX_ENTRIES]):
        tag, *params = (part.strip() for part in item.split(";"))
        if not _RANGE.match(tag):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QVALUE.match(value) else -1.0
        if quality < 0:
            continue
        ranges.append((tag.lower(), quality, position))
    ranges.sort(key=lambda entry: (-entry[1], entry[2]))
    return [(tag, quality) for tag, quality, _ in ranges]


def negotiate_language(
    header: str | None, supported: Iterable[str], default: str = DEFAULT_LANGUAGE
) -> str:
    """The supported language the visitor prefers most (RFC 4647 lookup on the
    primary subtag, so `ru-RU` picks `ru`), or `default` when none matches.

    `q=0` means "not this one": it excludes the language even from `*`.
    """
    offered = list(dict.fromkeys(supported))
    ranked = parse_accept_language(header)
    refused = {tag.split("-")[0] for tag, quality in ranked if quality == 0}
    for tag, quality in ranked:
        if quality == 0:
            break  # sorted: nothing acceptable follows
        if tag == "*":
            # Any language: the default if acceptable, else the first other one.
            for language in [default, *offered]:
                if language in offered and language not in refused:
                    return language
            continue
        primary = tag.split("-")[0]
        if primary in offered and primary not in refused:
            return primary
    return default


class BadParameter(ValueError):
    """A query parameter the page knows, with a value it does not."""

    def __init__(self, name: str, value: str, allowed: Iterable[str]) -> None:
        self.name = name
        self.value = value
        self.allowed = tuple(allowed)
        super().__init__(f"{name}={value!r}: use {' or '.join(self.allowed)}")


@dataclass(frozen=True, slots=True)
class Display:
    """How one page view is shown, from its query string."""

    lang: str | None = None  # None: negotiate from Accept-Language
    hours: Hours = 24
    show_date: bool = True
    transparent: bool = False
    theme: Theme | None = None  # None: not told (the system's, or light when transparent)
    seconds: bool = True


def parse_display(args: Mapping[str, str], supported: Iterable[str]) -> Display:
    """Read `lang`, `hours`, `date`, `bg`, `theme` and `seconds`; other parameters are ignored.

    A known parameter with an unknown value is an error (400) rather than
    silently ignored, so a mistyped embed snippet is noticed at once.
    """
    languages = tuple(sorted(supported))
    lang = args.get("lang")
    if lang is not None:
        lang = lang.strip().lower()
        if lang not in languages:
            raise BadParameter("lang", args["lang"], languages)
    return Display(
        lang=lang,
        hours=12 if _choice(args, "hours", ("24", "12"), "24") == "12" else 24,
        show_date=_choice(args, "date", ("1", "0"), "1") == "1",
        transparent=_choice(args, "bg", ("transparent",), None) == "transparent",
        theme=_theme(_choice(args, "theme", THEMES, None)),
        seconds=_choice(args, "seconds", ("1", "0"), "1") == "1",
    )


def _theme(value: str | None) -> Theme | None:
    for theme in THEMES:
        if value == theme:
            return theme
    return None


def remembered_settings(cookie: str | None, supported: Iterable[str]) -> dict[str, str]:
    """The valid choices in the settings cookie (`lang=ru&hours=12`), to
    fill what the query string leaves out. A cookie is the visitor's own
    storage, not a request to check: anything unknown or invalid in it is
    dropped, never an error."""
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return {}
    languages = set(supported)
    allowed = {"hours": ("24", "12"), "theme": THEMES, "seconds": ("1", "0")}
    found: dict[str, str] = {}
    for item in cookie.split("&"):
        name, _, value = item.partition("=")
        value = value.strip().lower()
        if name not in REMEMBERED or name in found:
            continue
        if value in languages if name == "lang" else value in allowed[name]:
            found[name] = value
    return found


def _choice(
    args: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str | None
) -> str | None:
    value = args.get(name)
    if value is None:
        return default
    if value.strip().lower() not in allowed:
        raise BadParameter(name, value, allowed)
    return value.strip().lower()
