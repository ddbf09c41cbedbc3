"""`GET /metrics` in the Prometheus text format.

The request path only bumps plain counters (`Ticker`, `Stats`, `Gate`); once
a second, and on every scrape, `Metrics.update` moves their growth into
prometheus-client metrics.

With WORKERS > 1 each worker process is a separate server, and a scrape
reaches just one of them. So the supervisor gives every worker a shared
directory (`PROMETHEUS_MULTIPROC_DIR`, prometheus-client's multi-process
mode) and any worker answers for all: counters and histograms are summed,
the client gauge is summed over live workers. Per-process metrics (CPU, RSS)
are only exported by a single-process server; prometheus-client cannot
aggregate them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..core.clockstate import Health
from ..core.selection import Status, Verdict
from ..core.workers import RESTARTS_FILE
from .admission import Gate
from .clockmonitor import ClockMonitor
from .stalls import GcPauses, LoopLag
from .stats import Stats
from .ticker import Ticker

__all__ = ["CONTENT_TYPE", "Metrics"]

FANOUT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Stalls: most loop wake-ups are well under a millisecond late; what matters
# is the tail, against ticks one second apart.
STALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        self.clients = Gauge(
            "moscow_clock_websocket_clients",
            "Websocket clients connected now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ticks_sent = Counter(
            "moscow_clock_ticks_sent", "Ticks handed to websocket clients", registry=r
        )
        self.ticks_dropped = Counter(
            "moscow_clock_ticks_dropped",
            "Ticks a busy client skipped (it got the newer one instead)",
            registry=r,
        )
        self.fanouts_hurried = Counter(
            "moscow_clock_tick_fanouts_hurried",
            "Fan-outs that stopped yielding to other work (the process was that busy)",
            registry=r,
        )
        self.syncs = Counter("moscow_clock_sync_requests", "Sync requests answered", registry=r)
        self.refused = Counter(
            "moscow_clock_websocket_refused",
            "Websocket handshakes refused",
            ["reason"],
            registry=r,
        )
        self.capacity = Gauge(
            "moscow_clock_websocket_capacity",
            "Websocket clients admitted at most (MAX_CONNECTIONS as the open-files "
            "and memory limits leave it)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.saturated = Gauge(
            "moscow_clock_admission_saturated",
            "1 while newcomers are refused for load, by cause: loop_lag (the event "
            "loop behind by its own work) or memory (near the cgroup's limit)",
            ["cause"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.closed = Counter(
            "moscow_clock_websocket_closed",
            "Websocket sessions ended, by close code (peer: the client left first)",
            ["code"],
            registry=r,
        )
        # Protections that acted on a client, by action (one metric for all
        # of them: alert on its rate): inbound_shed, messages shed by the
        # process's inbound budget (INBOUND_RATE); inbound_paused,
        # connections not read for a while for it; inbound_closed, closed
        # with 1008 for going on past their share; and the server layer's
        # (docs/SECURITY.md): pending_evicted, pending_refused,
        # head_timed_out, listener_paused, accept_failed.
        self.protections = Counter(
            "moscow_clock_protections",
            "Protections that acted on a client, by action",
            ["action"],
            registry=r,
        )
        self.fanout = Histogram(
            "moscow_clock_tick_fanout_seconds",
            "From publishing a tick to handing it to the last waiting client",
            buckets=FANOUT_BUCKETS,
            registry=r,
        )
        # The clock's health (docs/clock.md). Every worker reads the same
        # kernel and polls the same servers; across workers the most
        # pessimistic live value wins, and the NTP figures are the most recent
        # any worker measured. Unknown values are NaN. Offsets are the
        # reference's time minus this clock's (positive: this clock is
        # behind), node_exporter's convention.
        self.clock_synchronized = Gauge(
            "moscow_clock_clock_synchronized",
            "1 if the kernel says the clock is synchronised, 0 if it says not, NaN if unknown",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.clock_health = Gauge(
            "moscow_clock_clock_health",
            "1 for the clock's current health: synchronised, unverified or off",
            ["health"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.clock_ready = Gauge(
            "moscow_clock_clock_ready",
            "1 if the clock lets /readyz answer ready (under CLOCK_CHECK), else 0",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.clock_error_bound = Gauge(
            "moscow_clock_clock_error_bound_seconds",
            "How far the server's time may be from true time (NaN if unbounded)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.clock_max_error = Gauge(
            "moscow_clock_clock_max_error_seconds",
            "The kernel's maximum clock error (adjtimex maxerror; NaN if unknown)",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.clock_estimated_error = Gauge(
            "moscow_clock_clock_estimated_error_seconds",
            "The kernel's estimated clock error (adjtimex esterror; NaN if unknown)",
            registry=r,
            multiprocess_mode="livemax",
        )
        # The kernel's own figures, named as node_exporter's timex collector names them.
        self.timex = {
            name: Gauge(
                f"moscow_clock_timex_{name}", help_text, registry=r, multiprocess_mode="livemax"
            )
            for name, help_text in (
                ("status", "Value of the adjtimex status word (NaN if unknown)"),
                (
                    "sync_status",
                    "1 if the kernel clock is synchronised (adjtimex not TIME_ERROR), 0 if not",
                ),
                ("offset_seconds", "Time offset the kernel is still slewing away"),
                (
                    "frequency_adjustment_ratio",
                    "Local clock frequency adjustment (1 + freq ppm / 1e6)",
                ),
                ("tai_offset_seconds", "International Atomic Time (TAI) offset"),
            )
        }
        # The NTP reference (node_exporter's ntp collector names, moscow_clock_ prefixed).
        self.ntp = {
            name: Gauge(
                f"moscow_clock_ntp_{name}",
                help_text,
                registry=r,
                multiprocess_mode="livemostrecent",
            )
            for name, help_text in (
                ("offset_seconds", "The reference's time minus this clock's (NaN: no reference)"),
                ("rtt_seconds", "Round trip to the reference"),
                ("stratum", "The reference's stratum"),
                ("root_delay_seconds", "The reference's round trip to its primary source"),
                ("root_dispersion_seconds", "The reference's dispersion to its primary source"),
                ("root_distance_seconds", "How far true time may be from the reference"),
                ("leap", "The reference's leap indicator (0 none, 1 insert, 2 delete)"),
                ("sample_age_seconds", "Age of the reference's chosen sample"),
            )
        }
        self.ntp_majority = Gauge(
            "moscow_clock_ntp_majority",
            "1 if a majority of NTP servers agree (a reference is chosen), 0 if not, "
            "NaN with no servers configured",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ntp_server_reach = Gauge(
            "moscow_clock_ntp_server_reach",
            "Each NTP server's reachability register (8 polls, a bit set per answer)",
            ["server"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.ntp_server_state = Gauge(
            "moscow_clock_ntp_server_state",
            "1 for each NTP server's verdict: selected, truechimer, falseticker or unusable",
            ["server", "state"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.loop_lag = Histogram(
            "moscow_clock_event_loop_lag_seconds",
            "How late the event loop woke a timer (sampled every 50 ms): whole-process stalls",
            buckets=STALL_BUCKETS,
            registry=r,
        )
        self.stalls = Counter(
            "moscow_clock_event_loop_stalls",
            "Event-loop lags over 100 ms, by cause: own (this process was on the CPU "
            "for most of it) or host (it was not scheduled)",
            ["cause"],
            registry=r,
        )
        self.gc_pause = Histogram(
            "moscow_clock_gc_pause_seconds",
            "Garbage collection pauses, by generation",
            ["generation"],
            buckets=STALL_BUCKETS,
            registry=r,
        )
        # No gauge of frozen objects: gc.get_freeze_count() walks the whole
        # frozen generation, every object of every connection, in one piece
        # on the loop: read every second it was the stall a second at 10,000
        # clients (docs/PERFORMANCE.md, Figures the code cites). The hourly sweep logs it instead.
        self._seen: dict[str, float] = {}
        self._restarts = WorkerRestarts(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if not self.multiprocess:
            r.register(self._restarts)

    def update(
        self,
        ticker: Ticker,
        stats: Stats,
        gate: Gate,
        loop_lag: LoopLag | None = None,
        gc_pauses: GcPauses | None = None,
    ) -> None:
        self.clients.set(gate.open)
        self.capacity.set(gate.max_connections)
        if gate.load is not None:
            for cause, on in gate.load.saturated().items():
                self.saturated.labels(cause).set(on)
        self._add(self.ticks_sent, "sent", ticker.delivered)
        self._add(self.ticks_dropped, "dropped", ticker.skipped)
        self._add(self.fanouts_hurried, "hurried", ticker.hurried)
        self._add(self.syncs, "syncs", stats.syncs)
        for reason, count in stats.refused.items():
            self._add(self.refused.labels(reason), f"refused:{reason}", count)
        for code, count in stats.closed.items():
            self._add(self.closed.labels(code), f"closed:{code}", count)
        if (inbound := stats.inbound) is not None:
            for action, count in (
                ("inbound_shed", inbound.shed),
                ("inbound_paused", inbound.paused),
                ("inbound_closed", inbound.closed),
            ):
                self._add(self.protections.labels(action), f"protections:{action}", count)
        for counts in stats.server_protections:
            for action, count in counts().items():
                self._add(self.protections.labels(action), f"protections:{action}", count)
        for seconds in ticker.take_fanout_samples():
            self.fanout.observe(seconds)
        if loop_lag is not None:
            for seconds in loop_lag.take_samples():
                self.loop_lag.observe(seconds)
            for cause, count in loop_lag.stalls.items():
                self._add(self.stalls.labels(cause), f"stalls:{cause}", count)
        if gc_pauses is not None:
            for generation, seconds in gc_pauses.take_samples():
                self.gc_pause.labels(str(generation)).observe(seconds)

    def update_clock(self, monitor: ClockMonitor) -> None:
        state = monitor.state
        judgement = monitor.judgement
        self.clock_synchronized.set(_number(state.synchronized))
        for health in Health:
            self.clock_health.labels(health.value).set(judgement.health is health)
        self.clock_ready.set(judgement.ready(monitor.check))
        self.clock_error_bound.set(_seconds(judgement.error_bound_ms))
        self.clock_max_error.set(_seconds(state.max_error_ms))
        self.clock_estimated_error.set(_seconds(state.estimated_error_ms))
        frequency = None if state.frequency_ppm is None else 1 + state.frequency_ppm / 1e6
        sync_status = None if state.synchronized is None else state.synchronized
        kernel: tuple[tuple[str, float], ...] = (
            ("status", _number(state.status)),
            ("sync_status", _number(sync_status)),
            ("offset_seconds", _seconds(state.offset_ms)),
            ("frequency_adjustment_ratio", _number(frequency)),
            ("tai_offset_seconds", _number(state.tai_offset_s)),
        )
        for name, value in kernel:
            self.timex[name].set(value)
        selection = monitor.selection
        peer = selection.reference
        ntp: tuple[tuple[str, float | None], ...] = (
            ("offset_seconds", None if peer is None else peer.offset_ms / 1000),
            ("rtt_seconds", None if peer is None else peer.delay_ms / 1000),
            ("stratum", None if peer is None else peer.stratum),
            ("root_delay_seconds", None if peer is None else peer.root_delay_ms / 1000),
            ("root_dispersion_seconds", None if peer is None else peer.root_dispersion_ms / 1000),
            ("root_distance_seconds", None if peer is None else peer.root_distance_ms / 1000),
            ("leap", None if peer is None else peer.leap),
            ("sample_age_seconds", None if peer is None else peer.age_ms / 1000),
        )
        for name, number in ntp:
            self.ntp[name].set(_number(number))
        self.ntp_majority.set(
            math.nan if selection.status is Status.NONE else selection.status is Status.SELECTED
        )
        reach = {p.server: p.reach for p in selection.peers}
        for server_filter in monitor.filters:
            server = server_filter.server
            self.ntp_server_reach.labels(server).set(reach.get(server, server_filter.reach))
            verdict = selection.verdicts.get(server)
            for each in Verdict:
                self.ntp_server_state.labels(server, each.value).set(verdict is each)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        merged.register(self._restarts)
        return generate_latest(merged)

    def _add(self, counter: Counter, key: str, total: float) -> None:
        growth = total - self._seen.get(key, 0)
        if growth > 0:
            counter.inc(growth)
            self._seen[key] = total


class WorkerRestarts(Collector):
    """Workers the supervisor started again after one died: a count it keeps
    in the shared metrics directory (core/workers.RESTARTS_FILE), as it has
    no listener of its own; 0 for a server without a supervisor."""

    def __init__(self, directory: str | None) -> None:
        self._path = None if not directory else Path(directory) / RESTARTS_FILE

    def collect(self) -> Iterator[Metric]:
        count = 0
        if self._path is not None:
            with suppress(OSError, ValueError):
                count = int(self._path.read_text())
        yield CounterMetricFamily(
            "moscow_clock_worker_restarts",
            "Workers started again after one died (WORKERS > 1)",
            value=count,
        )


def _seconds(ms: float | None) -> float:
    return math.nan if ms is None else ms / 1000


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
