"""Pure: how far the server's own clock can be trusted.

The kernel's clock discipline (`adjtimex(2)`) says whether the clock is
synchronised and how large its error may be; an optional comparison with NTP
servers says how far it actually is from them. From those this module
derives the verdict behind `/readyz` and the error bound the page adds to
its "±". No I/O here: the readings are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

# <sys/timex.h>: the status bit the kernel keeps while no one disciplines the
# clock, and the return value that says the same (or worse).
STA_UNSYNC = 0x0040
TIME_ERROR = 5


@dataclass(frozen=True, slots=True)
class ClockState:
    """The kernel's view of its clock; None where it could not be read."""

    synchronized: bool | None
    max_error_ms: float | None
    estimated_error_ms: float | None


UNKNOWN = ClockState(synchronized=None, max_error_ms=None, estimated_error_ms=None)


@dataclass(frozen=True, slots=True)
class Reference:
    """The local clock compared with an NTP server (the lowest-delay sample).

    `offset_ms` is local minus reference: positive when this server's clock is
    ahead. `delay_ms` is the round trip, so the offset is exact to delay/2.
    """

    offset_ms: float
    delay_ms: float
    server: str
    measured_at_ms: float


def decode_timex(result: int, status: int, maxerror_us: int, esterror_us: int) -> ClockState:
    """An `adjtimex(modes=0)` result: its return value and three fields of
    `struct timex`. Synchronised means STA_UNSYNC clear and no TIME_ERROR."""
    if result < 0:
        return UNKNOWN
    return ClockState(
        synchronized=not status & STA_UNSYNC and result != TIME_ERROR,
        max_error_ms=max(maxerror_us, 0) / 1000,
        estimated_error_ms=max(esterror_us, 0) / 1000,
    )


def untrusted_reason(state: ClockState, reference: Reference | None, limit_ms: float) -> str | None:
    """Why this clock cannot be vouched for, or None when it can.

    The kernel decides when it knows; where it cannot be read (another OS, a
    sandbox), an NTP comparison within the limit vouches for the clock alone.
    """
    if state.synchronized is False:
        return "the kernel reports the clock unsynchronised (STA_UNSYNC)"
    if state.synchronized is None and reference is None:
        return "the clock state is unknown (no adjtimex here and no NTP reference)"
    if state.max_error_ms is not None and state.max_error_ms > limit_ms:
        return (
            f"the kernel's maximum error {state.max_error_ms:.0f} ms exceeds"
            f" CLOCK_MAX_ERROR_MS={limit_ms:g}"
        )
    if reference is not None and abs(reference.offset_ms) > limit_ms:
        return (
            f"the clock is {reference.offset_ms:+.0f} ms off NTP server {reference.server}"
            f" (CLOCK_MAX_ERROR_MS={limit_ms:g})"
        )
    return None


def error_bound_ms(state: ClockState, reference: Reference | None) -> float | None:
    """The largest error the server's time may have, or None when nothing
    bounds it (unsynchronised, or unknown with no NTP reference)."""
    if state.synchronized is False:
        return None
    bounds = []
    if state.synchronized and state.max_error_ms is not None:
        bounds.append(state.max_error_ms)
    if reference is not None:
        bounds.append(abs(reference.offset_ms) + reference.delay_ms / 2)
    return max(bounds) if bounds else None


def clock_report(state: ClockState, reference: Reference | None) -> dict[str, object]:
    """The `clock` block of `GET /api/time`."""
    return {
        "synchronized": state.synchronized,
        "max_error_ms": _ms(state.max_error_ms),
        "estimated_error_ms": _ms(state.estimated_error_ms),
        "reference_offset_ms": None if reference is None else _ms(reference.offset_ms),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
