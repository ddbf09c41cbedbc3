"""The `/ws` endpoint as a thin ASGI layer in front of Quart.

Websocket handshakes for `/ws` are admitted (origin, capacity) and handed to
a `Session`, which accepts and serves them; everything else goes to the Quart
app untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..core.asgi import ASGIApp, Receive, Scope, Send
from ..core.budget import INBOUND
from ..core.clockstate import PageClock
from ..core.request_head import head_size
from ..core.security_headers import with_security_headers
from ..core.wire import PREFRAMED, WRITE_NOW
from ..live.admission import NOT_HERE, Admitted, Refusal, screen
from ..live.session import Session
from .runtime import Runtime, on_metrics_listener

WS_PATH = "/ws"


class WebsocketEndpoint:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        # One for every session, not a closure (and a cell) made for each.
        self._page_clock: Callable[[], PageClock] = lambda: runtime.clock_monitor.page_clock

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function that returns what to await: no frame of its own
        # held under every websocket for its whole life (248 bytes each).
        if scope["type"] == "http":
            return self.app(scope, receive, with_security_headers(send))
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            return self.websocket(scope, receive, send)
        return self.app(scope, receive, send)

    def websocket(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The handshake decided here; an admitted websocket's whole life is
        its session's one coroutine (`Session.serve`), returned for the
        server to await at once (it gives the gate's place back when it
        ends): no frame of this function's is held under it."""
        runtime = self.runtime
        extensions = scope.get("extensions") or {}
        if runtime.stats.inbound is None:  # the server's, for the metrics
            runtime.stats.inbound = extensions.get(INBOUND)
        # Made before the gate is asked: from its place taken to the
        # coroutine that gives it back, nothing can fail.
        session = Session(
            send,
            runtime.clock,
            runtime.settings.ws_message_rate,
            runtime.stats,
            preframed=PREFRAMED in extensions,
            write_now=(extensions.get(PREFRAMED) or {}).get(WRITE_NOW),
            page_clock=self._page_clock,
            remote=(scope.get("client") or ("-", 0))[0],
        )
        admission = self._admit(scope)
        if isinstance(admission, Refusal):
            runtime.stats.refused[admission.reason] += 1
            return _reject(send, admission.status, admission.message, admission.headers)
        return session.serve(receive, runtime.ticker, admission)

    def _admit(self, scope: Scope) -> Admitted | Refusal:
        """The handshake is decided from the scope (the "websocket.connect"
        event that follows is skipped by the session). Its own function, so
        what it looks at is not held for the websocket's life."""
        runtime = self.runtime
        headers = {name: value for name, value in scope["headers"] if name in (b"origin", b"host")}
        host = _text(headers.get(b"host"))
        size = head_size(
            "GET", scope.get("raw_path") or b"", scope["query_string"], scope["headers"]
        )
        return (
            (NOT_HERE if on_metrics_listener(scope, runtime.settings) else None)
            or screen(host, size, runtime.settings.public_origins)
            or runtime.gate.admit(_text(headers.get(b"origin")), host)
        )


def shed_upgrades(runtime: Runtime) -> Callable[[str], bool]:
    """The server's load-shedding predicate (server/hypercorn/shed.py): a
    handshake for /ws the gate would refuse for capacity or load is answered
    by the server from its first bytes, before any scope or app call, and
    counted here as refused for "shed"."""

    def refuse(path: str) -> bool:
        if path != WS_PATH or not runtime.gate.shedding():
            return False
        runtime.stats.refused["shed"] += 1
        return True

    return refuse


async def _reject(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    """An HTTP response instead of the handshake (ASGI websocket.http.response)."""
    await send(
        {
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
                *((name.lower().encode(), value.encode()) for name, value in headers.items()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": message.encode()})


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
