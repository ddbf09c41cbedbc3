"""Property-based tests: the pure parts that face untrusted input hold up for
any input hypothesis can think of, not just the cases we listed."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moscow_clock.core.config import ConfigError, Settings
from moscow_clock.core.origin import normalize_origin, origin_allowed
from moscow_clock.core.protocol import Close, Reply, answer
from moscow_clock.core.ratelimit import TokenBucket

NOW = 1795722005250.5

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(st.text() | st.binary())
def test_any_message_gets_a_verdict_never_an_exception(message: str | bytes) -> None:
    verdict = answer(message, NOW)
    assert verdict is None or isinstance(verdict, Reply | Close)
    if isinstance(verdict, Close):
        assert verdict.code in (1003, 1008)
        assert len(verdict.reason.encode()) <= 123  # fits a close frame


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_any_json_object_is_answered_ignored_or_refused(request: dict[str, Any]) -> None:
    verdict = answer(json.dumps(request), NOW)
    if request.get("type") != "sync":
        assert verdict is None
        return
    t0 = request.get("t0")
    valid = (
        isinstance(t0, int | float)
        and not isinstance(t0, bool)
        and abs(t0) < 1e308
        and math.isfinite(float(t0))
    )
    if valid:
        assert isinstance(verdict, Reply)
        reply = json.loads(verdict.text)
        assert reply == {"type": "sync", "t0": float(t0), "server_ms": NOW}
    else:
        assert isinstance(verdict, Close)
        assert verdict.code == 1008


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_t0_is_echoed_exactly(t0: float) -> None:
    verdict = answer(json.dumps({"type": "sync", "t0": t0}), NOW)
    assert isinstance(verdict, Reply)
    assert json.loads(verdict.text)["t0"] == t0


@given(st.text())
def test_origin_normalization_never_raises_and_is_idempotent(origin: str) -> None:
    normalized = normalize_origin(origin)
    if normalized is not None:
        assert normalize_origin(normalized) == normalized
        assert normalized == normalized.lower()


hosts = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,6}){0,2}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)


@given(hosts, ports, st.sampled_from(["http", "https"]))
def test_a_page_may_open_its_own_websocket(host: str, port: int, scheme: str) -> None:
    assert origin_allowed(f"{scheme}://{host}:{port}", f"{host}:{port}", frozenset())
    assert origin_allowed(
        f"{scheme.upper()}://{host.upper()}:{port}", f"{host}:{port}", frozenset()
    )


@given(hosts, hosts, ports)
def test_another_host_is_refused_unless_listed(host: str, other: str, port: int) -> None:
    if host == other:
        return
    origin = f"https://{other}:{port}"
    assert not origin_allowed(origin, f"{host}:{port}", frozenset())
    assert origin_allowed(origin, f"{host}:{port}", frozenset({normalize_origin(origin) or ""}))


@given(st.dictionaries(st.sampled_from(_NAMES := [
    "HOST", "PORT", "WORKERS", "LOG_LEVEL", "ACCESS_LOG", "GRACEFUL_TIMEOUT",
    "WS_MAX_MESSAGE_BYTES", "MAX_CONNECTIONS", "ALLOWED_ORIGINS", "WS_PING_INTERVAL",
    "SEND_TIMEOUT", "WS_MESSAGE_RATE", "LOG_JSON", "LISTEN_FD", "EMBED_ORIGINS",
]), st.text(max_size=30)))  # fmt: skip
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_environment_gives_settings_or_one_clear_error(env: dict[str, str]) -> None:
    try:
        settings_ = Settings.from_env(env)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message
        assert any(name in message for name in _NAMES)
    else:
        assert 0 <= settings_.port <= 65535
        assert settings_.max_connections >= 1
        # Each becomes a CSP source: nothing in it may end the directive.
        for origin in settings_.embed_origins:
            assert not any(ch in origin for ch in " ;,'\"\\"), origin


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_the_bucket_never_lets_through_more_than_burst_plus_rate(gaps: list[float]) -> None:
    bucket = TokenBucket(rate=10, burst=30, now=0.0)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += bucket.allow(now)
    assert allowed <= 30 + 10 * now + 1e-9
