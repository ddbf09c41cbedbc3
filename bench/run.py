"""`make bench`: live clients per process, tick lateness, memory, CPU.

For each server (moscow_clock, and the naive per-connection loop in
`bench/naive_app.py` for a ratio) and each client count, start the server on
core 0 and load generators (`bench/loadgen.py`) on core 1, ramp the clients
up, measure for a fixed time, and report medians over repeated runs:

    python -m bench.run --clients 1000,5000,10000 --runs 3 --json bench/results.json

Figures per run: clients connected and dropped, ticks per client per second,
tick lateness (kernel arrival minus the tick's epoch_ms) p50/p90/p99/max, sync
round trip p50/p99 under load, server CPU % and RSS (total and per
connection, above the idle process), and the load generators' own CPU.
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
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "moscow_clock": [sys.executable, "-m", "moscow_clock"],
    "naive": [sys.executable, "-m", "bench.naive_app"],
}
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
    rtt_p50: float
    rtt_p99: float
    cpu_pct: float
    rss_mb: float
    rss_idle_mb: float
    kb_per_conn: float
    loadgen_cpu_pct: float


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


def one_run(server: str, clients: int, workers: int, args: argparse.Namespace) -> Result:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "WORKERS": str(workers),
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "warning",
        "MAX_CONNECTIONS": str(clients + 1000),
        **dict(item.split("=", 1) for item in args.server_env),
    }
    server_cores = args.server_cores if workers == 1 else args.server_cores_multi
    process = subprocess.Popen(
        ["taskset", "-c", server_cores, *SERVERS[server]],
        cwd=ROOT,
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
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                preexec_fn=raise_open_files,
            )
            for i in range(args.generators)
        ]
        ramp = clients / args.rate + args.settle
        time.sleep(ramp)
        pids = process_tree(process.pid)
        cpu_start, wall_start = cpu_seconds(pids), time.monotonic()
        time.sleep(args.seconds / 2)
        rss = rss_bytes(process_tree(process.pid))
        time.sleep(max(0.0, args.seconds - (time.monotonic() - wall_start) - 0.2))
        cpu = (cpu_seconds(process_tree(process.pid)) - cpu_start) / (time.monotonic() - wall_start)
        reports = []
        for generator in generators:
            out, _ = generator.communicate(timeout=ramp + args.seconds + 60)
            reports.append(json.loads(out))
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    lateness = [x for r in reports for x in r["lateness_sample"]]
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
        late_p50=percentile(lateness, 0.50),
        late_p90=percentile(lateness, 0.90),
        late_p99=percentile(lateness, 0.99),
        late_max=max(lateness) if lateness else float("nan"),
        rtt_p50=percentile(rtts, 0.50),
        rtt_p99=percentile(rtts, 0.99),
        cpu_pct=100 * cpu,
        rss_mb=rss / 1e6,
        rss_idle_mb=rss_idle / 1e6,
        kb_per_conn=(rss - rss_idle) / 1e3 / max(connected, 1),
        loadgen_cpu_pct=100 * sum(r["cpu_s"] for r in reports) / wall,
    )


def median_result(runs: list[Result]) -> Result:
    """Field-wise medians over repeated runs (counts: the worst run)."""
    first = asdict(runs[0])
    merged = {}
    for key, value in first.items():
        values = [asdict(run)[key] for run in runs]
        if key in ("connected", "min_tick_ratio"):
            merged[key] = min(values)
        elif key in ("dropped", "failures"):
            merged[key] = max(values)
        elif isinstance(value, float):
            merged[key] = statistics.median(values)
        else:
            merged[key] = value
    return Result(**merged)


HEADER = (
    f"{'server':<13}{'W':>2}{'clients':>8}{'conn':>7}{'drop':>5}{'tick/s':>7}"
    f"{'p50':>7}{'p90':>7}{'p99':>7}{'max':>7}{'rtt50':>7}{'rtt99':>7}"
    f"{'cpu%':>6}{'rss MB':>8}{'KB/conn':>8}{'gen%':>6}"
)


def row(r: Result) -> str:
    return (
        f"{r.server:<13}{r.workers:>2}{r.clients:>8}{r.connected:>7}{r.dropped:>5}"
        f"{r.ticks_per_client_s:>7.3f}{r.late_p50:>7.0f}{r.late_p90:>7.0f}{r.late_p99:>7.0f}"
        f"{r.late_max:>7.0f}{r.rtt_p50:>7.1f}{r.rtt_p99:>7.1f}{r.cpu_pct:>6.0f}"
        f"{r.rss_mb:>8.1f}{r.kb_per_conn:>8.1f}{r.loadgen_cpu_pct:>6.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", default="1000,2000,5000,10000")
    parser.add_argument("--servers", default="moscow_clock,naive")
    parser.add_argument("--workers", default="1", help="comma list, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--settle", type=float, default=3)
    parser.add_argument("--rate", type=float, default=2000, help="new connections per second")
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--server-cores", default="0")
    parser.add_argument("--server-cores-multi", default="0,1", help="for WORKERS > 1")
    parser.add_argument("--loadgen-cores", default="1")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()
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
            for server in args.servers.split(","):
                if server == "naive" and workers > 1:
                    continue
                runs = [one_run(server, clients, workers, args) for _ in range(args.runs)]
                everything.extend(asdict(r) for r in runs)
                print(row(median_result(runs)), flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1) + "\n")


if __name__ == "__main__":
    main()
