"""Pure: how far the server's own clock can be trusted.

Two witnesses: the kernel's clock discipline (`adjtimex(2)`: synchronised or
not, and its error bounds) and, when NTP_SERVERS are configured, the
majority of those servers (core/selection.py). From them comes one
`Judgement` — synchronised, unverified or off, with a reason in plain words
and the server's own error bound — that `/readyz`, `/api/time`, the sync
reply, the metrics and the page all say the same way. `Judge` adds the
hysteresis: readiness changes only when the evidence has held for a while,
and a clock last seen off stays off until something vouches for it again.

Sign convention (ntplib's, chrony's, node_exporter's): an offset is the
reference's time minus this clock's, so positive means this clock is behind.
No I/O here: the readings and "now" are arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from .selection import NOT_POLLED, Peer, Selection, Status

# <sys/timex.h>: the status bits the kernel keeps (STA_UNSYNC while no one
# disciplines the clock; STA_INS/STA_DEL when a leap second is pending;
# STA_NANO when `offset` is in ns), and the return value that says the
# clock is not synchronised.
STA_INS = 0x0010
STA_DEL = 0x0020
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5


@dataclass(frozen=True, slots=True)
class ClockState:
    """The kernel's view of its clock; None where it could not be read.

    `status` is the raw `adjtimex` status word; `offset_ms` the phase offset
    the kernel is still slewing away, `frequency_ppm` its frequency
    correction, `tai_offset_s` TAI minus UTC (node_exporter's timex fields)."""

    synchronized: bool | None
    max_error_ms: float | None
    estimated_error_ms: float | None
    status: int | None = None
    offset_ms: float | None = None
    frequency_ppm: float | None = None
    tai_offset_s: int | None = None


UNKNOWN = ClockState(synchronized=None, max_error_ms=None, estimated_error_ms=None)


def decode_timex(
    result: int,
    status: int,
    maxerror_us: int,
    esterror_us: int,
    offset: int = 0,
    freq: int = 0,
    tai: int = 0,
) -> ClockState:
    """An `adjtimex(modes=0)` result: its return value and fields of `struct
    timex`. Synchronised means STA_UNSYNC clear and no TIME_ERROR."""
    if result < 0:
        return UNKNOWN
    return ClockState(
        synchronized=not status & STA_UNSYNC and result != TIME_ERROR,
        max_error_ms=max(maxerror_us, 0) / 1000,
        estimated_error_ms=max(esterror_us, 0) / 1000,
        status=status,
        # ns with STA_NANO, else us; freq is ppm with a 16-bit fraction.
        offset_ms=offset / (1e6 if status & STA_NANO else 1e3),
        frequency_ppm=freq / 65536,
        tai_offset_s=tai,
    )


class Health(StrEnum):
    """The one judgement of the server's clock."""

    SYNCHRONISED = "synchronised"  # vouched for: within the limit, with a bound
    UNVERIFIED = "unverified"  # nothing vouches for it, nothing shows it off
    OFF = "off"  # positive evidence that it is worse than the limit


class Check(StrEnum):
    """CLOCK_CHECK: what takes the pod out of rotation."""

    ON = "on"  # only positive evidence of a clock off past the limit
    STRICT = "strict"  # anything but a vouched-for clock
    OFF = "off"  # never the clock


@dataclass(frozen=True, slots=True)
class Judgement:
    health: Health
    reason: str
    # How far the server's time may be from true time (ms); None: unbounded.
    error_bound_ms: float | None
    # True time minus this clock's, as the NTP majority measured it (ms).
    offset_ms: float | None = None
    # Whose word it is: "ntp" (the majority of NTP_SERVERS) or "kernel".
    witness: str = "kernel"

    def ready(self, check: Check) -> bool:
        if check is Check.OFF:
            return True
        if check is Check.STRICT:
            return self.health is Health.SYNCHRONISED
        return self.health is not Health.OFF


def judge(state: ClockState, selection: Selection, limit_ms: float) -> Judgement:
    """The clock's health from this moment's evidence, before any hysteresis.

    A majority of NTP servers is the strongest witness (it measures this
    clock from outside); without one the kernel's own word is taken when it
    vouches; otherwise the clock is unverified, and the page says how far it
    may be off (the kernel's maximum error, where there is one).
    """
    ntp = _ntp_bounds(selection)
    if ntp is not None:
        nearest, farthest, offset = ntp
        reference = selection.reference
        assert reference is not None
        if nearest > limit_ms:
            return Judgement(
                Health.OFF,
                f"the clock is {_amount(offset)} {'behind' if offset > 0 else 'ahead of'}"
                f" NTP server {reference.server} (the majority's verdict;"
                f" CLOCK_MAX_ERROR_MS={limit_ms:g})",
                farthest,
                offset,
                "ntp",
            )
        if farthest <= limit_ms:
            return Judgement(
                Health.SYNCHRONISED,
                f"NTP server {reference.server} agrees within {_amount(farthest)}",
                farthest,
                offset,
                "ntp",
            )
    kernel_bound = state.max_error_ms
    if state.synchronized:
        if kernel_bound is not None and kernel_bound > limit_ms:
            return Judgement(
                Health.OFF,
                f"the kernel's maximum error {kernel_bound:.0f} ms exceeds"
                f" CLOCK_MAX_ERROR_MS={limit_ms:g}",
                kernel_bound,
                None if ntp is None else ntp[2],
            )
        return Judgement(
            Health.SYNCHRONISED,
            "the kernel reports the clock synchronised",
            kernel_bound,
            None if ntp is None else ntp[2],
        )
    if state.synchronized is False:
        kernel = "the kernel reports the clock unsynchronised (STA_UNSYNC)"
    else:
        kernel = "the kernel's clock state is unknown"
    bounds = [b for b in (kernel_bound, None if ntp is None else ntp[1]) if b is not None]
    return Judgement(
        Health.UNVERIFIED,
        f"{kernel} and {_ntp_words(selection, limit_ms)}",
        min(bounds) if bounds else None,
        None if ntp is None else ntp[2],
    )


def _ntp_bounds(selection: Selection) -> tuple[float, float, float] | None:
    """(nearest, farthest) |true - ours| in the majority's interval, and the
    reference's offset; None without a majority."""
    if selection.status is not Status.SELECTED or selection.low_ms is None:
        return None
    assert selection.high_ms is not None
    assert selection.reference is not None
    low, high = selection.low_ms, selection.high_ms
    nearest = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
    return nearest, max(abs(low), abs(high)), selection.reference.offset_ms


def _ntp_words(selection: Selection, limit_ms: float) -> str:
    match selection.status:
        case Status.NONE:
            return "no NTP servers are configured"
        case Status.UNREACHABLE if set(selection.reasons.values()) == {NOT_POLLED}:
            return "the NTP servers have not been asked yet"
        case Status.UNREACHABLE:
            return "no NTP server is usable"
        case Status.NO_MAJORITY:
            return "the NTP servers disagree (no majority)"
    return f"the NTP servers cannot bound the error within CLOCK_MAX_ERROR_MS={limit_ms:g}"


def _amount(ms: float) -> str:
    ms = abs(ms)
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.1f} ms"


class Judge:
    """Hysteresis over the judgements: a change that would change readiness
    (under `check`) is taken only once the new evidence has held for
    `hold_ms`; meanwhile a clock that was vouched for is shown as unverified
    (never "exact" on evidence that it may not be). A clock judged off stays
    off, whatever goes silent, until the evidence vouches for it again —
    and a clock the NTP majority found off only when the NTP majority says
    it is right again (the kernel's word was what that majority contradicted)."""

    def __init__(self, check: Check, hold_ms: float) -> None:
        self.check = check
        self.hold_ms = hold_ms
        self.current: Judgement | None = None
        self._pending_since: float | None = None

    def update(self, raw: Judgement, now_ms: float) -> Judgement:
        current = self.current
        if current is None:
            self.current = raw
            return raw
        if current.health is Health.OFF and not _clears(current, raw):
            self._pending_since = None
            kept = current.reason.removesuffix(_STILL_OFF)
            self.current = Judgement(
                Health.OFF,
                kept + _STILL_OFF,
                current.error_bound_ms,
                current.offset_ms,
                current.witness,
            )
            return self.current
        if raw.ready(self.check) == current.ready(self.check):
            self._pending_since = None
            self.current = raw
            return raw
        if self._pending_since is None:
            self._pending_since = now_ms
        if now_ms - self._pending_since >= self.hold_ms:
            self._pending_since = None
            self.current = raw
            return raw
        if current.health is Health.SYNCHRONISED and self.check is not Check.STRICT:
            return Judgement(
                Health.UNVERIFIED,
                f"{raw.reason} (confirming before readiness changes)",
                raw.error_bound_ms,
                raw.offset_ms,
            )
        return current

    @property
    def pending(self) -> bool:
        return self._pending_since is not None


_STILL_OFF = "; still off until the evidence vouches for the clock again"


def _clears(off: Judgement, raw: Judgement) -> bool:
    """Whether new evidence may end (after the hold) an "off" judgement."""
    if raw.health is Health.OFF:
        return True  # the newer evidence of the same, with its numbers
    if raw.health is not Health.SYNCHRONISED:
        return False
    return off.witness != "ntp" or raw.witness == "ntp"


def leap_pending(state: ClockState, reference: Peer | None) -> str | None:
    """ "insert" or "delete" when a leap second is announced (by the
    reference's leap indicator or the kernel's STA_INS/STA_DEL), else None."""
    leap = 0 if reference is None else reference.leap
    status = state.status or 0
    if leap == 1 or status & STA_INS:
        return "insert"
    if leap == 2 or status & STA_DEL:
        return "delete"
    return None


def finite(value: float | None, digits: int = 3) -> float | None:
    """A number for JSON: rounded, and None for NaN or infinity."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


LEAP_WORDS = {0: "none", 1: "insert", 2: "delete", 3: "unsynchronised"}


def clock_report(
    state: ClockState, selection: Selection, judgement: Judgement, check: Check
) -> dict[str, object]:
    """The `clock` block of `GET /api/time` (and of a 503 from `/readyz`).

    Every number is finite or null, so the JSON is always valid."""
    reference = selection.reference
    return {
        "status": judgement.health.value,
        "ready": judgement.ready(check),
        "reason": judgement.reason,
        "error_bound_ms": finite(judgement.error_bound_ms),
        # The kernel's word (null: it could not be read).
        "synchronized": state.synchronized,
        "max_error_ms": finite(state.max_error_ms),
        "estimated_error_ms": finite(state.estimated_error_ms),
        "kernel": {
            "status": state.status,
            "offset_ms": finite(state.offset_ms, 6),
            "frequency_ppm": finite(state.frequency_ppm, 6),
            "tai_offset_s": state.tai_offset_s,
        },
        # NTP: reference minus this clock (positive: this clock is behind).
        "selection": selection.status.value,
        "reference_offset_ms": None if reference is None else finite(reference.offset_ms),
        "reference": None if reference is None else _peer_report(reference),
        "leap_pending": leap_pending(state, reference),
        "servers": [
            {
                "server": server,
                "state": verdict.value,
                "reason": selection.reasons.get(server),
                **_server_numbers(selection, server),
            }
            for server, verdict in selection.verdicts.items()
        ],
    }


def _peer_report(peer: Peer) -> dict[str, object]:
    return {
        "server": peer.server,
        "offset_ms": finite(peer.offset_ms),
        "delay_ms": finite(peer.delay_ms),
        "stratum": peer.stratum,
        "root_delay_ms": finite(peer.root_delay_ms),
        "root_dispersion_ms": finite(peer.root_dispersion_ms),
        "root_distance_ms": finite(peer.root_distance_ms),
        "jitter_ms": finite(peer.jitter_ms),
        "leap": LEAP_WORDS.get(peer.leap, "none"),
        "sample_age_s": finite(peer.age_ms / 1000),
    }


def _server_numbers(selection: Selection, server: str) -> dict[str, object]:
    for peer in selection.peers:
        if peer.server == server:
            return {
                "reach": peer.reach,
                "reachable": peer.reach != 0,
                "polls": peer.polls,
                "offset_ms": finite(peer.offset_ms),
                "delay_ms": finite(peer.delay_ms),
                "stratum": peer.stratum,
                "root_distance_ms": finite(peer.root_distance_ms),
                "sample_age_s": finite(peer.age_ms / 1000),
            }
    return {"reach": 0, "reachable": False}


@dataclass(frozen=True, slots=True)
class PageClock:
    """What a page is told about the server's clock (the sync reply's
    `error_ms` and `clock`, and the page's data attributes): whether it is
    vouched for, how far it may be off, and how far the NTP majority says it
    is off (positive: the server's clock is behind)."""

    health: Health
    bound_ms: float | None
    offset_ms: float | None

    @property
    def verified_error_ms(self) -> float | None:
        """The error bound when the clock is vouched for, else None (what
        `error_ms` has always meant, so cached older pages stay right)."""
        return self.bound_ms if self.health is Health.SYNCHRONISED else None

    def wire(self) -> dict[str, object]:
        return {
            "status": self.health.value,
            "bound_ms": finite(self.bound_ms),
            "offset_ms": finite(self.offset_ms),
        }

    @classmethod
    def of(cls, judgement: Judgement) -> PageClock:
        return cls(judgement.health, judgement.error_bound_ms, judgement.offset_ms)


UNVERIFIED_PAGE = PageClock(Health.UNVERIFIED, None, None)
