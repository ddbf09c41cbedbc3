"""HTTP routes, kept thin (the websocket endpoint is endpoint.py)."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, render_template

from ..core.clock import moscow_time, time_snapshot
from ..live.metrics import CONTENT_TYPE
from .runtime import current_runtime

blueprint = Blueprint("clock", __name__)

NO_STORE = {"Cache-Control": "no-store"}


@blueprint.get("/")
async def page() -> tuple[str, int, dict[str, str]]:
    runtime = current_runtime()
    now = runtime.clock()
    html = await render_template(
        "index.html",
        now=moscow_time(now),
        server_ms=now,
        error_ms=runtime.clock_monitor.error_bound(),
    )
    return html, 200, NO_STORE


@blueprint.get("/api/time")
async def api_time() -> tuple[Response, int, dict[str, str]]:
    runtime = current_runtime()
    body = {**time_snapshot(runtime.clock()), "clock": runtime.clock_monitor.report()}
    return jsonify(body), 200, NO_STORE


@blueprint.get("/healthz")
async def healthz() -> tuple[Response, int, dict[str, str]]:
    """Liveness only: the process answers. The clock's health is /readyz."""
    return jsonify(status="ok"), 200, NO_STORE


@blueprint.get("/readyz")
async def readyz() -> tuple[Response, int, dict[str, str]]:
    """Ready to be routed visitors: the clock can be vouched for."""
    monitor = current_runtime().clock_monitor
    reason = monitor.unready_reason()
    if reason is None:
        return jsonify(status="ready"), 200, NO_STORE
    body = {"status": "unready", "reason": reason, "clock": monitor.report()}
    return jsonify(body), 503, NO_STORE


@blueprint.get("/metrics")
async def metrics() -> tuple[bytes, int, dict[str, str]]:
    runtime = current_runtime()
    runtime.update_metrics()
    return runtime.metrics.render(), 200, {"Content-Type": CONTENT_TYPE, **NO_STORE}


@blueprint.get("/ws")
async def ws_over_plain_http() -> tuple[str, int, dict[str, str]]:
    """A plain GET where the websocket lives: say how to talk to it."""
    return "this is a websocket endpoint\n", 426, {"Upgrade": "websocket", **NO_STORE}
