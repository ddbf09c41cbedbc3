"""WORKERS > 1: one socket, shared by that many copies of the single-process server.

The workers must not outlive the supervisor, however it ends: a worker left
serving the port keeps a restarted service from binding it. Each worker
holds the read end of a pipe whose write end only the supervisor has; the
kernel closes that end when the supervisor exits for any reason (SIGKILL and
the OOM killer included), and the worker, reading end-of-file, drains its
websockets with 1001 and exits. A pipe rather than `PR_SET_PDEATHSIG`: it is
portable, survives exec, needs no `preexec_fn` (unsafe with threads), and
the worker can drain gracefully instead of being killed.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from hypercorn.config import Config
from prometheus_client import multiprocess

from ..core.config import Settings
from ..core.workers import CRASH_LOOP_DEATHS, CRASH_LOOP_WINDOW_S, RESTARTS_FILE, Restarts

log = logging.getLogger("moscow_clock.server")

# SIGHUP as well: a closing terminal (or an ssh session that drops) hangs
# up; the service then drains like on SIGTERM rather than dying mid-frame.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Log-rotation tools and the like send these expecting the process to stay:
# logs go to stdout, there is nothing to reopen, so they are logged and ignored.
IGNORED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)

METRICS_PREFIX = "moscow-clock-metrics-"
# moscow-clock-metrics-<supervisor pid>-<random>
_METRICS_DIR = re.compile(rf"^{re.escape(METRICS_PREFIX)}(\d+)-")
# Past GRACEFUL_TIMEOUT: the workers' hard deadline (1 s) and last-resort
# exit (3 s), with a second to spare.
_WORKER_EXIT_EXTRA_S = 1.0 + 3.0 + 1.0


class Lifeline:
    """A worker's end of the pipe to its supervisor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.gone = threading.Event()

    def watch(self, on_gone: Callable[[], None]) -> None:
        """Call `on_gone` (from a thread, so a busy loop cannot delay it) once
        the supervisor has exited."""

        def wait() -> None:
            with suppress(OSError):
                while os.read(self.fd, 64):
                    pass
            log.warning("the supervisor is gone; stopping")
            self.gone.set()
            on_gone()

        threading.Thread(target=wait, name="moscow-clock-lifeline", daemon=True).start()


def supervise(settings: Settings, config: Config) -> int:
    """Bind once and share the socket with WORKERS copies of this server.

    Each worker is a plain single-process server on the inherited socket
    (`LISTEN_FD`, and `METRICS_FD` for a metrics listener), with its own
    ticker and its own graceful drain; the supervisor forwards the stop
    signals and exits 0 once they all have. A worker that dies is started
    again after a back-off (core/workers.py), the others and their clients
    untouched; a crash loop stops them all and the supervisor exits 1, for
    the orchestrator to restart the whole service.
    """
    sockets = config.create_sockets().insecure_sockets
    remove_stale_metrics_dirs()
    metrics_dir = _shared_metrics_dir()
    lifeline, keep_alive = os.pipe()  # neither end is inherited unless passed
    env = {
        **os.environ,
        "LISTEN_FD": str(sockets[0].fileno()),
        # The count, so that each worker knows its share of the memory; with
        # LISTEN_FD set a worker serves, it does not supervise.
        "WORKERS": str(settings.workers),
        "SUPERVISOR_FD": str(lifeline),
    }
    if len(sockets) > 1:
        env["METRICS_FD"] = str(sockets[1].fileno())
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    workers: dict[int, tuple[subprocess.Popen[bytes], float]] = {}  # pid -> (process, started)
    stopping = False
    # Woken by any signal with a handler here (SIGCHLD included), so that
    # waiting out a back-off still notices a stop or a death at once.
    wake, wake_up = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def stop(_signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process, _ in workers.values():
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    def ignore(signum: int, _frame: object) -> None:
        log.info("%s ignored (logs go to stdout: nothing to reopen)", signal.Signals(signum).name)

    def start_worker() -> int:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and entry module)
            [sys.executable, "-m", _entry_module()],
            env=env,
            pass_fds=(*(sock.fileno() for sock in sockets), lifeline),
        )
        workers[process.pid] = (process, time.monotonic())
        return process.pid

    exit_code = 0
    restarts = Restarts()
    due: list[float] = []  # when each replacement is to start (monotonic)
    previous_wakeup: int | None = None  # set once the wake-up fd is ours
    try:
        # Handlers first, so a signal during start-up is not lost; exec
        # resets them to the default in the workers, which install their own.
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        for signum in IGNORED_SIGNALS:
            signal.signal(signum, ignore)
        signal.signal(signal.SIGCHLD, _wake_only)
        previous_wakeup = signal.set_wakeup_fd(wake_up)
        for _ in range(settings.workers):
            start_worker()
            if stopping:
                stop()
        log.info("supervising %d workers on %s", len(workers), settings.bind)

        while workers or (due and not stopping):
            for pid, code in _reaped():
                entry = workers.pop(pid, None)
                if entry is None:
                    continue
                process, started = entry
                process.returncode = code  # reaped here, not by Popen
                if metrics_dir is not None:
                    _forget(pid, metrics_dir)
                if stopping:
                    continue
                now = time.monotonic()
                backoff = restarts.died(now, now - started)
                if backoff is None:
                    log.error(
                        "worker %d exited with %d, the %dth death within %.0f s: a crash "
                        "loop; stopping the others and exiting",
                        pid,
                        code,
                        CRASH_LOOP_DEATHS,
                        CRASH_LOOP_WINDOW_S,
                    )
                    exit_code = 1
                    stop()
                    continue
                log.error(
                    "worker %d exited with %d after %.1f s; starting another in %.1f s",
                    pid,
                    code,
                    now - started,
                    backoff,
                )
                due.append(now + backoff)
            if stopping:
                due.clear()
            now = time.monotonic()
            while due and min(due) <= now:
                due.remove(min(due))
                pid = start_worker()
                restarts.count += 1
                if metrics_dir is not None:
                    _write_restarts(metrics_dir, restarts.count)
                log.info("started worker %d in place of one that died", pid)
                if stopping:  # the stop came while it was starting: it goes too
                    stop()
            if not workers and not due:
                break
            select.select([wake], [], [], max(0.0, min(due) - now) if due else None)
            with suppress(BlockingIOError):
                while os.read(wake, 512):
                    pass
    finally:
        # Normally nothing is left; after an exception, closing the lifeline
        # tells the workers too, and they are given their drain to go.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if previous_wakeup is not None:
            signal.set_wakeup_fd(previous_wakeup)
        os.close(lifeline)
        os.close(keep_alive)
        _reap(
            {pid: process for pid, (process, _) in workers.items()},
            settings.graceful_timeout + _WORKER_EXIT_EXTRA_S,
        )
        os.close(wake)
        os.close(wake_up)
        for sock in sockets:
            sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code


def _wake_only(_signum: int, _frame: object) -> None:
    """A child ended: the wake-up fd has the news (the loop reaps it)."""


def _reaped() -> list[tuple[int, int]]:
    """(pid, exit code: negative for a signal) of every child that ended."""
    ended = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        ended.append((pid, os.waitstatus_to_exitcode(status)))
    return ended


def _forget(pid: int, metrics_dir: str) -> None:
    """A dead worker's live gauges leave the shared metrics (its counters
    stay: what it counted happened); it could not do this itself if killed."""
    with suppress(OSError):
        multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]


def _write_restarts(metrics_dir: str, count: int) -> None:
    """The restart count, where every worker's /metrics reads it."""
    path = Path(metrics_dir) / RESTARTS_FILE
    temporary = path.with_name(f".{RESTARTS_FILE}.tmp")
    with suppress(OSError):
        temporary.write_text(f"{count}\n")
        os.replace(temporary, path)


def _reap(workers: dict[int, subprocess.Popen[bytes]], timeout_s: float) -> None:
    if not workers:
        return
    for process in workers.values():
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in workers.values():
        try:
            process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _metrics_parents() -> tuple[str | None, ...]:
    # /dev/shm is a tmpfs in containers, writable even with a read-only root.
    return ("/dev/shm", None)  # noqa: S108


def _shared_metrics_dir() -> str | None:
    """A fresh directory the workers share for /metrics, named after this
    supervisor so that a later one can tell when it was left behind."""
    # mkdtemp makes a private (0700) directory with an unpredictable name.
    for parent in _metrics_parents():
        try:
            return tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-", dir=parent)
        except OSError:
            continue
    log.warning("no writable directory for shared metrics: /metrics shows one worker")
    return None


def remove_stale_metrics_dirs() -> None:
    """Remove metrics directories of supervisors that are gone (SIGKILL, OOM)
    and whose workers did not remove them; ours only, and only once the
    port is bound (so no worker of theirs is still serving)."""
    for parent in _metrics_parents():
        root = Path(parent or tempfile.gettempdir())
        with suppress(OSError):
            for entry in root.iterdir():
                match = _METRICS_DIR.match(entry.name)
                if match is None or _alive(int(match[1])):
                    continue
                with suppress(OSError):
                    if entry.is_dir() and entry.stat().st_uid == os.getuid():
                        shutil.rmtree(entry)
                        log.info("removed %s, left by a supervisor that is gone", entry)


def leave_metrics_dir(path: str | None) -> None:
    """A worker whose supervisor died: remove this process's metric files,
    and the directory once it is empty (so the last worker out removes it)."""
    if not path:
        return
    suffix = f"_{os.getpid()}.db"
    with suppress(OSError):
        for entry in Path(path).iterdir():
            if entry.name.endswith(suffix):
                entry.unlink(missing_ok=True)
    with suppress(OSError):
        if not any(entry.name.endswith(".db") for entry in Path(path).iterdir()):
            (Path(path) / RESTARTS_FILE).unlink(missing_ok=True)
        os.rmdir(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _entry_module() -> str:
    """The module this process was started as (`python -m ...`), so workers
    run the same entry point as their supervisor; `moscow_clock` otherwise."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    return name.removesuffix(".__main__") if isinstance(name, str) and name else "moscow_clock"
