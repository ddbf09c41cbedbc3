"""Pure choices about language and display: Accept-Language negotiation and
the page's query parameters. No I/O, so unit and property tests cover it all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from werkzeug.datastructures import LanguageAccept, MIMEAccept
from werkzeug.http import parse_accept_header

DEFAULT_LANGUAGE = "en"

# A header this long is hostile or broken; past it, only the start is read
# (the elements that end within it): parsing costs per element, and a 15 KB
# Accept cost ten times a whole 404 (docs/PERFORMANCE.md).
MAX_HEADER_CHARS = 2048

type Hours = Literal[12, 24]
type Theme = Literal["auto", "light", "dark"]
THEMES: tuple[Theme, ...] = ("auto", "light", "dark")
# What the page remembers (static/js/settings.js), in this cookie, in the
# query-string form: `lang=ru&hours=12&theme=dark&seconds=0`.
SETTINGS_COOKIE = "clock_settings"
REMEMBERED = ("lang", "hours", "theme", "seconds")
MAX_COOKIE_CHARS = 256


def bounded(header: str | None) -> str:
    """The part of a list-valued header that is read: all of it up to
    MAX_HEADER_CHARS, else its elements that end within them (never half
    an element: `json;q=0.1` cut to `json` would read as q=1)."""
    if header is None or len(header) <= MAX_HEADER_CHARS:
        return header or ""
    start = header[: MAX_HEADER_CHARS + 1]
    return start[: max(0, start.rfind(","))]


def parse_accept_language(header: str | None) -> LanguageAccept:
    """The header's language ranges with their q-values, best first and in
    header order among equals (Werkzeug's parser: RFC 9110 q-values, entries
    with a malformed one skipped, never an error: a browser's header is not
    ours to reject)."""
    return parse_accept_header(bounded(header), LanguageAccept)


def prefers_json(accept: str | None) -> bool:
    """Whether an `Accept` header ranks JSON above HTML (its first
    MAX_HEADER_CHARS: `bounded`); between equals, HTML."""
    read = bounded(accept)
    if "json" not in read.lower():
        return False  # (a browser's Accept: nothing to parse)
    best = parse_accept_header(read, MIMEAccept).best_match(["text/html", "application/json"])
    return best == "application/json"


def negotiate_language(
    header: str | None, supported: Iterable[str], default: str = DEFAULT_LANGUAGE
) -> str:
    """The supported language the visitor prefers most, matched on the primary
    subtag (so `ru-RU` picks `ru`), or `default` when none is acceptable.

    `q=0` means "not this one": it excludes the language even from `*`, and
    outweighs a positive q-value for another tag of the same language.
    Between equal q-values the header's order decides, then `default`.
    """
    accepted = [(_primary(tag), quality) for tag, quality in parse_accept_language(header)]
    refused = {tag for tag, quality in accepted if quality == 0}
    by_language = LanguageAccept(
        [(tag, quality) for tag, quality in accepted if quality == 0 or tag not in refused]
    )
    offered = set(supported)
    # best_match breaks ties by the order of its candidates: the header's
    # order for the languages it names, then the default, then the rest.
    named = [tag for tag, _ in by_language if tag in offered]
    candidates = dict.fromkeys([*named, default, *sorted(offered)])
    return by_language.best_match([c for c in candidates if c in offered], default)


def _primary(tag: str) -> str:
    """`ru` from `ru-RU`, and from `ru; level=1` (Werkzeug keeps other parameters)."""
    return tag.split(";")[0].split("-")[0].strip().lower()


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
