"""Serving static files compressed (the variants come from assets.py), and
the module graph the page preloads."""

from __future__ import annotations

import re
from pathlib import Path

from quart import Quart, Response, current_app, request
from werkzeug.exceptions import NotFound

from .assets import CODINGS, Variant, is_precompressed, load_variants

_EXTENSION = "moscow_clock.assets"
_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^"';]*?\bfrom\s*["'](\./[\w./-]+\.js)["']""", re.M)


def install(app: Quart, static_dir: Path, entry: str = "js/main.js") -> None:
    """Replaces Quart's static view with one that serves the variants, and
    gives the templates `module_preloads`: every module main.js imports,
    directly or not, so the browser fetches them in one round, not two."""
    app.extensions[_EXTENSION] = load_variants(static_dir)
    app.view_functions["static"] = serve_static
    preloads = tuple(f"/static/{name}" for name in module_graph(static_dir, entry)[1:])
    app.jinja_env.globals["module_preloads"] = preloads


def module_graph(static_dir: Path, entry: str) -> list[str]:
    """`entry` and the modules it imports (static relative imports), in the
    order first reached."""
    seen = [entry]
    for name in seen:
        path = static_dir / name
        if not path.is_file():
            continue
        base = Path(name).parent
        for target in _IMPORT.findall(path.read_text(encoding="utf-8")):
            found = (base / target).as_posix()
            if found not in seen:
                seen.append(found)
    return seen


def _variants() -> dict[str, dict[str, Variant]]:
    found: dict[str, dict[str, Variant]] = current_app.extensions[_EXTENSION]
    return found


def _coding(offered: dict[str, Variant]) -> str | None:
    """The coding to send: the one the client accepts best, ours first among
    equals (Chromium sends `gzip, deflate, br, zstd`, all q=1); None for
    identity."""
    accepted = request.accept_encodings
    best, best_q = None, 0.0
    for coding in CODINGS:
        quality = accepted[coding] if coding in offered else 0
        if quality > best_q:
            best, best_q = coding, quality
    return best


async def serve_static(filename: str) -> Response:
    if is_precompressed(Path(filename)):
        raise NotFound()
    response = await current_app.send_static_file(filename)
    offered = _variants().get(filename)
    if offered is None:
        return response
    response.vary.add("Accept-Encoding")
    if response.status_code != 200 or "Range" in request.headers:
        return response  # a range, or a 304 by date: the identity's answer
    coding = _coding(offered)
    if coding is None:
        return response
    variant = offered[coding]
    response.set_data(variant.data)
    response.headers["Content-Encoding"] = coding
    response.headers.pop("Accept-Ranges", None)
    response.set_etag(variant.etag)
    if request.if_none_match.contains_weak(variant.etag):
        response.set_data(b"")
        response.status_code = 304
        response.headers.pop("Content-Length", None)
    return response
