"""The app factory: wires the clock, the ticker and the routes together."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from contextlib import suppress
from pathlib import Path

from prometheus_client import multiprocess
from quart import Quart, Response

from ..core.clock import Clock, wall_clock_ms
from ..core.config import Settings
from ..live.admission import Gate
from ..live.metrics import Metrics
from ..live.stats import Stats
from ..live.ticker import Ticker
from .endpoint import WebsocketEndpoint
from .errors import register_error_pages
from .runtime import Runtime, current_runtime
from .views import blueprint

# templates/ and static/ sit beside the package, in the repo and in the images.
ROOT = Path(__file__).resolve().parents[2]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(clock: Clock = wall_clock_ms, settings: Settings | None = None) -> Quart:
    settings = settings or Settings()
    app = Quart(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    # Static files revalidate (ETag, Last-Modified) instead of going stale:
    # there is no build step that would put a hash in their names.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 0
    # Requests are GETs; a body is never needed, so a big one is refused (413).
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    gate = Gate(settings.max_connections, settings.allowed_origins)
    runtime = Runtime(
        settings=settings,
        clock=clock,
        ticker=Ticker(clock),
        gate=gate,
        stats=Stats(),
        metrics=Metrics(),
    )
    runtime.attach(app)
    # /ws is served below Quart, straight over ASGI (see live/session.py for why).
    # (Quart's documented middleware pattern; its precise ASGI TypedDicts are
    # wider than the plain mappings the endpoint reads.)
    app.asgi_app = WebsocketEndpoint(app.asgi_app, runtime)  # type: ignore[method-assign,assignment]
    app.register_blueprint(blueprint)
    app.while_serving(_run_ticker)
    app.while_serving(_publish_metrics)
    app.after_request(_add_security_headers)
    register_error_pages(app)
    return app


async def _run_ticker() -> AsyncGenerator[None]:
    ticker = current_runtime().ticker
    task = asyncio.create_task(ticker.run(), name="moscow-clock-ticker")
    yield
    ticker.close()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


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


async def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
