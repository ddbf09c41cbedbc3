"""ASGI types, defined once for the edge and the server (typing only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

type Scope = MutableMapping[str, Any]
type Message = MutableMapping[str, Any]
type Receive = Callable[[], Awaitable[Message]]
type Send = Callable[[Message], Awaitable[None]]
# Any in, so that any framework's app (with its own, narrower ASGI types)
# passes where an app is expected.
type ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
