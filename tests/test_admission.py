"""Who may open a websocket: origins, the cap, and the flood limit."""

from __future__ import annotations

import pytest

from moscow_clock.core.config import ConfigError, Settings
from moscow_clock.core.origin import normalize_origin, origin_allowed
from moscow_clock.core.ratelimit import TokenBucket
from moscow_clock.live.admission import FOREIGN_ORIGIN, FULL, Admitted, Gate


@pytest.mark.parametrize(
    ("origin", "normalized"),
    [
        ("https://Clock.Example", "https://clock.example"),
        ("https://clock.example:443", "https://clock.example"),
        ("http://clock.example:80/", "http://clock.example"),
        ("http://clock.example:8000", "http://clock.example:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file://", None),
        ("ws://clock.example", None),
        ("https://user@clock.example", None),
        ("https://clock.example/path", None),
        ("https://clock.example:99999", None),
        ("https://", None),
        ("", None),
    ],
)
def test_normalize_origin(origin: str, normalized: str | None) -> None:
    assert normalize_origin(origin) == normalized


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "clock.example", True),
        ("https://clock.example", "clock.example", True),
        ("https://clock.example", "clock.example:443", True),
        ("http://clock.example:8000", "clock.example:8000", True),
        ("http://clock.example", "clock.example:8000", False),
        ("https://evil.example", "clock.example", False),
        ("https://clock.example.evil.example", "clock.example", False),
        ("https://clock.example", None, False),
        ("null", "clock.example", False),
    ],
)
def test_same_origin_rule(origin: str | None, host: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, host, frozenset()) is allowed


def test_allow_list_and_wildcard() -> None:
    partners = frozenset({"https://partner.example"})
    assert origin_allowed("https://PARTNER.example:443", "clock.example", partners)
    assert not origin_allowed("https://other.example", "clock.example", partners)
    assert origin_allowed("https://other.example", "clock.example", frozenset({"*"}))


def test_allowed_origins_setting_is_normalized_and_checked() -> None:
    settings = Settings.from_env({"ALLOWED_ORIGINS": "https://A.example:443, http://b.example:81"})
    assert settings.allowed_origins == {"https://a.example", "http://b.example:81"}
    with pytest.raises(ConfigError, match=r"ALLOWED_ORIGINS: 'a\.example' is not an origin"):
        Settings.from_env({"ALLOWED_ORIGINS": "a.example"})


def test_gate_counts_connections_and_refuses_past_the_cap() -> None:
    gate = Gate(max_connections=2, allowed_origins=frozenset())
    first = gate.admit(None, "h")
    assert isinstance(first, Admitted)
    with first:
        second = gate.admit(None, "h")  # checked and held in one call
        assert isinstance(second, Admitted)
        with second:
            assert gate.open == 2
            assert gate.admit(None, "h") is FULL
            assert gate.open == 2  # a refusal holds nothing
        assert gate.open == 1
        second.__exit__(None, None, None)  # released once, however often asked
        assert gate.open == 1
    assert gate.open == 0
    assert gate.admit("https://evil.example", "h") is FOREIGN_ORIGIN
    assert gate.open == 0


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket.for_rate(10, now=0.0)
    assert sum(bucket.allow(0.0) for _ in range(100)) == 30
    assert not bucket.allow(0.0)
    assert sum(bucket.allow(1.0) for _ in range(100)) == 10
    assert bucket.allow(100.0)  # refilled, but only up to the burst
    assert sum(bucket.allow(100.0) for _ in range(100)) == 29


def test_bucket_ignores_a_clock_that_steps_back() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)
