"""Watches the server's own clock: the kernel's state once a second, and an
optional comparison with NTP servers every NTP_INTERVAL seconds.

Both run in their own task, never on the tick path; an SNTP query is a UDP
datagram endpoint on the event loop, bounded by a timeout, so a server that
never answers, answers garbage or answers someone else costs nothing but a
(rate-limited) log line. A WARNING is logged when the synchronised state
changes, not every second.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import suppress

from ..core.clockstate import (
    UNKNOWN,
    ClockState,
    Reference,
    clock_report,
    error_bound_ms,
    untrusted_reason,
)
from ..core.ratelimit import Every
from ..core.sntp import BadReply, Sample, best_sample, parse_reply, request

log = logging.getLogger("moscow_clock.clock")

type ClockSource = Callable[[], ClockState]
type WallClock = Callable[[], float]

READ_EVERY_S = 1.0
# A reference older than this many intervals (every server silent since) is dropped.
STALE_AFTER_INTERVALS = 3
# At most one log line per server and kind of trouble in this many seconds.
LOG_EVERY_S = 60.0


def _wall_ms() -> float:
    return time.time_ns() / 1_000_000


class _Exchange(asyncio.DatagramProtocol):
    """One SNTP request on a connected UDP socket; keeps listening past bad
    replies until a good one arrives or the caller's timeout ends it."""

    def __init__(self, server: str, wall: WallClock, limiter: Every) -> None:
        self.server = server
        self.wall = wall
        self.limiter = limiter
        self.sent = b""
        self.address: object = None
        self.result: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.address = transport.get_extra_info("peername")
        self.sent = request(self.wall(), secrets.randbits(16))
        transport.sendto(self.sent)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        received = self.wall()
        if self.result.done():
            return
        # A connected socket only hears its peer; checked anyway.
        if self.address is not None and addr[:2] != self.address[:2]:  # type: ignore[index]
            self._complain("wrong-source", f"reply from {addr[0]}, not the server")
            return
        try:
            sample = parse_reply(data, self.sent, received)
        except BadReply as error:
            self._complain("bad-reply", str(error))
            return
        self.result.set_result(sample)

    def error_received(self, exc: Exception) -> None:
        self._complain("error", str(exc))

    def _complain(self, kind: str, message: str) -> None:
        if self.limiter.due(time.monotonic(), f"{self.server}:{kind}"):
            log.warning("NTP server %s: %s (ignored)", self.server, message)


async def sntp_query(
    host: str, port: int, timeout_s: float, wall: WallClock = _wall_ms, *, limiter: Every
) -> Sample | None:
    """One SNTP exchange with host:port; None if it failed (logged)."""
    server = f"{host}:{port}"
    loop = asyncio.get_running_loop()
    transport = None
    try:
        async with asyncio.timeout(timeout_s):
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Exchange(server, wall, limiter), remote_addr=(host, port)
            )
            return await protocol.result
    except TimeoutError:
        reason = f"no usable reply within {timeout_s:g} s"
    except OSError as error:  # name resolution, unreachable network
        reason = str(error) or type(error).__name__
    finally:
        if transport is not None:
            transport.close()
    if limiter.due(time.monotonic(), f"{server}:failed"):
        log.warning("NTP server %s: %s", server, reason)
    return None


class ClockMonitor:
    """The latest clock state and NTP reference, shared by the routes."""

    def __init__(
        self,
        source: ClockSource,
        *,
        servers: tuple[tuple[str, int], ...] = (),
        interval_s: float = 64.0,
        max_error_ms: float = 250.0,
        check: bool = True,
        wall: WallClock = _wall_ms,
    ) -> None:
        self.source = source
        self.servers = servers
        self.interval_s = interval_s
        self.max_error_ms = max_error_ms
        self.check = check
        self.wall = wall
        self.timeout_s = min(3.0, max(0.2, interval_s / 2))
        self.state = UNKNOWN
        self.reference: Reference | None = None
        self._limiter = Every(LOG_EVERY_S)
        self._logged: bool | str | None = "never"
        self._ntp_over_limit = False
        self.read()

    def read(self) -> ClockState:
        """Read the source now (never raises) and log a change of state."""
        try:
            self.state = self.source()
        except Exception:
            if self._limiter.due(time.monotonic(), "source"):
                log.exception("reading the clock state failed; treating it as unknown")
            self.state = UNKNOWN
        self._log_change()
        return self.state

    def _log_change(self) -> None:
        synchronized = self.state.synchronized
        if synchronized == self._logged:
            return
        first = self._logged == "never"
        self._logged = synchronized
        fields = {"max_error_ms": self.state.max_error_ms}
        if synchronized:
            log.log(logging.INFO if first else logging.WARNING, "clock synchronised", extra=fields)
        elif synchronized is None:
            log.warning("clock state unknown: this server cannot vouch for its time")
        else:
            log.warning(
                "clock NOT synchronised (kernel STA_UNSYNC): this server's time is not verified",
                extra=fields,
            )

    def error_bound(self) -> float | None:
        """The server's current error bound (None: not verified)."""
        return error_bound_ms(self.state, self.reference_now())

    def report(self) -> dict[str, object]:
        return clock_report(self.state, self.reference_now())

    def unready_reason(self) -> str | None:
        """Why /readyz should fail, or None (always None with CLOCK_CHECK=off)."""
        if not self.check:
            return None
        return untrusted_reason(self.state, self.reference_now(), self.max_error_ms)

    def reference_now(self) -> Reference | None:
        """The NTP reference, unless every server has been silent too long."""
        reference = self.reference
        if reference is None:
            return None
        age_ms = self.wall() - reference.measured_at_ms
        if age_ms > STALE_AFTER_INTERVALS * self.interval_s * 1000 + self.timeout_s * 1000:
            return None
        return reference

    async def compare_with_ntp(self) -> Reference | None:
        """Query every server at once; keep the lowest-delay answer."""
        samples = await asyncio.gather(
            *(
                sntp_query(host, port, self.timeout_s, self.wall, limiter=self._limiter)
                for host, port in self.servers
            )
        )
        answered = [
            (f"{host}:{port}", sample)
            for (host, port), sample in zip(self.servers, samples, strict=True)
            if sample is not None
        ]
        best = best_sample(answered)
        if best is None:
            return None
        server, sample = best
        self.reference = Reference(
            offset_ms=sample.offset_ms,
            delay_ms=sample.delay_ms,
            server=server,
            measured_at_ms=self.wall(),
        )
        over = abs(sample.offset_ms) > self.max_error_ms
        if over != self._ntp_over_limit:
            self._ntp_over_limit = over
            log.warning(
                "clock %s NTP (offset %+.1f ms from %s, limit %g ms)",
                "is off" if over else "agrees with",
                sample.offset_ms,
                server,
                self.max_error_ms,
                extra={"reference_offset_ms": round(sample.offset_ms, 3)},
            )
        return self.reference

    async def run(self) -> None:
        """Read the kernel every second and ask NTP every interval, until cancelled."""
        ntp = asyncio.create_task(self._ntp_forever(), name="moscow-clock-ntp")
        try:
            while True:
                await asyncio.sleep(READ_EVERY_S)
                self.read()
        finally:
            ntp.cancel()
            with suppress(asyncio.CancelledError):
                await ntp

    async def _ntp_forever(self) -> None:
        if not self.servers:
            return
        while True:
            started = time.monotonic()
            try:
                await self.compare_with_ntp()
            except Exception:  # a bug here must not end the checks for good
                if self._limiter.due(time.monotonic(), "ntp"):
                    log.exception("comparing with NTP failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
