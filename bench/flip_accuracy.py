"""How close to the true second boundary does the page flip?

Starts a real server, opens the page in Chromium under each scenario (device
clock skewed with Playwright's page.clock, network delayed by a TCP proxy),
records every flip of the displayed second for a while, and prints the flip
error against the true boundary: median, p90 of |error|, worst.

    make bench-accuracy            # or: python -m bench.flip_accuracy --seconds 20 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from tests.support.browser import CHROMIUM_ARGS, system_chromium
from tests.support.delay_proxy import DelayProxy
from tests.support.page import RECORD_FLIPS, Flip, recorded_flips, wait_until_synced
from tests.support.server import ServerProcess


@dataclass(frozen=True)
class Scenario:
    name: str
    skew_s: float
    delay_s: float


SCENARIOS = [
    Scenario("loopback, device clock right", 0.0, 0.0),
    Scenario("loopback, device clock +1 h", 3600.0, 0.0),
    Scenario("loopback, device clock -37 s", -37.0, 0.0),
    Scenario("150 ms each way, device clock +1 h", 3600.0, 0.150),
    Scenario("150 ms each way, device clock -37 s", -37.0, 0.150),
]


@contextlib.asynccontextmanager
async def entry(server: ServerProcess, delay_s: float) -> AsyncIterator[str]:
    if not delay_s:
        yield server.url
        return
    async with DelayProxy(server.port, delay_s) as proxy:
        yield proxy.url


async def measure(
    browser: Browser, server: ServerProcess, scenario: Scenario, seconds: float
) -> list[Flip]:
    async with entry(server, scenario.delay_s) as url:
        page = await browser.new_page()
        await page.add_init_script(RECORD_FLIPS)
        if scenario.skew_s:
            await page.clock.install(time=datetime.now(UTC) + timedelta(seconds=scenario.skew_s))
        await page.goto(url)
        await wait_until_synced(page, timeout_ms=30000)
        await page.evaluate("window.__flips.length = 0")
        await asyncio.sleep(seconds)
        flips = await recorded_flips(page)
        await page.close()
    return flips


def summary(errors: list[float]) -> str:
    absolute = sorted(abs(e) for e in errors)
    p90 = absolute[min(len(absolute) - 1, int(0.9 * len(absolute)))]
    return (
        f"median {statistics.median(errors):+7.1f} ms   p90 |err| {p90:6.1f} ms   "
        f"worst {max(errors, key=abs):+7.1f} ms   n={len(errors)}"
    )


async def main(seconds: float, runs: int) -> None:
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"each scenario: {runs} page loads x {seconds:.0f} s of flips")
    with tempfile.TemporaryDirectory() as logs, ServerProcess(Path(logs), ACCESS_LOG="0") as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=system_chromium(), args=CHROMIUM_ARGS
            )
            print(f"browser: Chromium {browser.version}")
            for scenario in SCENARIOS:
                errors: list[float] = []
                for _ in range(runs):
                    flips = await measure(browser, server, scenario, seconds)
                    errors.extend(flip.error_ms for flip in flips)
                print(f"{scenario.name:38s} {summary(errors)}")
            await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="flips watched per page load")
    parser.add_argument("--runs", type=int, default=3, help="page loads per scenario")
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.runs))
