"""Both container images, really built and run, checked from the outside."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import websockets

from moscow_clock.core.clockstate import Check, judge
from moscow_clock.core.selection import NO_SERVERS
from moscow_clock.live.kernelclock import kernel_clock_state

from .support.clients import close_code, next_tick
from .support.containers import HARDENING, Container, Engine, images_required
from .support.server import ROOT
from .support.timing import scaled

# The first test also builds both images (a minute or two on a fresh machine).
pytestmark = [pytest.mark.image, pytest.mark.timeout(scaled(900))]

# Seconds `stop` gives a container before it kills it.
STOP_GRACE = str(round(scaled(10)))

VARIANTS = {
    # variant: (expected uid, size target in MB)
    "slim": (10001, 150),
    "distroless": (65532, 70),
}


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = Engine.find()
    if found is None:
        message = (
            "no container engine: install Docker, or run ../shared/containers/setup "
            "and source /var/tmp/mc-containers/env (the Makefile does)"
        )
        if images_required():
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def images(engine: Engine) -> dict[str, str]:
    """Build both images once per test run, exactly as `make image` does."""
    built = {}
    for variant in VARIANTS:
        # One repository per checkout: two work trees testing at once never
        # run each other's images.
        tag = f"moscow-clock-test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}:{variant}"
        engine.build(variant, tag)
        built[variant] = tag
    return built


@pytest.fixture(params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def container(engine: Engine, images: dict[str, str], variant: str) -> Iterator[Container]:
    running = Container.start(engine, images[variant])
    yield running
    running.remove()


def test_image_config(engine: Engine, images: dict[str, str], variant: str) -> None:
    image = engine.inspect_image(images[variant])
    config = image["Config"]
    uid, _ = VARIANTS[variant]
    assert config["User"] == f"{uid}:{uid}"
    # Docker keeps it in Config; podman lifts it to the top level.
    healthcheck = config.get("Healthcheck") or image["Healthcheck"]
    assert healthcheck["Test"][0] == "CMD"  # exec form: no shell needed
    assert healthcheck["Test"][-2:] == ["-m", "moscow_clock.healthcheck"]
    assert "8000/tcp" in config["ExposedPorts"]
    labels = config["Labels"]
    for key in ("title", "source", "licenses", "version", "revision"):
        assert f"org.opencontainers.image.{key}" in labels
    assert labels["org.opencontainers.image.revision"] != "unknown"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    if variant == "distroless":
        assert config["Entrypoint"] == ["/usr/bin/python3.13"]
        assert config["Cmd"] == ["-m", "moscow_clock"]
    else:
        assert config["Cmd"] == ["python", "-m", "moscow_clock"]


def test_image_size_and_layers(engine: Engine, images: dict[str, str], variant: str) -> None:
    size_mb = engine.inspect_image(images[variant])["Size"] / 1e6
    _, target_mb = VARIANTS[variant]
    history = json.loads(engine.run("history", "--format", "json", images[variant]))
    app_bytes = sum(
        int(layer.get("size", layer.get("Size", 0)))
        for layer in history
        if "COPY" in str(layer.get("CreatedBy", layer.get("created_by", "")))
    )
    print(f"\n{variant}: image {size_mb:.1f} MB, app layers {app_bytes / 1e6:.1f} MB")
    assert size_mb <= target_mb
    assert app_bytes / 1e6 <= 15


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=scaled(5)) as response:
        return response.status, response.read().decode()


def fetch_encoded(url: str, accept: str) -> tuple[str | None, str | None, bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": accept})
    with urllib.request.urlopen(request, timeout=scaled(5)) as response:
        return response.headers["Content-Encoding"], response.headers["Vary"], response.read()


async def test_serves_the_static_files_compressed_as_made_at_build(container: Container) -> None:
    """The image build made each file's gzip and brotli variants (and left the
    brotli module out): served by Accept-Encoding, the repository's file once
    decoded (docs/page-delivery.md)."""
    brotli = importlib.import_module("brotli")
    for path in ("js/main.js", "clock.css"):
        raw = (ROOT / "static" / path).read_bytes()
        url = f"{container.url}/static/{path}"
        for accept, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
            coding, vary, body = await asyncio.to_thread(fetch_encoded, url, accept)
            assert (coding, vary) == (accept, "Accept-Encoding"), path
            assert decode(body) == raw, path
        coding, _, body = await asyncio.to_thread(fetch_encoded, url, "identity")
        assert coding is None
        assert body == raw


async def test_serves_the_page_health_and_ticks(container: Container) -> None:
    status, page = await asyncio.to_thread(fetch, container.url)
    assert status == 200
    assert '<time id="clock"' in page
    assert "Moscow time" in page
    assert (await asyncio.to_thread(fetch, f"{container.url}/static/js/main.js"))[0] == 200
    assert (await asyncio.to_thread(fetch, f"{container.url}/healthz"))[
        1
    ].strip() == '{"status":"ok"}'
    ws_url = f"ws://127.0.0.1:{container.port}/ws"
    async with websockets.connect(ws_url) as ws:
        first, _ = await next_tick(ws)
        second, _ = await next_tick(ws)
    assert int(second["epoch_ms"]) - int(first["epoch_ms"]) == 1000


async def test_reads_the_kernel_clock_state_in_the_container(container: Container) -> None:
    """adjtimex (read only) works unprivileged under --read-only --cap-drop ALL
    --security-opt no-new-privileges and the engine's default seccomp profile."""
    _, body = await asyncio.to_thread(fetch, f"{container.url}/api/time")
    clock = json.loads(body)["clock"]
    host = kernel_clock_state()
    assert clock["synchronized"] is host.synchronized  # this machine: False
    assert isinstance(clock["max_error_ms"], float)
    assert isinstance(clock["estimated_error_ms"], float)
    assert clock["reference_offset_ms"] is None
    try:
        status, ready = await asyncio.to_thread(fetch, f"{container.url}/readyz")
    except urllib.error.HTTPError as error:
        status, ready = error.code, error.read().decode()
    assert clock["kernel"]["status"] == host.status
    # Off only on evidence; an unsynchronised kernel alone leaves it ready (unverified).
    expected = judge(host, NO_SERVERS, 250).ready(Check.ON)
    assert status == (200 if expected else 503), ready
    # The image's HEALTHCHECK is liveness: it passes either way (see below).
    assert "Traceback" not in container.logs()


def test_runs_as_the_unprivileged_user_and_cannot_write(
    engine: Engine, container: Container, variant: str
) -> None:
    uid, _ = VARIANTS[variant]
    probe = (
        "import os, pathlib;"
        "print(os.getuid(), os.getgid(), pathlib.Path('/app/moscow_clock').stat().st_uid,"
        " os.access('/app', os.W_OK), os.path.exists('/bin/sh'))"
    )
    python = "/usr/bin/python3.13" if variant == "distroless" else "python"
    out = engine.run("exec", container.name, python, "-c", probe).split()
    assert out[:2] == [str(uid), str(uid)]
    assert out[2] == "0"  # the app's files belong to root, not to the user running it
    assert out[3] == "False"  # and nothing there is writable (read-only root as well)
    assert out[4] == ("False" if variant == "distroless" else "True")
    top = engine.run("top", container.name, "pid", "user", "args")
    assert re.search(r"^\s*1\s+\S+\s+\S*python\S* -m moscow_clock", top, re.MULTILINE), top


def test_distroless_has_no_shell(engine: Engine, images: dict[str, str]) -> None:
    with pytest.raises(RuntimeError):  # the engine cannot start what is not there
        engine.run(
            "run", "--rm", "--network", "host", "--entrypoint", "/bin/sh",
            images["distroless"], "-c", "true",
        )  # fmt: skip
    probe = engine.run(
        "run", "--rm", "--network", "host", images["distroless"],
        "-c", "import os; print(os.path.exists('/bin/sh'), os.path.exists('/bin/bash'))",
    )  # fmt: skip
    assert probe.split() == ["False", "False"]


def test_every_saving_holds_on_the_images_python(
    engine: Engine, images: dict[str, str], variant: str
) -> None:
    """The internals of the image's own Python (a later 3.13 than this
    machine's, in distroless Debian's) match a reviewed version wherever a
    saving leans on them (guard.OPTIONAL): the image serves with the memory
    and CPU measured in docs/PERFORMANCE.md, not on the public fallbacks."""
    probe = (
        "import sys; from moscow_clock.server.hypercorn import guard;"
        "print(sys.version.split()[0], guard.skipped())"
    )
    command = ["-c", probe] if variant == "distroless" else ["python", "-c", probe]
    out = engine.run("run", "--rm", "--network", "host", images[variant], *command)
    version, skipped = out.strip().split(" ", 1)
    assert version.startswith("3.13.")
    assert skipped == "[]", f"Python {version} in the {variant} image: {skipped}"


def test_healthcheck_passes_in_the_container(engine: Engine, container: Container) -> None:
    if engine.name == "podman":
        engine.run("healthcheck", "run", container.name)  # exit 0 = healthy
    else:
        deadline = time.monotonic() + scaled(30)
        while container.state().get("Health", {}).get("Status") != "healthy":
            assert time.monotonic() < deadline, container.state()
            time.sleep(0.5)


async def test_sigterm_stops_cleanly_and_clients_get_1001(
    engine: Engine, container: Container
) -> None:
    ws_url = f"ws://127.0.0.1:{container.port}/ws"
    clients = [await websockets.connect(ws_url) for _ in range(3)]
    for ws in clients:
        await next_tick(ws)
    started = time.monotonic()
    stopping = asyncio.create_task(
        asyncio.to_thread(engine.run, "stop", "-t", STOP_GRACE, container.name)
    )
    codes = await asyncio.gather(*(close_code(ws) for ws in clients))
    await stopping
    assert codes == [1001] * 3
    assert time.monotonic() - started < scaled(5)
    assert container.state()["ExitCode"] == 0
    assert "Traceback" not in container.logs()


def test_workers_2_in_the_image(engine: Engine, images: dict[str, str], variant: str) -> None:
    container = Container.start(engine, images[variant], "-e", "WORKERS=2")
    try:
        assert json.loads(fetch(f"{container.url}/api/time")[1])["tz"] == "Europe/Moscow"
        engine.run("stop", "-t", STOP_GRACE, container.name)
        assert container.state()["ExitCode"] == 0
    finally:
        container.remove()


def test_readme_shows_the_commands_the_tests_run() -> None:
    readme = (ROOT / "README.md").read_text()
    runs = re.findall(r"^docker run .*$", readme, re.MULTILINE)
    assert runs, "README has no docker run line"
    for line in runs:
        assert " ".join(HARDENING) in line, line
    assert "docker build -f Dockerfile -t moscow-clock:slim ." in readme
    assert "docker build -f Dockerfile.distroless -t moscow-clock:distroless ." in readme
    script = (ROOT / "scripts" / "build-image").read_text()
    assert 'docker build -f "$dockerfile" -t "$tag"' in script


BABEL_PROBE = """
import datetime, os, babel, babel.dates, tzdata
from babel import Locale, UnknownLocaleError
day = datetime.date(2026, 11, 30)
print(babel.dates.format_date(day, "full", locale="ru"))
print(babel.dates.format_date(day, "full", locale="en"))
try:
    Locale.parse("de")
    print("de shipped")
except UnknownLocaleError:
    print("de pruned")
data = os.path.join(os.path.dirname(babel.__file__), "locale-data")
print(" ".join(sorted(name for name in os.listdir(data) if name.endswith(".dat"))))
print(os.path.exists(os.path.join(os.path.dirname(tzdata.__file__), "zoneinfo", "Asia", "Tokyo")))
"""


def test_babel_works_with_only_the_served_languages(
    engine: Engine, container: Container, variant: str
) -> None:
    """CLDR data for root, en and ru only (docs/IMAGES.md), and that is enough."""
    python = "/usr/bin/python3.13" if variant == "distroless" else "python"
    out = engine.run("exec", container.name, python, "-c", BABEL_PROBE).splitlines()
    assert out == [
        "понедельник, 30 ноября 2026\u202fг.",  # CLDR's own narrow no-break space
        "Monday, November 30, 2026",
        "de pruned",
        "en.dat root.dat ru.dat",
        "False",  # tzdata: Europe/Moscow and UTC only
    ]


async def test_the_page_in_russian_with_the_sun(container: Container) -> None:
    request = urllib.request.Request(
        f"{container.url}/?hours=12", headers={"Accept-Language": "ru-RU,ru;q=0.9"}
    )

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read().decode(), response.headers["Vary"]

    page, vary = await asyncio.to_thread(get)
    assert '<html lang="ru"' in page
    assert "Московское время" in page
    assert "Восход" in page
    assert " г.</p>" in page  # the CLDR date
    assert "Accept-Language" in vary
    status, embed = await asyncio.to_thread(fetch, f"{container.url}/embed?lang=en&date=0")
    assert status == 200
    assert 'lang="en"' in embed
    sun = json.loads((await asyncio.to_thread(fetch, f"{container.url}/api/time"))[1])["sun"]
    assert set(sun) == {"sunrise", "sunset", "day_length_s"}
