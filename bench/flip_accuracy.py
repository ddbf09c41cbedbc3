"""How close to the true second boundary does the page flip?

Starts a real server, opens the page in Chromium under each scenario (device
clock skewed with Playwright's page.clock, network delayed by a TCP proxy),
records every flip of the displayed second for a while, and prints the flip
error against the true boundary: median, p90 of |error|, worst.

    make bench-accuracy            # or: python -m bench.flip_accuracy --seconds 20 --runs 3

With `--load 10000` the server (pinned to core 0) also holds that many other
websocket clients from bench/loadgen.py (on core 1, beside Chromium), so the
page's sync samples compete with the tick fan-out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from bench.run import clients_now, raise_open_files
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


@contextlib.contextmanager
def background_load(server: ServerProcess, clients: int) -> Iterator[None]:
    """`clients` other websocket clients, connected before the pages open."""
    if not clients:
        yield
        return
    assert server.process is not None
    os.sched_setaffinity(server.process.pid, {0})
    generators = [
        subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen",
             "--port", str(server.port), "--clients", str(clients // 2),
             "--rate", "1000", "--settle", "0", "--seconds", "100000", "--sync-every", "0"],
            stdout=subprocess.DEVNULL,
            preexec_fn=raise_open_files,
        )
        for _ in range(2)
    ]  # fmt: skip
    time.sleep(clients / 2000 + 3)
    print(f"background: {clients_now(server.port)} websocket clients on the server")
    try:
        yield
    finally:
        for generator in generators:
            generator.kill()
            generator.wait()


async def main(seconds: float, runs: int, load: int, scenarios: list[Scenario]) -> None:
    print(f"machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"each scenario: {runs} page loads x {seconds:.0f} s of flips")
    raise_open_files()
    env = {"ACCESS_LOG": "0", "MAX_CONNECTIONS": str(load + 1000)}
    with (
        tempfile.TemporaryDirectory() as logs,
        ServerProcess(Path(logs), **env) as server,
        background_load(server, load),
    ):
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=system_chromium(), args=CHROMIUM_ARGS
            )
            print(f"browser: Chromium {browser.version}")
            for scenario in scenarios:
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
    parser.add_argument("--load", type=int, default=0, help="other websocket clients meanwhile")
    parser.add_argument(
        "--scenarios", default="all", help="comma list of scenario numbers (1-5), or all"
    )
    args = parser.parse_args()
    chosen = (
        SCENARIOS
        if args.scenarios == "all"
        else [SCENARIOS[int(n) - 1] for n in args.scenarios.split(",")]
    )
    asyncio.run(main(args.seconds, args.runs, args.load, chosen))
