"""One client's session, over an in-memory ASGI websocket."""

from __future__ import annotations

import asyncio
import json

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import Message

from moscow_clock.core.clock import make_tick
from moscow_clock.core.clockstate import UNVERIFIED_PAGE, Health, PageClock
from moscow_clock.core.wire import FRAME, text_frame
from moscow_clock.live.session import Session
from moscow_clock.live.stats import Stats
from moscow_clock.live.ticker import Broadcast, Ticker

from .fakes import FakeASGI
from .support.rawws import server_frames
from .support.timing import scaled

NOW = 1795722005250.0


async def start(
    ticker: Ticker, rate: float = 10.0, page_clock: PageClock = UNVERIFIED_PAGE
) -> tuple[FakeASGI, Session, asyncio.Task[object]]:
    fake = FakeASGI()
    session = Session(fake.send, lambda: NOW, rate, Stats(), page_clock=lambda: page_clock)

    async def run() -> object:
        return await session.serve(fake.receive, ticker)

    task = asyncio.create_task(run())
    # Reading with nothing to read: it is subscribed and listening.
    await asyncio.wait_for(fake.waiting.wait(), scaled(1))
    return fake, session, task


async def test_sync_is_answered_without_waiting_for_a_tick() -> None:
    fake, _, task = await start(Ticker())
    fake.client_sends('{"type":"sync","t0":42.5}')
    await asyncio.wait_for(fake.sent_count(1), scaled(1))
    assert [json.loads(m) for m in fake.sent] == [
        {
            "type": "sync",
            "t0": 42.5,
            "server_ms": NOW,
            "error_ms": None,
            "clock": {"status": "unverified", "bound_ms": None, "offset_ms": None},
        }
    ]
    task.cancel()


async def test_sync_reply_carries_the_servers_error_bound() -> None:
    fake, _, task = await start(Ticker(), page_clock=PageClock(Health.SYNCHRONISED, 7.25, 0.5))
    fake.client_sends('{"type":"sync","t0":1}')
    await asyncio.wait_for(fake.sent_count(1), scaled(1))
    reply = json.loads(fake.sent[0])
    assert reply["error_ms"] == 7.25
    assert reply["clock"] == {"status": "synchronised", "bound_ms": 7.25, "offset_ms": 0.5}
    task.cancel()


async def test_ticks_are_sent_in_order_without_a_task_per_tick() -> None:
    ticker = Ticker()
    fake, _, task = await start(ticker)
    for second in (1000, 2000):
        await ticker.publish(make_tick(second))
        # Sent before publish() returned: the write finished in the offer.
        assert json.loads(fake.sent[-1])["epoch_ms"] == second
    task.cancel()


async def test_a_bad_message_closes_only_that_session() -> None:
    ticker = Ticker()
    bad, bad_session, bad_task = await start(ticker)
    good, _, good_task = await start(ticker)
    bad.client_sends(b"\x00")
    await asyncio.wait_for(bad_task, scaled(1))
    assert bad_session.closed_with is not None
    assert bad.closed == (1003, "binary messages are not supported")
    assert ticker.clients == 1
    await ticker.publish(make_tick(1000))
    assert len(good.sent) == 1
    good_task.cancel()


async def test_a_flood_is_closed_with_1008() -> None:
    fake, _, task = await start(Ticker(), rate=1.0)  # bursts of 30
    for n in range(40):
        fake.client_sends(json.dumps({"type": "sync", "t0": n}))
    await asyncio.wait_for(task, scaled(1))
    assert len(fake.sent) == 30
    assert fake.closed == (1008, "too many messages")


async def test_the_client_leaving_ends_the_session() -> None:
    ticker = Ticker()
    fake, session, task = await start(ticker)
    assert ticker.clients == 1
    fake.client_leaves()
    await asyncio.wait_for(task, scaled(1))
    assert session.closed_with is None  # the client left first
    assert fake.closed is None
    assert ticker.clients == 0


class Place:
    """A stand-in for a place in the gate: when it was taken and given back
    (with the close the client had been sent by then)."""

    def __init__(self, fake: FakeASGI) -> None:
        self.fake = fake
        self.held: list[object] = []

    def __enter__(self) -> None:
        self.held.append("in")

    def __exit__(self, *_: object) -> None:
        self.held.append(("out", self.fake.closed))


async def test_a_cancelled_session_leaves_the_ticker_and_gives_its_place_back() -> None:
    """Cancelled (its connection's task group ending) while reading: off the
    ticker, out of the gate, and neither counted nor logged as closed."""
    ticker = Ticker()
    fake = FakeASGI()
    stats = Stats()
    session = Session(fake.send, lambda: NOW, 10.0, stats)
    place = Place(fake)
    task = asyncio.create_task(session.serve(fake.receive, ticker, place))
    await asyncio.wait_for(fake.waiting.wait(), scaled(1))
    assert ticker.clients == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ticker.clients == 0
    assert place.held == ["in", ("out", None)]
    assert not stats.closed


async def test_a_session_arriving_while_the_server_drains_is_told_to_go() -> None:
    """Accepted and told 1001 at once, never given a tick, over when the
    client answers (the fake answers at once), counted and its place in the
    gate held until then."""
    ticker = Ticker()
    ticker.close()
    fake = FakeASGI()
    stats = Stats()
    session = Session(fake.send, lambda: NOW, 10.0, stats)
    place = Place(fake)
    await asyncio.wait_for(session.serve(fake.receive, ticker, place), scaled(1))
    assert place.held == ["in", ("out", (1001, "server shutting down"))]
    assert ticker.clients == 0
    await ticker.publish(make_tick(1000))
    assert fake.sent == []
    assert stats.closed == {"1001": 1}


async def test_drain_closes_with_going_away() -> None:
    ticker = Ticker()
    fake, _, task = await start(ticker)
    assert await ticker.drain(timeout=scaled(1))
    await asyncio.wait_for(task, scaled(1))
    assert fake.closed == (1001, "server shutting down")


async def test_a_stalled_client_delays_no_one_and_skips_stale_ticks() -> None:
    ticker = Ticker()
    stalled, _, stalled_task = await start(ticker)
    stalled.unblocked.clear()
    prompt, _, prompt_task = await start(ticker)
    for second in (1000, 2000, 3000):
        await ticker.publish(make_tick(second))
        assert json.loads(prompt.sent[-1])["epoch_ms"] == second
    assert stalled.sent == []
    stalled.unblocked.set()
    # The write it was stuck in finishes (and with it, its turn is over).
    await asyncio.wait_for(stalled.sent_count(1), scaled(1))
    await ticker.publish(make_tick(4000))
    # It finishes the write it was stuck in, skips 2000 and 3000, then goes on.
    assert [json.loads(m)["epoch_ms"] for m in stalled.sent] == [1000, 4000]
    assert ticker.skipped == 2
    stalled_task.cancel()
    prompt_task.cancel()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_frames_match_what_wsproto_would_send(size: int) -> None:
    text = "x" * size
    expected = Connection(ConnectionType.SERVER).send(Message(data=text))
    assert text_frame(text) == expected
    # and the tests' own parser reads it back, leaving a partial frame alone
    buffer = bytearray(expected + expected[:-1])
    assert server_frames(buffer) == [(0x1, text.encode())]
    assert buffer == expected[:-1]


def test_a_broadcast_carries_the_frame_only_in_its_framed_message() -> None:
    broadcast = Broadcast.of(make_tick(1000))
    assert broadcast.framed[FRAME] == text_frame(broadcast.tick.text)
    assert FRAME not in broadcast.plain
    assert broadcast.plain["text"] == broadcast.framed["text"] == broadcast.tick.text


async def test_a_session_attaches_the_frame_only_when_the_server_advertises_it() -> None:
    broadcast = Broadcast.of(make_tick(1000))
    for preframed in (False, True):
        sent: list[object] = []

        async def send(message: object, sent: list[object] = sent) -> None:
            sent.append(message)

        session = Session(send, lambda: NOW, 10.0, Stats(), preframed=preframed)
        assert session.offer(broadcast)
        assert sent == [broadcast.framed if preframed else broadcast.plain]


async def test_a_server_that_writes_at_once_is_handed_the_frame_and_no_send() -> None:
    """With the server's write_now (core/wire.py, WRITE_NOW) a tick is one
    call, no send and no task; a tick it cannot take at once is skipped."""
    broadcast = Broadcast.of(make_tick(1000))
    sent: list[object] = []
    written: list[bytes] = []
    room = [True, False]

    async def send(message: object) -> None:
        sent.append(message)

    def write_now(frame: bytes) -> bool:
        written.append(frame)
        return room.pop(0)

    session = Session(send, lambda: NOW, 10.0, Stats(), preframed=True, write_now=write_now)
    tasks = len(asyncio.all_tasks())
    assert session.offer(broadcast)
    assert not session.offer(broadcast)  # the socket still busy: skipped
    assert written == [broadcast.frame, broadcast.frame]
    assert sent == []
    assert len(asyncio.all_tasks()) == tasks
