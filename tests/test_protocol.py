"""Every client message gets a reply, a close code, or is ignored — never an exception."""

from __future__ import annotations

import json

import pytest

from moscow_clock.core.protocol import POLICY_VIOLATION, UNSUPPORTED_DATA, Close, Reply, answer

NOW = 1795722005250.5


def test_sync_is_answered_with_the_server_time() -> None:
    verdict = answer('{"type": "sync", "t0": 12.5}', NOW)
    assert isinstance(verdict, Reply)
    assert json.loads(verdict.text) == {
        "type": "sync",
        "t0": 12.5,
        "server_ms": NOW,
        "error_ms": None,  # the server's time is not verified
    }
    verdict = answer('{"type": "sync", "t0": 12.5}', NOW, 3.5)
    assert isinstance(verdict, Reply)
    assert json.loads(verdict.text)["error_ms"] == 3.5


def test_integer_t0_is_accepted() -> None:
    verdict = answer('{"type":"sync","t0":1795722005000}', NOW)
    assert isinstance(verdict, Reply)
    assert json.loads(verdict.text)["t0"] == 1795722005000


@pytest.mark.parametrize("message", ['{"type": "hello"}', '{"t0": 1}', '{"type": 5}', "{}"])
def test_unknown_types_are_ignored(message: str) -> None:
    assert answer(message, NOW) is None


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\x00\x01", UNSUPPORTED_DATA),
        (b'{"type": "sync", "t0": 1}', UNSUPPORTED_DATA),  # binary frames are refused
        ("not json", POLICY_VIOLATION),
        ("", POLICY_VIOLATION),
        ("[1, 2]", POLICY_VIOLATION),
        ('"sync"', POLICY_VIOLATION),
        ("null", POLICY_VIOLATION),
        ("[" * 3000 + "]" * 3000, POLICY_VIOLATION),  # nesting deep enough to hit recursion
        ('{"type": "sync"}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": "12"}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": true}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": null}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": NaN}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": Infinity}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": 1e999}', POLICY_VIOLATION),
        ('{"type": "sync", "t0": ' + "9" * 400 + "}", POLICY_VIOLATION),
    ],
)
def test_bad_messages_close_with_a_code(message: str | bytes, code: int) -> None:
    verdict = answer(message, NOW)
    assert isinstance(verdict, Close)
    assert verdict.code == code
    assert verdict.reason
    assert len(verdict.reason.encode()) <= 123
