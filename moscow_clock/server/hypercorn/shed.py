"""Refusing a websocket upgrade from the first bytes of a connection.

Over budget, the app refuses handshakes with 503, but by then Hypercorn has
parsed the request, built a stream and an ASGI scope, and run the app: a
refusal cost about as much as an admission, and refused pages retrying
(their backoff cannot see a status) saturated the process (docs/
PERFORMANCE.md, "Overload"). Here the server asks the app's predicate (a
plain callable, composed in `__main__`) with just the path of an upgrade
request, and answers a canned 503 itself. Anything that is not a websocket
upgrade in one read (a plain request, a partial head, garbage) goes on to
Hypercorn as before, so /healthz, the page and the app's own checks are
untouched, and an upgrade whose head came in pieces is still refused by the
app's gate. The page's probe of the same path (a plain GET, whole in one
read) is answered with the same 503 while the app sheds (`probe_path`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# The app's predicate: called once per new connection whose first bytes are a
# websocket upgrade request for this path; True refuses it (and the app
# counts it). Never called for anything else.
type RefuseUpgrade = Callable[[str], bool]

RETRY_AFTER_S = 5
BODY = b"server busy, try again later\n"

_REQUEST_LINE = re.compile(rb"GET (/[^ ?#\r\n]*)(?:\?[^ \r\n]*)? HTTP/1\.1\r\n")
# Well-formed header lines (RFC 9110 field names, visible values) to the blank line.
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*\r\n")
_UPGRADE = re.compile(rb"\r\nupgrade[ \t]*:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)


def upgrade_path(data: bytes) -> str | None:
    """The path of a websocket upgrade request at the start of `data` (a
    whole head: request line through the blank line), or None."""
    line = _REQUEST_LINE.match(data)
    if line is None:
        return None
    end = data.find(b"\r\n\r\n", line.end() - 2)
    if end < 0 or _UPGRADE.search(data, line.end() - 2, end + 2) is None:
        return None
    return line[1].decode("latin-1")


def probe_path(data: bytes) -> str | None:
    """The path of a plain GET (no upgrade) whose whole head is in `data`,
    or None. A browser cannot read a refused handshake's 503, so the page
    then asks its path over plain HTTP (static/js/backoff.js): that probe is
    shed with the same canned 503, at the same cost, while the app sheds."""
    line = _REQUEST_LINE.match(data)
    if line is None or _HEADER_LINES.match(data, line.end()) is None:
        return None  # a partial or malformed head is Hypercorn's to answer (400)
    return line[1].decode("latin-1")


def refusal(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The whole 503 response: a short body, Retry-After, and the
    connection closes after it."""
    head = [
        b"HTTP/1.1 503 Service Unavailable",
        b"content-type: text/plain; charset=utf-8",
        b"cache-control: no-store",
        b"retry-after: %d" % RETRY_AFTER_S,
        b"content-length: %d" % len(BODY),
        b"connection: close",
        *(name + b": " + value for name, value in headers),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + BODY
