"""The session-level check (tests/support/hygiene.py) sees what a test run
leaves behind: a live process in a server's group, a metrics directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .support.hygiene import clean_up, find_leaks, metrics_dirs, writers
from .support.server import ROOT, ServerProcess, group_members
from .support.timing import scaled


def _sleeper(tmp_path: Path) -> ServerProcess:
    """A ServerProcess whose "server" is a sleep in its own process group."""
    stand_in = ServerProcess(tmp_path)
    stand_in.process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return stand_in


def test_writers_are_read_from_prometheus_file_names(tmp_path: Path) -> None:
    for name in ("counter_123.db", "gauge_livesum_456.db", "notes.txt", "counter_x.db"):
        (tmp_path / name).touch()
    assert writers(tmp_path) == {123, 456}
    assert writers(tmp_path / "gone") == set()
    named = tmp_path / "moscow-clock-metrics-789-abc123"  # named after its supervisor
    named.mkdir()
    assert writers(named) == {789}


def test_the_check_finds_and_cleans_up_a_leak(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    old = shm / "moscow-clock-metrics-old"  # there before the run: never ours
    old.mkdir()
    before = metrics_dirs(shm)
    server = _sleeper(tmp_path)
    assert server.process is not None
    ours = shm / "moscow-clock-metrics-ours"
    ours.mkdir()
    (ours / f"counter_{server.process.pid}.db").touch()
    (old / f"counter_{server.process.pid}.db").touch()
    theirs = shm / "moscow-clock-metrics-1-theirs"  # another run on the machine
    theirs.mkdir()
    (theirs / "counter_1.db").touch()
    named = shm / f"moscow-clock-metrics-{server.pgid}-empty"  # ours, though nothing in it
    named.mkdir()
    try:
        leaks = find_leaks([server], before, metrics_dirs(shm))
        assert leaks
        assert leaks.processes == {server.pgid: {server.process.pid}}
        assert leaks.directories == [named, ours]
        assert f"server process group {server.pgid} still running" in leaks.report()
        clean_up(leaks)
        server.process.wait(scaled(5))
        assert not group_members(server.pgid)
        assert not ours.exists()
        assert not named.exists()
        assert theirs.exists()
        assert old.exists()
        assert not find_leaks([server], before, metrics_dirs(shm))
    finally:
        server.end()


def test_an_ended_server_leaves_nothing(tmp_path: Path) -> None:
    server = _sleeper(tmp_path)
    server.end()
    assert not find_leaks([server], set(), set())


LEAKY_TEST = """
from tests.support.server import ServerProcess


def test_leaks_on_purpose(tmp_path):
    ServerProcess(tmp_path, WORKERS="2").start()  # and never ended
"""


@pytest.mark.server
def test_a_run_that_leaks_a_server_fails(tmp_path: Path) -> None:
    """A whole pytest run whose only test passes but leaves a WORKERS=2
    server running: the run fails, names the group and the metrics
    directory, and ends and removes them."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.support.hygiene",
            "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
            "--rootdir", str(tmp_path), str(tmp_path / "test_leaky.py"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "1 passed" in output, output  # the test itself passed...
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output  # ...the run did not
    assert "LEAKED BY THE TESTS" in output
    (pgid,) = (int(g) for g in re.findall(r"server process group (\d+) still running", output))
    (directory,) = re.findall(r"metrics directory left behind: (\S+)", output)
    assert not group_members(pgid)  # and both are gone now
    assert not Path(directory).exists()
