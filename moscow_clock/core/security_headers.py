"""Security headers: the one policy, and the one way to add it to a response.

Every path that answers applies it (docs/SECURITY.md lists them): the app's
HTTP responses (`with_security_headers`, at the ASGI level, not in an
`after_request` hook, so that no response Quart makes can leave without them:
error pages, 405/413 from routing and body limits, responses from error
handlers that themselves failed); and, through the server layer's `Options`
(given these headers by the composition root), the responses the server
writes itself: websocket refusals, Hypercorn's and h11's own 400/404/426/
431/500, and the load-shedding 503 (`server/hypercorn/`, each via `merged`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .asgi import Message, Send

type RawHeaders = Iterable[tuple[bytes, bytes]]


def content_security_policy(frame_ancestors: Sequence[str] = ()) -> str:
    """The strict policy; only /embed names frame ancestors (EMBED_ORIGINS:
    none given, none may frame it)."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "worker-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            f"frame-ancestors {ancestors}",
            "object-src 'none'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def encoded(headers: Iterable[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    """As they go on the wire: lower-case names, Latin-1."""
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
    )


ENCODED = encoded(SECURITY_HEADERS.items())


def merged(headers: RawHeaders, extra: RawHeaders = ENCODED) -> list[tuple[bytes, bytes]]:
    """`headers`, plus each of `extra` whose name they do not set themselves
    (so /embed's own frame-ancestors wins)."""
    out = list(headers)
    present = {name.lower() for name, _ in out}
    out.extend(item for item in extra if item[0] not in present)
    return out


def with_security_headers(send: Send) -> Send:
    """`send`, adding the security headers a response does not set itself."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": merged(message.get("headers") or ())}
        await send(message)

    return sending
