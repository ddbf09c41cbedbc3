"""The 16 KB head limit on the raw bytes, before h11 parses a head.

Installed by rebinding `hypercorn.asyncio.tcp_server.ProtocolWrapper`, the
name `TCPServer.run` builds each connection's protocol with (see
`install.py`).
"""

from __future__ import annotations

from contextlib import suppress

from hypercorn import protocol as hypercorn_protocol
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.h11 import H11Protocol

from ...core.request_head import MAX_HEAD_BYTES, head_bytes
from ...core.security_headers import merged
from .options import options_of

BODY = b"request headers too large\n"


class ProtocolWrapper(hypercorn_protocol.ProtocolWrapper):
    """Change, until Hypercorn has its own (then drop the override):

    **A head past MAX_HEAD_BYTES is refused from its raw bytes** (`handle`):
    while an HTTP/1.1 connection waits for a request head, the bytes of each
    read are counted up to the head's blank line; past the limit the server
    answers a canned 431 (with the app's headers) and closes, before h11
    parses anything. h11 checks its limit only while a head is incomplete,
    so a 60 KB head that arrived in one read was parsed whole, then built
    into a request for the app to refuse (docs/PERFORMANCE.md). The bytes
    of a head that ends within the limit go on to h11 as they came. (No
    upstream issue.)
    """

    # The head being received: its bytes so far, and its last few (a blank
    # line may be split between reads). Class defaults: a connection holds
    # its own only while a head spans reads.
    _head_seen = 0
    _head_tail = b""

    async def handle(self, event: Event) -> None:
        if isinstance(event, RawData) and self._awaiting_head():
            seen, tail = head_bytes(self._head_seen, self._head_tail, event.data)
            size = -1 - seen if seen < 0 else seen
            if size > MAX_HEAD_BYTES:
                await self._refuse()
                return
            if seen > 0:
                self._head_seen, self._head_tail = seen, tail
            else:  # ended (or nothing yet): back to the class's defaults
                # (`del`, not `__dict__.pop`: asking for `__dict__` makes
                # the instance a dict of its own, kept for its lifetime.)
                with suppress(AttributeError):  # (none of its own: a head in one read)
                    del self._head_seen, self._head_tail
        await super().handle(event)

    def _awaiting_head(self) -> bool:
        """HTTP/1.1 with no request in progress: what arrives is a head."""
        protocol = self.protocol
        return isinstance(protocol, H11Protocol) and protocol.stream is None

    async def _refuse(self) -> None:
        headers = merged(
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(BODY)),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
                *self.config.response_headers("h11"),
            ],
            options_of(self.config).headers,
        )
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        response = b"HTTP/1.1 431 Request Header Fields Too Large\r\n" + head + b"\r\n" + BODY
        await self.send(RawData(data=response))
        await self.send(Closed())
