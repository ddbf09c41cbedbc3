"""`python -m tests.support.icons DIR`: the app icons, rendered from static/favicon.svg.

Used by `make icons`; the PNGs are committed. Chromium (the browser tests'
own) rasterises the SVG, so there is no image library to install: "any"
icons are the favicon on a transparent square; "maskable" ones put it inside
the central 80 % safe zone on a full-bleed background, so that a launcher's
circle or squircle mask never cuts into the clock.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

from playwright.async_api import async_playwright

from .browser import CHROMIUM_ARGS, system_chromium

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "static" / "favicon.svg"
SIZES = (192, 512)
MASKABLE_BACKGROUND = "#b3121b"  # the accent colour, also the manifest's theme colour
MASKABLE_SCALE = 0.72  # of the icon's width: inside the 80 % safe circle


def icon_html(svg: bytes, size: int, *, maskable: bool) -> str:
    data = base64.b64encode(svg).decode()
    side = round(size * MASKABLE_SCALE) if maskable else size
    background = MASKABLE_BACKGROUND if maskable else "transparent"
    return (
        "<!doctype html><html><body style='margin:0;background:transparent'>"
        f"<div style='width:{size}px;height:{size}px;display:flex;align-items:center;"
        f"justify-content:center;background:{background}'>"
        f"<img src='data:image/svg+xml;base64,{data}' width='{side}' height='{side}'>"
        "</div></body></html>"
    )


async def render_icons(svg: bytes, out_dir: Path) -> list[Path]:
    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=system_chromium(), args=CHROMIUM_ARGS
        )
        for size in SIZES:
            for maskable in (False, True):
                page = await browser.new_page(
                    viewport={"width": size, "height": size}, device_scale_factor=1
                )
                await page.set_content(icon_html(svg, size, maskable=maskable))
                await page.wait_for_function("document.images[0].complete")
                target = out_dir / f"{'maskable' if maskable else 'icon'}-{size}.png"
                await page.screenshot(
                    path=target,
                    omit_background=True,
                    clip={"x": 0, "y": 0, "width": size, "height": size},
                )
                await page.close()
                written.append(target)
        await browser.close()
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.icons DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(render_icons(SOURCE.read_bytes(), out)):
        print(f"wrote {path}")
