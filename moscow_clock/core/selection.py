"""Pure: choosing the true time among NTP servers, as NTP itself does.

RFC 5905 §10-11.2 and chrony's sources.c, cut to what a client that only
compares (never disciplines) needs:

- **Clock filter**: each server keeps its last `FILTER_SIZE` polls; of the
  samples among them, the one with the lowest round trip is its estimate
  (the least queueing, so the most precise offset). A poll without an
  answer takes a slot too, so old samples leave as new polls come. Its
  dispersion grows at `PHI` from the moment it was measured, so an old
  sample is worth less than a new one and, past the `MAX_DISTANCE_MS`
  limit, nothing at all.
- **Reachability**: an 8-bit shift register per server, a bit per poll; a
  server none of whose last eight polls was answered is unreachable.
- **Root distance** of a server: half the round trip to the primary
  reference ((delay + root delay) / 2, at least MINDISP / 2) plus every dispersion on the way
  (root dispersion, the sample's own, grown with its age) plus the filter's
  jitter. Its **correctness interval** is offset ± root distance: true time
  is in there if the server is right.
- **Intersection** (Marzullo's algorithm, RFC 5905 §11.2.1): the smallest
  interval shared by the intervals of a majority of servers. Servers whose
  interval misses it are **falsetickers** and are never chosen; when no
  majority agrees there is **no majority**, and nothing is chosen: with two
  servers that disagree there is no telling which is right.
- **The reference**: among the truechimers, the lowest stratum, then the
  shortest root distance (RFC 5905's cluster order); the current one is
  kept while it stays a truechimer of that stratum (no hopping).

Sign convention: offsets are the server's time minus ours (positive: this
clock is behind), as in `ntplib`, chrony and node_exporter. No I/O: samples
and "now" are arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from .sntp import Sample

# RFC 5905: the frequency tolerance a clock's error grows at, 15 ppm.
PHI = 15e-6
# RFC 5905 MAXDIST: a server farther than this from true time is unusable.
MAX_DISTANCE_MS = 1500.0
# RFC 5905 MINDISP: the round trips in a root distance count as at least
# this much, so servers measured over a quiet loopback are not held to
# microseconds they cannot mean.
MIN_DISPERSION_MS = 10.0
# Samples per server the clock filter picks from (RFC 5905 NSTAGE).
FILTER_SIZE = 8
REACH_MASK = 0xFF
# RFC 5905 MAXSTRAT: stratum 16 is "unsynchronised".
MAX_STRATUM = 16


@dataclass(frozen=True, slots=True)
class Timed:
    """A sample and the local wall time (epoch ms) it was received at."""

    sample: Sample
    at_ms: float


@dataclass(frozen=True, slots=True)
class Peer:
    """A server's current estimate, from its clock filter at a moment."""

    server: str
    offset_ms: float
    delay_ms: float
    dispersion_ms: float
    jitter_ms: float
    root_delay_ms: float
    root_dispersion_ms: float
    stratum: int
    leap: int
    age_ms: float
    reach: int
    polls: int = 0

    @property
    def root_distance_ms(self) -> float:
        """RFC 5905's lambda: how far true time may be from this server's estimate."""
        return (
            max(MIN_DISPERSION_MS, self.delay_ms + self.root_delay_ms) / 2
            + self.root_dispersion_ms
            + self.dispersion_ms
            + self.jitter_ms
        )

    @property
    def low_ms(self) -> float:
        return self.offset_ms - self.root_distance_ms

    @property
    def high_ms(self) -> float:
        return self.offset_ms + self.root_distance_ms


class ServerFilter:
    """One server's last samples and its reachability register."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.window: list[Timed | None] = []
        self.reach = 0
        self.polls = 0

    @property
    def samples(self) -> list[Timed]:
        return [timed for timed in self.window if timed is not None]

    def add(self, sample: Sample, at_ms: float) -> None:
        """A poll answered with a usable sample."""
        self._poll(Timed(sample, at_ms))
        self.reach |= 1

    def miss(self) -> None:
        """A poll with no usable answer (silent, garbage, refused)."""
        self._poll(None)

    def _poll(self, timed: Timed | None) -> None:
        self.polls += 1
        self.reach = (self.reach << 1) & REACH_MASK
        self.window.append(timed)
        del self.window[:-FILTER_SIZE]

    def peer(self, now_ms: float) -> Peer | None:
        """The filter's estimate now, or None without a sample in the window."""
        samples = self.samples
        if not samples:
            return None
        best = min(samples, key=lambda timed: (timed.sample.delay_ms, -timed.at_ms))
        age_ms = max(0.0, now_ms - best.at_ms)
        sample = best.sample
        # RFC 5905 §10: jitter is the RMS of the other samples' offsets from the chosen one.
        others = [t.sample.offset_ms - sample.offset_ms for t in samples if t is not best]
        jitter = math.sqrt(sum(d * d for d in others) / len(others)) if others else 0.0
        return Peer(
            server=self.server,
            offset_ms=sample.offset_ms,
            delay_ms=sample.delay_ms,
            dispersion_ms=sample.precision_ms + PHI * age_ms,
            jitter_ms=jitter,
            root_delay_ms=sample.root_delay_ms,
            root_dispersion_ms=sample.root_dispersion_ms,
            stratum=sample.stratum,
            leap=sample.leap,
            age_ms=age_ms,
            reach=self.reach,
            polls=self.polls,
        )


class Status(StrEnum):
    """Where the selection ended."""

    NONE = "none"  # no servers configured
    UNREACHABLE = "unreachable"  # no server usable (silent, too distant, unsynchronised)
    NO_MAJORITY = "no_majority"  # usable servers, but no majority agrees
    SELECTED = "selected"


class Verdict(StrEnum):
    """What the selection made of one server (chrony's `^*`, `^+`, `^x`, `^?`)."""

    SELECTED = "selected"
    TRUECHIMER = "truechimer"
    FALSETICKER = "falseticker"
    UNUSABLE = "unusable"


@dataclass(frozen=True, slots=True)
class Selection:
    status: Status
    reference: Peer | None = None
    # The majority's interval for true time minus ours (ms), when there is one.
    low_ms: float | None = None
    high_ms: float | None = None
    peers: tuple[Peer, ...] = ()
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    # Why an unusable server is unusable, in a few words.
    reasons: dict[str, str] = field(default_factory=dict)

    def servers(self, verdict: Verdict) -> tuple[str, ...]:
        return tuple(sorted(s for s, v in self.verdicts.items() if v is verdict))


NO_SERVERS = Selection(Status.NONE)
NOT_POLLED = "not polled yet"


def unusable_reason(peer: Peer | None, polls: int = 0) -> str | None:
    """Why a server cannot take part in the selection (RFC 5905's fit test)."""
    if peer is None:
        if not polls:
            return NOT_POLLED
        return f"unreachable (no reply to its last {min(polls, FILTER_SIZE)} polls)"
    if peer.stratum >= MAX_STRATUM:
        return "unsynchronised (stratum 16)"
    if peer.root_distance_ms > MAX_DISTANCE_MS:
        return (
            f"root distance {peer.root_distance_ms:.0f} ms exceeds the"
            f" {MAX_DISTANCE_MS:.0f} ms limit"
        )
    return None


def select(filters: list[ServerFilter], now_ms: float, previous: str | None = None) -> Selection:
    """Run the selection over every server's filter at `now_ms`. The
    `previous` reference stays while it is a truechimer of the best stratum
    (RFC 5905's clock-hop avoidance: no switching between equals)."""
    if not filters:
        return NO_SERVERS
    verdicts: dict[str, Verdict] = {}
    reasons: dict[str, str] = {}
    peers: list[Peer] = []
    candidates: list[Peer] = []
    for server_filter in filters:
        peer = server_filter.peer(now_ms)
        if peer is not None:
            peers.append(peer)
        reason = unusable_reason(peer, server_filter.polls)
        if reason is not None:
            verdicts[server_filter.server] = Verdict.UNUSABLE
            reasons[server_filter.server] = reason
            continue
        assert peer is not None
        candidates.append(peer)
    if not candidates:
        return Selection(Status.UNREACHABLE, peers=tuple(peers), verdicts=verdicts, reasons=reasons)
    found = intersection([(p.low_ms, p.high_ms) for p in candidates])
    if found is None:
        for peer in candidates:
            verdicts[peer.server] = Verdict.FALSETICKER
        return Selection(Status.NO_MAJORITY, peers=tuple(peers), verdicts=verdicts, reasons=reasons)
    low, high = found
    truechimers = []
    for peer in candidates:
        agrees = peer.low_ms <= high and peer.high_ms >= low
        verdicts[peer.server] = Verdict.TRUECHIMER if agrees else Verdict.FALSETICKER
        if agrees:
            truechimers.append(peer)
    reference = min(
        truechimers,
        key=lambda p: (p.stratum * MAX_DISTANCE_MS + p.root_distance_ms, p.server),
    )
    kept = [p for p in truechimers if p.server == previous and p.stratum == reference.stratum]
    if kept:
        reference = kept[0]
    verdicts[reference.server] = Verdict.SELECTED
    return Selection(
        Status.SELECTED,
        reference=reference,
        low_ms=low,
        high_ms=high,
        peers=tuple(peers),
        verdicts=verdicts,
        reasons=reasons,
    )


def intersection(intervals: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Marzullo's algorithm as RFC 5905 §11.2.1 runs it: the interval shared
    by the most intervals, allowing f of m to be wrong for f < m/2 (fewest
    first); None when no majority shares any point."""
    m = len(intervals)
    # Lows before highs at the same point: touching intervals agree.
    ascending = sorted([(low, 0) for low, _ in intervals] + [(high, 1) for _, high in intervals])
    descending = sorted([(-high, 0) for _, high in intervals] + [(-low, 1) for low, _ in intervals])
    allowed = 0
    while 2 * allowed < m:
        need = m - allowed
        low = _first_depth(ascending, need)
        high = _first_depth(descending, need)
        if low is not None and high is not None and low <= -high:
            return low, -high
        allowed += 1
    return None


def _first_depth(points: list[tuple[float, int]], need: int) -> float | None:
    depth = 0
    for value, kind in points:
        depth += 1 if kind == 0 else -1
        if depth >= need:
            return value
    return None
