"""Soak: thousands of clients for many minutes, some leaving and joining every
second; does the server's memory stay flat?

    python -m bench.soak --clients 3000 --churn 30 --minutes 10

Prints the server's RSS and client count every `--every` seconds, then the
RSS after the ramp, at the end, and the largest seen.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.run import (
    ROOT,
    clients_now,
    free_port,
    machine,
    process_tree,
    raise_open_files,
    rss_bytes,
    wait_ready,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--churn", type=int, default=30, help="clients replaced per second")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    args = parser.parse_args()
    raise_open_files()
    port = free_port()
    env = {**os.environ, "PORT": str(port), "ACCESS_LOG": "false", "LOG_LEVEL": "warning"}
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "moscow_clock"],
        cwd=ROOT,
        env=env,
        preexec_fn=raise_open_files,
    )
    seconds = args.minutes * 60
    ramp = args.clients / 1000 + 3
    generators = []
    try:
        wait_ready(port)
        print(f"# {machine()}; {args.clients} clients, {args.churn} replaced per second")
        generators = [
            subprocess.Popen(
                ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen",
                 "--port", str(port), "--clients", str(args.clients // 2), "--rate", "500",
                 "--settle", "3", "--seconds", str(seconds + 5), "--sync-every", "1",
                 "--churn", str(args.churn // 2)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                preexec_fn=raise_open_files,
            )
            for _ in range(2)
        ]  # fmt: skip
        time.sleep(ramp)
        start = time.monotonic()
        samples = []
        print(f"{'minute':>7}{'clients':>9}{'rss MB':>9}")
        while (elapsed := time.monotonic() - start) < seconds:
            rss = rss_bytes(process_tree(server.pid)) / 1e6
            samples.append(rss)
            print(f"{elapsed / 60:7.1f}{clients_now(port):9d}{rss:9.1f}", flush=True)
            time.sleep(min(args.every, max(0.0, seconds - elapsed)))
        end_rss = rss_bytes(process_tree(server.pid)) / 1e6
        replaced = args.churn * seconds
        print(
            f"rss after ramp {samples[0]:.1f} MB, at the end {end_rss:.1f} MB "
            f"({end_rss - samples[0]:+.1f} MB), largest {max([*samples, end_rss]):.1f} MB; "
            f"~{replaced:.0f} connections replaced"
        )
    finally:
        for generator in generators:
            generator.kill()
            generator.wait()
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    main()
