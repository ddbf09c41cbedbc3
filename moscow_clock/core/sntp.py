"""Pure SNTP (RFC 4330): the request, the checks on a reply, and the math.

A reply is believed only if it answers our request (its originate timestamp
is the transmit timestamp we sent, random low bits included), comes from a
synchronised server in server mode, and gives a sane round trip; anything
else is a `BadReply` with a short reason. Times are epoch milliseconds.

Sign convention (the one `ntplib`, chrony and node_exporter use): an
offset is the server's time minus ours, so positive means this clock is
behind the server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

PACKET_BYTES = 48
NTP_PORT = 123
# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_DELTA_S = 2_208_988_800
_ERA_S = 1 << 32
_FRACTION = 1 << 32
# LI 0 (no warning), version 4, mode 3 (client).
_CLIENT_HEADER = (0 << 6) | (4 << 3) | 3
_MODE_SERVER = 4
_LEAP_ALARM = 3  # "clock unsynchronised"
_NONCE_MASK = 0xFFFF  # low fraction bits (15 us) carry the nonce


class BadReply(ValueError):
    """A datagram that is not a usable answer to our request."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One exchange. `offset_ms`: the server's time minus ours (positive: this
    clock is behind); `delay_ms`: the round trip less the server's own time.
    The server's distance to true time comes with it: `root_delay_ms` and
    `root_dispersion_ms` (RFC 5905 rootdelay/rootdisp), `precision_ms`, and
    its leap indicator (0 none, 1 a second to insert, 2 to delete at the end
    of the month)."""

    offset_ms: float
    delay_ms: float
    stratum: int
    leap: int = 0
    root_delay_ms: float = 0.0
    root_dispersion_ms: float = 0.0
    precision_ms: float = 0.0


def to_ntp(epoch_ms: float) -> tuple[int, int]:
    """Epoch ms as NTP (seconds, fraction), wrapped into the current era."""
    seconds, rest_ms = divmod(epoch_ms, 1000)
    return (int(seconds) + NTP_UNIX_DELTA_S) % _ERA_S, int(rest_ms / 1000 * _FRACTION)


def from_ntp(seconds: int, fraction: int, near_ms: float) -> float:
    """NTP (seconds, fraction) as epoch ms, in the era closest to `near_ms`
    (so this keeps working past 2036)."""
    unix_s = seconds - NTP_UNIX_DELTA_S
    near_s = near_ms / 1000
    unix_s += round((near_s - unix_s) / _ERA_S) * _ERA_S
    return (unix_s + fraction / _FRACTION) * 1000


def request(sent_ms: float, nonce: int) -> bytes:
    """A client request stamped with `sent_ms`; `nonce` (random, 16 bits) goes
    into the low fraction bits so a reply can be matched to this request."""
    seconds, fraction = to_ntp(sent_ms)
    fraction = (fraction & ~_NONCE_MASK) | (nonce & _NONCE_MASK)
    return struct.pack("!B47x", _CLIENT_HEADER)[:40] + struct.pack("!II", seconds, fraction)


def parse_reply(data: bytes, sent: bytes, received_ms: float) -> Sample:
    """Check a reply to the request `sent` (the exact bytes) that arrived at
    local `received_ms`; the sample, or `BadReply`."""
    if len(data) < PACKET_BYTES:
        raise BadReply(f"short reply ({len(data)} bytes)")
    header, stratum = data[0], data[1]
    leap, version, mode = header >> 6, (header >> 3) & 7, header & 7
    if mode != _MODE_SERVER:
        raise BadReply(f"not a server reply (mode {mode})")
    if not 1 <= version <= 4:
        raise BadReply(f"unknown NTP version {version}")
    if stratum == 0:
        kiss = data[12:16].decode("ascii", "replace").strip("\x00 ")
        raise BadReply(f"kiss-of-death {kiss or '?'}")
    if stratum > 15 or leap == _LEAP_ALARM:
        raise BadReply("the server is not synchronised")
    if data[24:32] != sent[40:48]:
        raise BadReply("originate timestamp does not match our request")
    rx_s, rx_f, tx_s, tx_f = struct.unpack("!IIII", data[32:48])
    if tx_s == 0 and tx_f == 0:
        raise BadReply("no transmit timestamp")
    orig_s, orig_f = struct.unpack("!II", sent[40:48])
    t1 = from_ntp(orig_s, orig_f, received_ms)
    t2 = from_ntp(rx_s, rx_f, received_ms)
    t3 = from_ntp(tx_s, tx_f, received_ms)
    t4 = received_ms
    delay = (t4 - t1) - (t3 - t2)
    if delay < 0 or t3 < t2:
        raise BadReply(f"impossible timestamps (delay {delay:.3f} ms)")
    precision = struct.unpack("!b", data[3:4])[0]
    root_delay, root_dispersion = struct.unpack("!II", data[4:12])
    return Sample(
        offset_ms=((t2 - t1) + (t3 - t4)) / 2,
        delay_ms=delay,
        stratum=stratum,
        leap=leap,
        root_delay_ms=_short_ms(root_delay),
        root_dispersion_ms=_short_ms(root_dispersion),
        precision_ms=1000 * 2.0 ** max(-64, min(precision, 16)),
    )


def _short_ms(value: int) -> float:
    """An NTP short (16.16 fixed point seconds) as milliseconds."""
    return value / 65536 * 1000


def parse_servers(raw: str) -> tuple[tuple[str, int], ...]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`, separated by spaces;
    raises ValueError naming the bad item."""
    servers = []
    for item in raw.replace(",", " ").split():
        host, port = item, str(NTP_PORT)
        if item.startswith("["):
            end = item.find("]")
            if end < 0 or (item[end + 1 :] and not item[end + 1 :].startswith(":")):
                raise ValueError(item)
            host = item[1:end]
            if item[end + 1 :]:
                port = item[end + 2 :]
        elif item.count(":") == 1:
            host, port = item.split(":")
        elif ":" in item:  # a bare IPv6 address
            host = item
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(item)
        servers.append((host, int(port)))
    return tuple(servers)
