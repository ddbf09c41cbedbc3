"""The app factory: wires the clock, the ticker and the routes together."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncGenerator
from contextlib import suppress
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess
from quart import Quart, request
from quart.json.provider import DefaultJSONProvider
from werkzeug.exceptions import MisdirectedRequest, NotFound, RequestHeaderFieldsTooLarge

from ..core.capacity import BASE_BYTES, PER_CONNECTION_BYTES, connections_for_memory
from ..core.clock import Clock, wall_clock_ms
from ..core.config import Settings
from ..core.origin import host_allowed
from ..core.request_head import MAX_HEAD_BYTES, head_size
from ..core.security_headers import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    content_security_policy,
)
from ..live.admission import Gate, Load
from ..live.clockmonitor import ClockMonitor, ClockSource
from ..live.kernelclock import kernel_clock_state
from ..live.memory import Cgroup, MemoryUse, memory_limit
from ..live.metrics import Metrics
from ..live.stalls import GcPauses, LoopLag
from ..live.stats import Stats
from ..live.ticker import Ticker
from . import delivery, l10n
from .endpoint import WebsocketEndpoint
from .errors import register_error_pages
from .pwa import register_shell
from .ranges import RangeResponse
from .runtime import Runtime, current_runtime, on_metrics_listener
from .views import blueprint

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "create_app"]

log = logging.getLogger("moscow_clock.clock")
capacity_log = logging.getLogger("moscow_clock.admission")

# Paths the orchestrator's probes reach by the pod's address, not a public name.
PROBES = frozenset(("/healthz", "/readyz"))

# templates/ and static/ sit beside the package, in the repo and in the images.
ROOT = Path(__file__).resolve().parents[2]


class StrictJSON(DefaultJSONProvider):
    """JSON the API emits is always valid JSON: a NaN or infinity that slips
    through is a 500 (a bug, logged), never `NaN` in a body a client chokes on."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)


def create_app(
    clock: Clock = wall_clock_ms,
    settings: Settings | None = None,
    clock_source: ClockSource | None = None,
) -> Quart:
    """`clock_source` replaces the kernel's clock state: tests inject the
    state they test here (tests/support/clock_server.py for a real server);
    production has no other way in."""
    settings = settings or Settings()
    app = Quart(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.response_class = RangeResponse  # byte ranges as RFC 9110 has them (ranges.py)
    app.json = StrictJSON(app)
    # Static files revalidate (ETag, Last-Modified) instead of going stale:
    # there is no build step that would put a hash in their names.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    # Requests are GETs; a body is never needed, so a big one is refused (413).
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    # No redirects built from the request: werkzeug would merge `//` and add
    # trailing slashes with a 308 to an absolute URL made from Host (an open
    # redirect through a forged Host). Such paths are simply not found.
    app.url_map.merge_slashes = False
    app.url_map.strict_slashes = False
    app.config["EMBED_CONTENT_SECURITY_POLICY"] = content_security_policy(settings.embed_origins)
    l10n.install(app)
    ticker = Ticker(clock)
    loop_lag = LoopLag(budget_s=settings.loop_lag_budget)
    cgroup = Cgroup()
    load = Load(loop_lag.behind, MemoryUse(cgroup).share)
    gate = Gate(
        connection_cap(settings, cgroup),
        settings.allowed_origins,
        settings.public_origins,
        load=load,
    )
    runtime = Runtime(
        settings=settings,
        clock=clock,
        ticker=ticker,
        gate=gate,
        stats=Stats(),
        metrics=Metrics(),
        clock_monitor=ClockMonitor(
            clock_source or kernel_clock_state,
            servers=settings.ntp_servers,
            interval_s=settings.ntp_interval,
            max_error_ms=settings.clock_max_error_ms,
            check=settings.clock_check,
        ),
        loop_lag=loop_lag,
        gc_pauses=GcPauses(),
    )
    runtime.attach(app)
    # Creating the gauges wrote 0 into this worker's file of the shared metrics:
    # another worker's scrape must not read that as "unsynchronised" until the
    # first publishing round (the clock gauges combine workers by min and max).
    runtime.metrics.update_clock(runtime.clock_monitor)
    # /ws is served below Quart, straight over ASGI (see live/session.py for why).
    # (Quart's documented middleware pattern; its precise ASGI TypedDicts are
    # wider than the plain mappings the endpoint reads.)
    app.asgi_app = WebsocketEndpoint(app.asgi_app, runtime)  # type: ignore[method-assign,assignment]
    app.register_blueprint(blueprint)
    register_shell(app, ROOT / "static")
    delivery.install(app, ROOT / "static")
    app.while_serving(_run_ticker)
    app.while_serving(_watch_the_clock)
    app.while_serving(_watch_stalls)
    app.while_serving(_publish_metrics)
    app.before_request(_screen_request)
    register_error_pages(app)
    return app


def connection_cap(settings: Settings, cgroup: Cgroup) -> int:
    """MAX_CONNECTIONS (as the open-files limit left it: server/serve.py),
    lowered to what the memory the process may use holds; logged with the
    figures it came from. Workers of one supervisor share its memory."""
    limit = memory_limit(cgroup)
    if limit is None:
        capacity_log.info(
            "websockets per process: %d (memory limit unknown)", settings.max_connections
        )
        return settings.max_connections
    processes = settings.workers if settings.supervisor_fd is not None else 1
    by_memory = connections_for_memory(limit.bytes, processes)
    cap = min(settings.max_connections, by_memory)
    capacity_log.info(
        "websockets per process: %d, the least of MAX_CONNECTIONS or the descriptors' %d "
        "and the memory's %d ((%d MiB from %s / %d processes - %d MiB) / %d KiB a connection)",
        cap,
        settings.max_connections,
        by_memory,
        limit.bytes >> 20,
        limit.source,
        processes,
        BASE_BYTES >> 20,
        PER_CONNECTION_BYTES >> 10,
    )
    return cap


async def _run_ticker() -> AsyncGenerator[None]:
    ticker = current_runtime().ticker
    task = asyncio.create_task(ticker.run(), name="moscow-clock-ticker")
    yield
    ticker.close()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _watch_the_clock() -> AsyncGenerator[None]:
    task = asyncio.create_task(current_runtime().clock_monitor.run(), name="moscow-clock-check")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def _watch_stalls() -> AsyncGenerator[None]:
    """Measure event-loop lag and collection pauses while serving."""
    runtime = current_runtime()
    runtime.gc_pauses.install()
    task = asyncio.create_task(runtime.loop_lag.run(), name="moscow-clock-loop-lag")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    runtime.gc_pauses.uninstall()


async def _publish_metrics() -> AsyncGenerator[None]:
    """Move the plain counters into the metrics once a second, so that with
    several workers any one of them can answer a scrape for all."""
    runtime = current_runtime()

    async def every_second() -> None:
        while True:
            runtime.update_metrics()
            await asyncio.sleep(1)

    task = asyncio.create_task(every_second(), name="moscow-clock-metrics")
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    if runtime.metrics.multiprocess:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


async def _screen_request() -> None:
    """What is refused before any route runs (as the error pages, with the
    security headers): an oversized head (431), a Host outside PUBLIC_ORIGINS
    (421; /healthz and /readyz exempt, for probes that address the pod), and a route on
    the wrong listener when /metrics has its own (404)."""
    settings = current_runtime().settings
    scope = request.scope
    size = head_size(
        request.method, scope.get("raw_path") or b"", scope["query_string"], scope["headers"]
    )
    if size > MAX_HEAD_BYTES:
        raise RequestHeaderFieldsTooLarge()
    if on_metrics_listener(scope, settings):
        if request.path != "/metrics":
            raise NotFound()
        return
    if settings.metrics_port is not None and request.path == "/metrics":
        raise NotFound()
    if request.path not in PROBES and not host_allowed(
        request.headers.get("Host"), settings.public_origins
    ):
        raise MisdirectedRequest()
