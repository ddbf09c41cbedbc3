"""The server's clock as the page says it and as /readyz says it: the same
judgement in every state (issue 19), in real Chromium against real servers.

The clock state is injected (tests/support/clock_server.py reads the state
file); NTP servers are local responders, one of them 5 s off.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from moscow_clock.core.clockstate import ClockState

from .support.browser import watch_console
from .support.clients import get_json
from .support.clockstate import UNSYNCED, write_state
from .support.page import wait_until_synced
from .support.server import ServerProcess
from .support.sntp import Responder
from .support.timing import scaled

pytestmark = pytest.mark.browser

Start = Callable[..., ServerProcess]

SYNCED_12MS = ClockState(synchronized=True, max_error_ms=12.0, estimated_error_ms=1.0)
LARGE_ERROR = ClockState(synchronized=True, max_error_ms=900.0, estimated_error_ms=40.0)

DEVICE = r"Your device clock agrees with the server's \(±\d+(?:\.\d)? ms\)\."
# state: kernel state, NTP responders' offsets (s), settings, /readyz, the
# page's data-state, and its sentence.
STATES: dict[str, tuple[ClockState, tuple[float, ...], dict[str, str], int, str, str]] = {
    "synchronised": (
        SYNCED_12MS,
        (),
        {},
        200,
        "exact",
        r"Your device clock is exact \(±\d+(?:\.\d)? ms\)",
    ),
    "ntp-vouches-for-unsync-kernel": (
        UNSYNCED,
        (0.0,),
        {},
        200,
        "exact",
        r"Your device clock is exact \(±\d+(?:\.\d)? ms\)",
    ),
    "unverified": (
        UNSYNCED,
        (),
        {},
        200,
        "unverified",
        DEVICE + r" The server's own clock is not verified: it may be off by up to 16 s\.",
    ),
    "unverified-strict": (
        UNSYNCED,
        (),
        {"CLOCK_CHECK": "strict"},
        503,
        "unverified",
        DEVICE + r" The server's own clock is not verified: it may be off by up to 16 s\.",
    ),
    "no-majority": (
        UNSYNCED,
        (0.0, 5.0),
        {},
        200,
        "unverified",
        DEVICE + r" The server's own clock is not verified: it may be off by up to 16 s\.",
    ),
    "off-by-ntp": (
        SYNCED_12MS,
        (5.0,),
        {},
        503,
        "server-off",
        DEVICE + r" The server's clock is 5\.00 s behind the reference time\.",
    ),
    "off-by-kernel": (
        LARGE_ERROR,
        (),
        {},
        503,
        "server-off",
        DEVICE + r" The server's clock is not exact: it may be off by up to 900 ms\.",
    ),
}


def readyz(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    return get_json(f"{server.url}/readyz")


@asynccontextmanager
async def ntp_servers(offsets: tuple[float, ...]) -> AsyncIterator[list[Responder]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Responder(offset_s=o)) for o in offsets]


@pytest.mark.parametrize("name", list(STATES))
async def test_the_page_and_readyz_agree(
    browser: Browser, start_server: Start, tmp_path: Path, name: str
) -> None:
    state, offsets, settings, status, page_state, sentence = STATES[name]
    state_file = tmp_path / "clock.json"
    write_state(state_file, state)
    async with ntp_servers(offsets) as responders:
        env = {"CLOCK_STATE_FILE": str(state_file), **settings}
        if responders:
            env |= {"NTP_SERVERS": " ".join(r.address for r in responders), "NTP_INTERVAL": "1"}
        server = start_server(**env)
        # The judgement settles (evidence held for its hysteresis) ...
        deadline = time.monotonic() + scaled(10)
        while (seen := await asyncio.to_thread(readyz, server))[0] != status:
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.05)
        # ... and stays: checked again after the page has loaded and synced.
        page = await browser.new_page()
        problems = watch_console(page, [])
        await page.goto(server.url)
        await wait_until_synced(page)
        await page.wait_for_function(
            "(state) => document.getElementById('accuracy').dataset.state === state",
            arg=page_state,
            timeout=scaled(10_000),
        )
        text = await page.text_content("#accuracy")
        assert text is not None
        assert re.fullmatch(sentence, text), text
        assert (await asyncio.to_thread(readyz, server))[0] == status
        _, api = await asyncio.to_thread(get_json, f"{server.url}/api/time")
        assert api["clock"]["ready"] is (status == 200)
        # Never "exact" unless the server's clock is vouched for.
        exact = text.startswith("Your device clock is exact")
        assert exact is (api["clock"]["status"] == "synchronised")
        await page.close()
    assert problems == []
