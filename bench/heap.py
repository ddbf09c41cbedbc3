"""Where the bytes per connection go: the Python heap a server holds for
its websocket clients, by allocation site and by type.

    python -m bench.heap --clients 2000 [--checkout DIR] [--out DIR]

Starts the clock's server (this checkout's, or `--checkout`'s) on core 0
with a thread inside it; once the server is ready, the thread collects,
counts `gc.get_objects()` by type and starts `tracemalloc`; then `--clients`
clients from `bench.loadgen` (core 1) connect and tick; 5 s after the last
is in, the thread collects and counts again and takes a snapshot. Printed,
per client: the traced heap, grouped by where it was allocated (the most
recent frame; a coroutine counts where it was called), the gc-tracked
objects by type (`sys.getsizeof`: without values stored inline in an
instance, nor untracked bytes, strings, numbers), and the largest
tracebacks. The snapshot stays in `--out` (`heap.tm`). Tracing slows the
server, so `LOOP_LAG_BUDGET` is raised for the run (nobody refused).
A heavy run: wrap it in the machine's lock if others share it.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from bench.run import ROOT, clients_now, free_port, raise_open_files, wait_ready

# (a file's ending, a line or 0 for any) -> what it is; first match wins,
# looked up on the most recent frame of each allocation.
SITES: tuple[tuple[str, int, str], ...] = (
    ("asyncio/selector_events.py", 788, "asyncio transport's write buffer (a deque)"),
    ("_weakrefset.py", 0, "weak references (asyncio's task and transport registries)"),
    ("weakref.py", 0, "weak references (asyncio's task and transport registries)"),
    ("asyncio/base_events.py", 469, "tasks (create_task: task, context)"),
    ("asyncio/taskgroups.py", 0, "asyncio.TaskGroup"),
    ("asyncio/base_events.py", 460, "futures"),
    ("asyncio/base_events.py", 0, "timer handles, callbacks, contexts"),
    ("asyncio/events.py", 0, "timer handles, callbacks, contexts"),
    ("asyncio/selector_events.py", 0, "socket, transport, selector key, addresses"),
    ("asyncio/trsock.py", 0, "socket, transport, selector key, addresses"),
    ("/socket.py", 0, "socket, transport, selector key, addresses"),
    ("/selectors.py", 0, "socket, transport, selector key, addresses"),
    ("<string>", 0, "socket, transport, selector key, addresses"),
    ("asyncio/streams.py", 0, "StreamReader, StreamWriter, stream protocol"),
)
PACKAGES: tuple[tuple[str, str], ...] = (
    ("/h11/", "h11: request header bytes and tuples"),
    ("/wsproto/", "wsproto Connection and frame parser"),
    ("hypercorn/protocol/ws_stream.py", "Hypercorn's WSStream (scope, Handshake)"),
    ("hypercorn/protocol/", "Hypercorn's H11Protocol, ProtocolWrapper"),
    ("hypercorn/asyncio/", "Hypercorn's TCPServer, TaskGroup, coroutines"),
    ("moscow_clock/server/hypercorn/", "our server layer (server/hypercorn/)"),
    ("moscow_clock/server/", "our server (pinger)"),
    ("moscow_clock/", "app (web/, live/, core/)"),
    ("quart/", "Quart"),
)


def site(traceback: tracemalloc.Traceback) -> str:
    frame = list(traceback)[-1]  # the most recent
    name, line = frame.filename, frame.lineno
    for ending, at, what in SITES:
        if name.endswith(ending) and at in (0, line):
            return what
    for part, what in PACKAGES:
        if part in name:
            return what
    return "other"


def types() -> collections.Counter[str]:
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.collect()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        sizes[f"{kind.__module__}.{kind.__qualname__}"] += sys.getsizeof(obj)
        sizes[f"# {kind.__module__}.{kind.__qualname__}"] += 1
    if frozen:
        gc.freeze()
    return sizes


def sampler(out: Path, clients: int) -> None:
    """In the server: wait for `start`, then for `snap` (files in `out`)."""
    while not (out / "start").exists():
        time.sleep(0.1)
    before = types()
    tracemalloc.start(12)
    (out / "started").touch()
    while not (out / "snap").exists():
        time.sleep(0.1)
    after = types()
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    snapshot.dump(str(out / "heap.tm"))
    lines = []
    by_site: collections.Counter[str] = collections.Counter()
    for stat in snapshot.statistics("traceback"):
        by_site[site(stat.traceback)] += stat.size
    lines.append("by site, bytes per client:")
    for what, size in by_site.most_common():
        lines.append(f"{size / clients:8.0f}  {what}")
    lines.append(f"{sum(by_site.values()) / clients:8.0f}  in all: the traced heap per client")
    lines.append("\ngc-tracked objects by type, per client (count, bytes):")
    grown = {k: after[k] - before[k] for k in after if not k.startswith("# ")}
    for kind, size in sorted(grown.items(), key=lambda item: -item[1])[:30]:
        count = (after[f"# {kind}"] - before[f"# {kind}"]) / clients
        lines.append(f"{count:6.2f} {size / clients:8.0f}  {kind}")
    lines.append("\nlargest tracebacks, per client (most recent frame first):")
    for stat in snapshot.statistics("traceback")[:25]:
        frames = " < ".join(
            f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in stat.traceback[::-1][:5]
        )
        lines.append(f"{stat.size / clients:6.0f} B {stat.count / clients:5.2f}  {frames}")
    (out / "report.txt").write_text("\n".join(lines) + "\n")
    (out / "done").touch()


def serve() -> None:
    """The server, with the sampler beside it (run by `main`)."""
    out = Path(os.environ["HEAP_OUT"])
    threading.Thread(
        target=sampler, args=(out, int(os.environ["HEAP_CLIENTS"])), daemon=True
    ).start()
    from moscow_clock.__main__ import main as serve_clock

    sys.exit(serve_clock())


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--checkout", type=Path, default=ROOT)
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "moscow-clock-heap"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("start", "started", "snap", "done", "report.txt"):
        (args.out / name).unlink(missing_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "warning",
        "LOOP_LAG_BUDGET": "60",
        "HEAP_OUT": str(args.out),
        "HEAP_CLIENTS": str(args.clients),
        "PYTHONPATH": f"{args.checkout}{os.pathsep}{ROOT}",
    }
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, str(ROOT / "bench" / "heap.py"), "--serve"],
        cwd=args.checkout,
        env=env,
        preexec_fn=raise_open_files,
    )
    load = None
    try:
        wait_ready(port)
        (args.out / "start").touch()
        while not (args.out / "started").exists():
            time.sleep(0.1)
        load = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, "-m", "bench.loadgen", "--port", str(port),
             "--clients", str(args.clients), "--rate", "400", "--seconds", "60"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            preexec_fn=raise_open_files,
        )  # fmt: skip
        deadline = time.monotonic() + 30 + args.clients / 400
        while clients_now(port) < args.clients and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)
        (args.out / "snap").touch()
        while not (args.out / "done").exists():
            time.sleep(0.2)
        print((args.out / "report.txt").read_text(), end="")
    finally:
        if load is not None:
            load.kill()
            load.wait()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
