"""The visitor's language at the ASGI edge: gettext catalogues, negotiation per
request, `Vary`, and the gettext callables the templates use.

Catalogues live in moscow_clock/translations/<lang>/LC_MESSAGES/messages.po
and are compiled to .mo by `make translations` (and by the image builds);
English is the source language and needs none. A language is served when its
compiled catalogue is there, so adding one is adding a catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from gettext import GNUTranslations, NullTranslations
from pathlib import Path

from babel import Locale
from quart import Quart, Response, g, has_request_context, request

from ..core.preferences import (
    DEFAULT_LANGUAGE,
    SETTINGS_COOKIE,
    Display,
    negotiate_language,
    parse_display,
    remembered_settings,
)

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DOMAIN = "messages"
_EXTENSION = "moscow_clock.l10n"


class CatalogueError(RuntimeError):
    """A catalogue is there in source form only: it was never compiled."""


@dataclass(frozen=True, slots=True)
class Catalogues:
    translations: dict[str, NullTranslations]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.translations)

    @classmethod
    def load(cls, directory: Path = TRANSLATIONS) -> Catalogues:
        found: dict[str, NullTranslations] = {DEFAULT_LANGUAGE: NullTranslations()}
        for po in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
            lang = po.parent.parent.name
            if lang == DEFAULT_LANGUAGE:
                continue
            mo = po.with_suffix(".mo")
            if not mo.exists():
                raise CatalogueError(
                    f"{mo} is missing: compile the catalogues with `make translations`"
                )
            with mo.open("rb") as data:
                found[lang] = GNUTranslations(data)
        return cls(found)


def install(app: Quart, catalogues: Catalogues | None = None) -> None:
    app.extensions[_EXTENSION] = catalogues or Catalogues.load()
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=gettext, ngettext=ngettext, pgettext=pgettext, newstyle=True
    )
    app.jinja_env.globals.update(language_name=language_name, current_language=current_language)
    app.after_request(_vary)


def _catalogues() -> Catalogues:
    from quart import current_app

    found = current_app.extensions[_EXTENSION]
    assert isinstance(found, Catalogues)
    return found


def languages() -> tuple[str, ...]:
    return _catalogues().languages


def page_display(remembered: bool = False) -> Display:
    """The page's options from the query string (BadParameter for a bad
    value), with the language settled for this request. `remembered`: the
    visitor's saved choices (the settings cookie) fill what the query string
    leaves out."""
    args: dict[str, str] = request.args.to_dict()
    if remembered:
        g.remembered = True
        saved = remembered_settings(request.cookies.get(SETTINGS_COOKIE), languages())
        args = {**saved, **args}
    display = parse_display(args, languages())
    _settle(display.lang)
    return display


def current_language() -> str:
    """This request's language; error pages get here without page_display(),
    so a bad `?lang=` is ignored here rather than failing the error page."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if "lang" not in g:
        raw = request.args.get("lang", "").strip().lower()
        _settle(raw if raw in languages() else None)
    return str(g.lang)


def _settle(wanted: str | None) -> None:
    if wanted is not None:
        g.lang, g.lang_from_header = wanted, False
    else:
        header = request.headers.get("Accept-Language")
        g.lang, g.lang_from_header = negotiate_language(header, languages()), True


def _translations() -> NullTranslations:
    """Looked up once per request: a page calls gettext a few dozen times."""
    if not has_request_context():
        return _catalogues().translations[DEFAULT_LANGUAGE]
    if "translations" not in g:
        g.translations = _catalogues().translations[current_language()]
    found = g.translations
    assert isinstance(found, NullTranslations)
    return found


def gettext(message: str) -> str:
    return _translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations().ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """A message whose translation depends on where it is shown (an app icon's label)."""
    return _translations().pgettext(context, message)


def language_name(lang: str) -> str:
    """A language's name in itself, from CLDR: `English`, `Русский`."""
    name = Locale.parse(lang).get_display_name(lang) or lang
    return name[:1].upper() + name[1:]


async def _vary(response: Response) -> Response:
    """Responses whose language came from Accept-Language depend on it."""
    if has_request_context() and g.get("lang_from_header"):
        response.vary.add("Accept-Language")
    if has_request_context() and g.get("remembered"):
        response.vary.add("Cookie")
    return response
