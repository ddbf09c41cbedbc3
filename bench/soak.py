"""Soak: thousands of clients for many minutes, some leaving and joining every
second. Does the server's memory stay flat, and do its ticks stay on time?

    python -m bench.soak --clients 3000 --churn 30 --minutes 10

Every `--every` seconds: the server's RSS and client count, and from its
/metrics the event-loop stalls (lag samples over 100 ms) and garbage
collection pauses over 50 ms since the previous sample. At the end, per
minute: tick lateness p50/p99/max (every client's ticks, from the load
generators' per-second histograms), the worst second's p99, the worst sync
round trip, stalls and pauses; and the RSS after the ramp, at the end and the
largest. `--server reference` soaks the `websockets` library's server
instead (it has no stall metrics; its lateness and memory are comparable).

`--hostile-mix` adds the churn that is not polite, at a steady rate beside
the clients (`bench/churn.py --hostile`): 404s on new and keep-alive
connections, 400s, websockets that close cleanly, vanish without a FIN
(never read, never pong) or reset. Then the verdict is the RSS slope after
`--warmup` minutes (least squares over the samples; target: at most 1 MB
per 10 minutes). Sample each minute for the curve:

    python -m bench.soak --clients 1000 --churn 10 --minutes 30 --every 60 --hostile-mix
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.run import (
    ROOT,
    SERVERS,
    free_port,
    hist_quantile,
    loadavg,
    machine,
    merged,
    over,
    process_tree,
    raise_open_files,
    rss_bytes,
    scrape,
    server_env,
    wait_ready,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--churn", type=int, default=30, help="clients replaced per second")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--server", default="moscow_clock", help="moscow_clock or reference")
    parser.add_argument("--checkout", type=Path, help="run moscow_clock from this checkout")
    parser.add_argument("--json", type=Path, help="write the per-minute figures here")
    parser.add_argument("--hostile-mix", action="store_true", help="add the impolite churn")
    parser.add_argument("--rates", help="the hostile mix's rates (bench/churn.py --rates)")
    parser.add_argument("--warmup", type=float, default=5, help="minutes before the slope")
    args = parser.parse_args()
    raise_open_files()
    port = free_port()
    env = server_env(port, MAX_CONNECTIONS=str(args.clients + 1000))
    server = subprocess.Popen(
        ["taskset", "-c", "0", *SERVERS[args.server]],
        cwd=args.checkout or ROOT,
        env=env,
        preexec_fn=raise_open_files,
    )
    seconds = int(args.minutes * 60)
    rate = 500
    settle = 3
    ramp = args.clients / 2 / rate + settle + 1
    generators = []
    load_before = loadavg()
    try:
        wait_ready(port)
        print(
            f"# {machine()}; {args.server}; {args.clients} clients, {args.churn} replaced per "
            f"second; load {load_before}"
        )
        generators = [
            subprocess.Popen(
                ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen",
                 "--port", str(port), "--clients", str(args.clients // 2), "--rate", str(rate),
                 "--settle", str(settle), "--seconds", str(seconds), "--sync-every", "1",
                 "--churn", str(args.churn // 2), "--reconnect"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                preexec_fn=raise_open_files,
            )
            for _ in range(2)
        ]  # fmt: skip
        if args.hostile_mix:
            generators.append(
                subprocess.Popen(
                    ["taskset", "-c", "1", sys.executable, "-m", "bench.churn",
                     "--hostile", str(port), "--seconds", str(seconds + ramp),
                     *(["--rates", args.rates] if args.rates else [])],
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    preexec_fn=raise_open_files,
                )
            )  # fmt: skip
        time.sleep(ramp)
        start = time.monotonic()
        samples = []
        last = scrape(port)
        metrics = "moscow_clock_event_loop_lag_seconds_count" in last
        print(f"{'minute':>7}{'clients':>9}{'rss MB':>9}{'stalls>100ms':>14}{'gc>50ms':>9}")
        while (elapsed := time.monotonic() - start) < seconds:
            rss = rss_bytes(process_tree(server.pid)) / 1e6
            now = scrape(port)
            clients = int(now.get("moscow_clock_websocket_clients", -1))
            stalls = pauses = float("nan")
            if metrics:
                stalls = over(now, "moscow_clock_event_loop_lag_seconds", "0.1") - over(
                    last, "moscow_clock_event_loop_lag_seconds", "0.1"
                )
                pauses = over(now, "moscow_clock_gc_pause_seconds", "0.05") - over(
                    last, "moscow_clock_gc_pause_seconds", "0.05"
                )
                last = now
            samples.append(
                {"minute": elapsed / 60, "clients": clients, "rss_mb": rss,
                 "stalls_over_100ms": stalls, "gc_over_50ms": pauses}
            )  # fmt: skip
            print(
                f"{elapsed / 60:7.1f}{clients:9d}{rss:9.1f}{stalls:14.0f}{pauses:9.0f}",
                flush=True,
            )
            time.sleep(min(args.every, max(0.0, seconds - elapsed)))
        end_rss = rss_bytes(process_tree(server.pid)) / 1e6
        reports = [json.loads(g.communicate(timeout=180)[0]) for g in generators]
        generators = []
        mix = reports.pop() if args.hostile_mix else None
    finally:
        for generator in generators:
            generator.kill()
            generator.wait()
        server.terminate()
        server.wait(15)
    by_second = merged(reports)
    rtts = [(r, rtt) for report in reports for r, rtt in enumerate(report["rtts"])]
    minutes = []
    print(f"{'minute':>7}{'ticks':>9}{'p50':>7}{'p99':>7}{'max':>7}{'worst s p99':>12}")
    for minute in range(seconds // 60):
        hist: dict[int, int] = {}
        worst = 0.0
        for second in range(minute * 60, minute * 60 + 60):
            one = by_second.get(second, {})
            worst = max(worst, hist_quantile(one, 0.99) if one else 0.0)
            for ms, count in one.items():
                hist[ms] = hist.get(ms, 0) + count
        row = {
            "minute": minute,
            "ticks": sum(hist.values()),
            "p50": hist_quantile(hist, 0.5),
            "p99": hist_quantile(hist, 0.99),
            "max": float(max(hist, default=0)),
            "worst_second_p99": worst,
        }
        minutes.append(row)
        print(
            f"{minute:7d}{row['ticks']:9d}{row['p50']:7.0f}{row['p99']:7.0f}{row['max']:7.0f}"
            f"{worst:12.0f}"
        )
    print(
        f"rss after ramp {samples[0]['rss_mb']:.1f} MB, at the end {end_rss:.1f} MB "
        f"({end_rss - samples[0]['rss_mb']:+.1f} MB), largest "
        f"{max([*(s['rss_mb'] for s in samples), end_rss]):.1f} MB; "
        f"~{args.churn * seconds} connections replaced; dropped "
        f"{sum(r['dropped'] for r in reports)}; sync rtt max "
        f"{max((x for _, x in rtts), default=float('nan')):.0f} ms; "
        f"load {load_before} -> {loadavg()}"
    )
    slope = rss_slope(samples, args.warmup)
    print(f"rss slope after {args.warmup:g} min: {slope:+.2f} MB per 10 minutes")
    if mix is not None:
        print(f"hostile mix: {mix}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"server": args.server, "checkout": str(args.checkout or ROOT),
                 "samples": samples, "minutes": minutes, "rss_slope_mb_per_10min": slope,
                 "hostile_mix": mix},
                indent=1,
            )
        )  # fmt: skip


def rss_slope(samples: list[dict[str, float]], warmup: float) -> float:
    """Least-squares slope of RSS against time after `warmup` minutes, in MB
    per 10 minutes (nan with fewer than two samples)."""
    points = [(s["minute"], s["rss_mb"]) for s in samples if s["minute"] >= warmup]
    if len(points) < 2:
        return float("nan")
    mean_t = sum(t for t, _ in points) / len(points)
    mean_r = sum(r for _, r in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return float("nan")
    return 10 * sum((t - mean_t) * (r - mean_r) for t, r in points) / spread


if __name__ == "__main__":
    main()
