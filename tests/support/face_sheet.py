"""A contact sheet of the face matrix (docs/face-matrix.png): the screenshots
tests/test_browser_face.py keeps when FACE_SHOTS names a directory, scaled
into one image by Chromium.

    FACE_SHOTS=/tmp/shots .venv-test/bin/python -m pytest tests/test_browser_face.py -k fits
    .venv-test/bin/python -m tests.support.face_sheet /tmp/shots docs/face-matrix.png

and the wall screen and the embed with every option (docs/face-wall.png,
docs/face-embed.png), from a server of its own:

    .venv-test/bin/python -m tests.support.face_sheet --extras docs
"""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from .browser import CHROMIUM_ARGS, system_chromium
from .server import ServerProcess

ORDER = ["phone-portrait", "phone-landscape", "laptop", "4k"]
TILE_HEIGHT = 180  # px of the sheet per screenshot


def sheet_html(shots: Path) -> str:
    rows = []
    for viewport in ORDER:
        cells = []
        for lang in ("en", "ru"):
            for hours in (24, 12):
                png = shots / f"{viewport}-{lang}-{hours}.png"
                data = base64.b64encode(png.read_bytes()).decode()
                cells.append(
                    f'<figure><img src="data:image/png;base64,{data}">'
                    f"<figcaption>{viewport} · {lang} · {hours} h</figcaption></figure>"
                )
        rows.append(f"<div class=row>{''.join(cells)}</div>")
    return (
        "<!doctype html><meta charset=utf-8><style>"
        "body{margin:8px;font:12px sans-serif;background:#ddd}"
        ".row{display:flex;gap:8px;margin-bottom:8px}"
        f"figure{{margin:0}}img{{height:{TILE_HEIGHT}px;display:block;border:1px solid #999}}"
        "figcaption{padding-top:2px}</style>" + "".join(rows)
    )


def main(shots: str, out: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=system_chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 600})
        page.set_content(sheet_html(Path(shots)))
        page.screenshot(path=out, full_page=True)
        browser.close()


# name: (path, viewport, scale); the wall at half scale keeps the PNG small.
EXTRAS = {
    "face-wall": ("/?kiosk=1&lang=ru&until=2027-01-01T00:00", (1920, 1080), 0.5),
    "face-embed": ("/embed?lang=ru&hours=12&diff=1&until=2027-01-01T00:00", (480, 200), 1.0),
}


def extras(out_dir: str) -> None:
    with ServerProcess(Path(tempfile.mkdtemp())) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=system_chromium(), args=CHROMIUM_ARGS)
        for name, (path, (width, height), scale) in EXTRAS.items():
            context = browser.new_context(
                viewport={"width": width, "height": height},
                device_scale_factor=scale,
                timezone_id="Europe/Berlin",
            )
            page = context.new_page()
            page.goto(server.url + path)
            before = page.text_content("#clock")
            page.wait_for_function(
                f"() => document.getElementById('clock').textContent !== {before!r}"
            )
            page.wait_for_function("() => document.getElementById('difference').textContent")
            page.screenshot(path=f"{out_dir}/{name}.png")
            context.close()
        browser.close()


if __name__ == "__main__":
    if sys.argv[1] == "--extras":
        extras(sys.argv[2])
    else:
        main(*sys.argv[1:3])
