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

from ..core.config import Settings

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
    signals and exits 0 once they all have. If a worker dies, the others
    are stopped and the supervisor exits 1, for the orchestrator to restart
    the whole service.
    """
    sockets = config.create_sockets().insecure_sockets
    remove_stale_metrics_dirs()
    metrics_dir = _shared_metrics_dir()
    lifeline, keep_alive = os.pipe()  # neither end is inherited unless passed
    env = {
        **os.environ,
        "LISTEN_FD": str(sockets[0].fileno()),
        "WORKERS": "1",
        "SUPERVISOR_FD": str(lifeline),
    }
    if len(sockets) > 1:
        env["METRICS_FD"] = str(sockets[1].fileno())
    if metrics_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    workers: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(_signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers.values():
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    def ignore(signum: int, _frame: object) -> None:
        log.info("%s ignored (logs go to stdout: nothing to reopen)", signal.Signals(signum).name)

    exit_code = 0
    try:
        # Handlers first, so a signal during start-up is not lost; exec
        # resets them to the default in the workers, which install their own.
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        for signum in IGNORED_SIGNALS:
            signal.signal(signum, ignore)
        for _ in range(settings.workers):
            process = subprocess.Popen(  # noqa: S603 (our own interpreter and entry module)
                [sys.executable, "-m", _entry_module()],
                env=env,
                pass_fds=(*(sock.fileno() for sock in sockets), lifeline),
            )
            workers[process.pid] = process
            if stopping:
                stop()
        os.close(lifeline)
        lifeline = -1
        log.info("supervising %d workers on %s", len(workers), settings.bind)

        while workers:
            pid, status = os.waitpid(-1, 0)
            if workers.pop(pid, None) is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if code != 0 and not stopping:
                log.error("worker %d exited with %d; stopping the others", pid, code)
                exit_code = 1
                stop()
    finally:
        # Normally nothing is left; after an exception, closing the lifeline
        # tells the workers too, and they are given their drain to go.
        if lifeline >= 0:
            os.close(lifeline)
        os.close(keep_alive)
        _reap(workers, settings.graceful_timeout + _WORKER_EXIT_EXTRA_S)
        for sock in sockets:
            sock.close()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code


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
