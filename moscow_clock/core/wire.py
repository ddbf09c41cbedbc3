"""Websocket wire framing the app may do itself, and the ASGI extension that allows it.

Every client gets the same tick each second; framing it once instead of once
per client is most of what a server that knows this extension saves. A server
that advertises `PREFRAMED` in `scope["extensions"]` accepts a
`"websocket.send"` that carries `"frame"`: the complete, unmasked frame for its
`"text"`, written to the socket as is. A server that does not advertise it
sends `"text"` as usual, so the app works on any ASGI server.

The extension's value may carry `WRITE_NOW`: a plain function taking a
finished frame that writes it to the socket there and then, returning True,
or returns False without writing anything when the connection cannot take it
at once (an earlier write still waiting for the socket, or the websocket
closing). A tick is the same for every client and a late one is replaced by
the next: the app skips a tick that could not be written, instead of awaiting
a send per client. (What it saves per client is in docs/PERFORMANCE.md.)
"""

from __future__ import annotations

import struct

PREFRAMED = "moscow_clock.preframed"
FRAME = "frame"
WRITE_NOW = "write_now"


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented server-to-client text frame (RFC 6455 5.2)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


# A masked client close frame: 2 header bytes, a 4-byte mask, up to 125 bytes.
CLIENT_CLOSE_FRAME_MAX = 2 + 4 + 125


def ends_with_client_close(data: bytes) -> bool:
    """Whether `data` (the last bytes a client sent) ends with a complete,
    masked close frame: how a server that has sent its own close frame, and
    parses nothing more, knows that the client has answered it. A peer that
    follows the RFC sends nothing after its close frame; one that does not is
    held to the close deadline instead."""
    for length in range(126):
        start = len(data) - (6 + length)
        if start < 0:
            break
        if data[start] == 0x88 and data[start + 1] == 0x80 | length:
            return True
    return False
