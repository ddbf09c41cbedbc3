"""The pending-connection cap (server/hypercorn/pending.py), its gate and
the peer addresses it counts by (core/peers.py), without a server."""

from __future__ import annotations

import asyncio
import errno
import socket
from unittest.mock import Mock

import pytest

from moscow_clock.core.config import ConfigError, Settings
from moscow_clock.core.peers import TrustedProxies, group_of
from moscow_clock.server import serve
from moscow_clock.server.hypercorn import guard
from moscow_clock.server.hypercorn.listen import AcceptErrors, Gate, long_queue, out_of_resources
from moscow_clock.server.hypercorn.pending import (
    PART,
    PROBATION_GRACE_S,
    PROBATION_ROOM,
    PROBATION_S,
    STALL_S,
    WHOLE,
    Connections,
)

from .support.timing import until


class FakeListener:
    def __init__(self) -> None:
        self.paused = False
        self.waiting = 0

    def pause(self) -> bool:
        self.paused = True
        return True

    def resume(self) -> None:
        self.paused = False

    def unstarted(self) -> int:
        return self.waiting


def member(unread: bool = False) -> Mock:
    made = Mock(spec=["abort", "unread"])
    made.unread.return_value = unread
    return made


def answering(connections: Connections, m: Mock, address: str, at: float = 0.0) -> None:
    """A connection that arrived and sent a whole request head: being answered."""
    connections.arrive(m, address, at)
    connections.reading(m, at)
    connections.received(m, at)
    connections.head_done(m)


def test_at_the_cap_the_listener_pauses_and_nothing_unread_is_closed() -> None:
    listener = FakeListener()
    connections = Connections(4, listener=listener)
    made = [member() for _ in range(4)]
    for m in made:
        connections.arrive(m, "10.0.0.1", 0.0)
    assert listener.paused
    connections.sweep(100.0)  # never read: not closed, however long
    assert not any(m.abort.called for m in made)
    for m in made[:2]:
        connections.leave(m)  # upgraded: websockets now
    assert not listener.paused


def test_idle_ones_make_room_first_then_stalled_ones() -> None:
    listener = FakeListener()
    connections = Connections(4, listener=listener)
    small, big1, big2, idle = member(), member(), member(), member()
    connections.arrive(small, "10.0.0.1", 0.0)
    connections.arrive(big1, "10.0.0.2", 0.0)
    connections.arrive(big2, "10.0.0.2", 0.0)
    connections.arrive(idle, "10.0.0.3", 0.0)
    for m in (small, big1, big2, idle):
        connections.reading(m, 0.0)
        connections.received(m, 0.1)
    connections.head_done(idle)
    connections.idle(idle, 0.2)
    assert listener.paused
    connections.sweep(0.5)  # nothing stalled yet: only the idle one goes
    idle.abort.assert_called_once()
    assert not listener.paused
    more = member()
    connections.arrive(more, "10.0.0.4", 0.5)
    assert listener.paused
    connections.sweep(0.5 + STALL_S)
    big1.abort.assert_called_once()  # then every stalled one
    big2.abort.assert_called_once()
    small.abort.assert_called_once()
    more.abort.assert_not_called()  # not read yet
    assert connections.evicted == 4
    assert not listener.paused


def test_a_busy_or_closing_connection_is_never_a_victim() -> None:
    listener = FakeListener()
    connections = Connections(2, listener=listener)
    busy, closing = member(), member()
    answering(connections, busy, "10.0.0.1")
    connections.arrive(closing, "10.0.0.1", 0.0)
    connections.leave(closing)  # upgraded, then closing: counted nowhere
    connections.arrive(member(), "10.0.0.2", 0.0)
    connections.sweep(60.0)
    busy.abort.assert_not_called()
    closing.abort.assert_not_called()


def test_a_pipelined_request_is_not_a_victim_while_answered() -> None:
    """Its head came while the one before was answered; Hypercorn marks the
    connection idle after that response, then takes the buffered head at
    once (no new bytes): it is being answered, not idle."""
    listener = FakeListener()
    connections = Connections(2, listener=listener)
    pipelined = member()
    answering(connections, pipelined, "10.0.0.1")
    connections.received(pipelined, 0.1)  # the next request, while answering
    connections.idle(pipelined, 0.2)  # the first response done
    connections.head_done(pipelined)  # the buffered head taken
    connections.arrive(member(), "10.0.0.2", 0.3)
    connections.make_room(0.3)
    pipelined.abort.assert_not_called()


def test_a_head_not_whole_in_time_is_closed() -> None:
    connections = Connections(10, head_timeout=2.0)
    slow = member()
    connections.arrive(slow, "10.0.0.1", 0.0)
    connections.reading(slow, 0.0)
    connections.received(slow, 3.0)  # the head starts late: timed from its first byte
    connections.sweep(4.9)
    slow.abort.assert_not_called()
    connections.sweep(5.0)
    slow.abort.assert_called_once()
    assert connections.timed_out == 1
    assert len(connections) == 0


def test_an_address_at_its_cap_closes_its_own_stalled_one_or_the_newcomer_is_on_probation() -> None:
    connections = Connections(100, per_address=2)
    first, second = member(), member()
    for m in (first, second):
        assert connections.arrive(m, "10.0.0.9", 0.0)
        connections.reading(m, 0.0)
    late, slow = member(), member()
    assert connections.arrive(late, "10.0.0.9", 0.5)  # none stalled yet: on probation
    assert connections.arrive(slow, "10.0.0.9", 0.5)
    assert connections.arrive(member(), "10.0.0.9", 0.5, lambda: WHOLE)  # answered as usual
    assert not connections.arrive(member(), "10.0.0.9", 0.5, lambda: PART)  # a slowloris

    connections.received(late, 0.6)
    connections.head_done(late)  # its head came in time: answered as usual
    connections.sweep(0.5 + PROBATION_S)
    slow.abort.assert_called_once()
    late.abort.assert_not_called()
    assert connections.refused == 2
    assert connections.arrive(member(), "10.0.0.9", 0.5 + STALL_S + 0.1)
    first.abort.assert_called_once()  # its own stalled one made room
    assert connections.arrive(member(), None, 0.0)  # exempt (a trusted proxy)
    assert connections.arrive(member(), "10.0.0.8", 0.0)  # another address


def test_newcomers_on_probation_are_the_first_to_make_room() -> None:
    listener = FakeListener()
    connections = Connections(3, per_address=1, listener=listener)
    busy, first = member(), member()
    answering(connections, busy, "10.0.0.1")
    connections.arrive(first, "10.0.0.2", 0.0)
    extra = member()
    connections.arrive(extra, "10.0.0.2", 0.1)  # on probation, the cap reached
    assert listener.paused  # not closed before its grace
    extra.abort.assert_not_called()
    connections.sweep(0.2 + PROBATION_GRACE_S)
    extra.abort.assert_called_once()  # then the first to go
    assert not listener.paused
    busy.abort.assert_not_called()
    first.abort.assert_not_called()


def test_idle_keep_alives_do_not_count_per_address() -> None:
    connections = Connections(100, per_address=1)
    kept = member()
    answering(connections, kept, "10.0.0.9")
    connections.idle(kept, 0.1)
    assert connections.arrive(member(), "10.0.0.9", 0.2)


def test_without_pausing_the_newcomer_goes() -> None:
    listener = FakeListener()
    listener.pause = lambda: False  # type: ignore[method-assign]
    connections = Connections(1, listener=listener)
    old, new = member(), member()
    connections.arrive(old, "10.0.0.1", 0.0)
    connections.arrive(new, "10.0.0.2", 0.0)
    new.abort.assert_called_once()
    old.abort.assert_not_called()


def test_trusted_proxies_as_uvicorn_reads_them() -> None:
    proxies = TrustedProxies.parse("10.0.0.1, 192.168.0.0/16,::1")
    assert proxies.trusts("10.0.0.1")
    assert proxies.trusts("192.168.3.4")
    assert proxies.trusts("::1")
    assert proxies.trusts("::ffff:10.0.0.1")
    assert not proxies.trusts("10.0.0.2")
    assert not proxies.trusts(None)
    assert TrustedProxies.parse("*").trusts("203.0.113.9")
    assert not TrustedProxies.parse("")
    # As a dual-stack socket logs an IPv4 peer: the same proxy.
    mapped = TrustedProxies.parse("::ffff:10.0.0.1, ::ffff:10.1.0.0/112")
    assert mapped.trusts("10.0.0.1")
    assert mapped.trusts("::ffff:10.0.0.1")
    assert mapped.trusts("10.1.7.7")
    assert not mapped.trusts("10.2.0.1")
    assert proxies.client_address("10.0.0.1", ["203.0.113.9, 192.168.1.1"]) == "203.0.113.9"
    assert proxies.client_address("10.0.0.9", ["203.0.113.9"]) == "10.0.0.9"
    with pytest.raises(ValueError, match="nonsense"):
        TrustedProxies.parse("10.0.0.1, nonsense")


def test_addresses_are_grouped_ipv6_by_its_64() -> None:
    assert group_of("192.0.2.1") == "192.0.2.1"
    one, other = group_of("2001:db8:1:2:aaaa::1"), group_of("2001:db8:1:2:bbbb::2")
    assert one == other == "2001:db8:1:2::/64"
    assert group_of("::ffff:192.0.2.1") == "192.0.2.1"
    assert group_of("") is None


def test_the_settings() -> None:
    settings = Settings.from_env(
        {
            "MAX_PENDING_PER_ADDRESS": "8",
            "FORWARDED_ALLOW_IPS": "127.0.0.4,10.0.0.0/8",
            "HEAD_TIMEOUT": "2.5",
        }
    )
    assert settings.max_pending_per_address == 8
    assert settings.forwarded_allow_ips.trusts("10.1.2.3")
    assert settings.head_timeout == 2.5
    assert Settings.from_env({}).forwarded_allow_ips.trusts("127.0.0.1")  # uvicorn's default
    assert not Settings.from_env({}).forwarded_allow_ips.trusts("127.0.0.2")
    assert not Settings.from_env({"FORWARDED_ALLOW_IPS": ""}).forwarded_allow_ips
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": "a.b.c"})
    options = serve.hypercorn_config(settings).options  # type: ignore[attr-defined]
    assert options.head_timeout == 2.5
    assert options.trusted_proxies.trusts("127.0.0.4")


def test_one_descriptor_budget() -> None:
    # At 256 open files: websockets + pending + the reserve fit.
    websockets, pending = serve.descriptor_budget(256, serve.FD_RESERVE, 10_000, 512)
    assert websockets + pending + serve.FD_RESERVE <= 256
    assert pending >= 32
    assert websockets >= 100
    assert serve.descriptor_budget(1 << 20, serve.FD_RESERVE, 10_000, 512) == (10_000, 512)


def test_accept_errors_are_known_by_errno() -> None:
    errors = AcceptErrors()
    loop = Mock()
    errors.install(loop)
    handle = loop.set_exception_handler.call_args[0][0]
    handle(loop, {"message": "anything", "exception": OSError(errno.EMFILE, "x"), "socket": 1})
    assert errors.count == 1
    assert out_of_resources(OSError(errno.ENFILE, "x"))
    assert not out_of_resources(OSError(errno.ECONNRESET, "x"))


def test_pausing_the_listener_is_possible_on_this_python() -> None:
    """The asyncio internals the gate leans on are the ones fingerprinted
    (else it would never pause, and the cap would close newcomers)."""
    assert guard.holds("asyncio.selector_events")


async def test_the_gate_pauses_and_resumes_the_listener() -> None:
    gate = Gate()
    sock = long_queue(socket.create_server(("127.0.0.1", 0)), gate)
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(
        lambda _, writer: accepted.append(writer), sock=sock, backlog=4
    )
    clients = []
    try:
        assert gate.pause()
        # (Each speaks first, as every HTTP client does: the kernel hands over
        # a connection once its first bytes are in, listen.DEFER_ACCEPT_S.)
        clients.append(socket.create_connection(sock.getsockname()))  # the kernel's queue
        clients[-1].sendall(b"G")
        for _ in range(20):  # rounds of the loop: a registered listener would accept
            await asyncio.sleep(0)
        assert not accepted
        gate.resume()
        await until(lambda: len(accepted) == 1, 2, "accepted once resumed")
        gate.full = lambda: True  # the cap reached: the accept pauses it again
        clients.append(socket.create_connection(sock.getsockname()))
        clients[-1].sendall(b"G")
        await until(lambda: gate.paused, 2, "paused at the cap")
        assert gate.unstarted() >= 1
    finally:
        for client in clients:
            client.close()
        for writer in accepted:
            writer.close()
        server.close()


def test_silent_newcomers_past_the_probation_room_are_refused_at_once() -> None:
    connections = Connections(100, per_address=1)
    for _ in range(PROBATION_ROOM):
        assert connections.arrive(member(), "10.0.0.7", 0.0)  # one, then on probation
    assert not connections.arrive(member(), "10.0.0.7", 0.0)
    assert connections.arrive(member(), "10.0.0.7", 0.0, lambda: WHOLE)  # a request: answered
    assert connections.refused == 1


def test_the_listener_resumes_once_the_accepted_ones_are_counted_or_refused() -> None:
    listener = FakeListener()
    connections = Connections(4, per_address=1, listener=listener)
    connections.arrive(member(), "10.0.0.1", 0.0)
    listener.waiting = 3  # accepted in one round: the gate paused at the cap
    listener.paused = True
    listener.waiting = 2
    assert not connections.arrive(member(), "10.0.0.1", 0.0, lambda: PART)  # refused
    listener.waiting = 1
    assert not connections.arrive(member(), "10.0.0.1", 0.0, lambda: PART)
    assert not listener.paused  # room again: accepting, without waiting for a sweep


def test_a_cap_of_one_per_address_still_holds_after_its_stalled_one_went() -> None:
    connections = Connections(100, per_address=1)
    stalled = member()
    assert connections.arrive(stalled, "10.0.0.9", 0.0)
    connections.reading(stalled, 0.0)
    newcomer = member()
    assert connections.arrive(newcomer, "10.0.0.9", STALL_S + 0.1)  # the stalled one makes room
    stalled.abort.assert_called_once()
    # The newcomer is counted: the next one from the address finds the cap.
    assert not connections.arrive(member(), "10.0.0.9", STALL_S + 0.2, lambda: PART)


def test_probation_ends_with_a_whole_head() -> None:
    connections = Connections(100, per_address=1)
    first = member()
    assert connections.arrive(first, "10.0.0.9", 0.0)
    kept = member()
    assert connections.arrive(kept, "10.0.0.9", 0.1)  # on probation
    connections.reading(kept, 0.1)
    connections.received(kept, 0.2)
    connections.head_done(kept)
    connections.idle(kept, 0.3)  # answered, kept alive
    connections.received(kept, 0.4)  # its next head, in two reads
    connections.sweep(0.4 + PROBATION_S)
    kept.abort.assert_not_called()


def test_a_connection_whose_bytes_wait_unread_is_not_stalled() -> None:
    """The server behind on its reads (a long collection, a crowded loop
    during a reconnect wave) does not make its peers stalled: one whose
    head waits unread is kept, one that sent nothing goes."""
    listener = FakeListener()
    connections = Connections(2, listener=listener)
    silent, behind = member(), member(unread=True)
    for m in (silent, behind):
        connections.arrive(m, "10.0.0.1", 0.0)
        connections.reading(m, 0.0)
    assert listener.paused
    connections.sweep(10 * STALL_S)
    silent.abort.assert_called_once()
    behind.abort.assert_not_called()
    assert connections.evicted == 1


def test_past_its_address_cap_an_unread_connection_is_not_the_one_closed() -> None:
    connections = Connections(100, per_address=1)
    behind = member(unread=True)
    connections.arrive(behind, "10.0.0.9", 0.0)
    connections.reading(behind, 0.0)
    newcomer = member()
    assert connections.arrive(newcomer, "10.0.0.9", 10 * STALL_S, lambda: WHOLE)
    behind.abort.assert_not_called()
    assert connections.evicted == 0
