"""The messages from one connection to its app, and the task group that
spawns the app with them.

Installed by rebinding `hypercorn.asyncio.tcp_server.TaskGroup`, the name
`TCPServer.run` builds each connection's task group with.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio import task_group
from hypercorn.config import Config
from hypercorn.typing import (
    AppWrapper,
    ASGIFramework,
    ASGIReceiveEvent,
    ASGISendEvent,
    Scope,
)

from ...core.budget import INBOUND
from ...core.wire import PREFRAMED, WRITE_NOW
from .inbound import inbound_of


class AppInbox:
    """Bounded, one reader, one writer, and closed when the app returns or has
    heard the connection end.

    Stands in for the `asyncio.Queue` Hypercorn makes per connection, which
    allocates three deques whether or not anything ever waits; here
    a waiter's future exists only while someone waits. Hypercorn's queue is
    never emptied once the app has returned, so a reader blocked on it held
    the connection open forever; here late messages are dropped. (No upstream
    issue; keep while Hypercorn uses a plain `asyncio.Queue`.)"""

    __slots__ = ("_closed", "_getter", "_items", "_loop", "_maxsize", "_putter")

    def __init__(self, maxsize: int) -> None:
        self._items: list[Any] = []
        self._maxsize = max(1, maxsize)
        self._loop = asyncio.get_running_loop()
        self._getter: asyncio.Future[Any] | None = None  # resolves to the next message
        self._putter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self) -> asyncio.Future[Any]:
        """The next message, as a future: a plain function, so a websocket's
        app waiting for its next message (all its life) holds no coroutine
        frame of this method, only the future."""
        future = self._loop.create_future()
        if self._items:
            future.set_result(self._items.pop(0))
            _wake(self._putter)
        else:
            self._getter = future
        return future

    async def put(self, item: Any) -> None:
        while len(self._items) >= self._maxsize and not self._closed:
            self._putter = self._loop.create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        if self._closed:
            return  # the app has returned or heard the end: nobody will read it
        if not self._hand_over(item):
            self._items.append(item)

    def _hand_over(self, item: Any) -> bool:
        """Give `item` straight to a reader waiting for it (False: none is;
        a reader cancelled while waiting is none)."""
        getter, self._getter = self._getter, None
        if getter is None or getter.done():
            return False
        getter.set_result(item)
        return True

    __call__ = put  # the stream's `app_put`

    def finish(self, last: Any) -> None:
        """Without waiting: drop what the app has not read, hand it `last`
        (the disconnect) and nothing after it."""
        if self._closed:
            return
        self._items.clear()
        if not self._hand_over(last):
            self._items.append(last)
        self._closed = True
        _wake(self._putter)

    def close(self) -> None:
        self._closed = True
        self._items.clear()
        _wake(self._putter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class AppCall:
    """One ASGI app call: Hypercorn's `_handle` with the app's `send` and
    its end as methods of one small object, instead of three closures, their
    cells and a `partial` per connection (their weight: docs/PERFORMANCE.md,
    Figures the code cites); and the app called
    directly rather than through Hypercorn's `ASGIWrapper`, whose coroutine
    frame would sit under every websocket for its lifetime. The same
    behaviour as `_handle`: an exception is logged, and the stream always
    hears that the app has returned (`send(None)`), then the inbox closes."""

    __slots__ = ("_inbox", "_send")

    def __init__(
        self, inbox: AppInbox, send: Callable[[ASGISendEvent | None], Awaitable[None]]
    ) -> None:
        self._inbox = inbox
        self._send = send

    def send(self, message: ASGISendEvent | None) -> Awaitable[None]:
        # None: the app has returned. Anything else passes straight through.
        return self._end() if message is None else self._send(message)

    async def _end(self) -> None:
        try:
            await self._send(None)
        finally:
            self._inbox.close()

    async def run(self, app: ASGIFramework, config: Config, scope: Scope) -> None:
        try:
            call = app(scope, self._inbox.get, self.send)
            # Not held by this frame for the connection's lifetime: the
            # stream drops it after a websocket's accept (streams.py).
            del scope
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            await config.log.exception("Error in ASGI Framework")
        finally:
            await self._end()


class TaskGroup(task_group.TaskGroup):
    """Hypercorn's task group; its `spawn_app` is replaced (it does not call
    `super()`: the queue it makes is the thing to avoid). It runs the app as
    Hypercorn's own `_handle` does (see `AppCall`), and:

    - hands the app an `AppInbox` instead of an `asyncio.Queue`;
    - advertises pre-framed sends (core/wire.py) on websocket scopes, which
      `streams.WSStream.app_send` honours, and its `write_now` with them;
    - hands the app the process's inbound budget (`inbound.py`) on them,
      for its metrics.
    """

    async def spawn_app(
        self,
        app: AppWrapper,
        config: Config,
        scope: Scope,
        send: Callable[[ASGISendEvent | None], Awaitable[None]],
    ) -> Callable[[ASGIReceiveEvent], Awaitable[None]]:
        inbox = AppInbox(config.max_app_queue_size)
        if scope["type"] == "websocket":
            # `send` is the stream's app_send; a stream that can write a
            # frame at once (streams.WSStream over HTTP/1.1) says so.
            write_now = getattr(getattr(send, "__self__", None), "write_now", None)
            scope["extensions"][PREFRAMED] = {} if write_now is None else {WRITE_NOW: write_now}
            if (inbound := inbound_of(config)) is not None:
                extensions = cast(dict[str, object], scope["extensions"])
                extensions[INBOUND] = inbound
        call = AppCall(inbox, send)
        if isinstance(app, ASGIWrapper):
            self.spawn(call.run, app.app, config, scope)
            return inbox

        # Any other app (Hypercorn's WSGI wrapper): Hypercorn's own `_handle`.
        loop = self._loop

        def call_soon(func: Callable[..., Any], *args: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

        self.spawn(
            task_group._handle, app, config, scope, inbox.get, call.send,
            partial(loop.run_in_executor, None), call_soon,
        )  # fmt: skip
        return inbox
