"""Websocket wire framing the app may do itself, and the ASGI extension that allows it.

Every client gets the same tick each second; framing it once instead of once
per client is most of what a server that knows this extension saves. A server
that advertises `PREFRAMED` in `scope["extensions"]` accepts a
`"websocket.send"` that carries `"frame"`: the complete, unmasked frame for its
`"text"`, written to the socket as is. A server that does not advertise it
sends `"text"` as usual, so the app works on any ASGI server.
"""

from __future__ import annotations

import struct

PREFRAMED = "moscow_clock.preframed"
FRAME = "frame"


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented server-to-client text frame (RFC 6455 5.2)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload
