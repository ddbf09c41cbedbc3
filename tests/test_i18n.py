"""Language negotiation and the page's parameters (pure), and the catalogues."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

from moscow_clock.core.preferences import (
    BadParameter,
    Display,
    negotiate_language,
    parse_accept_language,
    parse_display,
)
from moscow_clock.web.l10n import TRANSLATIONS, CatalogueError, Catalogues

SUPPORTED = ("en", "ru")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("ru", "ru"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),  # a Russian browser
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("RU-ru", "ru"),  # case does not matter
        ("de-DE,de;q=0.9", "en"),  # neither: English
        ("de, ru;q=0.5, en;q=0.4", "ru"),  # q-values, not order, decide
        ("en;q=0.4, ru;q=0.5", "ru"),
        ("en;q=0.5, ru;q=0.5", "en"),  # equal: header order
        ("ru;q=0.5, en;q=0.5", "ru"),
        ("ru;q=0, en;q=0.1", "en"),  # q=0: not acceptable
        ("ru;q=0", "en"),
        ("*", "en"),
        ("en;q=0, *", "ru"),  # anything but English
        ("en;q=0, ru;q=0, *", "en"),  # nothing acceptable: the default all the same
        ("fr, *;q=0.1", "en"),
        ("zh-Hant-TW, ru-Cyrl-RU;q=0.2", "ru"),
        # Malformed entries are skipped, the rest still count.
        ("ru;q=2, en;q=0.3", "en"),
        ("ru;q=abc, en", "en"),
        ("r u, ru;q=0.1", "ru"),
        (";;;,,,", "en"),
        ("ru;q=0.5;q=0.9", "ru"),
        ("\x00ru", "en"),
        ("русский, ru", "ru"),
        ("x" * 5000 + ",ru", "en"),  # past the length bound: only the start is read
    ],
)
def test_negotiate_language(header: str | None, expected: str) -> None:
    assert negotiate_language(header, SUPPORTED) == expected


def test_parse_accept_language_orders_by_quality_then_position() -> None:
    assert parse_accept_language("a;q=0.5, b, c;q=0.5, d;q=1.0") == [
        ("b", 1.0),
        ("d", 1.0),
        ("a", 0.5),
        ("c", 0.5),
    ]


@given(st.text(max_size=300))
def test_any_header_gives_a_supported_language(header: str) -> None:
    assert negotiate_language(header, SUPPORTED) in SUPPORTED


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ru", "en", "de", "ru-RU", "en-GB", "*", "fr"]),
            st.sampled_from([None, "0", "0.1", "0.5", "0.9", "1", "1.000"]),
        ),
        max_size=6,
    )
)
def test_the_choice_is_the_best_acceptable_supported_entry(
    entries: list[tuple[str, str | None]],
) -> None:
    header = ", ".join(tag if q is None else f"{tag};q={q}" for tag, q in entries)
    chosen = negotiate_language(header, SUPPORTED)
    quality = {"en": 0.0, "ru": 0.0}
    refused: set[str] = set()
    for tag, q in entries:
        value = 1.0 if q is None else float(q)
        primary = tag.split("-")[0]
        if value == 0:
            refused.add(primary)
        elif primary in quality:
            quality[primary] = max(quality[primary], value)
    acceptable = {lang: q for lang, q in quality.items() if q > 0 and lang not in refused}
    if acceptable and chosen in acceptable:
        assert acceptable[chosen] >= max(acceptable.values()) or "*" in header
    elif acceptable:
        # Only a "*" ranked above them can pick a language not named.
        assert "*" in header


def test_parse_display_defaults_and_values() -> None:
    assert parse_display({}, SUPPORTED) == Display()
    assert parse_display(
        {"lang": "RU", "hours": "12", "date": "0", "bg": "transparent", "kiosk": "1"}, SUPPORTED
    ) == Display(lang="ru", hours=12, show_date=False, transparent=True)
    assert parse_display({"hours": "24", "date": "1"}, SUPPORTED) == Display()


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ({"lang": "de"}, "lang"),
        ({"lang": ""}, "lang"),
        ({"lang": "ru-RU"}, "lang"),
        ({"hours": "13"}, "hours"),
        ({"hours": ""}, "hours"),
        ({"date": "yes"}, "date"),
        ({"bg": "red"}, "bg"),
        ({"bg": "transparent;"}, "bg"),
    ],
)
def test_parse_display_refuses_unknown_values(args: dict[str, str], name: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_display(args, SUPPORTED)
    assert caught.value.name == name


@given(st.dictionaries(st.sampled_from(["lang", "hours", "date", "bg", "x"]), st.text(max_size=20)))
def test_parse_display_returns_or_refuses_never_crashes(args: dict[str, str]) -> None:
    refused: BadParameter | None = None
    try:
        display = parse_display(args, SUPPORTED)
    except BadParameter as error:
        refused = error
    if refused is not None:
        assert refused.name in args
    else:
        assert display.hours in (12, 24)
        assert display.lang in (None, *SUPPORTED)


# --- the catalogues -----------------------------------------------------------


def _catalogue(path: Path) -> dict[str, str]:
    with path.open("rb") as data:
        return {str(m.id): str(m.string) for m in read_po(data) if m.id}


def test_every_string_is_in_the_template_and_translated(tmp_path: Path) -> None:
    """The committed .pot matches the source (`make translations` was run), and
    every catalogue translates every string in it."""
    fresh = tmp_path / "messages.pot"
    root = TRANSLATIONS.parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "-q",
            "extract",
            "--mapping-file",
            "babel.cfg",
            "--no-location",
            "--output-file",
            str(fresh),
            ".",
        ],
        cwd=root,
        check=True,
    )
    extracted = set(_catalogue(fresh))
    assert extracted == set(_catalogue(TRANSLATIONS / "messages.pot")), "run `make translations`"
    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        translated = _catalogue(po)
        assert set(translated) == extracted, po
        assert all(translated.values()), f"untranslated strings in {po}"


def test_languages_come_from_the_catalogues(tmp_path: Path) -> None:
    assert Catalogues.load().languages == ("en", "ru")
    (tmp_path / "de" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "de" / "LC_MESSAGES" / "messages.po").write_text("")
    with pytest.raises(CatalogueError, match="make translations"):
        Catalogues.load(tmp_path)  # a catalogue nobody compiled is an error, not English
