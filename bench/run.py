"""`make bench`: live clients per process, tick lateness, stalls, memory, CPU.

For each client count and each server, start the server on core 0 and load
generators (`bench/loadgen.py`) on core 1, ramp the clients up, measure a
window of whole ticks, and report medians over repeated runs. The servers:
moscow_clock; `reference`, the `websockets` library's own server with
`broadcast()` (`bench/reference_app.py`), measured in the same run so every
figure has a ratio against it; `node-ws`, the same clock on Node's `ws`
(`bench/reference_ws.mjs`, after `npm ci`), a second yardstick; `naive`, the
obvious per-connection Quart loop (`bench/naive_app.py`); and any other
checkout of moscow_clock given with `--checkout NAME=PATH` (say, the commit
before a change), or this one with other settings given with
`--variant NAME=ENV=VALUE,...`:

    python -m bench.run --clients 1000,5000,10000 --runs 3 --json bench/results.json

The window is 60 s by default: three ping intervals at the defaults, so a
process-wide stall that comes once an interval is in it. Figures per run:
clients connected and dropped, ticks per client per second and the worst
client's share of the window's ticks, tick lateness (kernel arrival minus the
tick's epoch_ms) p50/p90/p99/max pooled over the window and the worst and
median of the per-second p99s, sync round trip p50/p99 under load, server
CPU % and RSS (total and per connection, above the idle process), the load
generators' own CPU, the server core's steal time and other load over the
window (host noise), and the load average before and after.

Cost: a run takes ramp (clients / --rate) + --settle + --seconds + ~5 s;
the default (3 client counts x 3 servers x 1 run x 60 s) about 11 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.support.clients import parse_metrics

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "moscow_clock": [sys.executable, "-m", "moscow_clock"],
    "reference": [sys.executable, "-m", "bench.reference_app"],
    "naive": [sys.executable, "-m", "bench.naive_app"],
    # This checkout's server with a sampler thread inside (bench/probe.py).
    "probed": [sys.executable, "-m", "bench.probe"],
    # The second yardstick: the same clock on Node's `ws` (package.json, `npm ci`).
    "node-ws": ["node", "bench/reference_ws.mjs"],
}
CHECKOUTS: dict[str, Path] = {}  # more moscow_clock servers: name -> checkout (--checkout)
VARIANTS: dict[str, dict[str, str]] = {}  # moscow_clock with more settings (--variant)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    server: str
    workers: int
    clients: int
    connected: int
    dropped: int
    failures: int
    ticks_per_client_s: float
    min_tick_ratio: float
    late_p50: float
    late_p90: float
    late_p99: float
    late_max: float
    worst_sec_p99: float
    median_sec_p99: float
    rtt_p50: float
    rtt_p99: float
    cpu_pct: float
    rss_mb: float
    rss_idle_mb: float
    kb_per_conn: float
    loadgen_cpu_pct: float
    fanout_mean_ms: float = float("nan")  # from the server's /metrics, when it has them
    lag_over_100ms: float = float("nan")  # loop-lag samples (every 50 ms) over 100 ms
    gc_over_50ms: float = float("nan")  # collections that took over 50 ms
    # The server's core(s) over the window: % of their time the hypervisor
    # ran something else (steal), and % busy with anything but the server
    # (other processes, interrupts): the host noise behind a bad second.
    steal_pct: float = float("nan")
    other_pct: float = float("nan")
    load_before: str = ""
    load_after: str = ""
    seconds: int = 0
    sec_p99: list[float] | None = None  # per second of the window
    # Why connects failed (the load generators' kinds), and what the server
    # refused, by reason (its /metrics at the end: ramp included).
    failure_kinds: dict[str, int] | None = None
    refused: dict[str, float] | None = None
    drop_kinds: dict[str, int] | None = None  # how open clients were lost


Hist = dict[int, int]


def merged(reports: list[dict[str, Any]]) -> dict[int, Hist]:
    """Per-second lateness histograms of every worker, summed."""
    out: dict[int, Hist] = {}
    for report in reports:
        for second, hist in report["per_second"].items():
            into = out.setdefault(int(second), {})
            for ms, count in hist.items():
                into[int(ms)] = into.get(int(ms), 0) + count
    return out


def hist_quantile(hist: Hist, q: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen > rank:
            return float(ms)
    return float(max(hist))


def scrape(port: int) -> dict[str, float]:
    """A server's /metrics as {sample: value} (empty if it has none)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return parse_metrics(text)


def over(samples: dict[str, float], histogram: str, bound: str) -> float:
    """Observations above `bound` in a histogram, summed over its labels (nan: none)."""
    counts = [v for k, v in samples.items() if k.startswith(f"{histogram}_count")]
    if not counts:
        return float("nan")
    below = sum(
        v
        for k, v in samples.items()
        if k.startswith(f"{histogram}_bucket") and f'le="{bound}"' in k
    )
    return sum(counts) - below


def stall_figures(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Fan-out mean, loop stalls and long collections between two scrapes."""
    fanout = "moscow_clock_tick_fanout_seconds"
    count = after.get(f"{fanout}_count", 0) - before.get(f"{fanout}_count", 0)
    total = after.get(f"{fanout}_sum", 0) - before.get(f"{fanout}_sum", 0)
    lag, pauses = "moscow_clock_event_loop_lag_seconds", "moscow_clock_gc_pause_seconds"
    return {
        "fanout_mean_ms": 1000 * total / count if count else float("nan"),
        "lag_over_100ms": over(after, lag, "0.1") - over(before, lag, "0.1"),
        "gc_over_50ms": over(after, pauses, "0.05") - over(before, pauses, "0.05"),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (WORKERS > 1 forks server processes)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return [pid, *(p for child in children for p in process_tree(child))]


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def core_seconds(cores: str) -> tuple[float, float, float]:
    """(busy, steal, all) seconds of these cores since boot, from /proc/stat."""
    wanted = {f"cpu{core}" for core in cores.split(",")}
    busy = steal = everything = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name in wanted:
            user, nice, system, idle, iowait, irq, softirq, stolen = map(int, fields[:8])
            busy += user + nice + system + irq + softirq
            steal += stolen
            everything += user + nice + system + idle + iowait + irq + softirq + stolen
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, steal / tick, everything / tick


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def clients_now(port: int) -> int:
    """Websocket clients the server reports in /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("moscow_clock_websocket_clients "):
                return int(float(line.split()[1]))
    return -1


def wait_ready(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} not ready")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(port: int, *settings: dict[str, str], **more: str) -> dict[str, str]:
    """A benchmarked server's environment: this one's, its port, quiet logs,
    then `more` and `settings` (later ones win), such as `--server-env`."""
    env = {**os.environ, "PORT": str(port), "ACCESS_LOG": "false", "LOG_LEVEL": "warning"}
    env.update(more)
    for each in settings:
        env.update(each)
    return env


def env_settings(items: list[str]) -> dict[str, str]:
    """`NAME=VALUE` arguments (`--server-env`) as a mapping."""
    return dict(item.split("=", 1) for item in items)


def one_run(server: str, clients: int, workers: int, args: argparse.Namespace) -> Result:
    port = free_port()
    env = server_env(
        port,
        env_settings(args.server_env),
        VARIANTS.get(server, {}),
        HOST="127.0.0.1",
        WORKERS=str(workers),
    )
    server_cores = args.server_cores if workers == 1 else args.server_cores_multi
    command = SERVERS.get(server, SERVERS["moscow_clock"])
    load_before = loadavg()
    process = subprocess.Popen(
        ["taskset", "-c", server_cores, *command],
        cwd=CHECKOUTS.get(server, ROOT),
        env=env,
        preexec_fn=raise_open_files,
    )
    try:
        wait_ready(port)
        time.sleep(0.5)
        pids = process_tree(process.pid)
        rss_idle = rss_bytes(pids)
        per_gen = -(-clients // args.generators)
        generators = [
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    args.loadgen_cores,
                    sys.executable,
                    "-m",
                    "bench.loadgen",
                    "--port",
                    str(port),
                    "--clients",
                    str(min(per_gen, clients - i * per_gen)),
                    "--rate",
                    str(args.rate / args.generators),
                    "--seconds",
                    str(args.seconds),
                    "--settle",
                    str(args.settle),
                    "--grace",
                    str(args.grace),
                    *(["--reconnect", "--retry-first"] if args.retry else []),
                    *(
                        ["--never-opened-growth", str(args.never_opened_growth)]
                        if args.never_opened_growth
                        else []
                    ),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                preexec_fn=raise_open_files,
            )
            for i in range(args.generators)
        ]
        ramp = clients / args.rate + args.settle + 1  # the window starts on a whole second
        time.sleep(ramp)
        pids = process_tree(process.pid)
        cpu_start, wall_start = cpu_seconds(pids), time.monotonic()
        cores_start = core_seconds(server_cores)
        metrics_start = scrape(port)
        time.sleep(args.seconds / 2)
        rss = rss_bytes(process_tree(process.pid))
        time.sleep(max(0.0, args.seconds - (time.monotonic() - wall_start) - 0.2))
        cpu = (cpu_seconds(process_tree(process.pid)) - cpu_start) / (time.monotonic() - wall_start)
        busy, stolen, everything = (
            end - start for end, start in zip(core_seconds(server_cores), cores_start, strict=True)
        )
        cores = len(server_cores.split(","))
        host = {
            "steal_pct": 100 * stolen / everything if everything else float("nan"),
            "other_pct": max(0.0, 100 * (busy / everything * cores - cpu)) if everything else 0.0,
        }
        metrics_end = scrape(port)
        stalls = stall_figures(metrics_start, metrics_end)
        refused = {
            name.split('reason="')[1].rstrip('"}'): value
            for name, value in metrics_end.items()
            if name.startswith("moscow_clock_websocket_refused_total{")
        }
        refused.update(  # the server layer's own protections (docs/SECURITY.md)
            (name.split('action="')[1].rstrip('"}'), value)
            for name, value in metrics_end.items()
            if name.startswith("moscow_clock_protections_total{") and value
        )
        reports = []
        for generator in generators:
            out, _ = generator.communicate(timeout=ramp + args.seconds + args.grace + 60)
            reports.append(json.loads(out))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    by_second = merged(reports)
    pooled: Hist = {}
    for hist in by_second.values():
        for ms, count in hist.items():
            pooled[ms] = pooled.get(ms, 0) + count
    sec_p99 = [hist_quantile(by_second.get(i, {}), 0.99) for i in range(int(args.seconds))]
    ticks = [t for r in reports for t in r["ticks"]]
    rtts = [x for r in reports for x in r["rtts"]]
    connected = sum(r["connected"] for r in reports)
    wall = ramp + args.seconds
    return Result(
        server=server,
        workers=workers,
        clients=clients,
        connected=connected,
        dropped=sum(r["dropped"] for r in reports),
        failures=sum(r["connect_failures"] for r in reports),
        ticks_per_client_s=statistics.fmean(ticks) / args.seconds if ticks else 0.0,
        min_tick_ratio=min(ticks) / args.seconds if ticks else 0.0,
        late_p50=hist_quantile(pooled, 0.50),
        late_p90=hist_quantile(pooled, 0.90),
        late_p99=hist_quantile(pooled, 0.99),
        late_max=float(max(pooled)) if pooled else float("nan"),
        worst_sec_p99=max((p for p in sec_p99 if p == p), default=float("nan")),
        median_sec_p99=statistics.median(p for p in sec_p99 if p == p) if pooled else float("nan"),
        rtt_p50=percentile(rtts, 0.50),
        rtt_p99=percentile(rtts, 0.99),
        cpu_pct=100 * cpu,
        rss_mb=rss / 1e6,
        rss_idle_mb=rss_idle / 1e6,
        kb_per_conn=(rss - rss_idle) / 1e3 / max(connected, 1),
        loadgen_cpu_pct=100 * sum(r["cpu_s"] for r in reports) / wall,
        **stalls,
        **host,
        load_before=load_before,
        load_after=loadavg(),
        seconds=int(args.seconds),
        sec_p99=sec_p99,
        failure_kinds=dict(sum((Counter(r.get("failures", {})) for r in reports), Counter())),
        drop_kinds=dict(sum((Counter(r.get("drops", {})) for r in reports), Counter())),
        refused=refused,
    )


def median_result(runs: list[Result]) -> Result:
    """Field-wise medians over repeated runs (counts: the worst run)."""
    first = asdict(runs[0])
    merged: dict[str, Any] = {}
    for key, value in first.items():
        values = [asdict(run)[key] for run in runs]
        if key in ("connected", "min_tick_ratio"):
            merged[key] = min(values)
        elif key in ("dropped", "failures"):
            merged[key] = max(values)
        elif isinstance(value, float):
            merged[key] = statistics.median(values)
        elif key == "load_before":
            merged[key] = values[0]
        elif key == "load_after":
            merged[key] = values[-1]
        else:
            merged[key] = value
    return Result(**merged)


HEADER = (
    f"{'server':<13}{'W':>2}{'clients':>8}{'conn':>7}{'drop':>5}{'tick/s':>7}{'worst':>7}"
    f"{'p50':>7}{'p90':>7}{'p99':>7}{'max':>7}{'wsp99':>7}{'msp99':>7}{'rtt50':>7}{'rtt99':>7}"
    f"{'cpu%':>6}{'rss MB':>8}{'KB/conn':>8}{'gen%':>6}{'fanout':>7}{'lag>.1':>7}{'gc>.05':>7}"
    f"{'steal%':>7}{'other%':>7}  {'x ref p99':>9}{'x ref wsp99':>12}  load"
)


def row(r: Result, ref: Result | None = None) -> str:
    ratios = (
        f"{r.late_p99 / ref.late_p99:>9.2f}{r.worst_sec_p99 / ref.worst_sec_p99:>12.2f}"
        if ref is not None and ref.late_p99 and ref.worst_sec_p99
        else f"{'':>21}"
    )
    return (
        f"{r.server:<13}{r.workers:>2}{r.clients:>8}{r.connected:>7}{r.dropped:>5}"
        f"{r.ticks_per_client_s:>7.3f}{r.min_tick_ratio:>7.3f}{r.late_p50:>7.0f}"
        f"{r.late_p90:>7.0f}{r.late_p99:>7.0f}{r.late_max:>7.0f}{r.worst_sec_p99:>7.0f}"
        f"{r.median_sec_p99:>7.0f}{r.rtt_p50:>7.1f}{r.rtt_p99:>7.1f}{r.cpu_pct:>6.0f}"
        f"{r.rss_mb:>8.1f}{r.kb_per_conn:>8.1f}{r.loadgen_cpu_pct:>6.0f}"
        f"{r.fanout_mean_ms:>7.0f}{r.lag_over_100ms:>7.0f}{r.gc_over_50ms:>7.0f}"
        f"{r.steal_pct:>7.1f}{r.other_pct:>7.1f}  {ratios}"
        f"  {r.load_before} -> {r.load_after}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", default="1000,5000,10000")
    parser.add_argument("--servers", default="moscow_clock,reference,naive")
    parser.add_argument("--workers", default="1", help="comma list, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60, help="measured ticks (>= 60)")
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--grace", type=float, default=2, help="seconds to wait for late ticks")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=ENV=VALUE[,ENV=VALUE]",
        help="also measure this checkout's moscow_clock with these settings, as NAME",
    )
    parser.add_argument(
        "--retry",
        action="store_true",
        help="clients retry like the page (refused: back off and retry; 4.5 s watchdog); "
        "otherwise they connect once and wait",
    )
    parser.add_argument(
        "--checkout",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also measure the moscow_clock in another checkout (a git worktree), as NAME",
    )
    parser.add_argument("--rate", type=float, default=1000, help="new connections per second")
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--server-cores", default="0")
    parser.add_argument("--server-cores-multi", default="0,1", help="for WORKERS > 1")
    parser.add_argument("--loadgen-cores", default="1")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--never-opened-growth",
        type=float,
        default=0.0,
        help="with --retry: the backoff's step after connects that never opened "
        "(default: the page's; 2 is the page before)",
    )
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()
    for item in args.checkout:
        name, path = item.split("=", 1)
        CHECKOUTS[name] = Path(path).resolve()
    for item in args.variant:
        name, settings = item.split("=", 1)
        VARIANTS[name] = dict(pair.split("=", 1) for pair in settings.split(","))
    raise_open_files()
    print(f"# {machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"# server on core(s) {args.server_cores}, load on core(s) {args.loadgen_cores};"
        f" medians of {args.runs} runs, {args.seconds:.0f} s measured each"
    )
    print(HEADER, flush=True)
    everything = []
    for workers in (int(w) for w in args.workers.split(",")):
        for clients in (int(c) for c in args.clients.split(",")):
            servers = args.servers.split(",")
            if workers > 1:
                servers = [s for s in servers if s not in ("naive", "reference")]
            # Interleaved: run i of every server before run i+1 of any, so
            # the machine's noise falls on all of them alike.
            runs: dict[str, list[Result]] = {server: [] for server in servers}
            for _ in range(args.runs):
                for server in servers:
                    runs[server].append(one_run(server, clients, workers, args))
            ref = median_result(runs["reference"]) if "reference" in runs else None
            for server in servers:
                everything.extend(asdict(r) for r in runs[server])
                print(row(median_result(runs[server]), ref), flush=True)
                for run in runs[server]:
                    if run.failure_kinds or run.refused or run.drop_kinds:
                        print(
                            f"#   {server}: connects failed {run.failure_kinds},"
                            f" server refused {run.refused}, open clients lost {run.drop_kinds}",
                            flush=True,
                        )
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n")


if __name__ == "__main__":
    main()
