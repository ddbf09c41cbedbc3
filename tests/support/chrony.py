"""A real NTP server for tests: Debian's chronyd on a free loopback port.

`-x` (never touch the system clock), `-d` (stay in the foreground), no
command port, `local stratum 8` (it serves its own clock as a stratum-8
source) and `allow 127.0.0.1`. With `shift_s` it runs under libfaketime's
`faketime`, so its clock (and every answer) is that far from this machine's.
Each chronyd runs in its own process group, ended (SIGTERM, then SIGKILL)
on exit. scripts/ensure-chrony installs both packages in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Self

from .server import end_group
from .timing import scaled

NTP_UNIX_DELTA_S = 2_208_988_800


def chronyd_path() -> str | None:
    return shutil.which("chronyd") or next(
        (p for p in ("/usr/sbin/chronyd", "/sbin/chronyd") if os.access(p, os.X_OK)), None
    )


def chrony_required() -> bool:
    """In CI the chronyd test must run: a missing chronyd fails it."""
    return os.environ.get("REQUIRE_CHRONY") == "1" or os.environ.get("CI") == "true"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sntp_offset_ms(port: int, timeout: float = 1.0) -> float:
    """One plain SNTP exchange (the server's time minus ours, ms)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        t1 = time.time()
        seconds = int(t1) + NTP_UNIX_DELTA_S
        fraction = int((t1 % 1) * 2**32)
        sock.sendto(
            bytes([0x23]) + bytes(39) + struct.pack("!II", seconds, fraction), ("127.0.0.1", port)
        )
        data = sock.recv(128)
        t4 = time.time()
    rx_s, rx_f, tx_s, tx_f = struct.unpack("!IIII", data[32:48])
    t2 = rx_s - NTP_UNIX_DELTA_S + rx_f / 2**32
    t3 = tx_s - NTP_UNIX_DELTA_S + tx_f / 2**32
    return ((t2 - t1) + (t3 - t4)) / 2 * 1000


class Chronyd:
    def __init__(self, workdir: Path, shift_s: float = 0.0) -> None:
        self.workdir = workdir
        self.shift_s = shift_s
        self.port = free_udp_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"chronyd-{self.port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        chronyd = chronyd_path()
        assert chronyd is not None, "no chronyd (apt-get install chrony)"
        conf = self.workdir / f"chrony-{self.port}.conf"
        conf.write_text(
            f"port {self.port}\n"
            "cmdport 0\n"
            "local stratum 8\n"
            "allow 127.0.0.1\n"
            f"pidfile {self.workdir}/chronyd-{self.port}.pid\n"
        )
        # As root chronyd would drop to its own user, which cannot read this
        # directory: it stays root (it never touches the clock, -x); as
        # another user -U lets it start at all.
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        command = [chronyd, "-x", "-d", "-f", str(conf), *user]
        if self.shift_s:
            faketime = shutil.which("faketime")
            assert faketime is not None, "no faketime (apt-get install faketime)"
            command = [faketime, "-f", f"{self.shift_s:+g}s", *command]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"chronyd exited:\n{self.log()}")
            try:
                sntp_offset_ms(self.port, timeout=0.2)
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"chronyd never answered:\n{self.log()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        end_group(self.process.pid)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
