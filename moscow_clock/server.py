"""Runs the app under Hypercorn and shuts it down gracefully.

Hypercorn 0.18 on Python >= 3.12 never finishes its own graceful shutdown
while a websocket is open (hypercorn issue #308: `Server.wait_closed()` waits
for every connection). So on SIGTERM/SIGINT we drain first: the ticker tells
every websocket to close with 1001 ("going away"), and only then is Hypercorn
asked to stop. A hard deadline guarantees the process exits even if a client
never completes the closing handshake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import suppress

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

from . import hypercorn_tuning
from .config import Settings
from .logs import AccessLogger
from .logs import configure as configure_logging
from .runtime import runtime_of

log = logging.getLogger("moscow_clock.server")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Descriptors kept for everything but websockets: listener, HTTP, logs, imports.
FD_RESERVE = 64
# Beyond GRACEFUL_TIMEOUT (+1 s for the hard deadline): the process exits even
# if the loop cannot.
LAST_RESORT_S = 3.0


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [
        f"fd://{settings.listen_fd}" if settings.listen_fd is not None else settings.bind
    ]
    config.loglevel = settings.log_level.upper()
    # Hypercorn logs through the same root handler (format, level) as the app.
    config.accesslog = logging.getLogger("hypercorn.access") if settings.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.logger_class = AccessLogger
    config.graceful_timeout = settings.graceful_timeout
    config.websocket_max_message_size = settings.ws_max_message_bytes
    # One pinger per process (hypercorn_tuning.ping_forever) makes every live
    # client answer now and then; a connection that reads nothing at all for
    # three intervals (no pong, no message) is closed, so clients that
    # vanished without a FIN are reaped. Hypercorn's own ping task per
    # connection is off.
    config.websocket_ping_interval = None
    config.read_timeout = 3 * settings.ws_ping_interval  # type: ignore[assignment]
    config.include_server_header = False  # no version banner
    # Room in the accept queue for a reconnect wave (the kernel caps it at
    # net.core.somaxconn); Hypercorn's default of 100 drops SYNs past that.
    config.backlog = 4096
    return config


async def serve(app: Quart, settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then drain websockets and stop Hypercorn."""
    ticker = runtime_of(app).ticker

    async def drained() -> None:
        await stop.wait()
        _arm_last_resort(settings.graceful_timeout + LAST_RESORT_S)
        log.info("shutting down: closing %d websockets with 1001", ticker.clients)
        await ticker.drain(settings.graceful_timeout)

    server = asyncio.create_task(
        hypercorn_serve(app, hypercorn_config(settings), shutdown_trigger=drained)
    )
    stopping = asyncio.create_task(stop.wait())
    pinger = asyncio.create_task(hypercorn_tuning.ping_forever(settings.ws_ping_interval))
    try:
        await asyncio.wait((server, stopping), return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await _finish_by(server, deadline_s=settings.graceful_timeout + 1.0)
        else:
            server.result()  # Hypercorn failed on its own (say, the port was taken)
    finally:
        pinger.cancel()
        stopping.cancel()
        server.cancel()


def _arm_last_resort(after_s: float) -> None:
    """If the event loop itself is wedged past every deadline, leave anyway:
    an orchestrator waiting on us would only SIGKILL later."""

    def leave() -> None:
        log.error("still running %.1f s after the stop signal; exiting now", after_s)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(after_s, leave)
    timer.daemon = True
    timer.start()


async def _finish_by(server: asyncio.Task[None], deadline_s: float) -> None:
    """Let Hypercorn finish its shutdown; past the deadline, cut what is left."""
    done, _ = await asyncio.wait((server,), timeout=deadline_s)
    if done:
        server.result()
        return
    log.warning("connections still open %.1f s after the stop signal; closing them", deadline_s)
    server.cancel()
    with suppress(asyncio.CancelledError):
        await server


async def _serve_until_signalled(settings: Settings) -> None:
    from .app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    hypercorn_tuning.apply(settings.send_timeout)
    await serve(create_app(settings=settings), settings, stop)


def fit_to_fd_limit(settings: Settings) -> Settings:
    """Raise the open-files limit as far as allowed, and lower MAX_CONNECTIONS
    if even that cannot hold them: refusing with 503 beats failing accept()."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = settings.max_connections + FD_RESERVE
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        if target > soft:
            with suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
    room = soft - FD_RESERVE
    if settings.max_connections <= room:
        return settings
    log.warning(
        "MAX_CONNECTIONS=%d needs more open files than the limit %d allows; using %d",
        settings.max_connections,
        soft,
        max(room, 1),
    )
    return dataclasses.replace(settings, max_connections=max(room, 1))


def run(settings: Settings) -> int:
    """Serve in this process, or supervise WORKERS processes; the exit code."""
    configure_logging(settings.log_level, settings.log_json)
    if settings.workers > 1 and settings.listen_fd is None:
        return _supervise(settings)
    asyncio.run(_serve_until_signalled(fit_to_fd_limit(settings)))
    return 0


def _supervise(settings: Settings) -> int:
    """Bind once and share the socket with WORKERS copies of this server.

    Each worker is a plain single-process server on the inherited socket
    (`LISTEN_FD`), with its own ticker and its own graceful drain; the
    supervisor forwards SIGTERM/SIGINT and exits 0 once they all have.
    """
    (sock,) = hypercorn_config(settings).create_sockets().insecure_sockets
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
