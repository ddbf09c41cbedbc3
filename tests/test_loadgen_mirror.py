"""bench/loadgen.py retries as the page does: its Python copies of the page's
schedules (static/js/backoff.js) give the same delays as the page's own code,
run in Node, for every kind of failure, attempt and jitter."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from bench.loadgen import classify_probe, retry_delay_ms

from .support.server import ROOT

KINDS = ("opened", "down", "busy", "refused", "offline")
CASES = [
    (kind, attempt, rand, retry_after)
    for kind in KINDS
    for attempt in range(8)
    for rand in (0.0, 0.37, 1.0)
    for retry_after in ((0, 5000, 60000) if kind == "busy" else (0,))
]
PROBES = [
    (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 5", 503, "5"),
    (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120", 503, "120"),
    (b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0", 503, None),
    (b"HTTP/1.1 502 Bad Gateway", 502, None),
    (b"HTTP/1.1 426 Upgrade Required\r\nupgrade: websocket", 426, None),
    (b"HTTP/1.1 403 Forbidden", 403, None),
]
SCRIPT = """
const { retryDelay, classifyProbe } = await import(process.argv[1]);
const { cases, probes } = JSON.parse(process.argv[2]);
const delays = cases.map(([kind, n, rand, after]) => retryDelay(kind, n, () => rand, after));
const kinds = probes.map(([status, retryAfter]) => classifyProbe({ status, retryAfter }));
console.log(JSON.stringify({ delays, kinds }));
"""


def test_the_load_generator_backs_off_exactly_as_the_page() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (Node 20: the page's modules run under `node --test`)")
    payload = json.dumps(
        {"cases": CASES, "probes": [[status, after] for _, status, after in PROBES]}
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, str(ROOT / "static/js/backoff.js"), payload],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    page = json.loads(out)
    ours = [retry_delay_ms(kind, attempt, rand, after) for kind, attempt, rand, after in CASES]
    assert ours == pytest.approx(page["delays"])
    for (head, _, _), theirs in zip(PROBES, page["kinds"], strict=True):
        kind, wait = classify_probe(head)
        assert (kind, wait) == (theirs["kind"], theirs.get("retryAfterMs", 0.0)), head
    assert classify_probe(None) == ("down", 0.0)
