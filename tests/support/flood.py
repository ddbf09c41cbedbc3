"""Many websocket clients each sending syncs at a steady rate, from a process
of their own (`python -m tests.support.flood PORT CONNECTIONS RATE SECONDS
[FRAGMENTS]`), so the test's own event loop, where a bystander measures,
shares nothing with them but the machine.

Each connection sends one sync every 1/RATE seconds (the connections take
turns, spread over each period), never faster, and reads whatever comes
back, looking only for the server's close frame. A sync may be sent in
FRAGMENTS frames (one write): each costs the server a frame's parse, and
stays within WS_FRAME_RATE (30) at 9 syncs in 3 frames a second. A connection whose socket
takes no more (the server stopped reading it) skips its turn: nothing
piles up here. Prints one JSON line when done: connections opened, syncs
sent, turns skipped, and the close codes seen.
"""

from __future__ import annotations

import collections
import json
import socket
import sys
import time

from .rawws import CLOSE, SYNC, open_raw, raw_frame, server_frames

STEP_S = 0.01


def fragmented(fragments: int) -> bytes:
    """One sync request in `fragments` frames (a text frame, continuations)."""
    if fragments <= 1:
        return SYNC
    text = b'{"type": "sync", "t0": 1.5}'
    size = -(-len(text) // fragments)
    parts = [text[i : i + size] for i in range(0, len(text), size)]
    return b"".join(
        raw_frame((0x01 if i == 0 else 0x00) | (0x80 if i == len(parts) - 1 else 0), part)
        for i, part in enumerate(parts)
    )


def main(
    port: int, connections: int, rate: float, seconds: float, fragments: int = 1
) -> dict[str, object]:
    sync = fragmented(fragments)
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(connections):
        try:
            sock = open_raw(port)
        except OSError:  # refused (503: the process sheds load) or reset
            refused += 1
            continue
        sock.setblocking(False)
        socks.append(sock)
    # The test waits for this line.
    print(json.dumps({"opened": len(socks), "refused": refused}), flush=True)
    inboxes = [bytearray() for _ in socks]
    alive = [True] * len(socks)
    codes: collections.Counter[str] = collections.Counter()
    sent = skipped = 0
    period = 1.0 / rate
    start = time.monotonic()
    step = 0
    while (now := time.monotonic()) - start < seconds:
        # The connections whose turn falls in this step of the period.
        phase = ((now - start) % period) / period
        width = max(1, round(len(socks) * STEP_S / period))
        first = int(phase * len(socks))
        for i in range(first, min(len(socks), first + width)):
            if not alive[i]:
                continue
            try:
                socks[i].send(sync)  # (this small, it goes whole or not at all)
                sent += 1
            except BlockingIOError:
                skipped += 1
            except OSError:
                alive[i] = False
                codes["reset"] += 1
        # Read a slice of them each step; all within a period.
        for i in range(step % 10, len(socks), 10):
            if alive[i] and not _read(socks[i], inboxes[i], codes):
                alive[i] = False
        step += 1
        time.sleep(max(0.0, start + step * STEP_S - time.monotonic()))
    for sock in socks:
        sock.close()
    return {
        "opened": len(socks),
        "refused": refused,
        "sent": sent,
        "skipped": skipped,
        "codes": dict(codes),
    }


def _read(sock: socket.socket, inbox: bytearray, codes: collections.Counter[str]) -> bool:
    """Read what is there; False once the connection has ended."""
    try:
        while chunk := sock.recv(65536):
            inbox += chunk
            for opcode, payload in server_frames(inbox):
                if opcode == CLOSE:
                    codes[str(int.from_bytes(payload[:2], "big"))] += 1
                    return False
        return False  # end of stream
    except BlockingIOError:
        return True
    except OSError:
        codes["reset"] += 1
        return False


if __name__ == "__main__":
    port, connections, rate, seconds = sys.argv[1:5]
    fragments = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    result = main(int(port), int(connections), float(rate), float(seconds), fragments)
    print(json.dumps(result), flush=True)
