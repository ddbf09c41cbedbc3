"""A local SNTP responder (asyncio UDP on 127.0.0.1), polite or not.

`offset_s` sets its clock relative to this machine's (changeable while it
runs, as are `leap`, `stratum`, `root_delay_s` and `root_dispersion_s`);
`behaviour` makes it misbehave: "silent" (a hanging server) never answers,
"garbage" answers noise, "short" a truncated packet, "wrong-origin" an answer to some other request,
"wrong-source" answers from another port, "kiss" a kiss-of-death (stratum 0,
RATE), "unsynchronised" leap indicator 3.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from typing import Self

from moscow_clock.core.sntp import to_ntp


def _ntp_now(offset_s: float) -> bytes:
    seconds, fraction = to_ntp(time.time_ns() / 1e6 + offset_s * 1000)
    return struct.pack("!II", seconds, fraction)


def _short(seconds: float) -> int:
    return round(seconds * 65536)


def reply_to(
    query: bytes,
    offset_s: float,
    *,
    stratum: int = 2,
    leap: int = 0,
    root_delay_s: float = 0.0,
    root_dispersion_s: float = 0.0,
) -> bytes:
    received = _ntp_now(offset_s)
    header = (leap << 6) | (4 << 3) | 4
    refid = b"RATE" if stratum == 0 else b"LOCL"
    roots = struct.pack("!II", _short(root_delay_s), _short(root_dispersion_s))
    head = struct.pack("!BBbb", header, stratum, 6, -20) + roots + refid
    reference = received
    origin = query[40:48]
    return head + reference + origin + received + _ntp_now(offset_s)


class Responder(asyncio.DatagramProtocol):
    def __init__(
        self,
        offset_s: float = 0.0,
        behaviour: str = "good",
        *,
        leap: int = 0,
        stratum: int = 2,
        root_delay_s: float = 0.0,
        root_dispersion_s: float = 0.0,
    ) -> None:
        self.offset_s = offset_s
        self.behaviour = behaviour
        self.leap = leap
        self.stratum = stratum
        self.root_delay_s = root_delay_s
        self.root_dispersion_s = root_dispersion_s
        self.queries = 0
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._other: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]
        self._other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._other.bind(("127.0.0.1", 0))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._transport is not None
        assert self._other is not None
        self._transport.close()
        self._other.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        assert self._other is not None
        self.queries += 1
        match self.behaviour:
            case "silent":
                return
            case "garbage":
                self._transport.sendto(os.urandom(48), addr)
                self._transport.sendto(b"\xff" * 7, addr)
            case "short":
                self._transport.sendto(reply_to(data, self.offset_s)[:40], addr)
            case "wrong-origin":
                other = bytearray(data)
                other[47] ^= 0xFF
                self._transport.sendto(reply_to(bytes(other), self.offset_s), addr)
            case "wrong-source":
                self._other.sendto(reply_to(data, self.offset_s), addr)
            case "kiss":
                self._transport.sendto(reply_to(data, self.offset_s, stratum=0), addr)
            case "unsynchronised":
                self._transport.sendto(reply_to(data, self.offset_s, leap=3), addr)
            case _:
                reply = reply_to(
                    data,
                    self.offset_s,
                    stratum=self.stratum,
                    leap=self.leap,
                    root_delay_s=self.root_delay_s,
                    root_dispersion_s=self.root_dispersion_s,
                )
                self._transport.sendto(reply, addr)
