"""The app through Quart's test client, with the clock fixed at 22:40:05.250 Moscow time."""

from __future__ import annotations

import asyncio
import json
import re

from quart import Quart

from moscow_clock import create_app

from .conftest import FIXED_MS
from .support.timing import scaled


async def test_page_shows_moscow_time_without_javascript(app: Quart) -> None:
    response = await app.test_client().get("/")
    assert response.status_code == 200
    html = await response.get_data(as_text=True)
    assert '<time id="clock" datetime="2026-11-26T22:40:05+03:00">22:40:05</time>' in html
    assert "Thursday, November 26, 2026" in html
    assert "<title>22:40:05 · Moscow time</title>" in html
    assert f'data-server-ms="{FIXED_MS:.3f}"' in html
    assert '<noscript><meta http-equiv="refresh" content="1"></noscript>' in html
    assert response.headers["Cache-Control"] == "no-store"


async def test_page_has_no_inline_script_or_style(app: Quart) -> None:
    response = await app.test_client().get("/")
    html = await response.get_data(as_text=True)
    # The blocking settings script (static/js/boot.js), one module, and one
    # JSON data block (language, hours and the strings the script shows; never
    # executed, so the CSP allows it).
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script src="/static/js/boot.js">',
        '<script type="module" src="/static/js/main.js">',
        '<script type="application/json" id="page-data">',
    ]
    block = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert block is not None
    data = json.loads(block.group(1))
    assert (data["lang"], data["hours"]) == ("en", 24)
    assert data["strings"]
    assert all(isinstance(text, str) for text in data["strings"].values())
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_api_time(app: Quart) -> None:
    response = await app.test_client().get("/api/time")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert await response.get_json() == {
        "tz": "Europe/Moscow",
        "iso": "2026-11-26T22:40:05.250+03:00",
        "epoch_ms": 1795722005250,
        "utc_offset_s": 10800,
        # Today's Moscow date (tests/test_sun.py checks the times themselves).
        "sun": {
            "sunrise": "2026-11-26T08:26:21+03:00",
            "sunset": "2026-11-26T16:06:43+03:00",
            "day_length_s": 27622,
        },
        "clock": {
            "status": "synchronised",
            "ready": True,
            "reason": "the kernel reports the clock synchronised",
            "error_bound_ms": 12.0,
            "synchronized": True,
            "max_error_ms": 12.0,
            "estimated_error_ms": 1.5,
            "kernel": {
                "status": None,
                "offset_ms": None,
                "frequency_ppm": None,
                "tai_offset_s": None,
            },
            "selection": "none",
            "reference_offset_ms": None,
            "reference": None,
            "leap_pending": None,
            "servers": [],
        },
    }


async def test_healthz(app: Quart) -> None:
    response = await app.test_client().get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok"}


async def test_static_assets_revalidate(app: Quart) -> None:
    client = app.test_client()
    response = await client.get("/static/js/main.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    etag = response.headers["ETag"]
    again = await client.get("/static/js/main.js", headers={"If-None-Match": etag})
    assert again.status_code == 304


async def test_unknown_path_is_a_plain_404(app: Quart) -> None:
    response = await app.test_client().get("/nope")
    assert response.status_code == 404
    assert "Traceback" not in await response.get_data(as_text=True)


async def test_websocket_answers_sync_and_ticks() -> None:
    app = create_app()  # the real clock: the ticker runs under test_app()
    async with app.test_app() as test_app, test_app.test_client().websocket("/ws") as ws:
        await ws.send(json.dumps({"type": "sync", "t0": 7.25}))
        reply = json.loads(await asyncio.wait_for(ws.receive(), scaled(2)))
        assert reply["type"] == "sync"
        assert reply["t0"] == 7.25
        assert isinstance(reply["server_ms"], float)
        await ws.send('{"type": "unknown"}')  # ignored, connection stays
        tick = json.loads(await asyncio.wait_for(ws.receive(), scaled(2)))
        assert tick["type"] == "tick"
        assert tick["epoch_ms"] % 1000 == 0
        assert tick["epoch_ms"] <= reply["server_ms"] + 1000
