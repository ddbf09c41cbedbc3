"""The clock's server with a sampler inside it (bench only): what grows?

    PROBE_OUT=/tmp/probe python -m bench.probe
    python -m bench.soak --server probed --hostile-mix --minutes 10 --every 30

Runs `python -m moscow_clock` in this process with a thread beside it that,
every `PROBE_EVERY` seconds, appends one JSON line to `$PROBE_OUT/samples.jsonl`:
RSS; glibc's `mallinfo2()` (what malloc holds from the kernel against what
is in use: retention shows as the first growing while the second does not);
pymalloc's arena counts (`sys._debugmallocstats`); the collector's tracked
and frozen object counts with the commonest types among the unfrozen; and,
from `PROBE_TRACE_AT` seconds on, tracemalloc's traced total, with a
snapshot dumped at each sample (`snap-<seconds>.tm`, compare them with
`python -m bench.probe --compare A B`). `PROBE_TRIM_AT=300,480`: at those
seconds, `malloc_trim(0)` once (the collector's own trims are timed at
every sample: `policy_trims_ms`), its duration and the RSS it gave back.
`PROBE_SWEEP_AT=570`: then, once, what the hourly sweep would do (unfreeze,
collect, freeze): the objects it found and the pymalloc bytes it freed.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
    "fordblks", "keepcost",
)  # fmt: skip


TRIMS_MS: list[float] = []  # the policy's malloc_trim calls since the last sample


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pymalloc() -> dict[str, int]:
    """The counters sys._debugmallocstats prints (to C's stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    found: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("# ") and "=" in line:
            key, _, value = line[2:].partition("=")
            with contextlib.suppress(ValueError):
                found[key.strip()] = int(value.strip().replace(",", ""))
    return found


def sampler(
    out: Path, every: float, trace_at: float, trims: set[float], sweep_at: float | None
) -> None:
    libc = _libc()
    started = time.monotonic()
    with (out / "samples.jsonl").open("a") as samples:
        while True:
            time.sleep(every - (time.monotonic() - started) % every)
            t = round(time.monotonic() - started)
            row: dict[str, object] = {"t": t, "rss": rss()}
            if libc is not None:
                info = libc.mallinfo2()
                row["mallinfo2"] = {name: getattr(info, name) for name in FIELDS}
            row["pymalloc"] = pymalloc()
            objects = gc.get_objects()
            row["gc_tracked"] = len(objects)
            row["gc_frozen"] = gc.get_freeze_count()
            types = collections.Counter(type(o).__qualname__ for o in objects)
            row["types"] = dict(types.most_common(30))
            big = sorted(
                (len(o), type(o).__qualname__, repr(next(iter(o), None))[:80])
                for o in objects
                if isinstance(o, (dict, set, list, collections.deque)) and len(o) >= 300
            )[-12:]
            row["big_containers"] = big
            del objects
            if t >= trace_at and not tracemalloc.is_tracing():
                tracemalloc.start(8)
            elif tracemalloc.is_tracing():
                row["traced"] = tracemalloc.get_traced_memory()[0]
                tracemalloc.take_snapshot().dump(str(out / f"snap-{t:05d}.tm"))
            due = [at for at in trims if t >= at]
            if due and libc is not None:
                trims.difference_update(due)
                before = rss()
                begun = time.perf_counter()
                libc.malloc_trim(0)
                row["trim_ms"] = (time.perf_counter() - begun) * 1000
                row["trim_freed"] = before - rss()
            if TRIMS_MS:
                row["policy_trims_ms"] = [round(ms, 2) for ms in TRIMS_MS]
                TRIMS_MS.clear()
            if sweep_at is not None and t >= sweep_at:
                sweep_at = None  # once: how much garbage the frozen objects held
                before = pymalloc().get("bytes in allocated blocks", 0)
                gc.unfreeze()
                gc.set_debug(gc.DEBUG_SAVEALL)
                row["sweep_found"] = gc.collect()
                gc.set_debug(0)
                kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
                row["sweep_types"] = dict(kinds.most_common(40))
                row["sweep_samples"] = [
                    repr(o)[:160]
                    for o in gc.garbage
                    if type(o).__qualname__ in ("coroutine", "frame", "Task", "function", "cell")
                ][:40]
                gc.garbage.clear()
                gc.freeze()
                row["sweep_freed"] = before - pymalloc().get("bytes in allocated blocks", 0)
            samples.write(json.dumps(row) + "\n")
            samples.flush()


def compare(first: str, second: str, group: str = "lineno", top: str = "25") -> None:
    one = tracemalloc.Snapshot.load(first)
    two = tracemalloc.Snapshot.load(second)
    print(
        f"traced {sum(s.size for s in one.statistics('filename')) / 1e6:.2f} -> "
        f"{sum(s.size for s in two.statistics('filename')) / 1e6:.2f} MB"
    )
    for stat in two.compare_to(one, group)[: int(top)]:
        print(f"{stat.size_diff / 1e3:+9.1f} KB {stat.count_diff:+7d} {stat.traceback}")
        if group == "traceback":
            for line in stat.traceback.format()[-16:]:
                print("     ", line)


def main() -> None:
    if sys.argv[1:2] == ["--compare"]:
        compare(*sys.argv[2:])
        return
    out = Path(os.environ["PROBE_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    trims = {float(x) for x in os.environ.get("PROBE_TRIM_AT", "").split(",") if x}
    threading.Thread(
        target=sampler,
        args=(
            out,
            float(os.environ.get("PROBE_EVERY", "30")),
            float(os.environ.get("PROBE_TRACE_AT", "1e9")),
            trims,
            float(os.environ["PROBE_SWEEP_AT"]) if "PROBE_SWEEP_AT" in os.environ else None,
        ),
        daemon=True,
    ).start()
    from moscow_clock.__main__ import main as serve
    from moscow_clock.server import collector

    real = collector.malloc_trim() if hasattr(collector, "malloc_trim") else None
    if real is not None:

        def timed() -> object:
            begun = time.perf_counter()
            real()
            TRIMS_MS.append((time.perf_counter() - begun) * 1000)
            return None

        collector.malloc_trim = lambda: timed  # the policy's trims, timed

    sys.exit(serve())


if __name__ == "__main__":
    main()
