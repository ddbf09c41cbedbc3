"""The server's own clock: the kernel's state, NTP selection against local
responders, /readyz, the clock block of /api/time, the sync reply, the
gauges and the log lines.

This machine's kernel clock is not synchronised, so every test of a given
state injects it: a fake source in-process, a state file read by the test
server (tests/support/clock_server.py) for real servers.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import json
import logging
import math
import struct
import sys
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets
from quart import Quart

from moscow_clock import create_app
from moscow_clock.core import sntp
from moscow_clock.core.clockstate import (
    STA_UNSYNC,
    TIME_ERROR,
    UNKNOWN,
    Check,
    ClockState,
    Health,
    decode_timex,
)
from moscow_clock.core.config import ConfigError, Settings
from moscow_clock.core.ratelimit import Every
from moscow_clock.core.selection import Status, Verdict
from moscow_clock.core.sntp import Sample
from moscow_clock.live import kernelclock
from moscow_clock.live.clockmonitor import (
    CHANGES_PER_WINDOW,
    HOLD_INTERVALS,
    ClockMonitor,
    Query,
    WallClock,
    sntp_query,
)

from .conftest import SYNCED
from .support.clients import get_json as get
from .support.clients import next_tick, receive_json, scrape
from .support.clockstate import UNSYNCED, StateFile, write_state
from .support.server import ServerProcess
from .support.sntp import Responder, reply_to
from .support.timing import scaled

Start = Callable[..., ServerProcess]

LARGE_ERROR = ClockState(synchronized=True, max_error_ms=900.0, estimated_error_ms=40.0)
NOW_MS = 1795722005250.0


# -- pure: decoding adjtimex ------------------------------------------------


def test_decode_timex() -> None:
    # chrony disciplining the clock: PLL and nanosecond mode, TIME_OK.
    synced = decode_timex(0, 0x2001, 8_500, 120, offset=-250_000, freq=655360, tai=37)
    assert (synced.synchronized, synced.max_error_ms, synced.estimated_error_ms) == (
        True,
        8.5,
        0.12,
    )
    assert synced.offset_ms == -0.25  # ns with STA_NANO
    assert synced.frequency_ppm == 10.0
    assert synced.tai_offset_s == 37
    assert decode_timex(0, 1, 0, 0, offset=-250).offset_ms == -0.25  # us without
    unsynced = decode_timex(0, STA_UNSYNC, 16_000_000, 16_000_000)
    assert (unsynced.synchronized, unsynced.max_error_ms) == (False, 16000.0)
    # TIME_ERROR alone (say, a PPS signal lost) also means not synchronised.
    assert decode_timex(TIME_ERROR, 0x2001, 1000, 10).synchronized is False
    assert decode_timex(-1, 0, 0, 0) == UNKNOWN


# -- pure: SNTP ---------------------------------------------------------------


def exchange(offset_s: float, **reply: Any) -> tuple[bytes, bytes, float]:
    sent_ms = time.time_ns() / 1e6
    sent = sntp.request(sent_ms, nonce=0x1234)
    return sent, reply_to(sent, offset_s, **reply), time.time_ns() / 1e6


def test_sntp_offset_and_delay() -> None:
    sent, answer, received = exchange(5.0)
    sample = sntp.parse_reply(answer, sent, received)
    # The server is 5 s ahead: the offset (theirs minus ours, ntplib's sign) is +5 s.
    assert sample.offset_ms == pytest.approx(5000, abs=5)
    assert 0 <= sample.delay_ms < 5
    assert sample.stratum == 2
    assert sample.leap == 0
    assert struct.unpack("!I", sent[44:48])[0] & 0xFFFF == 0x1234  # the nonce


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b[:47], "short reply"),
        (lambda b: bytes([0x23]) + b[1:], "not a server reply"),
        (lambda b: bytes([0x3C]) + b[1:], "unknown NTP version 7"),
        (lambda b: b[:1] + b"\x00" + b[2:12] + b"RATE" + b[16:], "kiss-of-death RATE"),
        (lambda b: bytes([0xE4]) + b[1:], "not synchronised"),
        (lambda b: b[:1] + b"\x10" + b[2:], "not synchronised"),
        (lambda b: b[:24] + bytes(8) + b[32:], "originate timestamp"),
        (lambda b: b[:40] + bytes(8), "no transmit timestamp"),
        (lambda b: b[:32] + b[40:48] + b[32:40], "impossible timestamps"),
    ],
)
def test_sntp_rejects_bad_replies(mangle: Callable[[bytes], bytes], reason: str) -> None:
    sent, answer, received = exchange(0.0)
    # Make the receive stamp later than the transmit stamp for the swap case.
    if reason == "impossible timestamps":
        answer = answer[:32] + reply_to(sent, 0.5)[32:40] + answer[40:]
    with pytest.raises(sntp.BadReply, match=reason):
        sntp.parse_reply(mangle(answer), sent, received)


def test_ntp_timestamps_survive_the_2036_era_rollover() -> None:
    after = 2_100_000_000_000.0  # 2036-07-18, past 2036-02-07 06:28:16 UTC
    seconds, fraction = sntp.to_ntp(after)
    assert seconds < 1 << 31  # wrapped
    assert sntp.from_ntp(seconds, fraction, near_ms=after + 5000) == pytest.approx(after, abs=0.01)


def test_root_delay_dispersion_precision_and_leap_are_parsed() -> None:
    sent, answer, received = exchange(
        0.0, leap=1, stratum=3, root_delay_s=0.0625, root_dispersion_s=0.5
    )
    sample = sntp.parse_reply(answer, sent, received)
    assert sample.root_delay_ms == pytest.approx(62.5, abs=0.02)
    assert sample.root_dispersion_ms == pytest.approx(500, abs=0.02)
    assert sample.precision_ms == pytest.approx(1000 * 2**-20)
    assert (sample.leap, sample.stratum) == (1, 3)


# -- the kernel, really -------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_a_real_adjtimex_read_is_sane() -> None:
    state = kernelclock.kernel_clock_state()
    assert isinstance(state.synchronized, bool)
    assert state.max_error_ms is not None
    assert state.estimated_error_ms is not None
    # The kernel caps the maximum error at NTP_PHASE_LIMIT (16 s).
    assert 0 <= state.estimated_error_ms <= 16000
    assert 0 <= state.max_error_ms <= 16000
    # The struct layout is the C one (sys/timex.h on 64-bit Linux).
    assert kernelclock.Timex.maxerror.offset == 24  # type: ignore[attr-defined]
    assert kernelclock.Timex.status.offset == 40  # type: ignore[attr-defined]
    assert kernelclock.Timex.tai.offset == 160  # type: ignore[attr-defined]
    assert struct.calcsize("@P") == 8
    assert ctypes.sizeof(kernelclock.Timex) == 208


def test_without_adjtimex_the_state_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    kernelclock._adjtimex.cache_clear()
    monkeypatch.setattr(kernelclock.sys, "platform", "darwin")
    try:
        assert kernelclock.kernel_clock_state() == UNKNOWN
    finally:
        kernelclock._adjtimex.cache_clear()


def test_the_test_servers_state_file_is_bounded(tmp_path: Path) -> None:
    """The state file is a test hook now (tests/support/clock_server.py), but
    it is still read with care: regular files only, small, finite numbers."""
    path = tmp_path / "state.json"
    source = StateFile(str(path))
    assert source() == UNKNOWN  # missing
    path.write_text('{"synchronized": true, "max_error_ms": 12, "estimated_error_ms": 1.5}')
    assert source() == SYNCED
    bad = ("[]", "{", '{"synchronized": "yes"}', '{"max_error_ms": "x"}', '{"max_error_ms": NaN}')
    for text in bad:
        path.write_text(text)
        assert source() == UNKNOWN
    path.write_text(" " * 5000 + "{}")
    assert source() == UNKNOWN
    assert StateFile("/dev/zero")() == UNKNOWN
    assert StateFile(str(tmp_path))() == UNKNOWN


def test_production_has_no_clock_state_hook() -> None:
    """Issue 18: CLOCK_STATE_FILE is gone from the service; only the kernel is read."""
    assert not hasattr(Settings(), "clock_state_file")
    assert not hasattr(kernelclock, "StateFile")
    source = (Path(kernelclock.__file__).parent.parent / "web" / "app.py").read_text()
    assert "CLOCK_STATE_FILE" not in source


# -- the monitor over a fake source -------------------------------------------


class FakeSource:
    def __init__(self, state: ClockState) -> None:
        self.state = state
        self.reads: list[float] = []
        self.read_event = asyncio.Event()

    def __call__(self) -> ClockState:
        self.reads.append(time.monotonic())
        self.read_event.set()
        if isinstance(self.state, Exception):
            raise self.state
        return self.state


@pytest.mark.parametrize(
    ("state", "health", "ready", "strict_ready", "bound"),
    [
        (SYNCED, Health.SYNCHRONISED, True, True, 12.0),
        (UNSYNCED, Health.UNVERIFIED, True, False, 16000.0),
        (LARGE_ERROR, Health.OFF, False, False, 900.0),
        (UNKNOWN, Health.UNVERIFIED, True, False, None),
    ],
    ids=["synchronised", "unsynchronised", "large-error", "unknown"],
)
def test_monitor_in_each_state(
    state: ClockState, health: Health, ready: bool, strict_ready: bool, bound: float | None
) -> None:
    monitor = ClockMonitor(FakeSource(state))
    assert monitor.judgement.health is health
    assert (monitor.unready_reason() is None) is ready
    assert monitor.page_clock.bound_ms == bound
    assert monitor.error_bound() == (bound if health is Health.SYNCHRONISED else None)
    report = monitor.report()
    assert report["synchronized"] == state.synchronized
    assert report["status"] == health.value
    assert report["ready"] is ready
    strict = ClockMonitor(FakeSource(state), check=Check.STRICT)
    assert (strict.unready_reason() is None) is strict_ready
    # CLOCK_CHECK=off: /readyz ignores the clock; what is reported stays honest.
    unchecked = ClockMonitor(FakeSource(state), check=Check.OFF)
    assert unchecked.unready_reason() is None
    assert unchecked.judgement.health is health


def test_clock_check_setting() -> None:
    assert Settings.from_env({}).clock_check is Check.ON
    assert Settings.from_env({"CLOCK_CHECK": "strict"}).clock_check is Check.STRICT
    assert Settings.from_env({"CLOCK_CHECK": "false"}).clock_check is Check.OFF
    assert Settings.from_env({"CLOCK_CHECK": "on"}).clock_check is Check.ON
    with pytest.raises(ConfigError, match="CLOCK_CHECK='sometimes' is not one of on, strict, off"):
        Settings.from_env({"CLOCK_CHECK": "sometimes"})


def test_a_failing_source_reads_as_unknown() -> None:
    source = FakeSource(SYNCED)
    monitor = ClockMonitor(source)
    source.state = RuntimeError("boom")  # type: ignore[assignment]
    assert monitor.read() == UNKNOWN


def clock_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "moscow_clock.clock"]


def test_a_line_only_when_the_state_changes(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource(SYNCED)
    now = [NOW_MS]
    with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
        monitor = ClockMonitor(source, wall=lambda: now[0])
        for state in [SYNCED] * 3 + [UNSYNCED] * 5 + [SYNCED] * 4 + [UNKNOWN] * 2:
            source.state = state
            now[0] += 1000
            monitor.read()
    unsync = "the kernel reports the clock unsynchronised (STA_UNSYNC)"
    unknown = "the kernel's clock state is unknown"
    unverified = "and no NTP servers are configured"
    # Each change once, none per read.
    assert clock_lines(caplog) == [
        ("INFO", "clock synchronised"),
        ("INFO", "clock synchronised, ready: the kernel reports the clock synchronised"),
        ("WARNING", "clock NOT synchronised according to the kernel (STA_UNSYNC)"),
        ("WARNING", f"clock unverified, ready: {unsync} {unverified}"),
        ("WARNING", "clock synchronised"),
        ("INFO", "clock synchronised, ready: the kernel reports the clock synchronised"),
        ("WARNING", "kernel clock state unknown (no adjtimex here)"),
        ("WARNING", f"clock unverified, ready: {unknown} {unverified}"),
    ]
    # A flapping kernel: CHANGES_PER_WINDOW health lines a minute, the rest counted.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
        monitor._recent.clear()  # as if LOG_EVERY_S had passed
        for state in [SYNCED, UNKNOWN] * 20:
            source.state = state
            monitor.read()
        health = [m for _, m in clock_lines(caplog) if m.startswith("clock ") and ", ready" in m]
        assert len(health) == CHANGES_PER_WINDOW
        monitor._recent.clear()
        source.state = SYNCED
        monitor.read()
    assert clock_lines(caplog)[-1] == (
        "INFO",
        "clock synchronised, ready: the kernel reports the clock synchronised"
        f" ({40 - CHANGES_PER_WINDOW} earlier changes not logged)",
    )


async def test_the_monitor_reads_once_a_second() -> None:
    source = FakeSource(SYNCED)
    monitor = ClockMonitor(source)
    task = asyncio.create_task(monitor.run())
    try:
        async with asyncio.timeout(scaled(10)):
            while len(source.reads) < 3:
                source.read_event.clear()
                await source.read_event.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in zip(source.reads[:2], source.reads[1:3], strict=True)]
    # At start, then once a second: never faster (slower only on a busy machine).
    assert all(0.95 <= gap < scaled(1.5) for gap in gaps), gaps


# -- NTP selection against local responders ------------------------------------


class Wall:
    """A wall clock for the monitor that can jump ahead (compressed time): the
    responders' clocks are moved with it, so their offsets stay what the test
    says while whole hours pass in seconds."""

    def __init__(self) -> None:
        self.shift_s = 0.0
        self.responders: list[tuple[Responder, float]] = []

    def __call__(self) -> float:
        return time.time_ns() / 1e6 + self.shift_s * 1000

    def follow(self, responder: Responder, offset_s: float) -> None:
        self.responders = [(r, o) for r, o in self.responders if r is not responder]
        self.responders.append((responder, offset_s))
        responder.offset_s = self.shift_s + offset_s

    def advance(self, seconds: float) -> None:
        self.shift_s += seconds
        for responder, offset_s in self.responders:
            responder.offset_s = self.shift_s + offset_s


@asynccontextmanager
async def responders(*kinds: tuple[str, float]) -> Any:
    """Local SNTP servers: ("good", offset_s), ("silent", 0) hangs, ("dead", 0)
    is a closed port (nothing listens there)."""
    started = []
    try:
        for kind, offset in kinds:
            responder = Responder(offset_s=offset, behaviour=kind)
            await responder.__aenter__()
            started.append(responder)
        for responder, (kind, _) in zip(started, kinds, strict=True):
            if kind == "dead":
                await responder.__aexit__()
        yield started
    finally:
        for responder, (kind, _) in zip(started, kinds, strict=True):
            if kind != "dead":
                await responder.__aexit__()


def monitor_for(
    servers: list[Responder],
    state: ClockState = UNSYNCED,
    wall: Callable[[], float] | None = None,
    **settings: Any,
) -> ClockMonitor:
    monitor = ClockMonitor(
        FakeSource(state),
        servers=tuple(("127.0.0.1", r.port) for r in servers),
        interval_s=settings.pop("interval_s", 64.0),
        wall=wall or Wall(),
        query=waiting_briefly_for_silence(servers),
        **settings,
    )
    monitor.timeout_s = 0.1  # loopback answers within a millisecond
    return monitor


def waiting_briefly_for_silence(servers: list[Responder]) -> Query:
    """sntp_query, with a silent or dead responder timed out after a
    millisecond rather than the monitor's timeout: the same path (timeout,
    log line, a miss), without 100 polls of a hanging server costing 10 s.
    test_impolite_responders_are_ignored_without_blocking waits out the real one."""
    by_port = {r.port: r for r in servers}

    async def query(
        host: str, port: int, timeout_s: float, wall: WallClock, *, limiter: Every
    ) -> Sample | None:
        responder = by_port.get(port)
        if responder is not None and responder.behaviour in ("silent", "dead"):
            timeout_s = 0.001
        return await sntp_query(host, port, timeout_s, wall, limiter=limiter)

    return query


POLLS = 100


@pytest.mark.parametrize(
    "servers",
    [
        [("good", 0.0), ("good", 0.002), ("good", 5.0), ("dead", 0), ("silent", 0)],
        [("good", 0.0), ("good", 5.0), ("dead", 0), ("silent", 0)],
    ],
    ids=["two-good-one-off-dead-hanging", "one-good-one-off-dead-hanging"],
)
async def test_the_falseticker_is_never_chosen(
    servers: list[tuple[str, float]], caplog: pytest.LogCaptureFixture
) -> None:
    async with responders(*servers) as started:
        off = started[[o for _, o in servers].index(5.0)]
        monitor = monitor_for(started, interval_s=64.0)
        chosen: list[str | None] = []
        with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
            for _ in range(POLLS):
                selection = await monitor.compare_with_ntp()
                chosen.append(None if selection.reference is None else selection.reference.server)
                assert monitor.judgement.health is not Health.OFF
                assert monitor.unready_reason() is None
    assert chosen.count(off.address) == 0
    good = sum(1 for kind, _ in servers if kind == "good") - 1
    if good >= 2:
        # Two agree: one of them is the reference every time, the 5 s one a falseticker.
        assert None not in chosen
        assert monitor.selection.verdicts[off.address] is Verdict.FALSETICKER
        assert monitor.report()["reference_offset_ms"] == pytest.approx(0, abs=20)
    else:
        # One against one: there is no majority, so nothing is chosen.
        assert set(chosen) == {None}
        assert monitor.selection.status is Status.NO_MAJORITY
        assert monitor.report()["selection"] == "no_majority"
    servers_report = {s["server"]: s for s in monitor.report()["servers"]}  # type: ignore[attr-defined]
    dead, hanging = started[-2], started[-1]
    assert servers_report[dead.address]["reachable"] is False
    assert servers_report[hanging.address]["state"] == "unusable"
    # Logged once each, not per poll.
    lines = [m for _, m in clock_lines(caplog)]
    assert len(lines) <= 12, lines
    assert len(lines) == len(set(lines)), lines
    assert (
        lines.count(f"NTP server {off.address} marked a falseticker (disagrees with the majority)")
        <= 1
    )


async def test_two_servers_that_disagree_give_no_majority_and_stay_ready() -> None:
    async with responders(("good", 0.0), ("good", 5.0)) as started:
        monitor = monitor_for(started)
        for _ in range(5):
            await monitor.compare_with_ntp()
    assert monitor.selection.status is Status.NO_MAJORITY
    report = monitor.report()
    assert report["reference"] is None
    assert report["status"] == "unverified"
    assert "no majority" in str(report["reason"])
    assert monitor.unready_reason() is None
    assert {s["state"] for s in report["servers"]} == {"falseticker"}  # type: ignore[attr-defined]


async def test_a_stale_bad_reference_keeps_the_pod_unready_until_a_good_one_replaces_it() -> None:
    wall = Wall()
    async with responders(("good", 0.0)) as (only,):
        wall.follow(only, 5.0)
        monitor = monitor_for([only], state=SYNCED, wall=wall, interval_s=64.0)
        ready = []
        for _ in range(HOLD_INTERVALS + 2):
            await monitor.compare_with_ntp()
            ready.append(monitor.unready_reason() is None)
            wall.advance(64)
        # Off for good only after the evidence held (hysteresis), then not ready.
        assert ready[0] is True
        assert ready[-1] is False
        assert "5.0 s behind NTP server" in str(monitor.unready_reason())
        # The server stops answering; an hour passes; the reference is gone...
        only.behaviour = "silent"
        for _ in range(60):
            await monitor.compare_with_ntp()
            monitor.read()
            wall.advance(64)
        assert monitor.selection.status is Status.UNREACHABLE
        # ...and the clock last seen 5 s off is still not vouched for.
        assert monitor.unready_reason() is not None
        assert "still off" in str(monitor.unready_reason())
        # A good reference replaces it; after the hold the pod is ready again.
        only.behaviour = "good"
        wall.follow(only, 0.0)
        polls = 0
        while monitor.unready_reason() is not None:
            await monitor.compare_with_ntp()
            wall.advance(64)
            polls += 1
            assert polls < 10
        assert monitor.judgement.health is Health.SYNCHRONISED
        assert polls >= HOLD_INTERVALS + 1


async def test_sta_unsync_with_no_reference_is_ready_and_reported_unverified() -> None:
    async with responders(("dead", 0)) as started:
        monitor = monitor_for(started)
        await monitor.compare_with_ntp()
        assert monitor.unready_reason() is None
        assert monitor.report()["status"] == "unverified"
        strict = monitor_for(started, check=Check.STRICT)
        await strict.compare_with_ntp()
        assert "STA_UNSYNC" in str(strict.unready_reason())


async def test_ntp_agreeing_vouches_for_an_unsynchronised_kernel() -> None:
    wall = Wall()
    async with responders(("good", 0.0)) as started:
        monitor = monitor_for(started)
        await monitor.compare_with_ntp()
        assert monitor.judgement.health is Health.SYNCHRONISED
        bound = monitor.page_clock.bound_ms
        assert bound is not None
        assert bound < 10
        # Strict mode too, once the evidence has held (HOLD_INTERVALS).
        wall.follow(started[0], 0.0)
        strict = monitor_for(started, check=Check.STRICT, wall=wall)
        assert strict.unready_reason() is not None
        for _ in range(HOLD_INTERVALS + 2):
            await strict.compare_with_ntp()
            wall.advance(64)
        assert strict.unready_reason() is None


FLAPPING_HOURS = 2


@pytest.mark.parametrize(
    "pattern",
    ["off-every-other-poll", "dead-every-other-poll", "off-for-2-polls-in-5"],
)
async def test_a_flapping_server_never_flips_readiness(pattern: str) -> None:
    """Compressed time: FLAPPING_HOURS hours of 64 s polls (the default
    interval), the wall clock moved ahead between polls."""
    wall = Wall()
    async with responders(("good", 0.0), ("good", 0.0), ("good", 0.0)) as started:
        for responder in started:
            wall.follow(responder, 0.0)
        flapping = started[2]
        monitor = monitor_for(started, state=SYNCED, wall=wall)
        ready = [monitor.unready_reason() is None]
        chosen_flapping = 0
        for poll in range(int(FLAPPING_HOURS * 3600 / 64)):
            bad = poll % 2 == 1 if pattern != "off-for-2-polls-in-5" else poll % 5 < 2
            if pattern == "dead-every-other-poll":
                flapping.behaviour = "silent" if bad else "good"
            else:
                wall.follow(flapping, 5.0 if bad else 0.0)
            await monitor.compare_with_ntp()
            reference = monitor.selection.reference
            # Chosen while 5 s off (a silent server's last good sample may serve).
            off = bad and pattern != "dead-every-other-poll"
            chosen_flapping += (
                off and reference is not None and reference.server == flapping.address
            )
            ready.append(monitor.unready_reason() is None)
            wall.advance(64)
    flips = sum(1 for a, b in itertools.pairwise(ready) if a != b)
    assert flips == 0
    assert all(ready)
    assert chosen_flapping == 0


async def test_a_single_flapping_server_never_flips_readiness() -> None:
    wall = Wall()
    async with responders(("good", 0.0)) as (only,):
        monitor = monitor_for([only], state=SYNCED, wall=wall)
        ready = []
        for poll in range(int(3600 / 64)):
            wall.follow(only, 5.0 if poll % 2 else 0.0)
            await monitor.compare_with_ntp()
            ready.append(monitor.unready_reason() is None)
            wall.advance(64)
    assert sum(1 for a, b in itertools.pairwise(ready) if a != b) == 0


async def test_a_pending_leap_second_is_surfaced(caplog: pytest.LogCaptureFixture) -> None:
    async with responders(("good", 0.0)) as (only,):
        only.leap = 1
        with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
            monitor = monitor_for([only])
            await monitor.compare_with_ntp()
            await monitor.compare_with_ntp()
    report = monitor.report()
    assert report["leap_pending"] == "insert"
    assert report["reference"]["leap"] == "insert"  # type: ignore[index]
    lines = [m for _, m in clock_lines(caplog)]
    assert lines.count("leap second announced: insert at the end of this month (UTC)") == 1


async def test_root_distance_over_the_limit_makes_a_server_unusable() -> None:
    async with responders(("good", 0.0)) as (only,):
        only.root_dispersion_s = 2.0
        monitor = monitor_for([only])
        await monitor.compare_with_ntp()
    (entry,) = monitor.report()["servers"]  # type: ignore[misc]
    assert entry["state"] == "unusable"
    assert "1500 ms limit" in entry["reason"]


async def test_log_lines_are_counted_not_per_poll(caplog: pytest.LogCaptureFixture) -> None:
    """Steady servers: the first judgement and reference, one line each, then
    silence for 50 polls; a server flapping in and out of the majority: its
    lines at most once per LOG_EVERY_S each, not once per flip."""
    wall = Wall()
    async with responders(("good", 0.0), ("good", 0.0), ("good", 0.0)) as started:
        for responder in started:
            wall.follow(responder, 0.0)
        with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
            monitor = monitor_for(started, state=SYNCED, wall=wall, interval_s=1.0)
            for _ in range(50):
                await monitor.compare_with_ntp()
                monitor.read()
            steady = [m for _, m in clock_lines(caplog)]
            caplog.clear()
            for poll in range(50):
                wall.follow(started[2], 5.0 if poll % 10 < 5 else 0.0)
                await monitor.compare_with_ntp()
                monitor.read()
            flapping = [m for _, m in clock_lines(caplog)]
    # clock synchronised (kernel), health, reference, three "agrees".
    assert len(steady) == 6, steady
    assert len(flapping) <= 4, flapping
    assert len(flapping) == len(set(flapping)), flapping


IMPOLITE = ["silent", "garbage", "short", "wrong-origin", "wrong-source", "kiss", "unsynchronised"]


async def test_impolite_responders_are_ignored_without_blocking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each bad server costs one timeout at most, logged once; the polite one wins."""
    lags: list[float] = []

    async def measure_lag() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async with Responder(offset_s=0.2) as polite:
        responders_ = [Responder(behaviour=kind) for kind in IMPOLITE]
        for responder in responders_:
            await responder.__aenter__()
        try:
            servers = tuple(("127.0.0.1", r.port) for r in [*responders_, polite])
            monitor = ClockMonitor(FakeSource(SYNCED), servers=servers, interval_s=1)
            lagger = asyncio.create_task(measure_lag())
            with caplog.at_level(logging.WARNING, logger="moscow_clock.clock"):
                started = time.monotonic()
                for _ in range(3):
                    found = await monitor.compare_with_ntp()
                    assert found.reference is not None
                    assert found.reference.server == polite.address
                    assert found.reference.offset_ms == pytest.approx(200, abs=20)
                took = time.monotonic() - started
            lagger.cancel()
        finally:
            for responder in responders_:
                await responder.__aexit__()
    assert all(r.queries == 3 for r in responders_)
    assert took < 3 * (monitor.timeout_s + 0.5)
    # The event loop never waited on the network: a blocking query would
    # stall it for a whole timeout; a loaded machine's scheduling, far less.
    assert max(lags) < monitor.timeout_s / 2
    # Rate-limited: one line per server and kind of trouble, not one per query.
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(set(messages)), messages
    assert len(messages) <= 3 * len(IMPOLITE)
    for text in ("kiss-of-death RATE", "originate timestamp", "short reply", "no usable reply"):
        assert any(text in m for m in messages), messages


async def test_an_unreachable_or_unknown_server_is_no_trouble() -> None:
    monitor = ClockMonitor(
        FakeSource(SYNCED),
        servers=(("no-such-host.invalid", 123), ("127.0.0.1", 9)),
        interval_s=1,
    )
    selection = await monitor.compare_with_ntp()
    assert selection.reference is None
    assert monitor.report()["reference_offset_ms"] is None
    assert monitor.unready_reason() is None


# -- the app: /readyz, /api/time, the sync reply -------------------------------


def app_with(source: Callable[[], ClockState], **settings: Any) -> Quart:
    return create_app(clock=lambda: NOW_MS, settings=Settings(**settings), clock_source=source)


async def test_readyz_flips_both_ways_and_healthz_does_not() -> None:
    source = FakeSource(SYNCED)
    app = app_with(source)
    client = app.test_client()
    monitor: ClockMonitor = app.extensions["moscow_clock"].clock_monitor
    now = [NOW_MS]
    monitor.wall = lambda: now[0]
    seen = []
    for state in [SYNCED] + [LARGE_ERROR] * 4 + [UNSYNCED] + [SYNCED] * 4:
        source.state = state
        now[0] += 1000
        monitor.read()
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert ready.headers["Cache-Control"] == "no-store"
        seen.append((ready.status_code, await ready.get_json()))
    codes = [code for code, _ in seen]
    # The evidence must hold HOLD_READS seconds to go unready; a bad clock
    # stays off while the kernel only says "unsynchronised"; and good
    # evidence must hold as long to come back.
    assert codes == [200] * 4 + [503] * 5 + [200], seen
    assert seen[0][1] == {"status": "ready"}
    _status, body = seen[4]
    assert body["status"] == "unready"
    assert "maximum error 900 ms" in body["reason"]
    assert body["clock"]["status"] == "off"


async def test_strict_mode_takes_an_unverified_clock_out() -> None:
    for check, code in (("on", 200), ("strict", 503), ("off", 200)):
        app = app_with(lambda: UNSYNCED, clock_check=Check(check))
        response = await app.test_client().get("/readyz")
        assert response.status_code == code, check


async def test_api_time_clock_block_is_always_valid_json() -> None:
    state = ClockState(True, math.inf, math.nan, status=1, offset_ms=math.nan)
    response = await app_with(lambda: state).test_client().get("/api/time")
    text = await response.get_data(as_text=True)
    assert "NaN" not in text
    assert "Infinity" not in text
    body = json.loads(text)
    assert body["clock"]["max_error_ms"] is None
    assert body["clock"]["kernel"]["offset_ms"] is None


async def test_json_with_nan_is_refused_not_emitted() -> None:
    app = app_with(lambda: SYNCED)
    async with app.app_context():
        with pytest.raises(ValueError, match="not JSON compliant"):
            app.json.dumps({"x": math.nan})


@pytest.mark.parametrize(
    ("state", "clock"),
    [
        (UNSYNCED, [False, 16000.0, 16000.0, None, "unverified", True]),
        (UNKNOWN, [None, None, None, None, "unverified", True]),
        (LARGE_ERROR, [True, 900.0, 40.0, None, "off", False]),
    ],
)
async def test_api_time_clock_block(state: ClockState, clock: list[object]) -> None:
    body = await (await app_with(lambda: state).test_client().get("/api/time")).get_json()
    assert body["epoch_ms"] == 1795722005250
    keys = [
        "synchronized",
        "max_error_ms",
        "estimated_error_ms",
        "reference_offset_ms",
        "status",
        "ready",
    ]
    assert [body["clock"][key] for key in keys] == clock
    assert set(body["clock"]["kernel"]) == {"status", "offset_ms", "frequency_ppm", "tai_offset_s"}


@pytest.mark.parametrize(
    ("state", "error_ms", "status", "bound"),
    [
        (SYNCED, 12.0, "synchronised", 12.0),
        (UNSYNCED, None, "unverified", 16000.0),
        (UNKNOWN, None, "unverified", None),
        (LARGE_ERROR, None, "off", 900.0),
    ],
)
async def test_sync_reply_carries_the_clock(
    state: ClockState, error_ms: float | None, status: str, bound: float | None
) -> None:
    app = app_with(lambda: state)
    async with app.test_app() as test_app, test_app.test_client().websocket("/ws") as ws:
        await ws.send(json.dumps({"type": "sync", "t0": 1}))
        reply = json.loads(await asyncio.wait_for(ws.receive(), scaled(2)))
    assert reply["error_ms"] == error_ms
    assert reply["clock"] == {"status": status, "bound_ms": bound, "offset_ms": None}


async def test_clock_gauges_in_the_app() -> None:
    app = app_with(lambda: UNSYNCED)
    text = await (await app.test_client().get("/metrics")).get_data(as_text=True)
    for line in (
        "moscow_clock_clock_synchronized 0.0",
        'moscow_clock_clock_health{health="unverified"} 1.0',
        'moscow_clock_clock_health{health="off"} 0.0',
        "moscow_clock_clock_ready 1.0",
        "moscow_clock_clock_error_bound_seconds 16.0",
        "moscow_clock_clock_max_error_seconds 16.0",
        "moscow_clock_clock_estimated_error_seconds 16.0",
        "moscow_clock_timex_sync_status 0.0",
        "moscow_clock_ntp_offset_seconds NaN",
        "moscow_clock_ntp_majority NaN",
    ):
        assert line in text, line
    unknown = await (await app_with(lambda: UNKNOWN).test_client().get("/metrics")).get_data(
        as_text=True
    )
    # Unknown is not "unsynchronised".
    assert "moscow_clock_clock_synchronized NaN" in unknown


async def test_ntp_gauges_in_the_app() -> None:
    async with responders(("good", 0.0), ("good", 0.0), ("good", 5.0)) as started:
        app = create_app(
            settings=Settings(ntp_servers=tuple(("127.0.0.1", r.port) for r in started)),
            clock_source=lambda: SYNCED,
        )
        monitor: ClockMonitor = app.extensions["moscow_clock"].clock_monitor
        monitor.timeout_s = 0.5
        await monitor.compare_with_ntp()
        text = await (await app.test_client().get("/metrics")).get_data(as_text=True)
    off = started[2].address
    assert f'moscow_clock_ntp_server_state{{server="{off}",state="falseticker"}} 1.0' in text
    assert f'moscow_clock_ntp_server_reach{{server="{off}"}} 1.0' in text
    assert "moscow_clock_ntp_majority 1.0" in text
    assert "moscow_clock_ntp_stratum 2.0" in text
    for name in ("rtt", "root_delay", "root_dispersion", "root_distance", "sample_age"):
        assert f"moscow_clock_ntp_{name}_seconds NaN" not in text, name


# -- real servers ------------------------------------------------------------


async def wait_for_status(url: str, status: int, timeout: float = 8.0) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        code, body = await asyncio.to_thread(get, url)
        if code == status:
            return body
        assert time.monotonic() < deadline, (code, body)
        await asyncio.sleep(0.05)


@pytest.mark.server
async def test_the_real_kernel_state_by_default(server: ServerProcess) -> None:
    """No hook: /api/time says what adjtimex says; this machine's clock is
    unsynchronised, which by default leaves the server ready (unverified)."""
    _, body = await asyncio.to_thread(get, f"{server.url}/api/time")
    kernel = kernelclock.kernel_clock_state()
    assert body["clock"]["synchronized"] is kernel.synchronized
    assert isinstance(body["clock"]["max_error_ms"], float)
    assert body["clock"]["kernel"]["status"] == kernel.status
    code, ready = await asyncio.to_thread(get, f"{server.url}/readyz")
    assert code == (200 if body["clock"]["status"] != "off" else 503), ready


@pytest.mark.server
async def test_readyz_flips_both_ways_on_a_real_server(start_server: Start, tmp_path: Path) -> None:
    state_file = tmp_path / "clock.json"
    write_state(state_file, SYNCED)
    server = start_server(CLOCK_STATE_FILE=str(state_file))
    readyz = f"{server.url}/readyz"
    assert await wait_for_status(readyz, 200) == {"status": "ready"}
    async with websockets.connect(server.ws_url) as ws:
        write_state(state_file, LARGE_ERROR)
        body = await wait_for_status(readyz, 503)
        assert "maximum error 900 ms" in body["reason"]
        await ws.send(json.dumps({"type": "sync", "t0": 1}))
        while (reply := await receive_json(ws))["type"] != "sync":
            pass
        assert reply["error_ms"] is None
        assert reply["clock"]["status"] == "off"
        write_state(state_file, SYNCED)
        await wait_for_status(readyz, 200)
        await ws.send(json.dumps({"type": "sync", "t0": 2}))
        while (reply := await receive_json(ws))["type"] != "sync":
            pass
        assert reply["error_ms"] == 12.0
    assert (await asyncio.to_thread(get, f"{server.url}/healthz"))[0] == 200
    server.stop()
    log = server.log()
    assert log.count("clock off, NOT ready (/readyz 503)") == 1
    assert log.count("clock synchronised, ready") == 2


@pytest.mark.server
async def test_an_ntp_server_5_s_off_is_reported(start_server: Start, tmp_path: Path) -> None:
    state_file = tmp_path / "clock.json"
    write_state(state_file, SYNCED)
    async with Responder(offset_s=5.0) as responder:
        server = start_server(
            CLOCK_STATE_FILE=str(state_file),
            NTP_SERVERS=f"127.0.0.1:{responder.port}",
            NTP_INTERVAL="1",
        )
        body = await wait_for_status(f"{server.url}/readyz", 503)
        assert "5.0 s behind NTP server 127.0.0.1" in body["reason"]
        _, snapshot = await asyncio.to_thread(get, f"{server.url}/api/time")
        metrics = await asyncio.to_thread(scrape, server)
    assert snapshot["clock"]["reference_offset_ms"] == pytest.approx(5000, abs=50)
    assert snapshot["clock"]["reference"]["stratum"] == 2
    assert metrics["moscow_clock_ntp_offset_seconds"] == pytest.approx(5, abs=0.05)
    assert metrics["moscow_clock_clock_synchronized"] == 1
    assert metrics['moscow_clock_clock_health{health="off"}'] == 1
    assert metrics["moscow_clock_clock_ready"] == 0
    assert metrics["moscow_clock_clock_max_error_seconds"] == 0.012
    assert responder.queries >= 1


@pytest.mark.server
async def test_impolite_ntp_servers_never_delay_ticks(start_server: Start) -> None:
    impolite = [Responder(behaviour=kind) for kind in IMPOLITE]
    for responder in impolite:
        await responder.__aenter__()
    try:
        server = start_server(NTP_SERVERS=" ".join(r.address for r in impolite), NTP_INTERVAL="1")
        async with websockets.connect(server.ws_url) as ws:
            lateness = []
            for _ in range(5):
                tick, received_ms = await next_tick(ws)
                lateness.append(received_ms - tick["epoch_ms"])
        _, body = await asyncio.to_thread(get, f"{server.url}/api/time")
    finally:
        for responder in impolite:
            await responder.__aexit__()
    assert max(lateness) < 150, lateness
    assert body["clock"]["reference_offset_ms"] is None
    assert all(r.queries >= 3 for r in impolite)
    server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert "kiss-of-death" in log
    assert log.count("kiss-of-death") == 1  # rate-limited, though asked every second


async def wait_for_metric(
    server: ServerProcess, name: str, check: Callable[[float], bool]
) -> dict[str, float]:
    deadline = time.monotonic() + scaled(10)
    while True:
        sample = await asyncio.to_thread(scrape, server)
        if name in sample and check(sample[name]):
            return sample
        assert time.monotonic() < deadline, sample.get(name)
        await asyncio.sleep(0.05)


@pytest.mark.server
async def test_clock_gauges_with_two_workers(start_server: Start, tmp_path: Path) -> None:
    state_file = tmp_path / "clock.json"
    write_state(state_file, LARGE_ERROR)
    server = start_server(WORKERS="2", CLOCK_STATE_FILE=str(state_file))
    await wait_for_metric(server, "moscow_clock_clock_max_error_seconds", lambda v: v == 0.9)
    # A worker sets its clock gauges as it creates them, so one that starts
    # later never shows an unset 0 (the minimum over workers) in between.
    seen = [await asyncio.to_thread(scrape, server) for _ in range(20)]
    for sample in seen:
        assert sample["moscow_clock_clock_synchronized"] == 1
        assert sample["moscow_clock_clock_max_error_seconds"] == 0.9
        assert sample["moscow_clock_clock_estimated_error_seconds"] == 0.04
        assert math.isnan(sample["moscow_clock_ntp_offset_seconds"])
    write_state(state_file, UNSYNCED)
    after = await wait_for_metric(server, "moscow_clock_clock_max_error_seconds", lambda v: v == 16)
    assert after["moscow_clock_clock_synchronized"] == 0
    assert server.stop() == 0
