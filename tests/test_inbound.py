"""The process's inbound budget and the bounded request head, as pure logic
(core/budget.py `Inbound`, core/request_head.py `head_bytes`,
core/preferences.py `bounded`): who is shed, who never is, and when."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from hypercorn.protocol.events import Data

from moscow_clock.core.budget import (
    CLOSE,
    OVER_SHARE,
    PAGE_MESSAGES,
    PASS,
    SHED,
    STRIKES,
    WINDOW_S,
    Budget,
    Inbound,
)
from moscow_clock.core.config import Settings
from moscow_clock.core.preferences import MAX_HEADER_CHARS, bounded, prefers_json
from moscow_clock.core.request_head import MAX_HEAD_BYTES, head_bytes
from moscow_clock.server.hypercorn.inbound import inbound_of

from .support.rawws import client_frame, raw_frame
from .support.timing import until
from .test_hypercorn_layer import accepted_stream, settle, written


def _sender() -> Budget:
    return Budget(Settings().frame_limits(), now=0.0)


def _run(
    inbound: Inbound, senders: dict[str, tuple[list[Budget], float]], seconds: float
) -> dict[str, list[int]]:
    """Each group's senders send at their rate (messages a second), in
    steps of 10 ms, for `seconds`; every verdict, by group."""
    verdicts: dict[str, list[int]] = {name: [] for name in senders}
    owed = dict.fromkeys(senders, 0.0)
    turn = dict.fromkeys(senders, 0)  # each group's senders take turns
    step = 0.01
    for tick in range(round(seconds / step)):
        now = tick * step
        for name, (group, rate) in senders.items():
            owed[name] += rate * step * len(group)
            while owed[name] >= 1:
                owed[name] -= 1
                sender = group[turn[name] % len(group)]
                turn[name] += 1
                verdicts[name].append(inbound.admit(sender, now))
    return verdicts


def test_under_the_budget_everything_passes() -> None:
    inbound = Inbound(rate=1000, now=0.0)
    verdicts = _run(inbound, {"heavy": ([_sender() for _ in range(50)], 9.0)}, 10)
    assert set(verdicts["heavy"]) == {PASS}  # 450 a second: under 1000
    assert inbound.shed == 0


def test_over_it_the_heaviest_are_shed_and_pages_never() -> None:
    inbound = Inbound(rate=200, now=0.0)
    pages = [_sender() for _ in range(500)]
    heavy = [_sender() for _ in range(100)]
    verdicts = _run(inbound, {"pages": (pages, 0.2), "heavy": (heavy, 9.0)}, 20)
    assert set(verdicts["pages"]) == {PASS}  # a sync every 5 s: never touched
    assert SHED in verdicts["heavy"] or CLOSE in verdicts["heavy"]
    assert inbound.shed > 0


def test_those_under_their_fair_share_pass_though_above_a_page() -> None:
    """500 a second shared by 100 senders: 5 each. Those sending 4 (over a
    page's allowance, under their share) pass; those sending 20 are shed."""
    inbound = Inbound(rate=500, now=0.0)
    medium = [_sender() for _ in range(50)]
    heavy = [_sender() for _ in range(50)]
    verdicts = _run(inbound, {"medium": (medium, 4.0), "heavy": (heavy, 20.0)}, 20)
    assert set(verdicts["medium"]) == {PASS}
    assert verdicts["heavy"].count(PASS) < len(verdicts["heavy"]) / 2


def test_a_page_resyncing_passes_however_busy() -> None:
    """A resync is five syncs in a row (static/js/main.js): within a page's
    allowance even when the process is far over its budget."""
    inbound = Inbound(rate=10, now=0.0)
    heavy = [_sender() for _ in range(20)]
    _run(inbound, {"heavy": (heavy, 9.0)}, 5)  # the process is over its budget
    page = _sender()
    for n in range(PAGE_MESSAGES):
        assert inbound.admit(page, 5.0 + n * 0.01) == PASS


def test_a_sender_shed_often_enough_is_closed() -> None:
    inbound = Inbound(rate=10, now=0.0)
    heavy = [_sender() for _ in range(20)]
    _run(inbound, {"heavy": (heavy, 9.0)}, 5)
    sender = heavy[0]
    verdicts = [inbound.drop(sender) for _ in range(STRIKES)]
    assert verdicts[-1] == CLOSE
    assert sender.drops >= STRIKES


def test_windows_roll_and_quiet_forgets() -> None:
    inbound = Inbound(rate=10, now=0.0)
    heavy = [_sender() for _ in range(20)]
    _run(inbound, {"heavy": (heavy, 9.0)}, 5)
    # Two quiet windows later nothing of the flood is remembered.
    assert inbound.admit(heavy[0], 5.0 + 3 * WINDOW_S) == PASS


def test_head_bytes_counts_to_the_blank_line() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    seen, _ = head_bytes(0, b"", head + b"body")
    assert seen == -1 - len(head)  # ended, at its size
    # Split anywhere, even inside the blank line.
    for cut in range(1, len(head)):
        seen, tail = head_bytes(0, b"", head[:cut])
        assert seen == cut
        seen, _ = head_bytes(seen, tail, head[cut:])
        assert seen == -1 - len(head), cut
    # Blank lines before a request line are skipped, as h11 skips them.
    seen, _ = head_bytes(0, b"", b"\r\n\r\n" + head)
    assert seen == -1 - len(head)
    # A head that never ends grows past the limit.
    seen, tail = head_bytes(0, b"", b"GET / HTTP/1.1\r\nX: " + b"y" * MAX_HEAD_BYTES)
    assert seen > MAX_HEAD_BYTES


def test_bounded_keeps_whole_elements_within_the_limit() -> None:
    assert bounded(None) == ""
    assert bounded("text/html") == "text/html"
    long = "text/html;q=0.5, " + "x/y;q=0.1, " * 1000 + "application/json"
    kept = bounded(long)
    assert len(kept) <= MAX_HEADER_CHARS
    assert kept.endswith("x/y;q=0.1")  # never half an element
    assert not prefers_json(long)  # the JSON preference past 2 KB is not read
    assert prefers_json("application/json, " + "x/y;q=0.1, " * 1000)
    assert bounded("a" * 5000) == ""  # one giant element: nothing of it


# --- in the server layer (WSStream, with the doubles of test_hypercorn_layer) ---


async def _over_budget_stream() -> tuple[Any, Any, list[Any]]:
    """A stream whose process is over its inbound budget (1 a second), by
    others' doing."""
    stream, send, told = await accepted_stream(
        limits=dataclasses.replace(Settings().frame_limits(), inbound_per_s=1.0)
    )
    inbound = inbound_of(stream.config)
    assert inbound is not None
    now = time.monotonic()
    for other in [_sender() for _ in range(3)]:
        for _ in range(5):
            inbound.admit(other, now)
    return stream, send, told


SYNC = client_frame(0x1, b'{"type": "sync", "t0": 1}')


async def test_over_its_share_a_stream_answers_a_pages_worth_then_pauses() -> None:
    stream, send, told = await _over_budget_stream()
    handling = asyncio.create_task(stream.handle(Data(stream_id=1, data=SYNC * 14)))
    await until(lambda: stream._pause is not None, 2, "the pause")
    await until(lambda: len(told) == PAGE_MESSAGES, 2, "a page's worth handed to the app")
    assert not handling.done()  # the read loop waits: nothing more is read meanwhile
    inbound = inbound_of(stream.config)
    assert inbound is not None
    assert (inbound.shed, inbound.paused) == (2, 1)
    stream._pause.wake()
    await handling
    assert stream._pause is None
    assert len(told) == PAGE_MESSAGES  # the two shed were dropped, not kept
    assert not any(data[0] == 0x88 for data in written(send))  # not closed


async def test_going_on_past_its_share_a_stream_is_closed_1008() -> None:
    stream, send, told = await _over_budget_stream()
    await stream.handle(Data(stream_id=1, data=SYNC * (PAGE_MESSAGES + STRIKES)))
    await settle()
    assert told[-1] == {"type": "websocket.disconnect", "code": 1008}
    close = written(send)[-1]
    assert close[0] == 0x88
    assert OVER_SHARE.encode() in close
    inbound = inbound_of(stream.config)
    assert inbound is not None
    assert inbound.closed == 1


async def test_a_shed_ping_goes_unanswered() -> None:
    stream, send, _ = await _over_budget_stream()
    handling = asyncio.create_task(
        stream.handle(Data(stream_id=1, data=SYNC * PAGE_MESSAGES + raw_frame(0x89, b"p")))
    )
    await until(lambda: stream._pause is not None, 2, "the pause")
    stream._pause.wake()
    await handling
    assert not any(data[0] == 0x8A for data in written(send))
