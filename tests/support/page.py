"""Watching the clock page from outside: when did the displayed second flip?"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime

from playwright.async_api import Page

from .timing import scaled

# Runs before the page's own scripts: logs every change of <time id="clock">
# with the page's Date.now() (which page.clock may skew; see page_clock_skew_ms).
RECORD_FLIPS = """
window.__flips = [];
document.addEventListener("DOMContentLoaded", () => {
  const clock = document.getElementById("clock");
  new MutationObserver(() => {
    window.__flips.push([Date.now(), clock.dateTime, clock.textContent]);
  }).observe(clock, { childList: true, characterData: true, subtree: true });
});
"""


@dataclass(frozen=True)
class Flip:
    at_ms: float  # real (machine) time the text changed
    second_ms: float  # true start of the second it then showed
    text: str

    @property
    def error_ms(self) -> float:
        """How late (+) or early (-) the flip was against the true boundary."""
        return self.at_ms - self.second_ms


async def page_clock_skew_ms(page: Page, samples: int = 7) -> float:
    """The page's Date.now() minus the machine's time, from the tightest of a
    few bracketed reads (NTP-style, like the page itself)."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        before = time.time() * 1000
        page_now = float(await page.evaluate("Date.now()"))
        after = time.time() * 1000
        if best is None or after - before < best[0]:
            best = (after - before, page_now - (before + after) / 2)
    assert best is not None
    return best[1]


async def recorded_flips(page: Page) -> list[Flip]:
    skew = await page_clock_skew_ms(page)
    raw = await page.evaluate("window.__flips")
    return [
        Flip(
            at_ms=page_ms - skew,
            second_ms=datetime.fromisoformat(iso).timestamp() * 1000,
            text=text,
        )
        for page_ms, iso, text in raw
    ]


async def wait_until_synced(page: Page, timeout_ms: float = 15000) -> None:
    """Live, and a full sync burst done (the device-clock line is filled in)."""
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'live'"
        " && document.getElementById('accuracy').textContent !== ''",
        timeout=scaled(timeout_ms),
    )


def median_error_ms(flips: list[Flip]) -> float:
    return statistics.median(flip.error_ms for flip in flips)
