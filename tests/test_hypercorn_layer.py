"""The parts of hypercorn_tuning that can be checked without a server (the
rest is exercised by the real-server tests)."""

from __future__ import annotations

import asyncio

from moscow_clock.server.hypercorn.inbox import AppInbox


async def test_inbox_is_fifo_and_bounded() -> None:
    inbox = AppInbox(maxsize=2)
    await inbox.put("a")
    await inbox.put("b")
    blocked = asyncio.create_task(inbox.put("c"))
    await asyncio.sleep(0)
    assert not blocked.done()  # full: the connection stops reading, TCP pushes back
    assert await inbox.get() == "a"
    await asyncio.wait_for(blocked, 1)
    assert [await inbox.get(), await inbox.get()] == ["b", "c"]


async def test_a_reader_waits_for_the_next_message() -> None:
    inbox = AppInbox(maxsize=2)
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reader.done()
    await inbox.put("hello")
    assert await asyncio.wait_for(reader, 1) == "hello"


async def test_closing_releases_a_blocked_writer_and_drops_the_rest() -> None:
    inbox = AppInbox(maxsize=1)
    await inbox.put("kept until close")
    blocked = asyncio.create_task(inbox.put("late"))
    await asyncio.sleep(0)
    inbox.close()  # the app has returned
    await asyncio.wait_for(blocked, 1)
    await asyncio.wait_for(inbox.put("later"), 1)
    assert inbox._items == []
