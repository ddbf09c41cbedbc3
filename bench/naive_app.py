"""The baseline the benchmark compares against: the obvious Quart clock.

Every connection runs its own `sleep to the next second; send` loop and
encodes its own tick: a task wake-up, a JSON encoding and a timer per client
per second. Served by Hypercorn with its defaults (permessage-deflate on).
`python -m bench.naive_app` with PORT in the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, websocket

app = Quart(__name__)


@app.websocket("/ws")
async def ws() -> None:
    await websocket.accept()
    while True:
        await asyncio.sleep(1 - time.time() % 1)
        second = int(time.time())
        await websocket.send(
            json.dumps(
                {
                    "type": "tick",
                    "epoch_ms": second * 1000,
                    "iso": time.strftime("%Y-%m-%dT%H:%M:%S+03:00", time.gmtime(second + 10800)),
                    "utc_offset_s": 10800,
                    "tz": "Europe/Moscow",
                },
                separators=(",", ":"),
            )
        )


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{os.environ['PORT']}"]
    config.accesslog = None
    config.backlog = 4096
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
