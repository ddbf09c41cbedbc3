"""Admission by real saturation, as pure decisions over injected readings:
the loop's own sustained lag, the memory in use against the limit (both with
hysteresis), the cap the memory sets, the cgroup files they come from, and
the supervisor's restart policy. No timing thresholds: speed is the
benchmark's."""

from __future__ import annotations

from pathlib import Path

import pytest

from moscow_clock.core.capacity import (
    MOST_CONNECTIONS,
    PER_CONNECTION_BYTES,
    SustainedLag,
    Watermarks,
    connections_for_memory,
)
from moscow_clock.core.config import Settings
from moscow_clock.core.workers import (
    CRASH_LOOP_DEATHS,
    FIRST_BACKOFF_S,
    MOST_BACKOFF_S,
    Restarts,
)
from moscow_clock.live.admission import BUSY, FULL, MEMORY, Admitted, Gate, Load
from moscow_clock.live.memory import Cgroup, MemoryUse, memory_limit
from moscow_clock.live.stalls import LoopLag

MiB = 1 << 20


class Readings:
    """The load a test sets: is the loop behind, what share of memory is used."""

    def __init__(self) -> None:
        self.behind = False
        self.memory: float | None = None

    def load(self) -> Load:
        return Load(lambda: self.behind, lambda: self.memory)


def test_idle_clients_cost_nothing_toward_a_refusal() -> None:
    """Thousands admitted and quiet: the next one is admitted too. (The gate
    before weighed every admitted client's share of a fan-out, so ~5,900
    idle sockets refused everyone.)"""
    readings = Readings()
    gate = Gate(max_connections=MOST_CONNECTIONS, allowed_origins=frozenset(), load=readings.load())
    held = [gate.admit(None, "clock.example") for _ in range(20_000)]
    assert all(isinstance(place, Admitted) for place in held)
    assert gate.refusal_for_load() is None
    assert not gate.shedding()
    assert isinstance(gate.admit(None, "clock.example"), Admitted)


def test_a_saturated_process_refuses_with_503_and_retry_after() -> None:
    readings = Readings()
    gate = Gate(max_connections=10, allowed_origins=frozenset(), load=readings.load())
    first = gate.admit(None, "clock.example")
    assert isinstance(first, Admitted)
    readings.behind = True
    assert gate.admit(None, "clock.example") is BUSY
    assert gate.refusal_for_load() is BUSY  # the page's probe hears the same
    assert gate.shedding()  # and the server may refuse from the first bytes
    assert (BUSY.status, BUSY.reason, BUSY.headers) == (503, "busy", {"Retry-After": "5"})
    assert gate.open == 1  # a refusal takes no place
    readings.behind = False
    readings.memory = 0.95
    assert gate.admit(None, "clock.example") is MEMORY
    assert (MEMORY.status, MEMORY.reason, MEMORY.headers) == (503, "memory", {"Retry-After": "5"})
    assert readings.load().saturated() == {"memory": True, "loop_lag": False}
    readings.memory = 0.5
    second = gate.admit(None, "clock.example")
    assert isinstance(second, Admitted)
    with first, second:
        pass
    assert gate.open == 0


def test_the_cap_and_the_origin_are_decided_before_the_load() -> None:
    readings = Readings()
    readings.behind = True
    gate = Gate(max_connections=0, allowed_origins=frozenset(), load=readings.load())
    assert gate.admit(None, "clock.example") is FULL
    refused = gate.admit("https://evil.example", "clock.example")
    assert refused not in (BUSY, FULL, MEMORY)


def test_memory_refuses_at_90_percent_and_admits_again_below_80() -> None:
    readings = Readings()
    load = readings.load()
    for share, refused in [
        (None, False),  # no limit, or unknown: nothing to be near
        (0.5, False),
        (0.89, False),
        (0.9, True),  # the high mark
        (0.85, True),  # between the marks: still refused, no flapping
        (0.8, True),
        (None, True),  # an unreadable moment changes nothing
        (0.79, False),  # clearly below: admitting again
        (0.85, False),  # between the marks on the way up: still admitting
        (0.95, True),
    ]:
        readings.memory = share
        assert (load.refusal() is MEMORY) is refused, share


def test_watermarks_both_ways() -> None:
    marks = Watermarks(high=0.9, low=0.8)
    assert [marks.update(v) for v in (0.1, 0.9, 0.81, 0.8, 0.79, 0.89, 0.9)] == [
        False,
        True,
        True,
        True,
        False,
        False,
        True,
    ]


def test_the_loop_is_behind_only_after_two_whole_seconds_of_lag_over_the_budget() -> None:
    lag = SustainedLag(budget_s=0.5)
    lag.record(0.6, now=100.7)  # one slow second: a collection, a burst of handshakes
    assert not lag.behind(101.2)
    lag.record(0.01, now=101.3)
    lag.record(0.7, now=101.9)
    assert not lag.behind(101.95)  # second 101 not over yet: decided on whole seconds
    assert lag.behind(102.1)  # 100 and 101 both over
    lag.record(0.45, now=102.5)  # under the budget, but not clearly: stays behind
    assert lag.behind(103.0)
    lag.record(0.3, now=103.5)
    assert lag.behind(104.0)  # 102's worst was 0.45, not under 80 % of 0.5
    lag.record(0.35, now=104.5)
    assert not lag.behind(105.0)  # 103 and 104 both under 0.4: admitting again
    lag.record(0.45, now=105.5)
    assert not lag.behind(106.0)  # between the marks on the way up: still admitting


def test_one_stall_longer_than_the_hold_counts_as_sustained() -> None:
    lag = SustainedLag(budget_s=0.5)
    lag.record(2.5, now=103.2)  # the loop did not run from 100.7 on
    assert lag.behind(103.5)


def test_calm_seconds_and_a_zero_budget() -> None:
    lag = SustainedLag(budget_s=0.5)
    assert not lag.behind(50.0)  # nothing recorded: calm
    off = SustainedLag(budget_s=0.0)
    off.record(10.0, now=10.0)
    assert not off.behind(11.0)


def test_only_the_processs_own_lag_counts_not_a_host_that_did_not_run_it() -> None:
    now = [100.5]
    lag = LoopLag(period=0.05, clock=lambda: now[0], budget_s=0.5)
    for second in (100.5, 101.5):
        now[0] = second
        lag.record(0.8, cpu=0.01)  # descheduled: the host's stall
    now[0] = 102.1
    assert not lag.behind()
    for second in (102.5, 103.5):
        now[0] = second
        lag.record(0.8, cpu=0.8)  # on the CPU all along: its own work
    now[0] = 104.1
    assert lag.behind()
    assert lag.stalls == {"own": 2, "host": 2}


@pytest.mark.parametrize(
    ("memory", "processes", "expected"),
    [
        (512 * MiB, 1, (512 - 128) * MiB // PER_CONNECTION_BYTES),  # 12,288
        (1024 * MiB, 2, (512 - 128) * MiB // PER_CONNECTION_BYTES),  # a share each
        (64 * MiB, 1, 1),  # less than the base: still one
        (1 << 50, 1, MOST_CONNECTIONS),
    ],
)
def test_the_cap_the_memory_sets(memory: int, processes: int, expected: int) -> None:
    assert connections_for_memory(memory, processes) == expected


def test_max_connections_defaults_to_no_cap_of_its_own() -> None:
    assert Settings.from_env({}).max_connections == MOST_CONNECTIONS
    assert Settings.from_env({}).loop_lag_budget == 0.5
    assert Settings.from_env({"MAX_CONNECTIONS": "300"}).max_connections == 300


def cgroup_tree(tmp_path: Path, files: dict[str, str], proc: str) -> Cgroup:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "proc").write_text(proc)
    return Cgroup(root, tmp_path / "proc")


def test_cgroup_v2_limit_and_working_set(tmp_path: Path) -> None:
    cgroup = cgroup_tree(
        tmp_path,
        {
            "memory.max": "max\n",  # the root: no limit
            "pod/memory.max": "1073741824\n",
            "pod/app/memory.max": "max\n",
            "pod/app/memory.current": "900000000\n",
            "pod/app/memory.stat": "anon 1\nfile 2\ninactive_file 100000000\nactive_file 5\n",
        },
        "0::/pod/app\n",
    )
    assert cgroup.version == 2
    assert cgroup.limit() == 1 << 30  # the tightest of the cgroup and its ancestors
    assert cgroup.in_use() == 800_000_000  # cache the kernel can take back is not in use
    limit = memory_limit(cgroup)
    assert limit is not None
    assert (limit.bytes, limit.source) == (1 << 30, "cgroup memory.max")
    clock = [0.0]
    use = MemoryUse(cgroup, clock=lambda: clock[0])
    assert use.share() == pytest.approx(800_000_000 / (1 << 30))
    (tmp_path / "cgroup/pod/app/memory.current").write_text("1000000000\n")
    assert use.share() == pytest.approx(800_000_000 / (1 << 30))  # read once a second
    clock[0] = 1.0
    assert use.share() == pytest.approx(900_000_000 / (1 << 30))


def test_cgroup_v1_and_no_limit(tmp_path: Path) -> None:
    cgroup = cgroup_tree(
        tmp_path,
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "none"
            "memory/memory.usage_in_bytes": "2000\n",
            "memory/memory.stat": "inactive_file 1\ntotal_inactive_file 500\n",
        },
        "4:memory:/gone/elsewhere\n0::/\n",
    )
    assert cgroup.version == 1
    assert cgroup.limit() is None
    assert cgroup.in_use() == 1500
    assert MemoryUse(cgroup).share() is None  # no limit to be near
    limit = memory_limit(cgroup)
    assert limit is not None
    assert limit.source == "physical memory"
    nothing = cgroup_tree(tmp_path / "none", {}, "")
    assert nothing.version == 0
    assert nothing.in_use() is None
    assert MemoryUse(nothing).share() is None


def test_a_dying_worker_is_restarted_after_a_doubling_backoff() -> None:
    restarts = Restarts()
    delays = [restarts.died(now=t * 100.0, lived_s=5.0) for t in range(7)]  # far apart
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, MOST_BACKOFF_S, MOST_BACKOFF_S]
    assert restarts.died(now=800.0, lived_s=61.0) == FIRST_BACKOFF_S  # lived a minute: reset
    assert restarts.died(now=900.0, lived_s=1.0) == 2 * FIRST_BACKOFF_S


def test_five_deaths_within_a_minute_is_a_crash_loop() -> None:
    restarts = Restarts()
    for death in range(CRASH_LOOP_DEATHS - 1):
        assert restarts.died(now=10.0 * death, lived_s=1.0) is not None
    assert restarts.died(now=59.0, lived_s=1.0) is None
    spaced = Restarts()
    for death in range(3 * CRASH_LOOP_DEATHS):  # one every 15 s: four a minute at most
        assert spaced.died(now=15.0 * death, lived_s=1.0) is not None
