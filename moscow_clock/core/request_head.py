"""The size of a request's head, the limit that README promises (431 past it).

Hypercorn's own limit (h11's `max_incomplete_event_size`) only applies while
a head is still incomplete, so a head that arrives in one read (up to 64 KB)
passes it, to be parsed whole first. So the server layer measures the raw
bytes of each head as they arrive (`HeadMeter`, server/hypercorn/head.py) and
refuses one past the limit before anything parses it; the app still measures
every head it is given (`head_size`), for heads that reach it another way
(HTTP/2, a pipelined request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_HEAD_BYTES = 16 * 1024

# Where a head ends, as h11 finds it: a blank line, CRLF or bare LF.
_BLANK_LINE = re.compile(rb"\n\r?\n")
# Enough of the last read to find a blank line split between two reads.
TAIL_BYTES = 3


def head_bytes(seen: int, tail: bytes, data: bytes) -> tuple[int, bytes]:
    """The next read (`data`) of a head of which `seen` bytes came before,
    ending in `tail`: (its size so far, or -1-size once it has ended; the
    new tail). Blank lines before a request line count for nothing, as h11
    skips them."""
    if seen == 0:
        data = data.lstrip(b"\r\n")
        if not data:
            return 0, b""
    joined = tail + data
    end = _BLANK_LINE.search(joined)
    if end is not None:
        return -1 - (seen + end.end() - len(tail)), b""
    return seen + len(data), joined[-TAIL_BYTES:]


def head_size(
    method: str, raw_path: bytes, query_string: bytes, headers: Iterable[tuple[bytes, bytes]]
) -> int:
    """Bytes of the request line and header fields as sent over HTTP/1.1
    (`METHOD target HTTP/1.1`, `name: value` lines, the blank line)."""
    target = len(raw_path) + (len(query_string) + 1 if query_string else 0)
    fields = sum(len(name) + len(value) + 4 for name, value in headers)
    return len(method) + 1 + target + len(" HTTP/1.1\r\n") + fields + 2
