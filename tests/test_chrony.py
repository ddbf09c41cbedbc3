"""Against a real NTP server: Debian's chronyd on a loopback port
(tests/support/chrony.py), its clock shifted with libfaketime, checked by
an independent client (ntplib). scripts/ensure-chrony installs both in CI,
where this test must run (a skip there is a failure)."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ntplib
import pytest

from .support.chrony import Chronyd, chrony_required, chronyd_path
from .support.clients import get_json as get
from .support.server import ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.server

Start = Callable[..., ServerProcess]

ROUNDS = 15


def need(tool: str, found: object) -> None:
    if found is None:
        message = f"no {tool} here (apt-get install {tool}; scripts/ensure-chrony does in CI)"
        if chrony_required():
            pytest.fail(message)
        pytest.skip(message)


async def clock_block(server: ServerProcess) -> dict[str, Any]:
    _, body = await asyncio.to_thread(get, f"{server.url}/api/time")
    clock: dict[str, Any] = body["clock"]
    return clock


async def wait_for(
    server: ServerProcess, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + scaled(15)
    while not check(clock := await clock_block(server)):
        assert time.monotonic() < deadline, clock
        await asyncio.sleep(0.05)
    return clock


def ntplib_offset_ms(port: int) -> float:
    return float(
        ntplib.NTPClient().request("127.0.0.1", port=port, version=4, timeout=2).offset * 1000
    )


async def test_reference_offset_matches_ntplib_on_a_real_chronyd(
    start_server: Start, tmp_path: Path
) -> None:
    need("chrony", chronyd_path())
    with Chronyd(tmp_path) as chrony:
        server = start_server(NTP_SERVERS=chrony.address, NTP_INTERVAL="1")
        clock = await wait_for(server, lambda c: c["reference"] is not None)
        differences = []
        for _ in range(ROUNDS):
            theirs = await asyncio.to_thread(ntplib_offset_ms, chrony.port)
            clock = await clock_block(server)
            differences.append(clock["reference_offset_ms"] - theirs)
            # Then the next poll (NTP_INTERVAL=1).
            polls = clock["servers"][0]["polls"]
            await wait_for(server, lambda c, polls=polls: c["servers"][0]["polls"] > polls)
        code, _ = await asyncio.to_thread(get, f"{server.url}/readyz")
    reference = clock["reference"]
    assert reference["server"] == chrony.address
    assert reference["stratum"] == 8  # chronyd's "local stratum 8"
    assert reference["leap"] == "none"
    # This machine's kernel is unsynchronised; chronyd vouches for its clock.
    assert clock["status"] == "synchronised"
    assert code == 200
    assert statistics.median(abs(d) for d in differences) <= 1.0, differences


async def test_a_chronyd_5_s_ahead_takes_the_pod_out_and_says_why(
    start_server: Start, tmp_path: Path
) -> None:
    need("chrony", chronyd_path())
    need("faketime", shutil.which("faketime"))
    with Chronyd(tmp_path, shift_s=5) as chrony:
        theirs = await asyncio.to_thread(ntplib_offset_ms, chrony.port)
        server = start_server(NTP_SERVERS=chrony.address, NTP_INTERVAL="1")
        clock = await wait_for(server, lambda c: c["status"] == "off")
        code, ready = await asyncio.to_thread(get, f"{server.url}/readyz")
    assert theirs == pytest.approx(5000, abs=100)  # faketime did shift it
    assert clock["reference_offset_ms"] == pytest.approx(theirs, abs=50)
    assert code == 503
    assert "5.0 s behind NTP server" in ready["reason"]
    server.stop()
    assert server.log().count("clock off, NOT ready (/readyz 503)") == 1
