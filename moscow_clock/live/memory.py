"""The memory this process may use and uses, from its cgroup (v2, or v1's
memory controller) or, with no limit set there, the machine's memory.

"In use" is what the kernel could not take back short of the OOM killer:
the cgroup's usage less its inactive file cache (the working set, as the
kubelet counts it), so a cache that fills the cgroup is not mistaken for
the process running out. The cgroup is shared by every worker of a
supervisor, so its usage is theirs together, which is what the limit bounds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# A v1 "limit" this large (page-rounded 2**63) means none was set.
_UNLIMITED = 1 << 62
# How often the usage is read again (each read is three small files).
READ_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class Limit:
    bytes: int
    source: str  # where the figure came from, for the start-up log


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _number(text: str | None) -> int | None:
    """A byte count, or None for "max", garbage or a missing file."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 0 < value < _UNLIMITED else None


def _stat(text: str | None, key: str) -> int:
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with suppress(ValueError):
                return int(value)
    return 0


class Cgroup:
    """The memory files of the cgroup this process is in (read, not cached)."""

    def __init__(self, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> None:
        self.version = 0  # 0: none found
        self._dirs: list[Path] = []  # v2: this cgroup, then its ancestors
        lines = (_read(proc_cgroup) or "").splitlines()
        for line in lines:
            hierarchy, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if hierarchy == "0" and not controllers:
                dirs = _upward(root, path)
                if dirs and (dirs[0] / "memory.current").exists():
                    self.version, self._dirs = 2, dirs
                    return
        for line in lines:
            _, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if "memory" in controllers.split(","):
                for candidate in (root / "memory" / path.lstrip("/"), root / "memory"):
                    if (candidate / "memory.usage_in_bytes").exists():
                        self.version, self._dirs = 1, [candidate]
                        return

    def limit(self) -> int | None:
        """The tightest memory limit over this cgroup and its ancestors."""
        if self.version == 2:
            limits = [_number(_read(d / "memory.max")) for d in self._dirs]
            return min((n for n in limits if n is not None), default=None)
        if self.version == 1:
            return _number(_read(self._dirs[0] / "memory.limit_in_bytes"))
        return None

    def in_use(self) -> int | None:
        """Usage less inactive file cache (the working set)."""
        if self.version == 0:
            return None
        here = self._dirs[0]
        if self.version == 2:
            usage = _number(_read(here / "memory.current"))
            inactive = _stat(_read(here / "memory.stat"), "inactive_file")
        else:
            usage = _number(_read(here / "memory.usage_in_bytes"))
            inactive = _stat(_read(here / "memory.stat"), "total_inactive_file")
        return None if usage is None else max(0, usage - inactive)

    @property
    def source(self) -> str:
        return {2: "cgroup memory.max", 1: "cgroup v1 memory.limit_in_bytes"}.get(
            self.version, "no cgroup"
        )


def _upward(root: Path, path: str) -> list[Path]:
    """`root/path` and each of its parents up to `root`, those that exist."""
    here = root / path.lstrip("/")
    dirs = [here, *(p for p in here.parents if p == root or root in p.parents)]
    return [d for d in dirs if d.is_dir()]


def physical_memory() -> int | None:
    with suppress(ValueError, OSError):
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def memory_limit(cgroup: Cgroup) -> Limit | None:
    """The cgroup's limit, or the machine's memory if it sets none."""
    limit = cgroup.limit()
    physical = physical_memory()
    if limit is not None and (physical is None or limit < physical):
        return Limit(limit, cgroup.source)
    return None if physical is None else Limit(physical, "physical memory")


class MemoryUse:
    """The share of the cgroup's limit in use, read at most every
    `READ_EVERY_S` (None: no limit to be near)."""

    def __init__(self, cgroup: Cgroup, clock: Callable[[], float] = time.monotonic) -> None:
        self._cgroup = cgroup
        self._clock = clock
        self._read_at: float | None = None
        self._share: float | None = None

    def share(self) -> float | None:
        if self._cgroup.version == 0:
            return None
        now = self._clock()
        if self._read_at is None or now - self._read_at >= READ_EVERY_S:
            self._read_at = now
            # The limit too: it may be changed while running (a resized pod).
            limit, used = self._cgroup.limit(), self._cgroup.in_use()
            self._share = None if limit is None or used is None else used / limit
        return self._share
