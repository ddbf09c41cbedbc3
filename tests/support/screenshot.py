"""`python -m tests.support.screenshot PATH`: the live page, rendered by Chromium.

Used by `make screenshot` for the README; starts its own server on a free port.
Writes PATH (light), PATH-dark, PATH-kiosk (a wall screen: no controls, no
cursor, the screen kept on), PATH-ru (Russian) and PATH-embed (the /embed
widget framed by a page, as another site would show it).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from .browser import CHROMIUM_ARGS, system_chromium
from .page import wait_until_synced
from .server import ServerProcess

# (file suffix, colour scheme, path, Accept-Language)
SHOTS = [
    ("", "light", "/", "en-US,en;q=0.9"),
    ("-dark", "dark", "/", "en-US,en;q=0.9"),
    ("-kiosk", "dark", "/?kiosk=1", "en-US,en;q=0.9"),
    ("-ru", "light", "/", "ru-RU,ru;q=0.9"),
]

EMBED_PARENT = """<!doctype html><html lang="en"><head><title>Another site</title></head>
<body style="margin:0;padding:24px;background:#e8eef3;font:16px system-ui,sans-serif">
<p style="margin:0 0 12px">Another site, with the clock in an <code>&lt;iframe&gt;</code>:</p>
<iframe src="{url}/embed?lang=ru" width="420" height="170" title="Moscow time"
        style="border:0;border-radius:8px;box-shadow:0 1px 4px #0003"></iframe>
</body></html>"""


async def shoot(browser: Browser, url: str, path: Path) -> None:
    for suffix, scheme, route, languages in SHOTS:
        target = path.with_stem(f"{path.stem}{suffix}")
        context = await browser.new_context(
            viewport={"width": 1280, "height": 720},
            color_scheme=scheme,  # type: ignore[arg-type]
            extra_http_headers={"Accept-Language": languages},
        )
        page = await context.new_page()
        await page.goto(url + route)
        await wait_until_synced(page)
        await page.screenshot(path=target)
        await context.close()
        print(f"wrote {target}")
    # The embed, framed by a page from "another site" (served by route here).
    context = await browser.new_context(viewport={"width": 468, "height": 250})
    page = await context.new_page()
    parent = f"{url}/screenshot-parent"
    html = EMBED_PARENT.format(url=url)
    await page.route(parent, lambda route: route.fulfill(body=html, content_type="text/html"))
    await page.goto(parent)
    frame = page.frame_locator("iframe")
    await frame.locator("#clock").wait_for()
    await page.wait_for_timeout(1500)  # synced and ticking
    target = path.with_stem(f"{path.stem}-embed")
    await page.screenshot(path=target)
    await context.close()
    print(f"wrote {target}")


async def screenshot(path: Path) -> None:
    with tempfile.TemporaryDirectory() as logs, ServerProcess(Path(logs)) as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=system_chromium(), args=CHROMIUM_ARGS
            )
            await shoot(browser, server.url, path)
            await browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.screenshot PATH.png")
    asyncio.run(screenshot(Path(sys.argv[1])))
