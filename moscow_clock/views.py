"""HTTP and websocket routes, kept thin: the work lives in clock, session and ticker."""

from __future__ import annotations

from quart import Blueprint, Response, jsonify, render_template, websocket

from .clock import moscow_time, time_snapshot
from .runtime import current_runtime
from .session import run_session

blueprint = Blueprint("clock", __name__)

NO_STORE = {"Cache-Control": "no-store"}


@blueprint.get("/")
async def page() -> tuple[str, int, dict[str, str]]:
    now = current_runtime().clock()
    html = await render_template("index.html", now=moscow_time(now), server_ms=now)
    return html, 200, NO_STORE


@blueprint.get("/api/time")
async def api_time() -> tuple[Response, int, dict[str, str]]:
    return jsonify(time_snapshot(current_runtime().clock())), 200, NO_STORE


@blueprint.get("/healthz")
async def healthz() -> tuple[Response, int, dict[str, str]]:
    return jsonify(status="ok"), 200, NO_STORE


@blueprint.websocket("/ws")
async def ws() -> tuple[str, int, dict[str, str]] | None:
    runtime = current_runtime()
    refusal = runtime.gate.refusal(websocket.headers.get("Origin"), websocket.headers.get("Host"))
    if refusal is not None:
        return refusal.message, refusal.status, {**refusal.headers, **NO_STORE}
    with runtime.gate.hold():
        await websocket.accept()
        try:
            await run_session(websocket, runtime.ticker, runtime.clock, runtime.message_rate)
        finally:
            websocket.stop_reading()
    return None
