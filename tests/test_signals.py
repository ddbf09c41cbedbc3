"""Signals and crashes, with real processes: what each signal does to a single
server and to a supervisor with two workers, and what is left when the
supervisor or a worker is killed outright.

Every server here runs in its own process group, and the whole group is
killed at the end, so a worker that outlives its supervisor (the defect
these tests are about) cannot outlive the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from .support.server import ROOT, ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.server

# Short, so that the bounds below are tight; clients here answer a close at once.
GRACEFUL = "2"
GONE_WITHIN_S = scaled(5.0)  # TEST_TIME_SCALE applied here, once


class GroupServer(ServerProcess):
    """A server in its own process group (the supervisor leads it, the
    workers are in it; ServerProcess starts every server so), ended as a
    group when the test ends."""

    def healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=scaled(1)) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def workers(self) -> list[int]:
        assert self.process is not None
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def kill_group(self) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait()
        if self._log:
            self._log.close()


@pytest.fixture
def start_group(tmp_path: Path) -> Iterator[Callable[..., GroupServer]]:
    started: list[GroupServer] = []

    def start(**env: str) -> GroupServer:
        server = GroupServer(tmp_path, GRACEFUL_TIMEOUT=GRACEFUL, **env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.end()  # SIGTERM to the group, then SIGKILL: nothing outlives the test


def alive(pid: int) -> bool:
    """Running (a zombie, waiting for a parent that is gone, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def metrics_dir_of(worker: int) -> Path:
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    (entry,) = (item for item in environ if item.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    return Path(entry.split(b"=", 1)[1].decode())


def bindable(port: int) -> bool:
    """Whether a restarted server could listen on the port (as Hypercorn
    does, with SO_REUSEADDR: only a live listener is in the way)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


async def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held; fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < timeout, f"not within {timeout} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def connected(server: ServerProcess, count: int) -> list[websockets.ClientConnection]:
    clients = [await websockets.connect(server.ws_url) for _ in range(count)]
    for ws in clients:
        await asyncio.wait_for(ws.recv(), scaled(3))  # the first tick: it is being served
    return clients


async def close_code(ws: websockets.ClientConnection, timeout: float) -> int:
    """1006 (abnormal) when the connection just ended with no close frame."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code if ws.close_code is not None else 1006


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sighup_drains_like_sigterm(
    start_group: Callable[..., GroupServer], workers: str
) -> None:
    """A closing terminal hangs up: clients are told 1001 and the process
    exits 0, instead of dropping them mid-frame."""
    server = start_group(WORKERS=workers)
    clients = await connected(server, 4)
    server.signal(signal.SIGHUP)
    codes = await asyncio.gather(*(close_code(ws, GONE_WITHIN_S) for ws in clients))
    assert codes == [1001] * len(clients)
    assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 0
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2], ids=["USR1", "USR2"])
async def test_sigusr_is_logged_and_ignored(
    start_group: Callable[..., GroupServer], workers: str, signum: signal.Signals
) -> None:
    """Log-rotation tools send SIGUSR1 and expect the service to stay."""
    server = start_group(WORKERS=workers)
    (ws,) = await connected(server, 1)
    server.signal(signum)
    for _ in range(2):  # still ticking, a second and more later
        await asyncio.wait_for(ws.recv(), scaled(3))
    assert server.healthy()
    assert server.process is not None
    assert server.process.poll() is None
    assert f"{signum.name} ignored" in server.log()
    server.signal(signal.SIGTERM)  # and it still drains as usual
    assert await close_code(ws, GONE_WITHIN_S) == 1001
    assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 0


async def test_workers_follow_a_killed_supervisor(
    start_group: Callable[..., GroupServer],
) -> None:
    """SIGKILL (or the OOM killer) takes the supervisor: its workers drain
    their clients with 1001 and exit, the port is free for a restart and
    the shared metrics directory is gone."""
    server = start_group(WORKERS="2")
    workers = server.workers()
    assert len(workers) == 2
    shared = metrics_dir_of(workers[0])
    assert shared.is_dir()
    clients = await connected(server, 6)
    server.signal(signal.SIGKILL)
    codes = await asyncio.gather(*(close_code(ws, GONE_WITHIN_S) for ws in clients))
    assert codes == [1001] * len(clients)
    await wait_until(lambda: not any(alive(pid) for pid in workers), GONE_WITHIN_S)
    assert bindable(server.port)
    await wait_until(lambda: not shared.exists(), scaled(1.0))


async def test_a_new_supervisor_removes_directories_of_dead_ones(
    start_group: Callable[..., GroupServer],
) -> None:
    """A directory left by a supervisor that is gone (and whose workers could
    not clean up) is removed by the next one; a live one's is kept."""
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()
    stale = Path("/dev/shm") / f"moscow-clock-metrics-{gone.pid}-stale0001"  # noqa: S108
    live = Path("/dev/shm") / f"moscow-clock-metrics-{os.getpid()}-live0001"  # noqa: S108
    for path in (stale, live):
        path.mkdir()
        (path / "counter_1.db").write_bytes(b"\0" * 8)
    try:
        server = start_group(WORKERS="2")
        assert not stale.exists()
        assert live.exists()
        own = metrics_dir_of(server.workers()[0])
        assert own.name.startswith(f"moscow-clock-metrics-{server.process.pid}-")  # type: ignore[union-attr]
        server.signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 0
        assert not own.exists()
    finally:
        for path in (stale, live):
            if path.exists():
                (path / "counter_1.db").unlink()
                path.rmdir()


async def test_a_killed_worker_is_replaced_and_the_others_clients_keep_theirs(
    start_group: Callable[..., GroupServer],
) -> None:
    """A worker that dies (SIGKILL, the OOM killer) takes only its own
    clients: a new worker takes its place on the shared socket, the other
    worker's clients keep their connection and their ticks, the supervisor
    keeps running, and /metrics counts the restart."""
    server = start_group(WORKERS="2")
    workers = server.workers()
    assert len(workers) == 2
    victim, survivor = workers
    # Which worker accepts a connection is the kernel's choice: connect until
    # each has clients (the test is about the split).
    clients: list[websockets.ClientConnection] = []
    while {victim, survivor} - {worker_of(ws, workers) for ws in clients}:
        assert len(clients) < 64, "one worker takes every connection"
        clients += await connected(server, 2)
    owners = [worker_of(ws, workers) for ws in clients]
    assert None not in owners, owners
    on_victim = [ws for ws, owner in zip(clients, owners, strict=True) if owner == victim]
    kept = [ws for ws, owner in zip(clients, owners, strict=True) if owner == survivor]
    os.kill(victim, signal.SIGKILL)
    for ws in on_victim:
        assert await close_code(ws, GONE_WITHIN_S) == 1006  # gone with its worker
    for ws in kept:
        await asyncio.wait_for(ws.recv(), scaled(3))
        await asyncio.wait_for(ws.recv(), scaled(3))  # the kill is past: still ticking
    replaced: list[int] = []

    def new_worker() -> bool:
        replaced[:] = [pid for pid in server.workers() if pid not in workers]
        return len(replaced) == 1

    await wait_until(new_worker, GONE_WITHIN_S)
    assert survivor in server.workers()
    assert not alive(victim)
    assert server.process is not None
    assert server.process.poll() is None  # the supervisor is still there
    assert all(ws.close_code is None for ws in kept)  # never dropped
    for ws in kept:
        await asyncio.wait_for(ws.recv(), scaled(3))
    # Newcomers are served (by whichever worker accepts them).
    fresh = await connected(server, 4)
    await wait_until(server.healthy, GONE_WITHIN_S)

    def restart_counted() -> bool:
        return "moscow_clock_worker_restarts_total 1.0" in metrics_text(server)

    await wait_until(restart_counted, GONE_WITHIN_S)
    assert "starting another in 0.5 s" in server.log()
    for ws in [*kept, *fresh]:
        await ws.close()
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 0
    assert "Traceback" not in server.log()


async def test_a_stop_during_a_back_off_is_not_held_up_by_it(
    start_group: Callable[..., GroupServer],
) -> None:
    """SIGTERM right after a worker died (its replacement waiting out a
    back-off, or just started): the workers drain and the supervisor exits
    0, as for any stop."""
    server = start_group(WORKERS="2")
    workers = server.workers()
    os.kill(workers[0], signal.SIGKILL)
    await wait_until(lambda: "starting another in" in server.log(), GONE_WITHIN_S)
    server.signal(signal.SIGTERM)
    assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 0
    assert not any(alive(pid) for pid in workers)


async def test_a_crash_loop_ends_the_supervisor(
    start_group: Callable[..., GroupServer],
) -> None:
    """Workers that keep dying (five within a minute) are not restarted
    forever: the supervisor stops the rest, frees the port, removes the
    metrics directory and exits 1, saying why."""
    server = start_group(WORKERS="2")
    original = server.workers()
    shared = metrics_dir_of(original[0])
    clients = await connected(server, 4)
    killed: set[int] = set()

    def replacements() -> list[int]:
        return [pid for pid in server.workers() if pid not in killed and pid != original[1]]

    target = original[0]
    for death in range(5):
        os.kill(target, signal.SIGKILL)
        killed.add(target)
        if death < 4:
            # Its back-off: 0.5, 1, 2, 4 s, then the worker's start.
            await wait_until(lambda: bool(replacements()), scaled(13.0))
            target = replacements()[0]
    assert await asyncio.to_thread(server.wait, GONE_WITHIN_S) == 1
    codes = await asyncio.gather(*(close_code(ws, GONE_WITHIN_S) for ws in clients))
    assert set(codes) <= {1001, 1006}  # the survivor's clients were told
    assert not alive(original[1])
    assert bindable(server.port)
    assert not shared.exists()
    assert "a crash loop" in server.log()


def worker_of(ws: websockets.ClientConnection, workers: list[int]) -> int | None:
    """The worker holding the server's end of `ws`: the socket from the
    server's port to the client's (/proc/net/tcp), among the workers' fds.
    (Both ports: other processes' connections, a benchmark's say, may use
    the client's port number on their own far ends.)"""
    ends = (ws.remote_address[1], ws.local_address[1])
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(field.split(":")[1], 16) for field in fields[1:3])
        # (An earlier connection from the same port may linger in TIME_WAIT,
        # with inode 0: not this one.)
        if (local, remote) == ends and fields[9] != "0":
            inode = fields[9]
    for pid in workers:
        with suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def metrics_text(server: ServerProcess) -> str:
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(2)) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


def test_a_supervisor_that_fails_to_start_its_workers_cleans_up() -> None:
    """An exception in the supervisor: the workers already started are
    stopped and the metrics directory is removed on the way out."""
    script = (
        "import subprocess, sys\n"
        "from moscow_clock.__main__ import main\n"
        "real = subprocess.Popen\n"
        "started = []\n"
        "def popen(*args, **kwargs):\n"
        "    if started:\n"
        "        raise OSError('no more processes')\n"
        "    started.append(real(*args, **kwargs))\n"
        "    print('DIR', kwargs['env']['PROMETHEUS_MULTIPROC_DIR'], flush=True)\n"
        "    print('WORKER', started[0].pid, flush=True)\n"
        "    return started[0]\n"
        "subprocess.Popen = popen\n"
        "sys.exit(main())\n"
    )
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", "WORKERS": "2"}
    env["GRACEFUL_TIMEOUT"] = GRACEFUL
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    try:
        output, _ = process.communicate(timeout=scaled(20))
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    text = output.decode(errors="replace")
    assert process.returncode != 0, text
    assert "no more processes" in text
    fields = dict(line.split(" ", 1) for line in text.splitlines() if line[:4] in ("DIR ", "WORK"))
    assert not Path(fields["DIR"]).exists(), text
    assert not alive(int(fields["WORKER"])), text
