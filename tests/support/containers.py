"""The container engine for the image tests: Docker where an engine runs,
else podman with the local stand-in base images (../shared/containers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from .server import ROOT, free_port
from .timing import scaled

# Exactly the hardening flags the README's `docker run` line uses.
HARDENING = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def images_required() -> bool:
    """In CI an image test that cannot run must fail, never skip."""
    return os.environ.get("REQUIRE_IMAGES") == "1" or os.environ.get("CI") == "true"


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"

    @classmethod
    def find(cls) -> Engine | None:
        docker = shutil.which("docker")
        if docker and _succeeds([docker, "info"]):
            return cls("docker")
        if shutil.which("podman") and _succeeds(["podman", "info"]):
            return cls("podman")
        return None

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [self.name, *args], capture_output=True, text=True, timeout=scaled(timeout), check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def build(self, variant: str, tag: str) -> str:
        """Build through the same script as `make image`; its log."""
        result = subprocess.run(
            [str(ROOT / "scripts" / "build-image"), variant, tag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=scaled(900),
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"building {variant} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout + result.stderr

    def inspect_image(self, tag: str) -> dict[str, Any]:
        found = json.loads(self.run("image", "inspect", tag))
        assert isinstance(found, list)
        image = found[0]
        assert isinstance(image, dict)
        return image


@dataclass
class Container:
    engine: Engine
    image: str
    port: int
    name: str
    extra: tuple[str, ...] = ()

    @classmethod
    def start(cls, engine: Engine, image: str, *extra: str) -> Container:
        port = free_port()
        name = f"mc-test-{port}-{time.monotonic_ns() % 1_000_000}"
        container = cls(engine, image, port, name, extra)
        # Host networking: podman here has no bridge, and the app binds PORT.
        engine.run(
            "run", "-d", "--name", name, "--network", "host", "-e", f"PORT={port}",
            *HARDENING, *extra, image,
        )  # fmt: skip
        container.wait_ready()
        return container

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=scaled(1)) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"container not ready:\n{self.logs()}")

    def logs(self) -> str:
        """What the server printed (it logs to stderr)."""
        result = subprocess.run(
            [self.engine.name, "logs", self.name],
            capture_output=True,
            text=True,
            timeout=scaled(30),
            check=False,
        )
        return result.stdout + result.stderr

    def state(self) -> dict[str, Any]:
        found = json.loads(self.engine.run("inspect", self.name))
        state = found[0]["State"]
        assert isinstance(state, dict)
        return state

    def remove(self) -> None:
        self.engine.run("rm", "-f", "-t", "0", self.name, check=False)


def _succeeds(command: list[str]) -> bool:
    try:
        return (
            subprocess.run(command, capture_output=True, timeout=scaled(30), check=False).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
