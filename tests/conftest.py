"""Shared fixtures: the app with a fixed clock, real servers, a real browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import hypothesis
import pytest
from playwright.async_api import Browser, Error, async_playwright
from quart import Quart

from moscow_clock import create_app
from moscow_clock.core.clockstate import ClockState

from .support.browser import CHROMIUM_ARGS, browser_required, system_chromium
from .support.containers import images_required
from .support.server import ServerProcess

# No example database in the work tree, and no per-example deadline: these
# machines are shared, and a slow example is not a wrong one.
hypothesis.settings.register_profile("project", database=None, deadline=None)
hypothesis.settings.load_profile("project")

# 2026-11-26 22:40:05.250 Moscow time (19:40:05.250 UTC).
FIXED_MS = 1795722005250.0


# A well-synchronised server clock, for tests that are not about the clock's health.
SYNCED = ClockState(synchronized=True, max_error_ms=12.0, estimated_error_ms=1.5)


@pytest.fixture
def app() -> Quart:
    return create_app(clock=lambda: FIXED_MS, clock_source=lambda: SYNCED)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers (`start_server(PORT=..., WORKERS=...)`); all are killed at the end."""
    started: list[ServerProcess] = []

    def start(
        port: int | None = None,
        root: Path | None = None,
        module: str = "moscow_clock",
        **env: str,
    ) -> ServerProcess:
        extra = {"root": root} if root else {}
        server = ServerProcess(tmp_path, port=port, module=module, **extra, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        try:
            launched = await playwright.chromium.launch(
                executable_path=system_chromium(), args=CHROMIUM_ARGS
            )
        except Error as error:
            message = f"no Chromium to drive ({error.message.splitlines()[0]})"
            if browser_required():
                pytest.fail(f"{message}; install Debian's chromium (REQUIRE_BROWSER/CI set)")
            pytest.skip(f"{message}; run `apt-get install chromium` to run browser tests")
        yield launched
        await launched.close()


# A test that uses one of these fixtures is in the slow tier whatever its module says,
# so `make check` (-m "not server and not browser and not image") stays fast.
SLOW_FIXTURES = {"start_server": "server", "server": "server", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in SLOW_FIXTURES:
                item.add_marker(SLOW_FIXTURES[fixture])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """In CI nothing may skip: a skipped test is a test that did not run."""
    report: pytest.TestReport = yield
    if report.skipped and (browser_required() or images_required()):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"
    return report
