"""A bare websocket client on a plain socket, for clients that misbehave.

A library client reads and answers pings on its own; these do exactly what a
test tells them and nothing else (never read, never pong, flood).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import select
import socket
import struct
import threading
import time

HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked, unfragmented client-to-server frame (RFC 6455 5.2)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + mask + masked


def text_frame(text: str) -> bytes:
    return client_frame(TEXT, text.encode())


def server_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The complete (unmasked) server frames at the front of `buffer`, as
    (opcode, payload), taken off it; a partial frame stays for the next read."""
    out = []
    while len(buffer) >= 2:
        opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            if len(buffer) < 2 + size:
                break
            length, offset = int.from_bytes(buffer[2 : 2 + size], "big"), 2 + size
        if len(buffer) < offset + length:
            break
        out.append((opcode, bytes(buffer[offset : offset + length])))
        del buffer[: offset + length]
    return out


SYNC = text_frame(json.dumps({"type": "sync", "t0": 1.5}))


def open_raw(port: int, buffer_bytes: int | None = None) -> socket.socket:
    """Connect and complete the handshake; small buffers make backpressure
    show after kilobytes instead of the megabytes loopback autotunes to."""
    sock = socket.socket()
    if buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_bytes)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(HANDSHAKE.format(port=port, key=key).encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)  # byte by byte: leave any frame after the headers unread
        if not chunk:
            raise ConnectionError("closed during the handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(response.decode(errors="replace"))
    return sock


def flood_until_blocked(sock: socket.socket, frame: bytes = SYNC, limit: int = 1 << 22) -> int:
    """Send frames without reading until the socket will take no more; bytes
    sent (ConnectionError once the server has cut it off)."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    sock.settimeout(5)
    sent = 0
    # Only whole frames: a partial send would corrupt the stream.
    while sent < limit and poller.poll(0):
        sock.sendall(frame)
        sent += len(frame)
    return sent


def is_closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """Read what is buffered; True if the server ends the connection within
    `timeout` (ticks keep arriving on a live one, so the budget is overall)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def flood_then_read_close(port: int, burst: bytes) -> tuple[int, bytes]:
    """Send `burst` in one go, then read until the server's close frame;
    its code and reason (blocking: run it in a thread)."""
    sock = open_raw(port)
    with contextlib.suppress(ConnectionError):
        sock.sendall(burst)
    sock.settimeout(10)
    inbox = bytearray()
    try:
        while True:
            for opcode, payload in server_frames(inbox):
                if opcode == CLOSE:
                    return int.from_bytes(payload[:2], "big"), payload[2:]
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            inbox += chunk
    finally:
        sock.close()


# --- a raw-frame client for hostile frame tests -------------------------


def raw_frame(first: int, payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """A masked client frame with the given first byte (FIN, RSV, opcode) as
    is: fragments (FIN=0, opcode 0) and broken frames as well as good ones."""
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + mask + masked


@dataclasses.dataclass
class Ending:
    """How a raw connection ended, as its client saw it."""

    close_code: int | None  # of the server's close frame (None: there was none)
    close_reason: bytes
    frames_after_close: list[tuple[int, bytes]]  # must be empty (RFC 6455 5.5.1)
    ended: bool  # the server ended the connection (FIN or RST) within the bound
    after_s: float  # seconds from the start of `finish` to the end (or the bound)
    before_close: list[tuple[int, bytes]]  # frames before the close frame

    def assert_clean(self, code: int | None, within: float) -> None:
        """The server closed with `code`, wrote nothing after its close frame,
        and ended the connection within `within` seconds."""
        assert self.close_code == code, self
        assert not self.frames_after_close, f"frames after the close: {self.frames_after_close}"
        assert self.ended, f"still open after {within} s"
        assert self.after_s <= within, self.after_s


class RawClient:
    """A websocket client on a bare socket that does what a test says:
    sends any bytes (in a background thread if asked to flood), and reads
    every frame the server sends, so a test can check what came after the
    server's close frame and when the connection ended."""

    def __init__(
        self, port: int, *, handshake: bytes | None = None, buffer_bytes: int | None = None
    ) -> None:
        if handshake is None:
            self.sock = open_raw(port, buffer_bytes)
            self.response = b"HTTP/1.1 101"
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            self.sock.sendall(handshake)
            self.response = b""
            while b"\r\n\r\n" not in self.response:
                chunk = self.sock.recv(1)
                if not chunk:
                    break
                self.response += chunk
        self.inbox = bytearray()
        self.frames: list[tuple[int, bytes]] = []
        self.sent = 0
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None

    def send(self, data: bytes) -> bool:
        """False once the server has cut the connection off."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def flood(self, chunk: bytes, seconds: float, per_s: float | None = None) -> None:
        """Send `chunk` again and again from a thread, for `seconds` or until
        the connection breaks (`per_s`: at most that many chunks a second)."""

        def run() -> None:
            deadline = time.monotonic() + seconds
            gap = 0.0 if per_s is None else 1.0 / per_s
            while not self._stop.is_set() and time.monotonic() < deadline:
                if not self.send(chunk):
                    return
                if gap:
                    time.sleep(gap)

        self._sender = threading.Thread(target=run, daemon=True)
        self._sender.start()

    def wait_for_close_frame(self, within: float) -> bool:
        """Read (blocking) until the server's close frame has come, keeping
        every frame for `finish`; False if it has not within `within` s."""
        deadline = time.monotonic() + within
        while not any(opcode == CLOSE for opcode, _ in self.frames):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except OSError:  # the timeout, or a reset
                return False
            if not chunk:
                return False
            self.inbox += chunk
            self.frames += server_frames(self.inbox)
        return True

    def finish(self, within: float) -> Ending:
        """Read until the server ends the connection or `within` seconds pass
        (blocking: run it in a thread); then stop any flood and close."""
        started = time.monotonic()
        deadline = started + within
        ended = False
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    ended = True
                    break
                self.inbox += chunk
                self.frames += server_frames(self.inbox)
        except (ConnectionResetError, BrokenPipeError):
            ended = True
        except TimeoutError:
            pass
        after = time.monotonic() - started
        self.close()
        closes = [i for i, (opcode, _) in enumerate(self.frames) if opcode == CLOSE]
        if not closes:
            return Ending(None, b"", [], ended, after, list(self.frames))
        first = closes[0]
        payload = self.frames[first][1]
        return Ending(
            int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None,
            payload[2:],
            self.frames[first + 1 :],
            ended,
            after,
            self.frames[:first],
        )

    def close(self) -> None:
        self._stop.set()
        if self._sender is not None:
            self._sender.join(5)
        self.sock.close()
