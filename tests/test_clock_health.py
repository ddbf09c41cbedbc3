"""The server's own clock: the kernel's state, the NTP comparison, /readyz,
the clock block of /api/time, the sync reply's error bound and the gauges.

This machine's kernel clock is not synchronised, so every test of a given
state injects it: a fake source in-process, CLOCK_STATE_FILE for real servers.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import math
import struct
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
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
    ClockState,
    Reference,
    decode_timex,
    error_bound_ms,
    untrusted_reason,
)
from moscow_clock.core.config import Settings
from moscow_clock.live import kernelclock
from moscow_clock.live.clockmonitor import ClockMonitor

from .conftest import SYNCED
from .support.clients import next_tick, receive_json, scrape
from .support.clockstate import UNSYNCED, write_state
from .support.server import ServerProcess
from .support.sntp import Responder, reply_to
from .support.timing import scaled

Start = Callable[..., ServerProcess]

LARGE_ERROR = ClockState(synchronized=True, max_error_ms=900.0, estimated_error_ms=40.0)
NOW_MS = 1795722005250.0


def reference(offset_ms: float, delay_ms: float = 2.0) -> Reference:
    return Reference(offset_ms, delay_ms, "127.0.0.1:123", measured_at_ms=NOW_MS)


# -- pure: decoding adjtimex, the verdict, the error bound -------------------


def test_decode_timex() -> None:
    # chrony disciplining the clock: PLL and nanosecond mode, TIME_OK.
    synced = decode_timex(0, 0x2001, maxerror_us=8_500, esterror_us=120)
    assert synced == ClockState(True, 8.5, 0.12)
    assert decode_timex(0, STA_UNSYNC, 16_000_000, 16_000_000) == UNSYNCED
    # TIME_ERROR alone (say, a PPS signal lost) also means not synchronised.
    assert decode_timex(TIME_ERROR, 0x2001, 1000, 10).synchronized is False
    assert decode_timex(-1, 0, 0, 0) == UNKNOWN


def test_verdict_in_every_state() -> None:
    assert untrusted_reason(SYNCED, None, 250) is None
    assert "unsynchronised" in str(untrusted_reason(UNSYNCED, None, 250))
    assert "maximum error 900 ms exceeds CLOCK_MAX_ERROR_MS=250" in str(
        untrusted_reason(LARGE_ERROR, None, 250)
    )
    assert untrusted_reason(LARGE_ERROR, None, 1000) is None
    assert "unknown" in str(untrusted_reason(UNKNOWN, None, 250))
    # Where the kernel cannot be read, NTP can vouch for the clock on its own...
    assert untrusted_reason(UNKNOWN, reference(-3.0), 250) is None
    # ...and an offset from NTP over the limit fails it even if the kernel is content.
    assert "-5000 ms off NTP server" in str(untrusted_reason(SYNCED, reference(-5000.0), 250))
    # The kernel's word wins over a good NTP comparison.
    assert untrusted_reason(UNSYNCED, reference(1.0), 250) is not None


def test_error_bound() -> None:
    assert error_bound_ms(SYNCED, None) == 12.0
    assert error_bound_ms(SYNCED, reference(-40.0, delay_ms=10.0)) == 45.0
    assert error_bound_ms(UNSYNCED, reference(1.0)) is None
    assert error_bound_ms(UNKNOWN, None) is None
    assert error_bound_ms(UNKNOWN, reference(3.0, delay_ms=4.0)) == 5.0


# -- pure: SNTP ---------------------------------------------------------------


def exchange(offset_s: float, **reply: Any) -> tuple[bytes, bytes, float]:
    sent_ms = time.time_ns() / 1e6
    sent = sntp.request(sent_ms, nonce=0x1234)
    return sent, reply_to(sent, offset_s, **reply), time.time_ns() / 1e6


def test_sntp_offset_and_delay() -> None:
    sent, answer, received = exchange(5.0)
    sample = sntp.parse_reply(answer, sent, received)
    # The server is 5 s ahead: the local clock is 5 s behind it.
    assert sample.offset_ms == pytest.approx(-5000, abs=5)
    assert 0 <= sample.delay_ms < 5
    assert sample.stratum == 2
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


def test_lowest_delay_sample_wins() -> None:
    slow = sntp.Sample(offset_ms=10.0, delay_ms=80.0, stratum=1)
    fast = sntp.Sample(offset_ms=1.0, delay_ms=3.0, stratum=3)
    assert sntp.best_sample([("a", slow), ("b", fast)]) == ("b", fast)
    assert sntp.best_sample([]) is None


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


def test_state_file_hook(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    source = kernelclock.StateFile(str(path))
    assert source() == UNKNOWN  # missing
    path.write_text('{"synchronized": true, "max_error_ms": 12, "estimated_error_ms": 1.5}')
    assert source() == SYNCED
    for bad in ("[]", "{", '{"synchronized": "yes"}', '{"max_error_ms": "x"}'):
        path.write_text(bad)
        assert source() == UNKNOWN


# -- the monitor over a fake source -------------------------------------------


class FakeSource:
    def __init__(self, state: ClockState) -> None:
        self.state = state
        self.reads = 0

    def __call__(self) -> ClockState:
        self.reads += 1
        if isinstance(self.state, Exception):
            raise self.state
        return self.state


@pytest.mark.parametrize(
    ("state", "ready", "bound"),
    [
        (SYNCED, True, 12.0),
        (UNSYNCED, False, None),
        (LARGE_ERROR, False, 900.0),
        (UNKNOWN, False, None),
    ],
    ids=["synchronised", "unsynchronised", "large-error", "unknown"],
)
def test_monitor_in_each_state(state: ClockState, ready: bool, bound: float | None) -> None:
    monitor = ClockMonitor(FakeSource(state))
    assert (monitor.unready_reason() is None) is ready
    assert monitor.error_bound() == bound
    assert monitor.report()["synchronized"] == state.synchronized
    # CLOCK_CHECK=off: /readyz ignores the clock; what is reported stays honest.
    unchecked = ClockMonitor(FakeSource(state), check=False)
    assert unchecked.unready_reason() is None
    assert unchecked.error_bound() == bound


def test_a_failing_source_reads_as_unknown() -> None:
    source = FakeSource(SYNCED)
    monitor = ClockMonitor(source)
    source.state = RuntimeError("boom")  # type: ignore[assignment]
    assert monitor.read() == UNKNOWN


def test_a_warning_only_when_the_state_changes(caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource(SYNCED)
    with caplog.at_level(logging.INFO, logger="moscow_clock.clock"):
        monitor = ClockMonitor(source)
        for state in [SYNCED] * 3 + [UNSYNCED] * 5 + [SYNCED] * 4 + [UNKNOWN] * 2:
            source.state = state
            monitor.read()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["INFO", "WARNING", "WARNING", "WARNING"]
    assert "NOT synchronised" in lines[1][1]
    assert lines[2][1] == "clock synchronised"
    assert "unknown" in lines[3][1]


async def test_the_monitor_reads_once_a_second() -> None:
    source = FakeSource(SYNCED)
    monitor = ClockMonitor(source)
    task = asyncio.create_task(monitor.run())
    await asyncio.sleep(2.5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert source.reads == 3  # at start, then after 1 s and 2 s


# -- SNTP against local responders --------------------------------------------


async def test_a_responder_5_s_off_is_reported() -> None:
    async with Responder(offset_s=5.0) as responder:
        monitor = ClockMonitor(
            FakeSource(SYNCED), servers=(("127.0.0.1", responder.port),), interval_s=1
        )
        found = await monitor.compare_with_ntp()
    assert found is not None
    assert found.offset_ms == pytest.approx(-5000, abs=20)
    assert monitor.report()["reference_offset_ms"] == pytest.approx(-5000, abs=20)
    assert "off NTP server 127.0.0.1" in str(monitor.unready_reason())


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
        responders = [Responder(behaviour=kind) for kind in IMPOLITE]
        for responder in responders:
            await responder.__aenter__()
        try:
            servers = tuple(("127.0.0.1", r.port) for r in [*responders, polite])
            monitor = ClockMonitor(FakeSource(SYNCED), servers=servers, interval_s=1)
            lagger = asyncio.create_task(measure_lag())
            with caplog.at_level(logging.WARNING, logger="moscow_clock.clock"):
                started = time.monotonic()
                for _ in range(3):
                    found = await monitor.compare_with_ntp()
                    assert found is not None
                    assert found.server == polite.address
                    assert found.offset_ms == pytest.approx(-200, abs=20)
                took = time.monotonic() - started
            lagger.cancel()
        finally:
            for responder in responders:
                await responder.__aexit__()
    assert all(r.queries == 3 for r in responders)
    assert took < 3 * (monitor.timeout_s + 0.5)
    assert max(lags) < 0.1  # the event loop never waited on the network
    # Rate-limited: one line per server and kind of trouble, not one per query.
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(set(messages)), messages
    assert len(messages) <= 2 * len(IMPOLITE)
    for text in ("kiss-of-death RATE", "originate timestamp", "short reply", "no usable reply"):
        assert any(text in m for m in messages), messages


async def test_an_unreachable_or_unknown_server_is_no_trouble() -> None:
    monitor = ClockMonitor(
        FakeSource(SYNCED),
        servers=(("no-such-host.invalid", 123), ("127.0.0.1", 9)),
        interval_s=1,
    )
    assert await monitor.compare_with_ntp() is None
    assert monitor.report()["reference_offset_ms"] is None
    assert monitor.unready_reason() is None


async def test_a_stale_reference_is_dropped() -> None:
    now = [NOW_MS]
    monitor = ClockMonitor(FakeSource(UNKNOWN), interval_s=10, wall=lambda: now[0])
    monitor.reference = reference(1.0)
    assert monitor.unready_reason() is None
    now[0] += 31_000 + monitor.timeout_s * 1000
    assert monitor.reference_now() is None
    assert "unknown" in str(monitor.unready_reason())


# -- the app: /readyz, /api/time, the sync reply -------------------------------


def app_with(source: Callable[[], ClockState], **settings: Any) -> Quart:
    return create_app(clock=lambda: NOW_MS, settings=Settings(**settings), clock_source=source)


async def test_readyz_flips_both_ways_and_healthz_does_not() -> None:
    source = FakeSource(SYNCED)
    app = app_with(source)
    client = app.test_client()
    monitor = app.extensions["moscow_clock"].clock_monitor
    seen = []
    for state in (SYNCED, UNSYNCED, LARGE_ERROR, UNKNOWN, SYNCED):
        source.state = state
        monitor.read()
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert ready.headers["Cache-Control"] == "no-store"
        seen.append((ready.status_code, await ready.get_json()))
    assert seen[0] == (200, {"status": "ready"})
    assert seen[-1] == (200, {"status": "ready"})
    for status, body in seen[1:4]:
        assert status == 503
        assert body["status"] == "unready"
        assert isinstance(body["reason"], str)
        assert set(body["clock"]) == {
            "synchronized",
            "max_error_ms",
            "estimated_error_ms",
            "reference_offset_ms",
        }


async def test_clock_check_off_keeps_readyz_ready() -> None:
    response = await app_with(lambda: UNSYNCED, clock_check=False).test_client().get("/readyz")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("state", "clock"),
    [
        (UNSYNCED, [False, 16000.0, 16000.0, None]),
        (UNKNOWN, [None, None, None, None]),
    ],
)
async def test_api_time_clock_block(state: ClockState, clock: list[object]) -> None:
    body = await (await app_with(lambda: state).test_client().get("/api/time")).get_json()
    assert body["epoch_ms"] == 1795722005250
    keys = ["synchronized", "max_error_ms", "estimated_error_ms", "reference_offset_ms"]
    assert [body["clock"][key] for key in keys] == clock


@pytest.mark.parametrize(("state", "error_ms"), [(SYNCED, 12.0), (UNSYNCED, None), (UNKNOWN, None)])
async def test_sync_reply_error_ms(state: ClockState, error_ms: float | None) -> None:
    app = app_with(lambda: state)
    async with app.test_app() as test_app, test_app.test_client().websocket("/ws") as ws:
        await ws.send(json.dumps({"type": "sync", "t0": 1}))
        reply = json.loads(await asyncio.wait_for(ws.receive(), scaled(2)))
    assert reply["error_ms"] == error_ms


async def test_clock_gauges_in_the_app() -> None:
    app = app_with(lambda: UNSYNCED)
    text = await (await app.test_client().get("/metrics")).get_data(as_text=True)
    assert "moscow_clock_clock_synchronized 0.0" in text
    assert "moscow_clock_clock_max_error_seconds 16.0" in text
    assert "moscow_clock_clock_estimated_error_seconds 16.0" in text
    assert "moscow_clock_clock_reference_offset_seconds NaN" in text


# -- real servers ------------------------------------------------------------


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=scaled(5)) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


async def wait_for_status(url: str, status: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = await asyncio.to_thread(get, url)
        if code == status:
            return body
        assert time.monotonic() < deadline, (code, body)
        await asyncio.sleep(0.1)


@pytest.mark.server
async def test_the_real_kernel_state_by_default(server: ServerProcess) -> None:
    """No hook: /api/time says what adjtimex says (here: unsynchronised)."""
    _, body = await asyncio.to_thread(get, f"{server.url}/api/time")
    kernel = kernelclock.kernel_clock_state()
    assert body["clock"]["synchronized"] is kernel.synchronized
    assert isinstance(body["clock"]["max_error_ms"], float)
    code, ready = await asyncio.to_thread(get, f"{server.url}/readyz")
    assert code == (200 if untrusted_reason(kernel, None, 250) is None else 503), ready


@pytest.mark.server
async def test_readyz_flips_both_ways_on_a_real_server(start_server: Start, tmp_path: Path) -> None:
    state_file = tmp_path / "clock.json"
    write_state(state_file, SYNCED)
    server = start_server(CLOCK_STATE_FILE=str(state_file))
    readyz = f"{server.url}/readyz"
    assert await wait_for_status(readyz, 200) == {"status": "ready"}
    async with websockets.connect(server.ws_url) as ws:
        write_state(state_file, UNSYNCED)
        flipped = time.monotonic()
        body = await wait_for_status(readyz, 503)
        assert time.monotonic() - flipped < 2.5  # read at least once a second
        assert "unsynchronised" in body["reason"]
        await ws.send(json.dumps({"type": "sync", "t0": 1}))
        while (reply := await receive_json(ws))["type"] != "sync":
            pass
        assert reply["error_ms"] is None
        write_state(state_file, SYNCED)
        await wait_for_status(readyz, 200)
        await ws.send(json.dumps({"type": "sync", "t0": 2}))
        while (reply := await receive_json(ws))["type"] != "sync":
            pass
        assert reply["error_ms"] == 12.0
    assert (await asyncio.to_thread(get, f"{server.url}/healthz"))[0] == 200
    server.stop()
    log = server.log()
    assert "CLOCK_STATE_FILE is set" in log
    assert log.count("clock NOT synchronised") == 1
    assert log.count("WARNING] moscow_clock.clock: clock synchronised") == 1


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
        assert "off NTP server 127.0.0.1" in body["reason"]
        _, snapshot = await asyncio.to_thread(get, f"{server.url}/api/time")
        metrics = await asyncio.to_thread(scrape, server)
    assert snapshot["clock"]["reference_offset_ms"] == pytest.approx(-5000, abs=50)
    assert metrics["moscow_clock_clock_reference_offset_seconds"] == pytest.approx(-5, abs=0.05)
    assert metrics["moscow_clock_clock_synchronized"] == 1
    assert metrics["moscow_clock_clock_max_error_seconds"] == 0.012
    assert responder.queries >= 1


@pytest.mark.server
async def test_impolite_ntp_servers_never_delay_ticks(start_server: Start) -> None:
    responders = [Responder(behaviour=kind) for kind in IMPOLITE]
    for responder in responders:
        await responder.__aenter__()
    try:
        server = start_server(NTP_SERVERS=" ".join(r.address for r in responders), NTP_INTERVAL="1")
        async with websockets.connect(server.ws_url) as ws:
            lateness = []
            for _ in range(5):
                tick, received_ms = await next_tick(ws)
                lateness.append(received_ms - tick["epoch_ms"])
        _, body = await asyncio.to_thread(get, f"{server.url}/api/time")
    finally:
        for responder in responders:
            await responder.__aexit__()
    assert max(lateness) < 150, lateness
    assert body["clock"]["reference_offset_ms"] is None
    assert all(r.queries >= 3 for r in responders)
    server.stop()
    log = server.log()
    assert "Traceback" not in log
    assert "kiss-of-death" in log
    assert log.count("kiss-of-death") == 1  # rate-limited, though asked every second


@pytest.mark.server
async def test_clock_gauges_with_two_workers(start_server: Start, tmp_path: Path) -> None:
    state_file = tmp_path / "clock.json"
    write_state(state_file, LARGE_ERROR)
    server = start_server(WORKERS="2", CLOCK_STATE_FILE=str(state_file))
    await asyncio.sleep(1.2)
    seen = [await asyncio.to_thread(scrape, server) for _ in range(4)]
    for sample in seen:
        assert sample["moscow_clock_clock_synchronized"] == 1
        assert sample["moscow_clock_clock_max_error_seconds"] == 0.9
        assert sample["moscow_clock_clock_estimated_error_seconds"] == 0.04
        assert math.isnan(sample["moscow_clock_clock_reference_offset_seconds"])
    write_state(state_file, UNSYNCED)
    await asyncio.sleep(2.2)
    after = await asyncio.to_thread(scrape, server)
    assert after["moscow_clock_clock_synchronized"] == 0
    assert after["moscow_clock_clock_max_error_seconds"] == 16
    assert server.stop() == 0
