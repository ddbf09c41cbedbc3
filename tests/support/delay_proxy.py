"""A TCP proxy that delays every byte by a fixed time in each direction.

Stands in for a slow network between the browser and the server: the page's
offset estimate must absorb the latency, not show the time late.
"""

from __future__ import annotations

import asyncio
import contextlib

from .tcp_proxy import TcpProxy


class DelayProxy(TcpProxy):
    def __init__(self, upstream_port: int, delay_s: float) -> None:
        super().__init__(upstream_port)
        self.delay_s = delay_s

    async def relay(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        await asyncio.gather(self._pump(client[0], upstream[1]), self._pump(upstream[0], client[1]))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward each chunk `delay_s` after it arrived, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        delivery = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay_s, data))
                if not data:
                    break
            await delivery
        except (OSError, asyncio.CancelledError):
            delivery.cancel()
            raise
