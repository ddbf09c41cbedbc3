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
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from typing import NamedTuple

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from ..core.asgi import ASGIApp
from ..core.capacity import MOST_CONNECTIONS
from ..core.config import Settings
from ..core.request_head import MAX_HEAD_BYTES
from . import hypercorn as layer
from . import pinger
from .collector import GcPolicy
from .logs import AccessLogger
from .logs import configure as configure_logging
from .supervisor import IGNORED_SIGNALS, STOP_SIGNALS, Lifeline, leave_metrics_dir, supervise


class Service(NamedTuple):
    """What the server runs: an ASGI app, how to drain it on a stop signal
    (given the seconds it may take), the headers the app puts on every
    response (the server's own refusals carry them too), and whether a
    websocket upgrade for a path is to be refused before it reaches the app
    (load shedding; see hypercorn/shed.py). The server knows nothing else
    of it."""

    app: ASGIApp
    drain: Callable[[float], Awaitable[object]]
    headers: Sequence[tuple[str, str]] = ()
    refuse_upgrade: layer.RefuseUpgrade | None = None
    # Handed the server's count of what its protections did (by action,
    # since start), for the app's metrics.
    count_protections: Callable[[Callable[[], Mapping[str, int]]], None] | None = None


type Build = Callable[[Settings], Service]

log = logging.getLogger("moscow_clock.server")

# Descriptors kept for everything but websockets and pending connections:
# listeners, logs, imports, the supervisor's pipe, a DNS lookup.
FD_RESERVE = 64
# When the open-files limit cannot hold MAX_CONNECTIONS and
# MAX_PENDING_CONNECTIONS, the pending cap gets at most this share of what is
# left (the rest goes to websockets), and at least a round of accepts' worth.
PENDING_SHARE = 0.25
# Beyond GRACEFUL_TIMEOUT (+1 s for the hard deadline): the process exits even
# if the loop cannot.
LAST_RESORT_S = 3.0
# Seconds a connection may take to send a request, or stay idle between two.
REQUEST_TIMEOUT_S = 5.0


def hypercorn_config(
    settings: Settings,
    headers: Sequence[tuple[str, str]] = (),
    refuse_upgrade: layer.RefuseUpgrade | None = None,
) -> Config:
    config = layer.ServerConfig(
        layer.Options(
            send_timeout=settings.send_timeout,
            limits=settings.frame_limits(),
            max_pending=settings.max_pending_connections,
            max_pending_per_address=settings.max_pending_per_address,
            trusted_proxies=settings.forwarded_allow_ips,
            head_timeout=settings.head_timeout,
            # Only the public listener pauses; /metrics (bound second) stays open.
            paused_binds=1 if settings.metrics_bind is not None else None,
            http2=settings.http2,
            headers=layer.Options.encode_headers(headers),
            refuse_upgrade=refuse_upgrade,
        )
    )
    config.bind = [
        f"fd://{settings.listen_fd}" if settings.listen_fd is not None else settings.bind
    ]
    if settings.metrics_bind is not None:  # /metrics on its own listener
        fd = settings.metrics_fd
        config.bind.append(f"fd://{fd}" if fd is not None else settings.metrics_bind)
    # The documented 16 KB limit on a request head. h11 enforces it only
    # while a head is incomplete; the app checks complete ones (core/request_head.py).
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    config.h2_max_header_list_size = MAX_HEAD_BYTES
    config.loglevel = settings.log_level.upper()
    # Hypercorn logs through the same root handler (format, level) as the app.
    config.accesslog = logging.getLogger("hypercorn.access") if settings.access_log else None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.logger_class = AccessLogger
    config.graceful_timeout = settings.graceful_timeout
    config.websocket_max_message_size = settings.ws_max_message_bytes
    pinger.configure(config, settings.ws_ping_interval)  # reaping vanished peers
    config.include_server_header = False  # no version banner
    # Connections asyncio takes from the accept queue per round of the loop;
    # the queue itself stays long (4,096, hypercorn/listen.py) for a
    # reconnect wave. Hypercorn's default of 100 was both.
    config.backlog = layer.ACCEPTS_PER_ROUND
    # A connection that has not sent a whole request (headers) this long
    # after it opened, or after its last response, is closed.
    config.keep_alive_timeout = REQUEST_TIMEOUT_S
    return config


async def serve(service: Service, settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then drain websockets and stop Hypercorn."""

    async def drained() -> None:
        await stop.wait()
        _arm_last_resort(settings.graceful_timeout + LAST_RESORT_S)
        await service.drain(settings.graceful_timeout)

    config = hypercorn_config(settings, service.headers, service.refuse_upgrade)
    if isinstance(config, layer.ServerConfig):  # failed accepts, counted and logged by errno
        config.gate.errors.install(asyncio.get_running_loop())
        if service.count_protections is not None:
            service.count_protections(config.protections)
    # mode="asgi": the app may be a plain callable that returns what to
    # await (web/endpoint.py), which Hypercorn's guess would take for WSGI.
    server = asyncio.create_task(
        hypercorn_serve(service.app, config, shutdown_trigger=drained, mode="asgi")
    )
    stopping = asyncio.create_task(stop.wait())
    pinging = asyncio.create_task(pinger.ping_forever(settings.ws_ping_interval))
    collecting = asyncio.create_task(GcPolicy().run()) if settings.gc_freeze else None
    try:
        await asyncio.wait((server, stopping), return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            await _finish_by(server, deadline_s=settings.graceful_timeout + 1.0)
        else:
            server.result()  # Hypercorn failed on its own (say, the port was taken)
    finally:
        pinging.cancel()
        if collecting is not None:
            collecting.cancel()
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


async def _serve_until_signalled(
    build: Build, settings: Settings, lifeline: Lifeline | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    for signum in IGNORED_SIGNALS:
        loop.add_signal_handler(signum, _ignore, signum)
    if lifeline is not None:

        def supervisor_gone() -> None:  # on the lifeline's thread
            # Armed here too, so a wedged loop cannot keep the port either.
            _arm_last_resort(settings.graceful_timeout + 1.0 + LAST_RESORT_S)
            with suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)

        lifeline.watch(supervisor_gone)
    await serve(build(settings), settings, stop)


def _ignore(signum: int) -> None:
    log.info("%s ignored (logs go to stdout: nothing to reopen)", signal.Signals(signum).name)


def fit_to_fd_limit(settings: Settings) -> Settings:
    """One budget for the descriptors: websockets (MAX_CONNECTIONS), pending
    connections (MAX_PENDING_CONNECTIONS) and `FD_RESERVE` fit in the
    open-files limit, raised as far as allowed first; if they do not, both
    caps are lowered (refusing with 503, or leaving newcomers in the
    kernel's queue, beats failing accept()). The numbers chosen are logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    overhead = FD_RESERVE
    wanted = settings.max_connections + settings.max_pending_connections + overhead
    if soft < wanted and (hard == resource.RLIM_INFINITY or soft < hard):
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    websockets, pending = descriptor_budget(
        soft, overhead, settings.max_connections, settings.max_pending_connections
    )
    # Unset, MAX_CONNECTIONS is "no cap of its own": the limit deciding it is
    # the default at work, not a setting it had to overrule.
    overruled = pending != settings.max_pending_connections or (
        websockets != settings.max_connections and settings.max_connections < MOST_CONNECTIONS
    )
    if overruled:
        log.warning(
            "the open-files limit %d cannot hold MAX_CONNECTIONS=%d and "
            "MAX_PENDING_CONNECTIONS=%d (+%d reserved); using %d and %d",
            soft,
            settings.max_connections,
            settings.max_pending_connections,
            overhead,
            websockets,
            pending,
        )
    if (websockets, pending) != (settings.max_connections, settings.max_pending_connections):
        settings = dataclasses.replace(
            settings, max_connections=websockets, max_pending_connections=pending
        )
    log.info(
        "descriptors: %d websockets + %d pending + %d reserved of the open-files limit %d",
        settings.max_connections,
        settings.max_pending_connections,
        overhead,
        soft,
    )
    return settings


def descriptor_budget(limit: int, overhead: int, websockets: int, pending: int) -> tuple[int, int]:
    """(websockets, pending) lowered, if need be, so that their sum and
    `overhead` fit in `limit`: the pending cap to at most `PENDING_SHARE` of
    the room (and at least a round of accepts, if the room allows), the
    websockets to the rest; each at least 1."""
    room = max(limit - overhead, 2)
    if websockets + pending <= room:
        return websockets, pending
    floor = min(layer.ACCEPTS_PER_ROUND, room // 2)
    pending = max(1, min(pending, max(int(room * PENDING_SHARE), floor)))
    return max(1, min(websockets, room - pending)), pending


def run(build: Build, settings: Settings) -> int:
    """Serve in this process, or supervise WORKERS processes; the exit code."""
    configure_logging(settings.log_level, settings.log_json)
    try:
        layer.install()
    except layer.GuardError as error:
        print(f"moscow_clock: {error}", file=sys.stderr)
        return 3
    if settings.workers > 1 and settings.listen_fd is None:
        return supervise(settings, hypercorn_config(settings))
    lifeline = None if settings.supervisor_fd is None else Lifeline(settings.supervisor_fd)
    asyncio.run(_serve_until_signalled(build, fit_to_fd_limit(settings), lifeline))
    if lifeline is not None and lifeline.gone.is_set():
        leave_metrics_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    return 0
