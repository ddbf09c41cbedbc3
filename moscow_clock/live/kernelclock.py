"""Reading the kernel's clock state: `adjtimex(2)` with modes = 0.

A read-only call: it needs no privilege or capability and is allowed by the
default seccomp profiles of Docker and podman, so it works in both images
run with --read-only --cap-drop ALL --security-opt no-new-privileges.
Where there is no such call (another OS, a libc without it, a sandbox that
refuses it) the state is UNKNOWN; nothing here raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from collections.abc import Callable
from functools import cache

from ..core.clockstate import UNKNOWN, ClockState, decode_timex

log = logging.getLogger("moscow_clock.clock")

_long = ctypes.c_long


class Timex(ctypes.Structure):
    """`struct timex` as glibc and musl lay it out on 64-bit Linux (x86-64,
    aarch64): checked against <bits/timex.h> with offsetof (size 208, status
    at 40, maxerror at 24, esterror at 32). ctypes adds the same padding
    after `modes`, `status` and `shift` as the C compiler does."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", _long),
        ("freq", _long),
        ("maxerror", _long),
        ("esterror", _long),
        ("status", ctypes.c_int),
        ("constant", _long),
        ("precision", _long),
        ("tolerance", _long),
        ("time_sec", _long),
        ("time_usec", _long),
        ("tick", _long),
        ("ppsfreq", _long),
        ("jitter", _long),
        ("shift", ctypes.c_int),
        ("stabil", _long),
        ("jitcnt", _long),
        ("calcnt", _long),
        ("errcnt", _long),
        ("stbcnt", _long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


@cache
def _adjtimex() -> Callable[..., int] | None:
    """libc's adjtimex, where the layout above is the right one; else None."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(_long) != 8:
        log.warning("no adjtimex for this platform: the clock state is unknown")
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.adjtimex
    except (OSError, AttributeError) as error:
        log.warning("no adjtimex in libc (%s): the clock state is unknown", error)
        return None
    function.argtypes = (ctypes.POINTER(Timex),)
    function.restype = ctypes.c_int
    return function


_failed_once: list[bool] = []


def kernel_clock_state() -> ClockState:
    """The kernel's synchronised flag and error estimates, or UNKNOWN."""
    function = _adjtimex()
    if function is None:
        return UNKNOWN
    timex = Timex()  # modes = 0: read only
    result = int(function(ctypes.byref(timex)))
    if result < 0:
        if not _failed_once:
            _failed_once.append(True)
            log.warning(
                "adjtimex failed (errno %d): the clock state is unknown", ctypes.get_errno()
            )
        return UNKNOWN
    return decode_timex(
        result,
        timex.status,
        timex.maxerror,
        timex.esterror,
        offset=timex.offset,
        freq=timex.freq,
        tai=timex.tai,
    )
