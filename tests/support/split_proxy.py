"""A TCP proxy that delivers an HTML page in two parts, some time apart.

Stands in for a network (or a busy browser's parser) that gives the browser
only the first part of a page for a while: the browser may paint what it has
parsed so far, and everything the rest then adds moves it (the load's layout
shift). Each connection's first HTML response is cut just before the tag
that holds `marker`; every other byte, and everything after that response,
passes straight through (the page's scripts, its websocket).
"""

from __future__ import annotations

import asyncio
import contextlib

from .tcp_proxy import TcpProxy

# Where the headers end: an HTML response is recognised by its Content-Type.
HEADERS_END = b"\r\n\r\n"
HTML_TYPE = b"content-type: text/html"
PAGE_END = b"</html>"


class SplitProxy(TcpProxy):
    def __init__(self, upstream_port: int, marker: bytes, hold_s: float) -> None:
        super().__init__(upstream_port)
        self.marker = marker
        self.hold_s = hold_s
        self.held = 0  # pages delivered in two parts

    async def relay(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        with contextlib.suppress(OSError):
            await asyncio.gather(
                self._pump(client[0], upstream[1]), self._pump_split(upstream[0], client[1])
            )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    async def _pump_split(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The first HTML response up to the marker's tag, the rest hold_s later."""
        pending = b""
        while data := await reader.read(65536):
            pending += data
            head, _, _ = pending.partition(HEADERS_END)
            if HEADERS_END in pending and HTML_TYPE not in head.lower():
                break  # not a page: pass everything through
            at = pending.find(self.marker)
            if at >= 0:
                cut = pending.rfind(b"<", 0, at)
                writer.write(pending[:cut])
                await writer.drain()
                self.held += 1
                await asyncio.sleep(self.hold_s)
                pending = pending[cut:]
                break
            if PAGE_END in pending:
                break  # a page without the marker: whole
        writer.write(pending)
        await writer.drain()
        await self._pump(reader, writer)
