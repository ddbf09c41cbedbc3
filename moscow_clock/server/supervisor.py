"""WORKERS > 1: one socket, shared by that many copies of the single-process server."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress

from hypercorn.config import Config

from ..core.config import Settings

log = logging.getLogger("moscow_clock.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def supervise(settings: Settings, config: Config) -> int:
    """Bind once and share the socket with WORKERS copies of this server.

    Each worker is a plain single-process server on the inherited socket
    (`LISTEN_FD`), with its own ticker and its own graceful drain; the
    supervisor forwards SIGTERM/SIGINT and exits 0 once they all have.
    """
    (sock,) = config.create_sockets().insecure_sockets
    metrics_dir = _shared_metrics_dir()
    env = {**os.environ, "LISTEN_FD": str(sock.fileno()), "WORKERS": "1"}
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

    # Handlers first, so a signal during start-up is not lost; exec resets
    # them to the default in the workers, which install their own.
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    for _ in range(settings.workers):
        process = subprocess.Popen(
            [sys.executable, "-m", "moscow_clock"], env=env, pass_fds=(sock.fileno(),)
        )
        workers[process.pid] = process
        if stopping:
            stop()
    log.info("supervising %d workers on %s", len(workers), settings.bind)

    exit_code = 0
    while workers:
        pid, status = os.waitpid(-1, 0)
        if workers.pop(pid, None) is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not stopping:
            log.error("worker %d exited with %d; stopping the others", pid, code)
            exit_code = 1
            stop()
    sock.close()
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code


def _shared_metrics_dir() -> str | None:
    """A fresh directory the workers share for /metrics: /dev/shm (a tmpfs in
    containers, writable even with a read-only root) or the temp directory."""
    # mkdtemp makes a private (0700) directory with an unpredictable name.
    for parent in ("/dev/shm", None):  # noqa: S108
        try:
            return tempfile.mkdtemp(prefix="moscow-clock-metrics-", dir=parent)
        except OSError:
            continue
    log.warning("no writable directory for shared metrics: /metrics shows one worker")
    return None
