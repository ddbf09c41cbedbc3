from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading

import pytest

from moscow_clock.core.clockstate import Check
from moscow_clock.core.config import ConfigError, Settings
from moscow_clock.server import serve as server
from moscow_clock.server.serve import hypercorn_config

from .support.server import ROOT
from .support.timing import scaled


def test_defaults_serve_loopback_port_8000() -> None:
    settings = Settings.from_env({})
    assert settings.bind == "127.0.0.1:8000"
    assert settings.workers == 1
    assert settings.access_log is True


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "WORKERS": "3",
            "LOG_LEVEL": "WARNING",
            "ACCESS_LOG": "false",
            "GRACEFUL_TIMEOUT": "2.5",
        }
    )
    assert settings.bind == "0.0.0.0:9000"
    assert (settings.workers, settings.log_level, settings.access_log) == (3, "warning", False)
    assert settings.graceful_timeout == 2.5


def test_clock_settings() -> None:
    defaults = Settings.from_env({})
    assert (defaults.ntp_servers, defaults.ntp_interval) == ((), 64.0)
    assert (defaults.clock_max_error_ms, defaults.clock_check) == (250.0, Check.ON)
    settings = Settings.from_env(
        {
            "NTP_SERVERS": "time.example 10.0.0.1:1123 [2001:db8::1]:124",
            "NTP_INTERVAL": "1",
            "CLOCK_MAX_ERROR_MS": "50",
            "CLOCK_CHECK": "off",
        }
    )
    assert settings.ntp_servers == (
        ("time.example", 123),
        ("10.0.0.1", 1123),
        ("2001:db8::1", 124),
    )
    assert (settings.ntp_interval, settings.clock_max_error_ms) == (1.0, 50.0)
    assert settings.clock_check is Check.OFF
    assert Settings.from_env({"CLOCK_CHECK": "on"}).clock_check is Check.ON
    assert Settings.from_env({"CLOCK_CHECK": "STRICT"}).clock_check is Check.STRICT


def test_ipv6_host_is_bracketed() -> None:
    assert Settings.from_env({"HOST": "::"}).bind == "[::]:8000"


def test_blank_values_mean_default() -> None:
    assert Settings.from_env({"PORT": " ", "WORKERS": ""}) == Settings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT='eighty' is not a whole number"),
        ({"PORT": "70000"}, "PORT=70000 is out of range 0..65535"),
        ({"WORKERS": "0"}, "WORKERS=0 is out of range"),
        ({"GRACEFUL_TIMEOUT": "nan"}, "GRACEFUL_TIMEOUT=nan is out of range"),
        ({"GRACEFUL_TIMEOUT": "soon"}, "is not a number"),
        ({"ACCESS_LOG": "maybe"}, "is not a boolean"),
        ({"LOG_LEVEL": "loud"}, "is not one of debug, info"),
        ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS=0 is out of range"),
        ({"SEND_TIMEOUT": "0"}, "SEND_TIMEOUT=0 is out of range"),
        ({"WS_PING_INTERVAL": "never"}, "is not a number"),
        ({"WS_MESSAGE_RATE": "-1"}, "WS_MESSAGE_RATE=-1 is out of range"),
        ({"ALLOWED_ORIGINS": "evil"}, "ALLOWED_ORIGINS: 'evil' is not an origin"),
        ({"EMBED_ORIGINS": "partner.example"}, "EMBED_ORIGINS: 'partner.example' is not an"),
        ({"EMBED_ORIGINS": "https://a.example/page"}, "EMBED_ORIGINS: 'https://a.example/page'"),
        # Nothing that could end the CSP directive reaches the header.
        ({"EMBED_ORIGINS": "https://a;b.example"}, "EMBED_ORIGINS: 'https://a;b.example'"),
        ({"EMBED_ORIGINS": "'self'"}, "EMBED_ORIGINS: \"'self'\" is not an origin"),
        ({"EMBED_ORIGINS": "'none' https://a.example"}, "EMBED_ORIGINS: \"'none'\" is not an"),
        ({"NTP_SERVERS": "pool.ntp.org:ntp"}, "NTP_SERVERS: 'pool.ntp.org:ntp' is not host"),
        ({"NTP_SERVERS": "a [::1]x"}, r"NTP_SERVERS: '\[::1\]x' is not host"),
        ({"NTP_INTERVAL": "0.5"}, "NTP_INTERVAL=0.5 is out of range"),
        ({"CLOCK_MAX_ERROR_MS": "0"}, "CLOCK_MAX_ERROR_MS=0 is out of range"),
        ({"CLOCK_CHECK": "sometimes"}, "CLOCK_CHECK='sometimes' is not one of on, strict, off"),
    ],
)
def test_bad_values_are_refused_clearly(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env(env)


def test_hypercorn_gets_the_settings() -> None:
    settings = Settings.from_env(
        {"PORT": "9001", "ACCESS_LOG": "0", "WS_MAX_MESSAGE_BYTES": "2048"}
    )
    config = hypercorn_config(settings)
    assert config.bind == ["127.0.0.1:9001"]
    assert config.accesslog is None
    assert config.websocket_max_message_size == 2048
    assert config.include_server_header is False
    inherited = hypercorn_config(Settings.from_env({"LISTEN_FD": "7"}))
    assert inherited.bind == ["fd://7"]


def test_robustness_settings() -> None:
    settings = Settings.from_env(
        {
            "MAX_CONNECTIONS": "500",
            "ALLOWED_ORIGINS": "https://a.example *",
            "WS_PING_INTERVAL": "15",
            "SEND_TIMEOUT": "3",
            "WS_MESSAGE_RATE": "2.5",
        }
    )
    assert settings.max_connections == 500
    assert settings.allowed_origins == {"https://a.example", "*"}
    assert (settings.ws_ping_interval, settings.send_timeout) == (15, 3)
    assert settings.ws_message_rate == 2.5
    config = hypercorn_config(settings)
    assert config.websocket_ping_interval is None  # one pinger per process instead
    assert config.read_timeout == 45  # three silent intervals and the peer is gone


def test_connection_cap_fits_the_open_files_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda *_: None)
    fitted = server.fit_to_fd_limit(Settings(max_connections=10_000))
    # One budget: websockets, pending connections and the reserve (issue 17).
    spent = fitted.max_connections + fitted.max_pending_connections + server.FD_RESERVE
    assert spent == 1024, fitted
    assert fitted.max_pending_connections < 512
    assert server.fit_to_fd_limit(Settings(max_connections=100)).max_connections == 100


def test_the_last_resort_exits_even_when_the_loop_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Armed at the stop signal: a thread, so a wedged event loop cannot hold it."""
    exits: list[int] = []
    exited = threading.Event()

    def fake_exit(code: int) -> None:
        exits.append(code)
        exited.set()

    monkeypatch.setattr(server.os, "_exit", fake_exit)
    monkeypatch.setattr(server.logging, "shutdown", lambda: None)
    server._arm_last_resort(0.05)
    # The "event loop" of this test is stuck (a blocking wait): the thread still fires.
    assert exited.wait(scaled(2))
    assert exits == [1]


def test_embed_origins() -> None:
    # Fails closed: unset, empty, commas only or 'none' frame nothing; "*" only when written.
    for value in (None, "", "  ", ",", " , ,", "'none'", " 'none' "):
        env = {} if value is None else {"EMBED_ORIGINS": value}
        assert Settings.from_env(env).embed_origins == (), value
    assert Settings.from_env({"EMBED_ORIGINS": "*"}).embed_origins == ("*",)
    settings = Settings.from_env(
        {"EMBED_ORIGINS": "https://B.example:443/, http://localhost:8080 https://*.c.example"}
    )
    assert settings.embed_origins == (
        "http://localhost:8080",
        "https://*.c.example",
        "https://b.example",
    )


def test_a_bad_embed_origin_stops_start_up_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moscow_clock"],
        cwd=ROOT,
        env={**os.environ, "EMBED_ORIGINS": "https://ok.example not-an-origin"},
        capture_output=True,
        text=True,
        timeout=scaled(10),
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "moscow_clock: EMBED_ORIGINS: 'not-an-origin' is not an origin like https://clock.example"
    )
