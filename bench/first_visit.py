"""A first visit in Chromium: how many requests and bytes until the page is
live and its service worker has cached the offline copy.

    python -m bench.first_visit [--checkout DIR] [--runs 3] [--rtt-ms 300]

A fresh browser context (empty HTTP cache, no worker) opens `/`, waits for
the page's status to say "Live" and for the service worker to control the
page, then until no request has finished for 2 s. Counted: every HTTP request
of the page and of its service worker (the websocket is not one), with the
bytes on the wire (response headers and the body as transferred, i.e.
compressed where it was); requests the HTTP cache answered are counted
apart. `--checkout` serves another tree (main, to compare in the same run);
`--rtt-ms` puts a delay proxy (tests/support/delay_proxy.py) in between.
Numbers: docs/page-delivery.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

from playwright.async_api import Request, async_playwright

from bench.run import ROOT, free_port, machine, wait_ready
from tests.support.browser import CHROMIUM_ARGS, system_chromium
from tests.support.delay_proxy import DelayProxy

QUIET_S = 2.0


async def visit(port: int, rtt_ms: float) -> dict[str, object]:
    if rtt_ms <= 0:
        return await _visit(f"http://127.0.0.1:{port}")
    async with DelayProxy(port, rtt_ms / 2000) as proxy:
        return await _visit(proxy.url)


async def _visit(url: str) -> dict[str, object]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=system_chromium(), args=CHROMIUM_ARGS
        )
        context = await browser.new_context()
        finished: list[tuple[str, str, int, bool]] = []
        last = [time.monotonic()]

        async def on_finished(request: Request) -> None:
            sizes = await request.sizes()
            response = await request.response()
            size = sizes["responseHeadersSize"] + sizes["responseBodySize"]
            worker = request.service_worker is not None
            status = response.status if response else 0
            finished.append((request.url.replace(url, ""), f"{status}", size, worker))
            last[0] = time.monotonic()

        context.on("requestfinished", on_finished)
        page = await context.new_page()
        started = time.monotonic()
        await page.goto(url, wait_until="commit")
        await page.wait_for_function(
            "() => (document.getElementById('status')?.dataset.state ?? 'static') !== 'static'",
            timeout=30000,
            polling=10,
        )
        script_s = time.monotonic() - started  # the page's script has taken over
        await page.wait_for_function(
            "() => document.getElementById('status').dataset.state === 'live'", timeout=30000
        )
        live_s = time.monotonic() - started
        await page.wait_for_function(
            "() => navigator.serviceWorker.controller !== null", timeout=30000
        )
        # Quiet for QUIET_S: no event says "nothing happened", so look again.
        while (quiet := time.monotonic() - last[0]) < QUIET_S:  # noqa: ASYNC110
            await asyncio.sleep(QUIET_S - quiet)
        await context.close()
        await browser.close()
    by_whom = Counter("worker" if worker else "page" for *_, worker in finished)
    # A request answered from the HTTP cache (the worker's first install reads
    # the files the page has just loaded) moves no bytes: not on the wire.
    wire = [entry for entry in finished if entry[2] > 0]
    return {
        "requests": len(wire),
        "from_cache": len(finished) - len(wire),
        "bytes": sum(size for _, _, size, _ in finished),
        "by_whom": dict(by_whom),
        "script_s": round(script_s, 3),
        "live_s": round(live_s, 3),
        "list": finished,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, action="append", default=[])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=0, help="a delay proxy's round trip")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trees = [ROOT, *args.checkout]
    print(f"# {machine()}")
    results: dict[str, list[dict[str, object]]] = {}
    for tree in trees:
        port = free_port()
        server = subprocess.Popen(
            [str(ROOT / ".venv-test/bin/python"), "-m", "moscow_clock"],
            cwd=tree,
            env={"PORT": str(port), "HOST": "127.0.0.1", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(port)
            runs = [asyncio.run(visit(port, args.rtt_ms)) for _ in range(args.runs)]
        finally:
            server.terminate()
            server.wait(timeout=15)
        results[str(tree)] = runs
        requests = statistics.median(int(str(r["requests"])) for r in runs)
        size = statistics.median(int(str(r["bytes"])) for r in runs)
        live = statistics.median(float(str(r["live_s"])) for r in runs)
        script = statistics.median(float(str(r["script_s"])) for r in runs)
        print(
            f"{tree}: {requests:.0f} requests, {size / 1000:.1f} kB on the wire "
            f"(median of {args.runs}; {runs[0]['from_cache']} more from the HTTP cache; "
            f"by whom {runs[0]['by_whom']}); script running after {script:.2f} s, "
            f"live after {live:.2f} s (medians; round trip {args.rtt_ms:.0f} ms)"
        )
        for path, status, size_b, worker in runs[0]["list"]:  # type: ignore[attr-defined]
            print(f"    {'sw ' if worker else '   '}{status} {size_b:7d} {path}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
