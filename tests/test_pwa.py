"""The installable, offline shell through Quart's test client: manifest, icons, worker."""

from __future__ import annotations

import json
from pathlib import Path

from quart import Quart

from moscow_clock.web.pwa import static_shell

from .support.png import png_size


async def test_manifest_is_valid_and_its_icons_exist(app: Quart) -> None:
    client = app.test_client()
    response = await client.get("/manifest.webmanifest")
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    assert response.headers["Cache-Control"] == "no-cache"
    manifest = json.loads(await response.get_data(as_text=True))
    assert manifest["name"] == "Moscow time"
    assert manifest["short_name"]
    assert manifest["start_url"] == "/"
    assert manifest["scope"] == "/"
    assert manifest["display"] in {"standalone", "fullscreen"}
    assert manifest["theme_color"].startswith("#")
    assert manifest["background_color"].startswith("#")
    seen = set()
    for icon in manifest["icons"]:
        assert icon["type"] == "image/png"
        png = await client.get(icon["src"])
        assert png.status_code == 200
        assert png.mimetype == "image/png"
        width, height = png_size(await png.get_data())
        assert icon["sizes"] == f"{width}x{height}"
        seen.add((width, icon["purpose"]))
    assert {(192, "any"), (512, "any"), (192, "maskable"), (512, "maskable")} <= seen


async def test_page_links_the_manifest(app: Quart) -> None:
    html = await (await app.test_client().get("/")).get_data(as_text=True)
    assert '<link rel="manifest" href="/manifest.webmanifest">' in html
    assert 'data-service-worker="/sw.js"' in html
    assert 'data-source="server"' in html


async def test_service_worker_is_served_from_the_root(app: Quart) -> None:
    client = app.test_client()
    response = await client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"  # updates seen at the next visit
    assert "worker-src 'self'" in response.headers["Content-Security-Policy"]
    body = await response.get_data(as_text=True)
    page = await client.get("/")
    version = page.headers["X-Shell-Version"]
    assert f'const VERSION = "{version}";' in body
    precache = json.loads(body.split("const PRECACHE = ", 1)[1].split(";\n", 1)[0])
    assert precache[0] == "/"
    assert {"/static/js/main.js", "/static/js/offline.js", "/static/clock.css"} <= set(precache)
    for url in precache[1:]:
        assert (await client.get(url)).status_code == 200


async def test_kiosk_is_marked_by_the_server(app: Quart) -> None:
    client = app.test_client()
    assert " data-kiosk" in await (await client.get("/?kiosk=1")).get_data(as_text=True)
    for query in ("", "?kiosk=0", "?kiosk=%3Cb%3E"):
        html = await (await client.get(f"/{query}")).get_data(as_text=True)
        assert " data-kiosk" not in html


def test_shell_version_follows_every_static_byte(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "a.js").write_text("one")
    (tmp_path / ".hidden").write_text("editor droppings")
    first = static_shell(tmp_path)
    assert first.static_urls == ("/static/js/a.js",)
    assert static_shell(tmp_path) == first  # stable
    (tmp_path / "js" / "a.js").write_text("two")
    assert static_shell(tmp_path).version != first.version
    (tmp_path / "js" / "a.js").write_text("one")
    (tmp_path / "js" / "b.js").write_text("")
    assert static_shell(tmp_path).version != first.version
