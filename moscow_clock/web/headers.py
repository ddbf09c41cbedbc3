"""Security headers, added to every HTTP response the app sends.

Added at the ASGI level (not in an `after_request` hook) so that no response
Quart makes can leave without them: error pages, 405/413 from routing and
body limits, responses from error handlers that themselves failed.
"""

from __future__ import annotations

from ..core.asgi import Message, Send


def content_security_policy(frame_ancestors: str = "'none'") -> str:
    """The strict policy; only /embed relaxes frame-ancestors (EMBED_ORIGINS)."""
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
            f"frame-ancestors {frame_ancestors}",
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
_ENCODED = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


def with_security_headers(send: Send) -> Send:
    """`send`, adding the security headers a response does not set itself."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            present = {name.lower() for name, _ in headers}
            headers.extend(item for item in _ENCODED if item[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return sending
