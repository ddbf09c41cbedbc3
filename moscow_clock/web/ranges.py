"""Byte ranges of static files, as RFC 9110 section 14 has them.

Quart's own range handling (in `Response.make_conditional`) answers a
suffix range (`bytes=-N`) with a 500: it hands the negative start on to a
`Content-Range` that refuses it. It also answers 416 to a Range it should
ignore (another unit, several ranges, bad syntax). Here the range is
decided first, with Werkzeug's parser:

- one satisfiable byte range: 206 with that range (a suffix longer than the
  file is the whole file, 14.1.3);
- a byte range that starts at or past the end, or the file is empty: 416
  with `Content-Range: bytes */<length>` (15.5.17);
- anything else (another unit, several ranges, a Range that does not parse,
  an `If-Range` that no longer matches): the range is ignored (14.2 "MUST
  ignore" an unknown unit; "MAY ignore" the rest) and the whole file is
  answered, with Quart's 304/412 validators as before.
"""

from __future__ import annotations

from typing import Any

from quart import Request, Response
from werkzeug.datastructures import ContentRange
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header
from werkzeug.sansio.http import is_resource_modified


def byte_range(header: str | None, length: int) -> tuple[int, int] | None:
    """`(start, stop)` of the one byte range `header` asks for in a
    representation of `length` bytes; None to ignore the header. Raises
    `RequestedRangeNotSatisfiable` when the range is well formed but no byte
    of it exists."""
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    start, stop = parsed.ranges[0]
    if start < 0:  # a suffix: the last -start bytes (all of them, if fewer)
        if length == 0:
            raise RequestedRangeNotSatisfiable(length=length)
        return max(0, length + start), length
    if start >= length:
        raise RequestedRangeNotSatisfiable(length=length)
    return start, length if stop is None else min(stop, length)


class RangeResponse(Response):
    """Quart's response with byte ranges decided here (the module's rules)."""

    async def make_conditional(
        self,
        request: Request,
        accept_ranges: bool | str = False,
        complete_length: int | None = None,
    ) -> Response:
        span = None
        if (
            request.method in {"GET", "HEAD"}
            and accept_ranges
            and complete_length is not None
            and "Range" in request.headers
            and self._if_range_holds(request)
        ):
            span = byte_range(request.headers.get("Range"), complete_length)
        if span is None:  # Quart's validators (304, 412); no length: its ranges off
            return await super().make_conditional(request, accept_ranges, None)
        start, stop = span
        body: Any = self.response
        if not hasattr(body, "make_conditional"):
            await self.make_sequence()
            body = self.response
        await body.make_conditional(start, stop)
        self.content_length = stop - start
        self.content_range = ContentRange("bytes", start, stop, complete_length)
        self.headers["Accept-Ranges"] = "bytes"
        self.status_code = 206
        return self

    def _if_range_holds(self, request: Request) -> bool:
        """No `If-Range`, or one that still names this representation."""
        if "If-Range" not in request.headers:
            return True
        return not is_resource_modified(
            http_range=request.headers.get("Range"),
            http_if_range=request.headers.get("If-Range"),
            etag=self.headers.get("etag"),
            last_modified=self.headers.get("last-modified"),
            ignore_if_range=False,
        )
