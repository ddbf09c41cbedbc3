"""The reference peer `make bench` measures beside moscow_clock: the same
clock on the `websockets` library's own server, fanned out with
`websockets.broadcast()`.

It is what a careful author would write with that library: one task sleeps to
each whole second and broadcasts the tick (the library writes it to every
connection without a task each); each connection is pinged on its own
schedule by the library's keepalive (its defaults: every 20 s, 20 s to
answer); sync requests are answered the moment they arrive. Compression is
off, as on moscow_clock's wire (ticks are ~120 bytes). `/healthz` and
`/metrics` (the client count only) answer plain HTTP, so `bench/` drives it
like the real server. SIGTERM closes every websocket with 1001 and exits.

    PORT=8001 python -m bench.reference_app
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from http import HTTPStatus

from websockets.asyncio.server import Request, Response, Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from moscow_clock.core.clock import make_tick, next_second_ms
from moscow_clock.core.protocol import Reply, answer

clients: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    clients.add(connection)
    try:
        async for message in connection:
            verdict = answer(message, time.time() * 1000)
            if isinstance(verdict, Reply):
                await connection.send(verdict.text)
    except ConnectionClosed:
        pass  # a client that left without a close frame (the load generator's churn)
    finally:
        clients.discard(connection)


def http(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/ws":
        return None  # the websocket handshake
    if request.path == "/metrics":
        return connection.respond(HTTPStatus.OK, f"moscow_clock_websocket_clients {len(clients)}\n")
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")


async def tick_forever() -> None:
    while True:
        target = next_second_ms(time.time() * 1000)
        upcoming = make_tick(target)
        await asyncio.sleep(max(0.0, target / 1000 - time.time()))
        broadcast(clients, upcoming.text)


async def main() -> None:
    server: Server
    async with serve(
        handler,
        "127.0.0.1",
        int(os.environ["PORT"]),
        process_request=http,
        compression=None,
        backlog=4096,
        max_size=4096,
    ) as server:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        ticking = asyncio.create_task(tick_forever())
        await stop.wait()
        ticking.cancel()
        server.close()  # every websocket gets 1001 ("going away")
        async with asyncio.timeout(10):
            await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
