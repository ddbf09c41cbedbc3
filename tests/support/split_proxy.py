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
from typing import Self

from .server import free_port

# Where the headers end: an HTML response is recognised by its Content-Type.
HEADERS_END = b"\r\n\r\n"
HTML_TYPE = b"content-type: text/html"
PAGE_END = b"</html>"


class SplitProxy:
    def __init__(self, upstream_port: int, marker: bytes, hold_s: float) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.hold_s = hold_s
        self.port = free_port()
        self.held = 0  # pages delivered in two parts
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server.close_clients()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        try:
            with contextlib.suppress(OSError):
                await asyncio.gather(
                    self._pump(reader, up_writer), self._pump_split(up_reader, writer)
                )
        finally:
            for w in (writer, up_writer):
                w.close()
            self._tasks.discard(task)

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
