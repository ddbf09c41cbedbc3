"""Page throughput: `GET /` (and a static file) with keep-alive, measured by
wrk (Debian: `apt-get install wrk`) on core 1 against one server process on
core 0. Prints requests/s and latency for each of `--runs` runs, then medians.

    python -m bench.page --runs 3 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys

from bench.run import ROOT, free_port, machine, raise_open_files, wait_ready

PATHS = ("/", "/static/js/main.js", "/api/time")


def wrk(port: int, path: str, seconds: float, connections: int) -> tuple[float, str]:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s",
         "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{path}: {errors.group(1)} error responses")
    return rate, p99.group(1) if p99 else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.page needs wrk: apt-get install wrk")
    raise_open_files()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "ACCESS_LOG": "false", "LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "moscow_clock"], cwd=ROOT, env=env
    )
    try:
        wait_ready(port)
        print(f"# {machine()}; wrk -t1 -c{args.connections}, {args.seconds:.0f} s per run")
        for path in PATHS:
            rates = []
            for _ in range(args.runs):
                rate, p99 = wrk(port, path, args.seconds, args.connections)
                rates.append(rate)
                print(f"{path:22s} {rate:8.0f} req/s   p99 {p99}", flush=True)
            print(f"{path:22s} median {statistics.median(rates):.0f} req/s over {args.runs} runs")
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
