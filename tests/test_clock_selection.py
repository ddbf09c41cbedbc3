"""Pure: NTP's source selection (core/selection.py) and the judgement with
its hysteresis (core/clockstate.py), with "now" as a parameter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moscow_clock.core.clockstate import (
    UNKNOWN,
    Check,
    ClockState,
    Health,
    Judge,
    Judgement,
    judge,
    leap_pending,
)
from moscow_clock.core.selection import (
    FILTER_SIZE,
    MAX_DISTANCE_MS,
    NO_SERVERS,
    PHI,
    ServerFilter,
    Status,
    Verdict,
    intersection,
    select,
)
from moscow_clock.core.sntp import Sample

from .conftest import SYNCED
from .support.clockstate import UNSYNCED

NOW = 1_795_722_005_250.0
LARGE_ERROR = ClockState(synchronized=True, max_error_ms=900.0, estimated_error_ms=40.0)


def sample(offset_ms: float, delay_ms: float = 2.0) -> Sample:
    return Sample(offset_ms=offset_ms, delay_ms=delay_ms, stratum=2)


def server(name: str, *offsets: float, delay_ms: float = 2.0, at: float = NOW) -> ServerFilter:
    kept = ServerFilter(name)
    for offset in offsets:
        kept.add(sample(offset, delay_ms), at)
    return kept


# -- intersection ------------------------------------------------------------


def test_intersection_finds_the_majority() -> None:
    assert intersection([(-1, 1)]) == (-1, 1)
    assert intersection([(-2, 1), (-1, 2), (4999, 5001)]) == (-1, 1)
    # Touching intervals agree.
    assert intersection([(0, 1), (1, 2)]) == (1, 1)
    # Two that disagree: no majority (there is no telling which is right).
    assert intersection([(-1, 1), (4999, 5001)]) is None
    # Three that all disagree: none.
    assert intersection([(0, 1), (10, 11), (20, 21)]) is None
    # Two of four is not a majority; three of four is.
    assert intersection([(0, 2), (1, 3), (10, 11), (20, 21)]) is None
    assert intersection([(0, 2), (1, 3), (1.5, 4), (20, 21)]) == (1.5, 2)


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1e4)), min_size=1, max_size=9))
def test_each_end_of_the_intersection_is_in_a_majority(centres: list[tuple[float, float]]) -> None:
    intervals = [(c - r, c + r) for c, r in centres]
    found = intersection(intervals)
    if found is None:
        return
    low, high = found
    assert low <= high
    # RFC 5905's variant: each end of the interval is in a majority of them.
    for point in (low, high):
        assert 2 * sum(1 for a, b in intervals if a <= point <= b) > len(intervals)


# -- the clock filter --------------------------------------------------------


def test_the_filter_takes_the_lowest_delay_of_its_last_polls() -> None:
    kept = ServerFilter("a")
    kept.add(sample(10.0, delay_ms=80.0), NOW)
    kept.add(sample(1.0, delay_ms=3.0), NOW)
    kept.add(sample(5.0, delay_ms=9.0), NOW)
    peer = kept.peer(NOW)
    assert peer is not None
    assert (peer.offset_ms, peer.delay_ms) == (1.0, 3.0)
    assert peer.reach == 0b111
    # Misses take slots: after FILTER_SIZE of them no sample is left.
    for _ in range(FILTER_SIZE):
        kept.miss()
    assert kept.reach == 0
    assert kept.peer(NOW) is None


def test_dispersion_grows_with_age_and_root_distance_adds_up() -> None:
    kept = ServerFilter("a")
    kept.add(
        Sample(
            offset_ms=3.0,
            delay_ms=10.0,
            stratum=2,
            root_delay_ms=20.0,
            root_dispersion_ms=5.0,
            precision_ms=0.5,
        ),
        NOW,
    )
    fresh = kept.peer(NOW)
    old = kept.peer(NOW + 1_000_000)  # 1000 s later
    assert fresh is not None
    assert old is not None
    assert fresh.root_distance_ms == pytest.approx((10 + 20) / 2 + 5 + 0.5)
    assert old.root_distance_ms - fresh.root_distance_ms == pytest.approx(PHI * 1_000_000)
    assert old.age_ms == 1_000_000


# -- selection ---------------------------------------------------------------


def test_a_falseticker_is_marked_and_never_chosen() -> None:
    chosen = select([server("good1", 1.0), server("good2", 2.0), server("bad", 5000.0)], NOW)
    assert chosen.status is Status.SELECTED
    assert chosen.reference is not None
    assert chosen.reference.server in ("good1", "good2")
    assert chosen.verdicts["bad"] is Verdict.FALSETICKER
    assert chosen.servers(Verdict.FALSETICKER) == ("bad",)


def test_two_servers_that_disagree_give_no_majority() -> None:
    chosen = select([server("good", 1.0), server("bad", 5000.0)], NOW)
    assert chosen.status is Status.NO_MAJORITY
    assert chosen.reference is None


def test_one_good_one_off_one_dead_is_no_majority_not_the_off_one() -> None:
    dead = ServerFilter("dead")
    dead.miss()
    chosen = select([server("good", 1.0), server("bad", 5000.0), dead], NOW)
    assert chosen.status is Status.NO_MAJORITY
    assert chosen.verdicts["dead"] is Verdict.UNUSABLE
    assert "unreachable" in chosen.reasons["dead"]


def test_unusable_servers_are_left_out() -> None:
    far = ServerFilter("far")
    far.add(Sample(0.0, 2.0, 2, root_dispersion_ms=MAX_DISTANCE_MS), NOW)
    unsynchronised = ServerFilter("s16")
    unsynchronised.add(Sample(0.0, 2.0, 16), NOW)
    chosen = select([far, unsynchronised, server("good", 4.0)], NOW)
    assert chosen.reference is not None
    assert chosen.reference.server == "good"
    assert "1500 ms limit" in chosen.reasons["far"]
    assert "stratum 16" in chosen.reasons["s16"]
    assert select([far], NOW).status is Status.UNREACHABLE
    assert select([], NOW) is NO_SERVERS


def test_the_lowest_stratum_then_the_shortest_distance_is_the_reference() -> None:
    low = ServerFilter("stratum1")
    low.add(Sample(2.0, 30.0, 1), NOW)
    near = ServerFilter("stratum3")
    near.add(Sample(1.0, 2.0, 3), NOW)
    chosen = select([near, low], NOW)
    assert chosen.reference is not None
    assert chosen.reference.server == "stratum1"


def test_a_flapping_server_is_rejected_by_its_own_jitter() -> None:
    flapping = server("flap", 0.0, 5000.0, 0.0, 5000.0)
    peer = flapping.peer(NOW)
    assert peer is not None
    assert peer.jitter_ms > MAX_DISTANCE_MS
    chosen = select([server("a", 1.0), server("b", 2.0), flapping], NOW)
    assert chosen.verdicts["flap"] is Verdict.UNUSABLE


# -- the judgement -----------------------------------------------------------


def judged(state: ClockState, *servers: ServerFilter, limit: float = 250.0) -> Judgement:
    return judge(state, select(list(servers), NOW), limit)


def test_the_judgement_in_every_state() -> None:
    assert judged(SYNCED).health is Health.SYNCHRONISED
    assert judged(SYNCED).error_bound_ms == 12.0
    # STA_UNSYNC alone is no evidence the clock is off: unverified, with the kernel's bound.
    unsynced = judged(UNSYNCED)
    assert unsynced.health is Health.UNVERIFIED
    assert unsynced.error_bound_ms == 16000.0
    assert "STA_UNSYNC" in unsynced.reason
    assert judged(UNKNOWN).health is Health.UNVERIFIED
    assert judged(UNKNOWN).error_bound_ms is None
    # The kernel's own bound past the limit while synchronised is evidence.
    assert judged(LARGE_ERROR).health is Health.OFF
    assert "maximum error 900 ms" in judged(LARGE_ERROR).reason
    # NTP agreeing vouches even where the kernel says unsynchronised.
    vouched = judged(UNSYNCED, server("a", 0.03))
    assert vouched.health is Health.SYNCHRONISED
    assert vouched.error_bound_ms is not None
    # |offset| + root distance, whose round trip counts at least MINDISP (10 ms).
    assert vouched.error_bound_ms == pytest.approx(0.03 + 5.0)
    # A majority 5 s off is off, whatever the kernel says.
    off = judged(SYNCED, server("a", 5000.0), server("b", 5001.0))
    assert off.health is Health.OFF
    assert off.offset_ms == pytest.approx(5000, abs=1)
    assert "5.0 s behind NTP server" in off.reason
    ahead = judged(SYNCED, server("a", -400.0))
    assert "400.0 ms ahead of NTP server a" in ahead.reason
    # No majority: the kernel's word stands (here unverified).
    split = judged(UNSYNCED, server("a", 0.0), server("b", 5000.0))
    assert split.health is Health.UNVERIFIED
    assert "no majority" in split.reason
    # An interval straddling the limit proves nothing either way.
    straddle = judged(UNSYNCED, server("a", 240.0, delay_ms=40.0))
    assert straddle.health is Health.UNVERIFIED


@pytest.mark.parametrize(
    ("health", "on", "strict", "off"),
    [
        (Health.SYNCHRONISED, True, True, True),
        (Health.UNVERIFIED, True, False, True),
        (Health.OFF, False, False, True),
    ],
)
def test_readiness_under_each_check(health: Health, on: bool, strict: bool, off: bool) -> None:
    verdict = Judgement(health, "why", None)
    assert [verdict.ready(c) for c in (Check.ON, Check.STRICT, Check.OFF)] == [on, strict, off]


GOOD = Judgement(Health.SYNCHRONISED, "good", 3.0, 1.0)
OFF = Judgement(Health.OFF, "5 s off", 5003.0, 5000.0)
UNVERIFIED = Judgement(Health.UNVERIFIED, "unsynced, no reference", 16000.0)


def test_hysteresis_both_ways() -> None:
    judge_ = Judge(Check.ON, hold_ms=3000)
    assert judge_.update(GOOD, 0) == GOOD
    # Evidence of a bad clock must hold: meanwhile it is no longer vouched for.
    shown = judge_.update(OFF, 1000)
    assert shown.health is Health.UNVERIFIED
    assert shown.ready(Check.ON)
    assert "confirming" in shown.reason
    assert judge_.update(OFF, 3999).ready(Check.ON)
    assert judge_.update(OFF, 4000) == OFF
    # And back: the good evidence must hold too.
    assert judge_.update(GOOD, 5000) == OFF
    assert judge_.update(GOOD, 7999) == OFF
    assert judge_.update(GOOD, 8000) == GOOD


def test_evidence_that_flaps_never_flips_readiness() -> None:
    judge_ = Judge(Check.ON, hold_ms=3000)
    flips, ready = 0, True
    for second in range(3600):
        raw = OFF if second % 2 else GOOD
        now_ready = judge_.update(raw, second * 1000).ready(Check.ON)
        flips += now_ready != ready
        ready = now_ready
    assert flips == 0


def test_a_clock_last_seen_off_stays_off_until_vouched_for() -> None:
    judge_ = Judge(Check.ON, hold_ms=1000)
    judge_.update(OFF, 0)
    # The reference goes stale, the kernel says only "unsynchronised": still off.
    for now in range(0, 600_000, 1000):
        kept = judge_.update(UNVERIFIED, now)
        assert kept.health is Health.OFF
        assert kept.reason.count("still off") == 1
    assert judge_.update(GOOD, 600_000).health is Health.OFF
    assert judge_.update(GOOD, 601_000) == GOOD


def test_strict_mode_holds_unverified_too() -> None:
    judge_ = Judge(Check.STRICT, hold_ms=2000)
    assert judge_.update(UNVERIFIED, 0).ready(Check.STRICT) is False
    assert judge_.update(GOOD, 1000).ready(Check.STRICT) is False
    assert judge_.update(GOOD, 3000).ready(Check.STRICT) is True


def test_a_pending_leap_second_is_seen() -> None:
    kept = ServerFilter("a")
    kept.add(Sample(0.0, 2.0, 2, leap=1), NOW)
    assert leap_pending(UNSYNCED, kept.peer(NOW)) == "insert"
    assert leap_pending(ClockState(True, 1.0, 1.0, status=0x2011), None) == "insert"
    assert leap_pending(ClockState(True, 1.0, 1.0, status=0x2021), None) == "delete"
    assert leap_pending(SYNCED, None) is None
