"""`python -m tests.support.screenshot PATH`: the live page, rendered by Chromium.

Used by `make screenshot` for the README; starts its own server on a free port.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from .browser import CHROMIUM_ARGS, system_chromium
from .page import wait_until_synced
from .server import ServerProcess


async def screenshot(path: Path) -> None:
    with tempfile.TemporaryDirectory() as logs, ServerProcess(Path(logs)) as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=system_chromium(), args=CHROMIUM_ARGS
            )
            variants = (
                ("light", "/", path),
                ("dark", "/", path.with_stem(f"{path.stem}-dark")),
                # A wall screen: no controls, no cursor, the screen kept on.
                ("dark", "/?kiosk=1", path.with_stem(f"{path.stem}-kiosk")),
            )
            for scheme, where, target in variants:
                page = await browser.new_page(
                    viewport={"width": 1280, "height": 720}, color_scheme=scheme
                )
                await page.goto(f"{server.url}{where}")
                await wait_until_synced(page)
                await page.screenshot(path=target)
                print(f"wrote {target}")
            await browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.support.screenshot PATH.png")
    asyncio.run(screenshot(Path(sys.argv[1])))
