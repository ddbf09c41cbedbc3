"""The installable, offline shell: the web app manifest and the service worker.

The worker caches static files cache-first under this deploy's *shell
version*, a hash of everything in static/ taken at start-up. The version is
rendered into /sw.js, so a deploy that changes any static file changes the
worker's bytes; browsers check /sw.js on every visit (it is `no-cache`), see
the change, install the new worker (which fetches the new files into a new
cache) and drop the old cache. Every HTML response also names the version in
`X-Shell-Version`, so an old worker meeting a newer page stops answering from
its cache at once rather than serving the old JavaScript for one more load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from quart import Blueprint, Quart, Response, current_app, render_template, request

from .assets import is_precompressed
from .l10n import languages

SHELL_VERSION_HEADER = "X-Shell-Version"
MANIFEST_TYPE = "application/manifest+json"
# Revalidate on every use: an update must be seen at the next visit.
REVALIDATE = {"Cache-Control": "no-cache"}
ICONS = "/static/icons/"

blueprint = Blueprint("pwa", __name__)


@dataclass(frozen=True)
class Shell:
    """What the service worker caches, and the version that names the cache."""

    version: str
    static_urls: tuple[str, ...]


def static_shell(static_dir: Path, url_prefix: str = "/static") -> Shell:
    """Hash every (non-hidden) file under static_dir, names and contents."""
    files = sorted(
        path
        for path in static_dir.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.parts)
        and not is_precompressed(path)  # the image build's .gz/.br beside a file
    )
    digest = hashlib.sha256()
    urls = []
    for path in files:
        name = path.relative_to(static_dir).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        urls.append(f"{url_prefix}/{name}")
    return Shell(version=digest.hexdigest()[:16], static_urls=tuple(urls))


def register_shell(app: Quart, static_dir: Path) -> None:
    app.extensions["moscow_clock.shell"] = static_shell(static_dir)
    app.register_blueprint(blueprint)


def current_shell() -> Shell:
    shell: Shell = current_app.extensions["moscow_clock.shell"]
    return shell


@blueprint.get("/manifest.webmanifest")
async def manifest() -> tuple[str, int, dict[str, str]]:
    # Linked with the page's explicit ?lang=, the app starts in that language;
    # otherwise the manifest, like the page, follows Accept-Language.
    wanted = request.args.get("lang", "").strip().lower()
    start_lang = wanted if wanted in languages() else None
    body = await render_template("manifest.webmanifest", start_lang=start_lang)
    return body, 200, {"Content-Type": MANIFEST_TYPE, **REVALIDATE}


@blueprint.get("/sw.js")
async def service_worker() -> tuple[str, int, dict[str, str]]:
    """Served from the root so that its scope is the whole site."""
    shell = current_shell()
    # The app icons are for the browser's install UI, not the offline page:
    # cached when first used, not downloaded by every install.
    precache = ["/", *(url for url in shell.static_urls if not url.startswith(ICONS))]
    body = await render_template("sw.js", version=shell.version, precache=precache)
    return body, 200, {"Content-Type": "text/javascript; charset=utf-8", **REVALIDATE}


@blueprint.after_app_request
async def _name_the_shell_version(response: Response) -> Response:
    if response.mimetype == "text/html":
        response.headers[SHELL_VERSION_HEADER] = current_shell().version
    return response
