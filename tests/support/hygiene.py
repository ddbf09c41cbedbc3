"""The session-level check: nothing a test started outlives the test run.

A server the tests started whose process group still has a live member, or
a /dev/shm/moscow-clock-metrics-* directory that was not there when the run
began and that belongs to one of those servers, fails the suite. A directory
is theirs when its name carries one of their supervisors' pids
(`moscow-clock-metrics-<pid>-...`) or one of their processes wrote a file in
it (prometheus_client names them `<kind>_<pid>.db`); directories from other
runs on the same machine are told apart so, and never count.
Whatever is found is reported, then ended or removed, so one leak does not
pile up over runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .server import STARTED, ServerProcess, end_group, group_members

METRICS_DIRS = Path("/dev/shm")  # noqa: S108 (where the supervisor puts them)
METRICS_GLOB = "moscow-clock-metrics-*"
_PID_FILE = re.compile(r"_(\d+)\.db$")
_OWNER = re.compile(r"^moscow-clock-metrics-(\d+)-")


def metrics_dirs(parent: Path = METRICS_DIRS) -> set[Path]:
    return set(parent.glob(METRICS_GLOB))


def writers(directory: Path) -> set[int]:
    """The pids that made `directory` (its name) or wrote metrics files into it."""
    owner = {int(match[1])} if (match := _OWNER.match(directory.name)) else set()
    try:
        names = [entry.name for entry in directory.iterdir()]
    except OSError:
        return owner
    return owner | {int(found[1]) for name in names if (found := _PID_FILE.search(name))}


@dataclass
class Leaks:
    processes: dict[int, set[int]] = field(default_factory=dict)  # pgid -> live pids
    directories: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.directories)

    def report(self) -> str:
        lines = [
            f"server process group {pgid} still running: pids {sorted(pids)}"
            for pgid, pids in sorted(self.processes.items())
        ]
        lines += [f"metrics directory left behind: {path}" for path in self.directories]
        return "\n".join(lines)


def find_leaks(servers: Iterable[ServerProcess], before: set[Path], after: set[Path]) -> Leaks:
    """What the given servers left: live group members, and new metrics
    directories written by any process ever seen in their groups."""
    leaks = Leaks()
    ours: set[int] = set()
    for server in servers:
        if server.process is None:
            continue
        live = group_members(server.pgid)
        server.pids |= live
        ours |= server.pids | {server.pgid}
        if live:
            leaks.processes[server.pgid] = live
    leaks.directories = sorted(path for path in after - before if writers(path) & ours)
    return leaks


def clean_up(leaks: Leaks) -> None:
    for pgid in leaks.processes:
        end_group(pgid, grace=1.0)
    for path in leaks.directories:
        shutil.rmtree(path, ignore_errors=True)


# --- as a pytest plugin (tests/conftest.py imports these hooks) -------------

_BEFORE = pytest.StashKey[set[Path]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = metrics_dirs()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_BEFORE, set())
    leaks = find_leaks(STARTED, before, metrics_dirs())
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"the tests left these behind (now ended/removed):\n{leaks.report()}"
    if reporter is not None:
        reporter.write_sep("=", "LEAKED BY THE TESTS", red=True, bold=True)
        reporter.write_line(message)
    else:
        print(message)
    clean_up(leaks)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
