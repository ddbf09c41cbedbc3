"""The bounded inbox that replaces Quart's unbounded websocket buffer."""

from __future__ import annotations

import asyncio

import pytest
from quart.wrappers.base import ClientDisconnectedError

from moscow_clock import create_app
from moscow_clock.websocket import INBOX_MESSAGES, BoundedInbox


async def test_a_full_inbox_makes_the_sender_wait() -> None:
    inbox = BoundedInbox()
    for n in range(INBOX_MESSAGES):
        await inbox.put(f"message {n}")
    blocked = asyncio.create_task(inbox.put("one too many"))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # Quart stops taking messages: Hypercorn stops reading
    assert await inbox.get() == "message 0"
    await asyncio.wait_for(blocked, 1)


async def test_a_disconnect_ends_the_reader() -> None:
    inbox = BoundedInbox()
    await inbox.put("last words")
    inbox.disconnect()
    assert await inbox.get() == "last words"
    with pytest.raises(ClientDisconnectedError):
        await inbox.get()


async def test_after_the_session_ends_nothing_blocks_and_nothing_is_kept() -> None:
    inbox = BoundedInbox()
    for n in range(INBOX_MESSAGES):
        await inbox.put(f"message {n}")
    blocked = asyncio.create_task(inbox.put("one too many"))
    await asyncio.sleep(0.01)
    inbox.stop_reading()
    await asyncio.wait_for(blocked, 1)  # released, so Quart can reach the disconnect
    await asyncio.wait_for(inbox.put("late"), 1)
    assert inbox._queue.qsize() == 0


def test_the_app_uses_it() -> None:
    assert create_app().websocket_class.buffer_class is BoundedInbox
