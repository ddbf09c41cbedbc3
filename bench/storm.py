"""Reconnect storm: a server holding thousands of clients is stopped, and its
clients reconnect to the one that remains, with the page's backoff.

    python -m bench.storm --moved 10000 --resident 1000 --server moscow_clock

The receiving server runs on core 0 with `--resident` clients of its own
(their tick lateness is watched throughout); the doomed one on core 1 beside
the load generators (load shedding off there), with `--moved` clients that,
once connected, reconnect like the page
(static/js/connection.js and backoff.js: first retry after 250-500 ms, then
doubling; after a connect that never opened, the probe of /ws picks busy,
down or refused; a 15 s watchdog on a connect that does not complete;
bench/loadgen.py). Once
everything ticks, the doomed server gets SIGTERM (it closes every websocket
with 1001). Reported: handshakes per second the receiving server completed
(peak second, and the mean until 99 % were back), how long until 50 %, 99 %
and 100 % of the moved clients had a tick from it again, failed attempts by
kind, and the residents' per-second p99 lateness before and during the storm.
`--server reference` runs the same storm between two `websockets` library
servers (`bench/reference_app.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.run import (
    ROOT,
    SERVERS,
    env_settings,
    free_port,
    hist_quantile,
    loadavg,
    machine,
    merged,
    raise_open_files,
    server_env,
    wait_ready,
)

RATE = 1000  # initial connections per second


def start_server(
    args: argparse.Namespace, core: str, port: int, **extra: str
) -> subprocess.Popen[bytes]:
    env = server_env(
        port,
        env_settings(args.server_env),
        extra,
        MAX_CONNECTIONS=str(args.moved + args.resident + 1000),
    )
    return subprocess.Popen(
        ["taskset", "-c", core, *SERVERS[args.server]],
        cwd=args.checkout or ROOT,
        env=env,
        preexec_fn=raise_open_files,
    )


def loadgen(
    port: int, clients: int, rate: float, settle: float, seconds: int, *extra: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "--port", str(port),
         "--clients", str(clients), "--rate", str(rate), "--settle", str(settle),
         "--seconds", str(seconds), "--sync-every", "0", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        preexec_fn=raise_open_files,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="moscow_clock", help="moscow_clock or reference")
    parser.add_argument("--checkout", type=Path, help="run moscow_clock from this checkout")
    parser.add_argument("--moved", type=int, default=10000)
    parser.add_argument("--resident", type=int, default=1000)
    parser.add_argument("--before", type=float, default=5, help="seconds watched before the stop")
    parser.add_argument("--after", type=float, default=40, help="seconds watched after it")
    parser.add_argument("--generators", type=int, default=2, help="for the moved clients")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--ignore-hint", action="store_true", help="as the page was before")
    parser.add_argument(
        "--no-probe", action="store_true", help="as the page was before: no probe of /ws"
    )
    parser.add_argument("--connect-timeout", type=float, default=15.0, help="before: 4.5")
    parser.add_argument(
        "--never-opened-cap", type=float, default=60.0, help="backoff cap (s); before: 10"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    raise_open_files()
    receiving_port, doomed_port = free_port(), free_port()
    load_before = loadavg()
    receiving = start_server(args, "0", receiving_port)
    doomed = start_server(args, "1", doomed_port)
    generators: list[subprocess.Popen[bytes]] = []
    try:
        wait_ready(receiving_port)
        wait_ready(doomed_port)
        print(f"# {machine()}; {args.server}; load {load_before}", flush=True)
        ramp = args.moved / RATE + 3
        seconds = math.ceil(args.before + args.after)
        per_gen = args.moved // args.generators
        generators = [
            loadgen(doomed_port, per_gen, RATE / args.generators, 3, seconds, "--reconnect",
                    "--reconnect-port", str(receiving_port),
                    "--connect-timeout", str(args.connect_timeout),
                    "--never-opened-cap", str(args.never_opened_cap),
                    *(["--ignore-hint"] if args.ignore_hint else []),
                    *(["--no-probe"] if args.no_probe else []))
            for _ in range(args.generators)
        ]  # fmt: skip
        resident = loadgen(
            receiving_port, args.resident, RATE, ramp - args.resident / RATE, seconds
        )
        generators.append(resident)
        time.sleep(ramp + 1 + args.before)
        stopped_at = time.time()
        doomed.send_signal(signal.SIGTERM)
        reports = [json.loads(g.communicate(timeout=ramp + seconds + 120)[0]) for g in generators]
        generators = []
    finally:
        for process in (*generators, receiving, doomed):
            if process.poll() is None:
                process.kill()
            process.wait()
    movers, residents = reports[:-1], reports[-1]
    moved = [pair for report in movers for pair in report["moved"]]
    back = sorted(b - stopped_at for a, b in moved if b is not None)
    total = sum(report["clients"] for report in movers)
    handshakes = Counter(int(t - stopped_at) for report in movers for t in report["handshakes_at"])
    failures: Counter[str] = Counter()
    probes: Counter[str] = Counter()
    for report in movers:
        failures.update(report["failures"])
        probes.update(report.get("probes", {}))

    def time_to(share: float) -> float:
        needed = math.ceil(share * total)
        return back[needed - 1] if len(back) >= needed else float("nan")

    t99 = time_to(0.99)
    until = int(t99) + 1 if t99 == t99 else max(handshakes, default=0) + 1
    by_second = merged([residents])
    offset = int(stopped_at) - residents["window_start"]
    resident_p99 = {s - offset: hist_quantile(by_second[s], 0.99) for s in sorted(by_second)}
    before = [p for s, p in resident_p99.items() if s < 0]
    during = [p for s, p in resident_p99.items() if 0 <= s <= until]
    result = {
        "server": args.server,
        "moved": total,
        "back": len(back),
        "t50_s": time_to(0.5),
        "t99_s": t99,
        "t100_s": time_to(1.0),
        "handshakes_peak_per_s": max(handshakes.values(), default=0),
        "handshakes_mean_per_s": sum(handshakes[s] for s in range(until)) / max(until, 1),
        "handshakes_by_second": [handshakes[s] for s in range(math.ceil(args.after))],
        "failed_attempts": dict(failures),
        "probes": dict(probes),
        "resident_p99_before_max": max(before, default=float("nan")),
        "resident_p99_during_max": max(during, default=float("nan")),
        "resident_p99_by_second": resident_p99,
        "resident_dropped": residents["dropped"],
        "load": f"{load_before} -> {loadavg()}",
    }
    print(
        f"{args.server}: {len(back)}/{total} moved clients ticking again; 50 % after "
        f"{result['t50_s']:.1f} s, 99 % after {t99:.1f} s, all after {result['t100_s']:.1f} s; "
        f"handshakes/s peak {result['handshakes_peak_per_s']}, mean "
        f"{result['handshakes_mean_per_s']:.0f} until 99 %; failed attempts "
        f"{dict(failures)} (probes {dict(probes)}); residents' p99 per second: before <= "
        f"{result['resident_p99_before_max']:.0f} ms, during <= "
        f"{result['resident_p99_during_max']:.0f} ms (dropped {residents['dropped']}); "
        f"load {result['load']}"
    )
    print("handshakes by second:", result["handshakes_by_second"])
    print("residents' p99 by second:", {k: v for k, v in resident_p99.items() if -3 <= k <= until})
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
