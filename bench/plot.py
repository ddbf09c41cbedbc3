"""Plot `make bench` results: tick lateness and memory against clients.

python -m bench.plot bench/results.json docs/performance.png
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {"moscow_clock": "moscow_clock (1 process)", "naive": "naive Quart loop"}


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
    main(Path(sys.argv[1]), Path(sys.argv[2]))
