"""Origin checks for the websocket handshake, kept pure for property tests.

Browsers send `Origin` on every websocket handshake and let any page open a
socket to any host, so without this check a foreign page could read the
clock through a visitor's browser (cross-site websocket hijacking). Clients
that are not browsers send no Origin and cannot be used that way.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in canonical form (lower case, default port
    dropped), or None for anything that is not an http(s) origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if (
        scheme not in DEFAULT_PORTS
        or not host
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or any(ch.isspace() for ch in origin.strip())
    ):
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


def same_host(origin: str, host_header: str) -> bool:
    """Whether a normalized origin names the host (and port) the request was
    sent to, as the Host header says; a missing port means the scheme's default."""
    scheme, _, netloc = origin.partition("://")
    reference = normalize_origin(f"{scheme}://{host_header}")
    return reference is not None and reference == f"{scheme}://{netloc}"


def origin_allowed(origin: str | None, host_header: str | None, allowed: frozenset[str]) -> bool:
    if origin is None:
        return True
    if "*" in allowed:
        return True
    normalized = normalize_origin(origin)
    if normalized is None:  # "null" (sandboxed frames, file://) or garbage
        return False
    if normalized in allowed:
        return True
    return host_header is not None and same_host(normalized, host_header)


def host_allowed(host_header: str | None, public_origins: frozenset[str]) -> bool:
    """Whether a request's Host names one of the service's public origins
    (any Host when none are configured). Without this, same-origin means
    only "Origin matches Host", which a DNS-rebinding page satisfies: its
    own name, pointed at this address, is both."""
    if not public_origins:
        return True
    return host_header is not None and any(
        same_host(origin, host_header) for origin in public_origins
    )
