"""Static files compressed (gzip and brotli by Accept-Encoding), and the module
graph preloaded: through Quart's test client, on a real server, in Chromium."""

from __future__ import annotations

import gzip
import importlib
import json
import os
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser
from quart import Quart

from moscow_clock.web.assets import is_precompressed, load_variants, precompress
from moscow_clock.web.delivery import module_graph

from .support.server import ROOT, ServerProcess

STATIC = ROOT / "static"
MAIN = "/static/js/main.js"
CHROMIUM = "gzip, deflate, br, zstd"
brotli = importlib.import_module("brotli")


def decoded(body: bytes, coding: str | None) -> bytes:
    if coding == "br":
        result = brotli.decompress(body)
        assert isinstance(result, bytes)
        return result
    return gzip.decompress(body) if coding == "gzip" else body


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (CHROMIUM, "br"),  # ours first among equals
        ("gzip", "gzip"),
        ("br;q=0.5, gzip", "gzip"),  # the client's preference wins
        ("br;q=0, gzip;q=0", None),
        ("identity", None),
        ("*", "br"),
        (None, None),
        ("garbage;;;q=x, ,", None),
    ],
)
async def test_every_script_and_style_is_served_as_accepted(
    app: Quart, accept: str | None, coding: str | None
) -> None:
    client = app.test_client()
    for path in ("/static/js/main.js", "/static/clock.css", "/static/favicon.svg"):
        headers = {"Accept-Encoding": accept} if accept is not None else {}
        response = await client.get(path, headers=headers)
        body = await response.get_data()
        assert response.status_code == 200
        assert response.headers.get("Content-Encoding") == coding, path
        assert response.headers["Vary"] == "Accept-Encoding"
        assert int(response.headers["Content-Length"]) == len(body)
        assert decoded(body, coding) == (STATIC / path.removeprefix("/static/")).read_bytes()
        if coding is not None:
            ratio = 0.6 if path.endswith((".js", ".css")) else 0.95
            assert len(body) < ratio * len(decoded(body, coding)), path
            assert "Accept-Ranges" not in response.headers


async def test_each_coding_has_its_own_etag_and_revalidates_with_304(app: Quart) -> None:
    client = app.test_client()
    etags = {}
    for accept in ("br", "gzip", "identity"):
        response = await client.get(MAIN, headers={"Accept-Encoding": accept})
        etags[accept] = response.headers["ETag"]
        again = await client.get(
            MAIN, headers={"Accept-Encoding": accept, "If-None-Match": etags[accept]}
        )
        assert again.status_code == 304, accept
        assert again.headers["ETag"] == etags[accept]
        assert again.headers["Vary"] == "Accept-Encoding"
        assert await again.get_data() == b""
    assert len(set(etags.values())) == 3
    # A validator of another coding is not this one's: the full body.
    other = await client.get(
        MAIN, headers={"Accept-Encoding": "br", "If-None-Match": etags["gzip"]}
    )
    assert other.status_code == 200
    assert other.headers["Content-Encoding"] == "br"


async def test_ranges_are_of_the_identity_and_siblings_are_no_urls(app: Quart) -> None:
    client = app.test_client()
    raw = (STATIC / "js/main.js").read_bytes()
    response = await client.get(MAIN, headers={"Accept-Encoding": "br", "Range": "bytes=0-9"})
    assert response.status_code == 206
    assert "Content-Encoding" not in response.headers
    assert await response.get_data() == raw[:10]
    for sibling in ("/static/js/main.js.br", "/static/js/main.js.gz"):
        assert (await client.get(sibling)).status_code == 404
    png = await client.get("/static/icons/icon-192.png", headers={"Accept-Encoding": CHROMIUM})
    assert "Content-Encoding" not in png.headers  # compressed already
    assert "Vary" not in png.headers


def test_precompressed_siblings_are_used_and_never_stale(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    script = tmp_path / "js" / "a.js"
    script.write_text("export const a = 1;\n" * 200)
    (tmp_path / "tiny.css").write_text("a{}")  # nothing to save: no variant
    assert precompress(tmp_path) == 4
    assert is_precompressed(tmp_path / "js" / "a.js.br")
    assert not is_precompressed(tmp_path / "icon.png.gz")
    variants = load_variants(tmp_path)
    assert set(variants) == {"js/a.js"}
    assert variants["js/a.js"]["br"].data == (tmp_path / "js" / "a.js.br").read_bytes()
    assert brotli.decompress(variants["js/a.js"]["br"].data) == script.read_bytes()
    # The file changed after its sibling was made: the sibling is not used.
    (tmp_path / "js" / "a.js.gz").write_bytes(b"stale")
    os.utime(tmp_path / "js" / "a.js.gz", (1, 1))
    assert gzip.decompress(load_variants(tmp_path)["js/a.js"]["gzip"].data) == script.read_bytes()


async def test_the_page_preloads_its_whole_module_graph(app: Quart) -> None:
    html = await (await app.test_client().get("/")).get_data(as_text=True)
    preloaded = re.findall(r'<link rel="modulepreload" href="([^"]+)">', html)
    graph = module_graph(STATIC, "js/main.js")
    assert graph[0] == "js/main.js"
    assert sorted(preloaded) == sorted(f"/static/{name}" for name in graph[1:])
    # Every module the page has is in the graph: none loads in a second round.
    on_disk = {p.relative_to(STATIC).as_posix() for p in (STATIC / "js").glob("*.js")}
    assert on_disk - set(graph) == {"js/boot.js"}  # the classic script, not a module


@pytest.mark.browser
async def test_chromium_decodes_the_compressed_files_and_runs_the_page(
    browser: Browser, shared_server: ServerProcess
) -> None:
    page = await browser.new_page()
    seen: dict[str, tuple[str | None, bytes]] = {}

    async def on_response(response: object) -> None:
        from playwright.async_api import Response

        assert isinstance(response, Response)
        if "/static/" in response.url:
            headers = await response.all_headers()
            seen[response.url] = (headers.get("content-encoding"), await response.body())

    page.on("response", on_response)
    await page.goto(shared_server.url)
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'live'", timeout=15000
    )
    await page.close()
    scripts = {url: value for url, value in seen.items() if url.endswith(".js")}
    assert len(scripts) >= 10
    for url, (coding, body) in seen.items():
        path = STATIC / url.split("/static/", 1)[1]
        assert body == path.read_bytes(), url  # what the page got is the file, decoded
        if path.suffix in (".js", ".css"):
            assert coding == "br", url


async def test_the_worker_precaches_what_the_offline_page_needs_and_no_icons(app: Quart) -> None:
    body = await (await app.test_client().get("/sw.js")).get_data(as_text=True)
    precache = json.loads(body.split("const PRECACHE = ", 1)[1].split(";\n", 1)[0])
    needed = {f"/static/{name}" for name in module_graph(STATIC, "js/main.js")}
    assert {"/", "/static/clock.css", "/static/js/boot.js", *needed} <= set(precache)
    assert not [url for url in precache if url.startswith("/static/icons/")]
    assert not [url for url in precache if url.endswith((".br", ".gz"))]
    # The first install reads what the page has just loaded; an update fetches afresh.
    assert 'const mode = first ? "force-cache" : "reload";' in body
