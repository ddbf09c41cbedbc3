"""The per-process objects the routes share, stored on the app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quart import Quart, current_app

from ..core.clock import Clock
from ..core.config import Settings
from ..live.admission import Gate
from ..live.clockmonitor import ClockMonitor
from ..live.metrics import Metrics
from ..live.stalls import GcPauses, LoopLag
from ..live.stats import Stats
from ..live.ticker import Ticker

_EXTENSION = "moscow_clock"


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    ticker: Ticker
    gate: Gate
    stats: Stats
    metrics: Metrics
    clock_monitor: ClockMonitor
    loop_lag: LoopLag = field(default_factory=LoopLag)
    gc_pauses: GcPauses = field(default_factory=GcPauses)

    def update_metrics(self) -> None:
        self.metrics.update(self.ticker, self.stats, self.gate, self.loop_lag, self.gc_pauses)
        self.metrics.update_clock(self.clock_monitor)

    def attach(self, app: Quart) -> None:
        app.extensions[_EXTENSION] = self


def runtime_of(app: Quart) -> Runtime:
    found = app.extensions[_EXTENSION]
    assert isinstance(found, Runtime)
    return found


def on_metrics_listener(scope: Mapping[str, Any], settings: Settings) -> bool:
    """Whether a request came in on the METRICS_PORT listener (which serves
    /metrics and nothing else)."""
    server = scope.get("server")
    return (
        settings.metrics_port is not None
        and server is not None
        and (server[1] == settings.metrics_port)
    )


def current_runtime() -> Runtime:
    return runtime_of(current_app)
