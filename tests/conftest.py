"""Shared fixtures: the app with a fixed clock, real servers, a real browser."""

from __future__ import annotations

import os
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
from .support.hygiene import pytest_sessionfinish, pytest_sessionstart
from .support.server import ServerProcess
from .support.timing import SCALE

# The session-level check (tests/support/hygiene.py): a server process or a
# metrics directory that outlives the run fails the suite.
__all__ = ["pytest_sessionfinish", "pytest_sessionstart"]

# No example database in the work tree, and no per-example deadline: these
# machines are shared, and a slow example is not a wrong one.
hypothesis.settings.register_profile("project", database=None, deadline=None)
hypothesis.settings.load_profile("project")

# 2026-11-26 22:40:05.250 Moscow time (19:40:05.250 UTC).
FIXED_MS = 1795722005250.0


# A well-synchronised server clock, for tests that are not about the clock's health.
SYNCED = ClockState(synchronized=True, max_error_ms=12.0, estimated_error_ms=1.5)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """TEST_TIME_SCALE scales pytest-timeout's per-test limit too (unless it
    is given on the command line or in PYTEST_TIMEOUT)."""
    given = config.getoption("timeout", None) is not None or os.environ.get("PYTEST_TIMEOUT")
    if SCALE != 1 and not given and (ini := config.getini("timeout")):
        config.option.timeout = float(ini) * SCALE


@pytest.fixture
def app() -> Quart:
    return create_app(clock=lambda: FIXED_MS, clock_source=lambda: SYNCED)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start real servers (`start_server(PORT=..., WORKERS=...)`); each one's
    whole process group is ended at the end (SIGTERM, then SIGKILL)."""
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
        server.end()


@pytest.fixture
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A fresh server of the test's own: for a test that stops, signals or
    counts on it. A read-only case takes `shared_server` instead."""
    return start_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One default server for a module's read-only cases: ones that cannot
    change its state (no stop or signal, no settings of their own, no exact
    counts of what it has seen). Its log is checked by every case that reads it."""
    with ServerProcess(tmp_path_factory.mktemp("shared-server")) as server:
        yield server


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
SLOW_FIXTURES = {
    "start_server": "server",
    "server": "server",
    "shared_server": "server",
    "browser": "browser",
}


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
