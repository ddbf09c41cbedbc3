"""A real `python -m moscow_clock` process on a free loopback port.

Each server runs in its own process group (its own session), so the test
ends the whole group, workers included, however the server itself ended;
every group the tests start is recorded in STARTED for the session-level
check in tests/support/hygiene.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Self

from .timing import scaled

ROOT = Path(__file__).resolve().parents[2]

# How long the whole group gets to end on SIGTERM before it is killed.
TERM_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_members(pgid: int) -> set[int]:
    """Live (not zombie) processes in process group `pgid`, from /proc."""
    members = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.add(int(entry.name))
    return members


def end_group(pgid: int, grace: float = TERM_GRACE_S) -> set[int]:
    """SIGTERM the whole group, then SIGKILL what is left after `grace`
    (scaled) seconds; the members that had to be killed."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return set()
    deadline = time.monotonic() + scaled(grace)
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return left


class ServerProcess:
    def __init__(
        self,
        log_dir: Path,
        port: int | None = None,
        root: Path = ROOT,
        module: str = "moscow_clock",
        **env: str,
    ) -> None:
        # tests.support.shifted_server: the same, its clock moved. A clock
        # state to inject (CLOCK_STATE_FILE) needs the test server that reads it.
        if module == "moscow_clock" and "CLOCK_STATE_FILE" in env:
            module = "tests.support.clock_server"
        self.module = module
        self.port = port or free_port()
        self.root = root  # a copy of the app elsewhere serves that copy (a "deploy")
        self.env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        self.log_path = log_dir / f"server-{self.port}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        # Every process seen in this server's group (workers too): whatever
        # they leave behind in /dev/shm is named after them.
        self.pids: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid  # a session leader: its pid is its group's id

    def start(self, timeout: float = 15.0) -> Self:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=self.root,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, workers included
        )
        STARTED.append(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.end()  # a server that never got ready is not left behind
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=scaled(1)) as response:
                    if response.status == 200:
                        self.pids |= group_members(self.pgid)
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {scaled(timeout)} s:\n{self.log()}")

    def rss_bytes(self) -> int:
        """Resident memory of the server process (WORKERS=1), from /proc."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        (line,) = (row for row in status.splitlines() if row.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def signal(self, signum: int = signal.SIGTERM) -> None:
        """Signal the server process itself (the supervisor when WORKERS > 1)."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; kills (and fails loudly) if it does not stop."""
        assert self.process is not None
        if self.process.poll() is None:
            self.pids |= group_members(self.pgid)
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(timeout))
            except subprocess.TimeoutExpired:
                self.end()
                raise
        if self._log:
            self._log.close()
        return self.process.returncode

    def end(self) -> None:
        """End the whole process group, whatever state the server is in:
        SIGTERM (a supervisor cleans up after its workers), then SIGKILL."""
        if self.process is None:
            return
        self.pids |= group_members(self.pgid)
        end_group(self.pgid)
        self.process.wait()
        if self._log:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.end()


# Every server the tests started, for the session-level check.
STARTED: list[ServerProcess] = []
