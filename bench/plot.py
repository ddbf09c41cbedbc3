"""Plot `make bench` results.

python -m bench.plot bench/results.json docs/performance.png
    tick lateness and memory against clients
python -m bench.plot --seconds results.json docs/stalls.png [SERVER=LABEL ...]
    per-second p99 lateness over the window, one line per server (its median run)
python -m bench.plot --overload results.json docs/overload.png [SERVER=LABEL ...]
    offered against admitted clients, and the admitted clients' p99, per server
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {
    "moscow_clock": "moscow_clock (1 process)",
    "naive": "naive Quart loop",
    "reference": "websockets library, broadcast()",
}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose pooled p99 is the median of its server's runs."""
    ordered = sorted(runs, key=lambda r: r["late_p99"])
    return ordered[(len(ordered) - 1) // 2]


def per_second(results: Path, out: Path, labels: dict[str, str]) -> None:
    runs = json.loads(results.read_text())
    by_server: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_server[run["server"]].append(run)
    fig, axes = plt.subplots(figsize=(11, 4.2), dpi=110)
    for server, server_runs in by_server.items():
        if labels and server not in labels:
            continue
        run = median_run(server_runs)
        values = [v if v == v else float("nan") for v in run["sec_p99"]]
        label = labels.get(server) or LABELS.get(server, server)
        axes.plot(
            range(len(values)), values, marker=".", label=f"{label} (p99 {run['late_p99']:.0f} ms)"
        )
        missing = [i for i, v in enumerate(values) if v != v]
        if missing:
            axes.plot(missing, [0] * len(missing), "x", color="red")
    clients = runs[0]["clients"]
    title = f"Per-second p99 lateness, {clients:,} clients (x: a second with no tick)"
    axes.set(xlabel="second of the window", ylabel="p99 tick lateness that second (ms)")
    axes.set_title(title)
    axes.set_ylim(0, None)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def overload(results: Path, out: Path, labels: dict[str, str]) -> None:
    """One line per server in `labels` (all moscow_clock servers if none)."""
    runs = json.loads(results.read_text())
    by_server: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run["server"] in labels or (not labels and run["server"] != "reference"):
            by_server[run["server"]][run["clients"]].append(run)
    fig, (count, late) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    everything = sorted({n for by_offered in by_server.values() for n in by_offered})
    count.plot(everything, everything, linestyle=":", color="grey", label="offered")
    for server, by_offered in by_server.items():
        label = labels.get(server, server)
        offered = sorted(by_offered)
        admitted = [statistics.median(r["connected"] for r in by_offered[n]) for n in offered]
        # A run where the admitted got no tick at all has no lateness: drawn at the top.
        p99 = [statistics.median(r["late_p99"] for r in by_offered[n]) for n in offered]
        worst = [statistics.median(r["worst_sec_p99"] for r in by_offered[n]) for n in offered]
        line = count.plot(offered, admitted, marker="o", label=f"{label}: admitted")[0]
        late.plot(offered, p99, marker="o", color=line.get_color(), label=f"{label}: p99")
        late.plot(
            offered,
            worst,
            marker=".",
            linestyle="--",
            color=line.get_color(),
            label=f"{label}: worst second's p99",
        )
    count.set(xlabel="clients offered", ylabel="clients", title="Admitted against offered")
    late.axhline(250, color="grey", linewidth=0.8, linestyle=":")
    late.set(
        xlabel="clients offered", ylabel="tick lateness (ms)", title="Lateness of the admitted"
    )
    late.set_yscale("log")
    for axes in (count, late):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    count.set_ylim(0, None)
    fig.suptitle("Overload: one process, one core; refused pages retry", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def main(results: Path, out: Path) -> None:
    runs = json.loads(results.read_text())
    series: dict[str, dict[int, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run["workers"] == 1:
            series[run["server"]][run["clients"]].append(run)
    fig, (late, memory) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for server, by_clients in sorted(series.items()):
        counts = sorted(by_clients)
        label = LABELS.get(server, server)

        medians = {
            key: [statistics.median(r[key] for r in by_clients[n]) for n in counts]
            for key in ("late_p50", "late_p99", "kb_per_conn")
        }
        line = late.plot(counts, medians["late_p99"], marker="o", label=f"{label}, p99")[0]
        late.plot(counts, medians["late_p50"], marker=".", linestyle="--",
                  color=line.get_color(), label=f"{label}, p50")  # fmt: skip
        memory.plot(counts, medians["kb_per_conn"], marker="o", label=label, color=line.get_color())
    late.axhline(250, color="grey", linewidth=0.8, linestyle=":")
    late.text(counts[0], 255, "target p99 at 10k: 250 ms", fontsize=8, color="grey")
    memory.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    memory.text(counts[0], 20.5, "target: 20 KB", fontsize=8, color="grey")
    late.set(xlabel="websocket clients", ylabel="tick lateness (ms)", title="Tick lateness")
    memory.set(xlabel="websocket clients", ylabel="server RSS per connection (KB)",
               title="Memory per connection", ylim=(0, None))  # fmt: skip
    for axes in (late, memory):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    fig.suptitle("One server process on one core, load generator on the other", fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1] == "--seconds":
        per_second(Path(sys.argv[2]), Path(sys.argv[3]),
                   dict(a.split("=", 1) for a in sys.argv[4:]))  # fmt: skip
    elif sys.argv[1] == "--overload":
        overload(Path(sys.argv[2]), Path(sys.argv[3]),
                 dict(a.split("=", 1) for a in sys.argv[4:]))  # fmt: skip
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
