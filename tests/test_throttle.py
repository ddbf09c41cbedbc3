"""The one log throttle (`core.ratelimit.Every`), with its clock in the test's hands."""

from __future__ import annotations

from moscow_clock.core.ratelimit import Every


def test_once_per_interval_and_the_rest_counted() -> None:
    every = Every(10.0)
    assert every.due(100.0)
    assert not every.due(100.0)
    assert not every.due(109.9)
    assert every.suppressed == 2
    assert every.due(110.0)
    assert not every.due(119.0)
    assert every.due(500.0)
    assert every.suppressed == 3


def test_each_key_has_its_own_interval() -> None:
    every = Every(60.0)
    assert every.due(0.0, "a:timeout")
    assert every.due(1.0, "b:timeout")
    assert every.due(2.0, "a:bad-reply")
    assert not every.due(3.0, "a:timeout")
    assert not every.due(59.0, "b:timeout")
    assert every.due(60.0, "a:timeout")
    assert every.suppressed == 2


def test_a_clock_that_steps_back_delays_the_next_line_no_further() -> None:
    every = Every(10.0)
    assert every.due(100.0)
    assert not every.due(50.0)  # stepped back: still quiet until 110
    assert every.due(110.0)
