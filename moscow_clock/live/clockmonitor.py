"""Watches the server's own clock: the kernel's state once a second, and
every NTP_INTERVAL seconds one SNTP exchange with each of NTP_SERVERS, fed
to NTP's own source selection (core/selection.py) and judged with
hysteresis (core/clockstate.py).

Both run in their own task, never on the tick path; an SNTP query is a UDP
datagram endpoint on the event loop, bounded by a timeout, so a server that
never answers, answers garbage or answers someone else costs nothing but a
(rate-limited) log line. Lines are logged when something changes — the
kernel's state, the reference, a server's verdict, the clock's health and
readiness, a leap second announced — never per poll, and a line that keeps
changes often (a flapping server) at most CHANGES_PER_WINDOW times per
LOG_EVERY_S, the changes left out counted in the next line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress

from ..core.clockstate import (
    UNKNOWN,
    Check,
    ClockState,
    Health,
    Judge,
    Judgement,
    PageClock,
    clock_report,
    judge,
    leap_pending,
)
from ..core.ratelimit import Every
from ..core.selection import NO_SERVERS, Selection, ServerFilter, Status, Verdict, select
from ..core.sntp import BadReply, Sample, parse_reply, request

log = logging.getLogger("moscow_clock.clock")

type ClockSource = Callable[[], ClockState]
type WallClock = Callable[[], float]
type Query = Callable[..., Awaitable[Sample | None]]

READ_EVERY_S = 1.0
# Hysteresis: evidence that would change readiness must hold this many NTP
# intervals (three polls in a row), or this many kernel reads without NTP.
HOLD_INTERVALS = 2
HOLD_READS = 3
# At most one log line per server and kind of trouble in this many seconds.
LOG_EVERY_S = 60.0
# State-change lines of one kind (health, reference, one server's verdict) per LOG_EVERY_S.
CHANGES_PER_WINDOW = 6


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
    """The clock's state, NTP selection and judgement, shared by the routes."""

    def __init__(
        self,
        source: ClockSource,
        *,
        servers: tuple[tuple[str, int], ...] = (),
        interval_s: float = 64.0,
        max_error_ms: float = 250.0,
        check: Check = Check.ON,
        wall: WallClock = _wall_ms,
        query: Query | None = None,
    ) -> None:
        self.source = source
        # One SNTP exchange: sntp_query's signature (tests stand in their own).
        self.query: Query = query or sntp_query
        self.servers = servers
        self.interval_s = interval_s
        self.max_error_ms = max_error_ms
        self.check = check
        self.wall = wall
        self.timeout_s = min(3.0, max(0.2, interval_s / 2))
        self.filters = [ServerFilter(f"{host}:{port}") for host, port in servers]
        hold_s = HOLD_INTERVALS * interval_s + self.timeout_s if servers else HOLD_READS
        self.judge = Judge(check, hold_s * 1000)
        self.state = UNKNOWN
        self.selection: Selection = NO_SERVERS
        self.judgement = Judgement(Health.UNVERIFIED, "not read yet", None)
        self.page_clock = PageClock.of(self.judgement)
        self._limiter = Every(LOG_EVERY_S)
        self._logged: bool | str | None = "never"
        self._said: dict[str, object] = {"leap": None}
        self._recent: dict[str, deque[float]] = {}
        self._unsaid: dict[str, int] = {}
        self.read()

    def read(self) -> ClockState:
        """Read the source now (never raises), judge, and log what changed."""
        try:
            self.state = self.source()
        except Exception:
            if self._limiter.due(time.monotonic(), "source"):
                log.exception("reading the clock state failed; treating it as unknown")
            self.state = UNKNOWN
        self._log_kernel_change()
        self.evaluate()
        return self.state

    def evaluate(self) -> Judgement:
        """Select among the NTP servers and judge the clock as of now."""
        now = self.wall()
        previous = self.selection.reference
        self.selection = (
            select(self.filters, now, None if previous is None else previous.server)
            if self.filters
            else NO_SERVERS
        )
        raw = judge(self.state, self.selection, self.max_error_ms)
        self.judgement = self.judge.update(raw, now)
        self.page_clock = PageClock.of(self.judgement)
        self._log_changes()
        return self.judgement

    def _log_kernel_change(self) -> None:
        synchronized = self.state.synchronized
        if synchronized == self._logged:
            return
        first = self._logged == "never"
        self._logged = synchronized
        fields = {"max_error_ms": self.state.max_error_ms}
        if synchronized:
            log.log(logging.INFO if first else logging.WARNING, "clock synchronised", extra=fields)
        elif synchronized is None:
            log.warning("kernel clock state unknown (no adjtimex here)")
        else:
            log.log(
                logging.INFO if first else logging.WARNING,
                "clock NOT synchronised according to the kernel (STA_UNSYNC)",
                extra=fields,
            )

    def _say(self, key: str, value: object, level: int, message: str, *args: object) -> None:
        """Log `message` when `key`'s value changes, at most
        CHANGES_PER_WINDOW times per LOG_EVERY_S (the rest are counted)."""
        if self._said.get(key, _NOTHING) == value:
            return
        self._said[key] = value
        now = time.monotonic()
        recent = self._recent.setdefault(key, deque())
        while recent and now - recent[0] >= LOG_EVERY_S:
            recent.popleft()
        if len(recent) >= CHANGES_PER_WINDOW:
            self._unsaid[key] = self._unsaid.get(key, 0) + 1
            return
        recent.append(now)
        left_out = self._unsaid.pop(key, 0)
        if left_out:
            message += " (%d earlier changes not logged)"
            args = (*args, left_out)
        log.log(level, message, *args)

    def _log_changes(self) -> None:
        selection = self.selection
        judgement = self.judgement
        ready = judgement.ready(self.check)
        reference = selection.reference
        self._say(
            "health",
            (judgement.health, ready),
            logging.INFO if judgement.health is Health.SYNCHRONISED else logging.WARNING,
            "clock %s, %s: %s",
            judgement.health.value,
            "ready" if ready else "NOT ready (/readyz 503)",
            judgement.reason,
        )
        if not any(server_filter.polls for server_filter in self.filters):
            return  # nothing to say about NTP before the first poll
        if reference is not None:
            self._say(
                "reference",
                reference.server,
                logging.INFO,
                "NTP reference chosen: %s (offset %+.3f ms, stratum %d)",
                reference.server,
                reference.offset_ms,
                reference.stratum,
            )
        elif selection.status is not Status.NONE:
            words = {
                Status.NO_MAJORITY: "the NTP servers disagree, no majority",
                Status.UNREACHABLE: "no NTP server is usable",
            }
            self._say(
                "reference",
                None,
                logging.WARNING,
                "NTP reference lost: %s",
                words.get(selection.status, selection.status.value),
            )
        for server, verdict in selection.verdicts.items():
            if verdict is Verdict.FALSETICKER:
                self._say(
                    f"verdict:{server}",
                    "false",
                    logging.WARNING,
                    "NTP server %s marked a falseticker (disagrees with the majority)",
                    server,
                )
            elif verdict is Verdict.UNUSABLE:
                self._say(
                    f"verdict:{server}",
                    "unusable",
                    logging.WARNING,
                    "NTP server %s unusable: %s",
                    server,
                    selection.reasons.get(server, "?"),
                )
            else:
                self._say(
                    f"verdict:{server}",
                    "good",
                    logging.INFO,
                    "NTP server %s agrees with the majority",
                    server,
                )
        leap = leap_pending(self.state, reference)
        if leap:
            self._say(
                "leap",
                leap,
                logging.WARNING,
                "leap second announced: %s at the end of this month (UTC)",
                leap,
            )
        else:
            self._say("leap", None, logging.INFO, "leap second no longer pending")

    def error_bound(self) -> float | None:
        """The server's error bound while its clock is vouched for, else None."""
        return self.page_clock.verified_error_ms

    def report(self) -> dict[str, object]:
        return clock_report(self.state, self.selection, self.judgement, self.check)

    def unready_reason(self) -> str | None:
        """Why /readyz should fail, or None (never with CLOCK_CHECK=off)."""
        if self.judgement.ready(self.check):
            return None
        return self.judgement.reason

    async def compare_with_ntp(self) -> Selection:
        """Query every server at once, feed each one's filter, and select."""
        samples = await asyncio.gather(
            *(
                self.query(host, port, self.timeout_s, self.wall, limiter=self._limiter)
                for host, port in self.servers
            )
        )
        received = self.wall()
        for server_filter, sample in zip(self.filters, samples, strict=True):
            if sample is None:
                server_filter.miss()
            else:
                server_filter.add(sample, received)
        self.evaluate()
        return self.selection

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


_NOTHING = object()
