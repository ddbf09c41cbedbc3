"""The page and /embed through Quart's test client: language, hours, sun,
parameters, framing policy and error pages. Clock fixed at 2026-11-26 22:40:05.250."""

from __future__ import annotations

import json
import re

import pytest
from quart import Quart
from werkzeug.datastructures import Headers

from moscow_clock import create_app
from moscow_clock.core.config import Settings

from .conftest import FIXED_MS

RU = {"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-GB,en;q=0.9"}


async def get(
    app: Quart, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, Headers]:
    response = await app.test_client().get(path, headers=headers or {})
    return response.status_code, await response.get_data(as_text=True), response.headers


def page_data(html: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html)
    assert match
    data: dict[str, object] = json.loads(match.group(1))
    return data


@pytest.mark.parametrize("path", ["/", "/embed"])
async def test_russian_by_header(app: Quart, path: str) -> None:
    status, html, headers = await get(app, path, RU)
    assert status == 200
    assert '<html lang="ru"' in html
    assert "<title>22:40:05 · Московское время</title>" in html
    assert "Четверг, 26 ноября 2026 г." in html
    assert ">Московское время<" in html
    assert "Accept-Language" in headers["Vary"]
    assert page_data(html)["lang"] == "ru"


async def test_english_by_header_and_by_default(app: Quart) -> None:
    for headers in (EN, {}, {"Accept-Language": "de-DE,fr;q=0.5"}):
        status, html, response_headers = await get(app, "/", headers)
        assert status == 200
        assert '<html lang="en"' in html
        assert "Thursday, November 26, 2026" in html
        assert "Accept-Language" in response_headers["Vary"]


async def test_lang_parameter_overrides_the_header(app: Quart) -> None:
    _, html, headers = await get(app, "/?lang=en", RU)
    assert '<html lang="en"' in html
    assert ">Moscow time<" in html
    assert "Accept-Language" not in headers.get("Vary", "")  # the URL alone decides
    _, html, _ = await get(app, "/?lang=ru", EN)
    assert '<html lang="ru"' in html


async def test_every_visible_string_is_russian(app: Quart) -> None:
    _, html, _ = await get(app, "/", RU)
    visible = re.sub(r"<script.*?</script>|<[^>]+>", " ", html, flags=re.S)
    words = set(re.findall(r"[A-Za-z]{3,}", visible))
    # Only the zone's name, the day period and the language switch stay Latin.
    assert words <= {"UTC", "Europe", "Moscow", "English"}, words
    strings = page_data(html)["strings"]
    assert isinstance(strings, dict)
    units = page_data(html)["units"]  # {unit: {plural category: form}}
    assert isinstance(units, dict)
    for unit, forms in units.items():
        strings |= {f"{unit}.{category}": form for category, form in forms.items()}
    for key, text in strings.items():
        assert not re.search(r"[A-Za-z]{3,}", re.sub(r"%\(\w+\)[sd]", "", text)), (key, text)


async def test_12_hours_in_page_title_and_embed(app: Quart) -> None:
    _, html, _ = await get(app, "/?hours=12", EN)
    assert "<title>10:40:05 PM · Moscow time</title>" in html
    assert '><span class="digits">10:40:05</span> <span class="period">PM</span></time>' in html
    assert 'datetime="2026-11-26T22:40:05+03:00"' in html  # machine-readable stays 24 h
    assert ">8:26 AM</time>" in html  # sunrise
    assert page_data(html)["hours"] == 12
    # Russian has no AM/PM: its own day periods (CLDR), the digits without a leading zero.
    _, html, _ = await get(app, "/embed?hours=12&lang=ru")
    assert '"digits">10:40:05</span> <span class="period">ночи</span></time>' in html
    assert ">8:26 утра</time>" not in html  # the embed has no sun
    _, html, _ = await get(app, "/?hours=12&lang=ru")
    assert ">8:26 утра</time>" in html
    assert page_data(html)["flexibleDayPeriods"] is True
    _, html, _ = await get(app, "/?hours=24")
    assert ">22:40:05</time>" in html


async def test_sun_under_the_date_in_both_languages(app: Quart) -> None:
    _, html, _ = await get(app, "/", RU)
    assert 'Восход <time id="sunrise" datetime="2026-11-26T08:26:21+03:00">08:26</time>' in html
    assert 'Закат <time id="sunset" datetime="2026-11-26T16:06:43+03:00">16:06</time>' in html
    assert 'Долгота дня <time id="day-length" datetime="PT27622S">7 ч 40 мин</time>' in html
    _, html, _ = await get(app, "/", EN)
    assert "Sunrise <time" in html
    assert ">7 h 40 min</time>" in html
    assert html.index('id="date"') < html.index('id="sun"')


async def test_links_to_the_other_language_and_hours_keep_the_other_choice(app: Quart) -> None:
    _, html, _ = await get(app, "/?hours=12", RU)
    assert (
        '<a href="/?hours=12&amp;lang=en" lang="en" hreflang="en"'
        ' data-setting="lang" data-value="en">English</a>'
    ) in html
    assert '<a href="/" data-setting="hours" data-value="24">24-часовой формат</a>' in html
    _, html, _ = await get(app, "/?lang=en")
    assert 'data-value="ru">Русский</a>' in html
    assert (
        '<a href="/?lang=en&amp;hours=12" data-setting="hours" data-value="12">12-hour clock</a>'
    ) in html


async def test_embed(app: Quart) -> None:
    status, html, headers = await get(app, "/embed", EN)
    assert status == 200
    assert 'id="clock"' in html
    assert 'id="date"' in html
    assert 'class="embed"' in html
    # EMBED_ORIGINS unset: nobody may frame it (test_embed_origins_setting: who may).
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"
    _, html, _ = await get(app, "/embed?date=0&bg=transparent")
    assert 'id="date"' not in html
    assert 'class="embed transparent"' in html
    assert "<script" in html
    assert "style=" not in html


async def test_only_embed_may_be_framed(app: Quart) -> None:
    for path in ("/", "/api/time", "/nope"):
        response = await app.test_client().get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], path


async def test_embed_origins_setting() -> None:
    settings = Settings.from_env({"EMBED_ORIGINS": "*"})
    app = create_app(clock=lambda: FIXED_MS, settings=settings)
    _, _, headers = await get(app, "/embed")
    assert "frame-ancestors *;" in headers["Content-Security-Policy"]
    settings = Settings.from_env({"EMBED_ORIGINS": "https://b.example http://localhost:8080"})
    app = create_app(clock=lambda: FIXED_MS, settings=settings)
    _, _, headers = await get(app, "/embed")
    assert (
        "frame-ancestors http://localhost:8080 https://b.example;"
        in headers["Content-Security-Policy"]
    )
    _, _, headers = await get(app, "/")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "query",
    ["lang=de", "lang=", "hours=13", "hours=twelve", "date=no", "bg=red", "lang=ru%00"],
)
@pytest.mark.parametrize("path", ["/", "/embed"])
async def test_bad_parameters_get_a_clear_400(app: Quart, path: str, query: str) -> None:
    status, html, headers = await get(app, f"{path}?{query}", {**RU, "Accept": "text/html"})
    assert status == 400
    name = query.split("=")[0]
    assert f"Параметр {name} принимает значения" in html
    assert '<html lang="ru"' in html
    assert "Traceback" not in html
    assert headers["Cache-Control"] == "no-store"


async def test_bad_parameter_as_json(app: Quart) -> None:
    response = await app.test_client().get("/?hours=7", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert await response.get_json() == {"error": "Bad Request", "status": 400}


@pytest.mark.parametrize(
    "header",
    [
        "*;q=garbage,,,;;;q=",
        "ru;q=0.5" * 300,
        "\u00ff\u00fe, ru",
        "q=1;ru",
        ";q=0.5",
        "-",
        "ru-" + "x" * 100,
    ],
)
async def test_a_garbage_accept_language_is_never_an_error(app: Quart, header: str) -> None:
    status, html, _ = await get(app, "/", {"Accept-Language": header})
    assert status == 200
    assert re.search(r'<html lang="(en|ru)"', html)


async def test_error_pages_are_translated(app: Quart) -> None:
    status, html, headers = await get(app, "/no/such/page", {**RU, "Accept": "text/html"})
    assert status == 404
    assert '<html lang="ru"' in html
    assert "404 Не найдено" in html
    assert "По этому адресу ничего нет." in html
    assert ">Время в Москве</a>" in html
    assert "Accept-Language" in headers["Vary"]
    # A bad ?lang= on an error page is ignored, a good one honoured.
    _, html, _ = await get(app, "/nope?lang=xx", {**RU, "Accept": "text/html"})
    assert "404 Не найдено" in html
    _, html, _ = await get(app, "/nope?lang=en", {**RU, "Accept": "text/html"})
    assert "404 Not Found" in html
    # The API stays English and JSON.
    response = await app.test_client().get("/api/nope", headers=RU)
    assert await response.get_json() == {"error": "Not Found", "status": 404}


async def test_api_time_ignores_page_parameters(app: Quart) -> None:
    response = await app.test_client().get("/api/time?lang=xx&hours=99", headers=RU)
    assert response.status_code == 200
    body = await response.get_json()
    assert set(body) == {"tz", "iso", "epoch_ms", "utc_offset_s", "sun", "clock"}
    assert "Vary" not in response.headers or "Accept-Language" not in response.headers["Vary"]


async def test_the_scripts_strings_are_in_the_pages_language(app: Quart) -> None:
    """Issue 11's accuracy line, 12b's offline status and wake-lock notices:
    all in the one data block, translated like the rest of the page."""
    _, html, _ = await get(app, "/", RU)
    strings = page_data(html)["strings"]
    assert isinstance(strings, dict)
    assert strings["serverMayBeOff"] == (
        "Часы самого сервера не сверены: они могут ошибаться до %(bound)s."
    )
    assert strings["offline"] == "Нет сети — последняя синхронизация: %(when)s"
    assert strings["wakeLockRefused"] == "Браузер не разрешил держать экран включённым"
    units = page_data(html)["units"]
    assert isinstance(units, dict)
    assert (units["ms"]["many"], units["s"]["one"], units["min"]["few"], units["h"]["other"]) == (
        "%(value)s мс",
        "%(value)s с",
        "%(value)s мин",
        "%(value)s ч",
    )
    assert units["day"] == {
        "one": "%(value)s день",
        "few": "%(value)s дня",
        "many": "%(value)s дней",
        "other": "%(value)s дня",
    }
    assert ">Не гасить экран</button>" in html
    _, html, _ = await get(app, "/", EN)
    strings = page_data(html)["strings"]
    assert isinstance(strings, dict)
    assert strings["serverMayBeOff"] == (
        "The server's own clock is not verified: it may be off by up to %(bound)s."
    )
    assert strings["offline"] == "Offline — last synchronised %(when)s"
    assert ">Keep screen on</button>" in html
    # One data block, no sentences left in attributes.
    assert html.count('type="application/json"') == 1
    assert "data-exact=" not in html


async def test_embed_registers_no_service_worker_and_keeps_both_csp_parts(app: Quart) -> None:
    _, html, headers = await get(app, "/embed", EN)
    assert "data-service-worker" not in html
    assert 'id="keep-awake"' not in html
    assert 'rel="manifest"' not in html
    assert "data-server-error-ms=" in html  # the same accuracy as the page
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp  # EMBED_ORIGINS unset
    assert "worker-src 'self'" in csp
    assert "manifest-src 'self'" in csp
    _, html, headers = await get(app, "/", EN)
    assert 'data-service-worker="/sw.js"' in html
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "worker-src 'self'" in headers["Content-Security-Policy"]


async def test_the_manifest_speaks_the_pages_language(app: Quart) -> None:
    response = await app.test_client().get("/manifest.webmanifest", headers=RU)
    manifest = json.loads(await response.get_data(as_text=True))
    assert (manifest["name"], manifest["lang"]) == ("Московское время", "ru")
    assert manifest["description"] == "Точное московское время в реальном времени."
    assert manifest["start_url"] == "/"
    assert "Accept-Language" in response.headers["Vary"]
    # Linked from a page with an explicit ?lang=, the app starts in it.
    _, html, _ = await get(app, "/?lang=ru", EN)
    assert '<link rel="manifest" href="/manifest.webmanifest?lang=ru">' in html
    response = await app.test_client().get("/manifest.webmanifest?lang=ru", headers=EN)
    manifest = json.loads(await response.get_data(as_text=True))
    assert (manifest["name"], manifest["start_url"]) == ("Московское время", "/?lang=ru")
    response = await app.test_client().get("/manifest.webmanifest?lang=xx", headers=EN)
    manifest = json.loads(await response.get_data(as_text=True))
    assert (manifest["name"], manifest["start_url"]) == ("Moscow time", "/")
