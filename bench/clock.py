"""`python -m bench.clock`: the clock-trust figures of issue 19, measured.

1. Polls choosing a falseticker: local SNTP responders (good ones, one 5 s
   off, one dead port, one that never answers), POLLS polls each.
2. Readiness flips per hour under a flapping server, in compressed time: the
   monitor's wall clock jumps NTP_INTERVAL (64 s, the default) ahead between
   polls, the responders' clocks with it, so HOURS hours take seconds.
3. `reference_offset_ms` against ntplib on the same real chronyd (when
   chronyd is installed; also shifted +5 s with faketime): a real server
   polling it every second, ntplib asked once after each poll.

Only loopback; every responder, chronyd and server started here is ended.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from moscow_clock.core.clockstate import ClockState
from moscow_clock.core.selection import Verdict
from moscow_clock.live.clockmonitor import ClockMonitor
from tests.support.chrony import Chronyd, chronyd_path
from tests.support.server import ServerProcess
from tests.support.sntp import Responder

SYNCED = ClockState(synchronized=True, max_error_ms=12.0, estimated_error_ms=1.5)
UNSYNCED = ClockState(synchronized=False, max_error_ms=16000.0, estimated_error_ms=16000.0)
INTERVAL_S = 64.0


class Wall:
    def __init__(self) -> None:
        self.shift_s = 0.0
        self.offsets: dict[Responder, float] = {}

    def __call__(self) -> float:
        return time.time_ns() / 1e6 + self.shift_s * 1000

    def set(self, responder: Responder, offset_s: float) -> None:
        self.offsets[responder] = offset_s
        responder.offset_s = self.shift_s + offset_s

    def advance(self, seconds: float) -> None:
        self.shift_s += seconds
        for responder, offset_s in self.offsets.items():
            responder.offset_s = self.shift_s + offset_s


async def start(kinds: list[tuple[str, float]]) -> list[Responder]:
    started = []
    for kind, offset in kinds:
        responder = Responder(offset_s=offset, behaviour="silent" if kind == "hanging" else "good")
        await responder.__aenter__()
        started.append(responder)
        if kind == "dead":
            await responder.__aexit__()  # nothing listens on its port now
    return started


async def stop(started: list[Responder], kinds: list[tuple[str, float]]) -> None:
    for responder, (kind, _) in zip(started, kinds, strict=True):
        if kind != "dead":
            await responder.__aexit__()


def monitor(started: list[Responder], state: ClockState, wall: Wall) -> ClockMonitor:
    clock = ClockMonitor(
        lambda: state,
        servers=tuple(("127.0.0.1", r.port) for r in started),
        interval_s=INTERVAL_S,
        wall=wall,
    )
    clock.timeout_s = 0.1
    return clock


async def falsetickers(polls: int) -> dict[str, Any]:
    results = {}
    for name, kinds in {
        "1 good + 1 off 5 s + 1 dead + 1 hanging": [
            ("good", 0.0),
            ("good", 5.0),
            ("dead", 0.0),
            ("hanging", 0.0),
        ],
        "2 good + 1 off 5 s + 1 dead + 1 hanging": [
            ("good", 0.0),
            ("good", 0.0),
            ("good", 5.0),
            ("dead", 0.0),
            ("hanging", 0.0),
        ],
    }.items():
        started = await start(kinds)
        off = started[[o for _, o in kinds].index(5.0)]
        clock = monitor(started, UNSYNCED, Wall())
        chose_off = chose_good = none = unready = 0
        marked = 0
        for _ in range(polls):
            selection = await clock.compare_with_ntp()
            reference = selection.reference
            if reference is None:
                none += 1
            elif reference.server == off.address:
                chose_off += 1
            else:
                chose_good += 1
            marked += selection.verdicts.get(off.address) is Verdict.FALSETICKER
            unready += clock.unready_reason() is not None
        await stop(started, kinds)
        results[name] = {
            "polls": polls,
            "falseticker_chosen": chose_off,
            "good_chosen": chose_good,
            "none_chosen": none,
            "falseticker_marked": marked,
            "unready_polls": unready,
        }
    return results


async def flapping(hours: float) -> dict[str, Any]:
    results = {}
    polls = int(hours * 3600 / INTERVAL_S)
    for name in (
        "1 of 3 off 5 s every other poll",
        "1 of 3 dead every other poll",
        "only server off 5 s every other poll",
        "1 of 3 off 5 s for 3 polls in 7",
    ):
        single = name.startswith("only")
        kinds = [("good", 0.0)] if single else [("good", 0.0)] * 3
        started = await start(kinds)
        wall = Wall()
        for responder in started:
            wall.set(responder, 0.0)
        flapper = started[-1]
        clock = monitor(started, SYNCED, wall)
        ready = [clock.unready_reason() is None]
        for poll in range(polls):
            bad = poll % 7 < 3 if "3 polls in 7" in name else poll % 2 == 1
            if "dead" in name:
                flapper.behaviour = "silent" if bad else "good"
            else:
                wall.set(flapper, 5.0 if bad else 0.0)
            await clock.compare_with_ntp()
            clock.read()
            ready.append(clock.unready_reason() is None)
            wall.advance(INTERVAL_S)
        await stop(started, kinds)
        flips = sum(1 for a, b in itertools.pairwise(ready) if a != b)
        results[name] = {
            "simulated_hours": hours,
            "polls": polls,
            "readiness_flips": flips,
            "flips_per_hour": flips / hours,
            "unready_polls": ready.count(False),
        }
    return results


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


async def against_ntplib(rounds: int, shift_s: float = 0.0) -> dict[str, Any]:
    if chronyd_path() is None:
        return {"skipped": "no chronyd (apt-get install chrony)"}
    if shift_s and shutil.which("faketime") is None:
        return {"skipped": "no faketime (apt-get install faketime)"}
    import ntplib

    with tempfile.TemporaryDirectory() as tmp, Chronyd(Path(tmp), shift_s) as chrony:
        server = ServerProcess(Path(tmp), NTP_SERVERS=chrony.address, NTP_INTERVAL="1")
        with server:
            differences = []
            ours_all = []
            polls = -1
            while len(differences) < rounds:
                clock = (await asyncio.to_thread(_get, f"{server.url}/api/time"))["clock"]
                if clock["reference"] is None or clock["servers"][0]["polls"] == polls:
                    await asyncio.sleep(0.05)
                    continue
                polls = clock["servers"][0]["polls"]
                theirs = (
                    ntplib.NTPClient().request("127.0.0.1", port=chrony.port, version=4).offset
                    * 1000
                )
                ours = clock["reference_offset_ms"]
                ours_all.append(ours)
                differences.append(ours - theirs)
    absolute = sorted(abs(d) for d in differences)
    return {
        "rounds": rounds,
        "median_abs_difference_ms": round(statistics.median(absolute), 4),
        "max_abs_difference_ms": round(absolute[-1], 4),
        "median_reference_offset_ms": round(statistics.median(ours_all), 4),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "falsetickers": await falsetickers(args.polls),
        "flapping": await flapping(args.hours),
        "chronyd_vs_ntplib": await against_ntplib(args.rounds),
        "chronyd_5s_ahead_vs_ntplib": await against_ntplib(args.rounds, shift_s=5.0),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=100)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rounds", type=int, default=30)
    json.dump(asyncio.run(main(parser.parse_args())), sys.stdout, indent=2)
    print()
