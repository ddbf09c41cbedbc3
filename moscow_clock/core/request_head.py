"""The size of a request's head, the limit that README promises (431 past it).

Hypercorn's own limit (h11's `max_incomplete_event_size`) only applies while
a head is still incomplete, so a head that arrives in one read (up to 64 KB)
passes it; the app measures every head it is given against the same limit.
"""

from __future__ import annotations

from collections.abc import Iterable

MAX_HEAD_BYTES = 16 * 1024


def head_size(
    method: str, raw_path: bytes, query_string: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> int:
    """Bytes of the request line and header fields as sent over HTTP/1.1
    (`METHOD target HTTP/1.1`, `name: value` lines, the blank line)."""
    target = len(raw_path) + (len(query_string) + 1 if query_string else 0)
    fields = sum(len(name) + len(value) + 4 for name, value in headers)
    return len(method) + 1 + target + len(" HTTP/1.1\r\n") + fields + 2
