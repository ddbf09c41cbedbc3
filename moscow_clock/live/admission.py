"""Who may open a websocket: the origin check, the per-process cap, and the
load the process can serve on time.

Decided before the handshake is accepted, so a refused client costs an HTTP
response and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.origin import host_allowed, origin_allowed
from ..core.request_head import MAX_HEAD_BYTES


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    status: int
    message: str
    headers: dict[str, str]


FOREIGN_ORIGIN = Refusal("origin", 403, "websocket origin not allowed\n", {})
# Retry-After spreads a reconnect wave; the page backs off with jitter anyway.
FULL = Refusal("full", 503, "too many connections, try again later\n", {"Retry-After": "5"})
# A Host outside PUBLIC_ORIGINS (the DNS-rebinding shape): not ours to serve.
FOREIGN_HOST = Refusal("host", 421, "unknown host\n", {})
HEAD_TOO_LARGE = Refusal("headers", 431, "request headers too large\n", {})
NOT_HERE = Refusal("listener", 404, "not found\n", {})


def screen(host: str | None, head_bytes: int, public_origins: frozenset[str]) -> Refusal | None:
    """What refuses a handshake before the gate is asked: an oversized head
    or a Host that is not one of the public origins."""
    if head_bytes > MAX_HEAD_BYTES:
        return HEAD_TOO_LARGE
    if not host_allowed(host, public_origins):
        return FOREIGN_HOST
    return None


BUSY = Refusal("busy", 503, "server busy, try again later\n", {"Retry-After": "5"})


# Clients below which a fan-out's duration says little about the cost of each.
MIN_BASIS = 256
# Once over budget, admit again only below this share of it: a load at the
# edge of the budget would otherwise admit and refuse in turn with every
# tick's noise, and each admission near the edge is the one that breaks it.
RESUME_AT = 0.8


@dataclass(frozen=True, slots=True)
class Budget:
    """What one process must keep to serve its clients on time: a tick's
    fan-out to every client costs at most `fanout_s` of CPU (on an idle core,
    the last client's tick leaves that long after the second), and no stall
    of the event loop lasts longer than `loop_lag_s` (0: not checked)."""

    fanout_s: float = 0.1
    loop_lag_s: float = 0.0


class Load:
    """Measured load against a `Budget`: would one more client break it?

    The fan-out grows with the clients, so the recent fan-outs' CPU cost,
    scaled to the clients there would be with the newcomer, says whether the
    next tick would still reach everyone in time; a ramp of handshakes stops
    where the budget ends instead of a second (a measurement) later. CPU, not
    wall time: the wall time of a fan-out includes whatever ran while it
    yielded (handshakes, sync replies) and, on a shared host, other processes;
    measured, 1,200 clients on a busy 2-core VM looked like 3,000 by wall
    time. Of the last few fan-outs the cheapest per client counts, so one
    noisy second refuses nobody; a real rise in load shows in all of them.
    Loop lag (off by default) catches what the fan-out does not see: stalls,
    a storm of handshakes. It is off because a
    refusal costs the process nearly as much as an admission, so refusing on
    a burst of lag makes clients retry into the very burst: page-like
    clients ramping against a lag budget collapsed to a handful connected
    (docs/PERFORMANCE.md, Overload).
    With hysteresis: once over budget it stays so until the load is below
    `RESUME_AT` of the budget.
    Readers are plain callables, so tests inject the load they test."""

    def __init__(
        self,
        budget: Budget,
        fanout: Callable[[], Sequence[tuple[float, int]]],
        loop_lag: Callable[[], float],
    ) -> None:
        self.budget = budget
        self._fanout = fanout
        self._loop_lag = loop_lag
        self.shedding = False  # over budget, and not yet clearly below it again

    def projected_fanout(self, clients: int) -> float:
        """The fan-out's duration with `clients`, from the latest one (0: no
        measurement yet, or nobody to measure it on). A fan-out to a few
        clients is mostly fixed cost, so it is scaled as if it had gone to at
        least `MIN_BASIS`: optimistic for a second, until the next tick
        measures the clients that came in meanwhile."""
        per_client = []
        for seconds, measured_on in reversed(self._fanout()):
            if measured_on <= 0:
                break  # nobody was left since: what came before is no load now
            per_client.append(seconds / max(measured_on, MIN_BASIS))
        return min(per_client) * clients if per_client else 0.0

    def over_budget(self, clients: int) -> bool:
        """True if `clients` (the newcomer included) would not be served on
        time; once true, until they would be with room to spare."""
        share = RESUME_AT if self.shedding else 1.0
        lag_budget, fanout_budget = self.budget.loop_lag_s, self.budget.fanout_s
        self.shedding = bool(lag_budget and self._loop_lag() > lag_budget * share) or bool(
            fanout_budget and self.projected_fanout(clients) > fanout_budget * share
        )
        return self.shedding


class Admitted:
    """A place held in the gate until the `with` block that uses it ends."""

    __slots__ = ("_gate", "_held")

    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._held = True

    def __enter__(self) -> Admitted:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._held:
            self._held = False
            self._gate._open -= 1


class Gate:
    def __init__(
        self,
        max_connections: int,
        allowed_origins: frozenset[str],
        public_origins: frozenset[str] = frozenset(),
        load: Load | None = None,
    ) -> None:
        self.max_connections = max_connections
        # The service's own public origins may always open /ws.
        self.allowed_origins = allowed_origins | public_origins
        self.load = load
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def admit(self, origin: str | None, host: str | None) -> Refusal | Admitted:
        """Check and take a place in one call, so no other handshake can slip
        in between (the caller releases it with `with`)."""
        if not origin_allowed(origin, host, self.allowed_origins):
            return FOREIGN_ORIGIN
        refusal = self._no_room()
        if refusal is not None:
            return refusal
        self._open += 1
        return Admitted(self)

    def refusal_for_load(self) -> Refusal | None:
        """FULL or BUSY if a handshake now would be refused for capacity or
        load (without taking a place): the answer to the page's probe."""
        return self._no_room()

    def shedding(self) -> bool:
        """Whether a handshake now would be refused for capacity or load (FULL
        or BUSY), so the server may refuse it before it reaches the app."""
        return self._no_room() is not None

    def _no_room(self) -> Refusal | None:
        """The one capacity decision, for `admit` and `shedding` alike."""
        if self._open >= self.max_connections:
            return FULL
        if self.load is not None and self.load.over_budget(self._open + 1):
            return BUSY
        return None
