"""The cap on connections that carry no open websocket, whole and per address.

Hypercorn bounds none of them: a connection just accepted, a request head
being sent, a request being answered, a handshake, an HTTP keep-alive. Each
holds a descriptor. Open websockets count toward MAX_CONNECTIONS instead (the
app's admission gate), and a websocket that is closing counts nowhere: it is
on its way out and writes its close frame first (it was the eviction victim
of its own close, docs/SECURITY.md).

Whole process (`limit`): at the cap the listener pauses (listen.py), so
newcomers wait in the kernel's accept queue, where they cost nothing, instead
of being accepted and reset. Room is made by closing, in this order, idle
keep-alive connections (oldest first), then, if that is not enough, every
stalled one (a head, or nothing, with no new byte for `STALL_S`, and none waiting
unread in the kernel: the server's own lateness stalls no one); a
connection is never closed before its first read, nor while its request is
being answered (and the kernel hands a connection over only once its
first bytes are in, or after listen.DEFER_ACCEPT_S of silence, so a head
that comes late is not seen as stalled). A head must also be whole within
`head_timeout` of its first byte. So no crowd of slow or silent sockets,
however large, keeps a request that arrives whole (a probe, a handshake)
out for longer than the queue ahead of it takes to cycle.

Per address (`per_address`, the IPv4 address or IPv6 /64; trusted proxies
are exempt, their peers are many): at most that many connections that have
not finished a request. A newcomer past it closes one of its own address's
stalled ones; with none stalled, tcp.py looks at what it has sent: a whole
head (a reconnect wave's handshake, a probe) is answered as usual, a part
of one is closed at once (before Hypercorn sets anything up for it), and
nothing yet puts it on probation: it has `PROBATION_S` to send its head,
and after `PROBATION_GRACE_S` it is the first to go when room is needed
(past `PROBATION_ROOM` times its cap, the address's silent newcomers are
closed at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

# A connection that has not finished its head and has sent no byte for this
# long is stalled: a candidate for closing when room is needed.
STALL_S = 1.0
# A newcomer past its address's cap whose head was not all there on arrival
# has this long to finish it (a client's head follows its connect at once;
# a library client busy with hundreds of connects may take milliseconds).
PROBATION_S = 1.0
# ... and is not closed to make room before this (its head may be on its way:
# a client writing many connections' heads just after connecting them all).
PROBATION_GRACE_S = 0.25
# An address may hold this many times its cap in all, newcomers on probation
# included; past it one that sent nothing is closed at once (a flood of
# silent connections costs an accept and a close, not a slot each).
PROBATION_ROOM = 5

# What a newcomer has sent when it is accepted (`arrive`'s `head`).
NOTHING = 0
PART = 1
WHOLE = 2

# What a pending connection is doing.
FRESH = 0  # accepted, no byte yet
HEAD = 1  # a request head arriving
BUSY = 2  # its request is being answered (or its handshake)
IDLE = 3  # between requests (HTTP keep-alive)


class Member(Protocol):
    def abort(self) -> None: ...

    def unread(self) -> bool:
        """Bytes from the peer wait in the kernel, not yet read by us."""
        ...


class Listener(Protocol):
    """The listening sockets (listen.Gate)."""

    @property
    def paused(self) -> bool: ...

    def pause(self) -> bool:
        """Stop accepting; False if this event loop cannot."""
        ...

    def resume(self) -> None: ...

    def unstarted(self) -> int:
        """Accepted, not yet counted here."""
        ...


class Entry:
    __slots__ = ("arrived", "group", "head_at", "probation", "progress", "read", "state")

    def __init__(self, group: str | None, now: float) -> None:
        self.group = group
        self.state = FRESH
        self.read = False  # a read has been tried: it could have sent by now
        self.progress = now  # its last byte (or its first read)
        self.head_at = now  # the first byte of the head being sent
        self.arrived = now
        self.probation = False  # past its address's cap, its head not yet whole


class Connections:
    """The pending connections of one process, in order of arrival."""

    def __init__(
        self,
        limit: int,
        per_address: int = 64,
        head_timeout: float = 5.0,
        listener: Listener | None = None,
    ) -> None:
        self.limit = max(1, limit)
        self.per_address = max(1, per_address)
        self.head_timeout = head_timeout
        self.listener = listener
        # Below this (after pausing) the listener resumes: a round of
        # accepts, not one per connection that leaves.
        self.resume_below = self.limit - max(1, self.limit // 16)
        self._entries: dict[Member, Entry] = {}
        self._idle: dict[Member, None] = {}  # oldest idle first
        self._groups: dict[str, dict[Member, None]] = {}  # not idle, per address
        self.evicted = 0  # closed to make room, since start
        self.refused = 0  # past their address's cap, closed on probation
        self.timed_out = 0  # heads not whole within head_timeout
        self.timer: object | None = None  # the sweep's (tcp.py)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, member: object) -> bool:
        return member in self._entries

    def full(self) -> bool:
        waiting = self.listener.unstarted() if self.listener is not None else 0
        return len(self._entries) + waiting >= self.limit

    # --- what a connection tells ----------------------------------------

    def arrive(
        self,
        member: Member,
        group: str | None,
        now: float,
        head: Callable[[], int] = lambda: NOTHING,
    ) -> bool:
        """`member` is new (`group`: its address's, None if exempt). If its
        address holds `per_address` already, it closes one of them that
        stalled; with none, `head()` says what it has sent so far: a WHOLE
        head is answered as usual, a PART of one (a slowloris: a client's
        head comes whole) is refused (False: the caller closes it), and
        NOTHING yet puts it on probation: closed if its head is not whole
        within `PROBATION_S`, and the first to go when room is needed; or
        refused too if the address holds `PROBATION_ROOM` times its cap."""
        entry = Entry(group, now)
        if group is not None:
            own = self._groups.setdefault(group, {})
            if len(own) >= self.per_address and not self._evict_stalled_of(own, now):
                sent = head()
                if sent == PART or (
                    sent == NOTHING and len(own) >= PROBATION_ROOM * self.per_address
                ):
                    self.refused += 1
                    self._maybe_resume()  # it was counted as accepted until now
                    return False
                entry.probation = sent == NOTHING
            # An eviction may have emptied (and dropped) the group's dict.
            self._groups.setdefault(group, {})[member] = None
        self._entries[member] = entry
        if self.full():
            self.make_room(now)
            if len(self._entries) > self.limit and not self._pausable():
                # No pausing on this event loop (listen.py): the newcomer goes.
                self.evicted += 1
                self._close(member)
        else:
            self._maybe_resume()  # paused while it was accepted, not yet counted
        return True

    def reading(self, member: Member, now: float) -> None:
        """Its first read is waiting: from now on it may be found stalled."""
        entry = self._entries.get(member)
        if entry is not None and not entry.read:
            entry.read = True
            entry.progress = now

    def received(self, member: Member, now: float) -> None:
        """Bytes arrived."""
        entry = self._entries.get(member)
        if entry is None:
            return
        entry.progress = now
        if entry.state == IDLE:
            self._unidle(member, entry)
        if entry.state in (FRESH, IDLE):
            entry.state = HEAD
            entry.head_at = now

    def head_done(self, member: Member) -> None:
        """A whole request head: it is being answered. (From IDLE too: a
        pipelined head, read while the one before was answered, is taken
        with no new bytes after the connection was marked idle.)"""
        entry = self._entries.get(member)
        if entry is None:
            return
        if entry.state == IDLE:
            self._unidle(member, entry)
        entry.state = BUSY
        entry.probation = False  # its head came whole: an ordinary client

    def idle(self, member: Member, now: float) -> None:
        """Answered; waiting for its next request."""
        entry = self._entries.get(member)
        if entry is None or entry.state == IDLE:
            return
        entry.state = IDLE
        entry.progress = now
        self._idle[member] = None
        self._ungroup(member, entry)

    def leave(self, member: Member) -> None:
        """An open websocket now, or gone (closing websockets too)."""
        if self._forget(member) is not None:
            self._maybe_resume()

    # --- the process's housekeeping ---------------------------------------

    def sweep(self, now: float) -> None:
        """Close heads older than `head_timeout`; while the listener is
        paused, make room. (tcp.py calls this a few times a second while
        anything is pending.)"""
        late = [
            member
            for member, entry in self._entries.items()
            if entry.state == HEAD and now - entry.head_at >= self.head_timeout
        ]
        for member in late:
            self.timed_out += 1
            self._close(member)
        for member in self._on_probation(now - PROBATION_S):
            self.refused += 1
            self._close(member)
        if (self.listener is not None and self.listener.paused) or self.full():
            self.make_room(now)

    def make_room(self, now: float) -> None:
        """Close every newcomer on probation past its grace, then idle
        connections (oldest first) until below the resume mark, and if that is not enough, every
        stalled one; pause the listener while still full, resume it once
        below."""
        waiting = self.listener.unstarted() if self.listener is not None else 0
        excess = len(self._entries) + waiting - self.resume_below
        if excess > 0:
            # Every one past its grace: their addresses are past their caps.
            for member in self._on_probation(now - PROBATION_GRACE_S):
                self.refused += 1
                self._close(member)
                excess -= 1
        if excess > 0:
            for member in list(self._idle)[:excess]:
                self.evicted += 1
                self._close(member)
                excess -= 1
        if excess > 0:
            # Every stalled one: each holds a slot while others wait.
            for member in self._stalled(now):
                self.evicted += 1
                self._close(member)
        if self.full():
            if self.listener is not None:
                self.listener.pause()
        else:
            self._maybe_resume()

    def _pausable(self) -> bool:
        return self.listener is not None and self.listener.paused

    def _maybe_resume(self) -> None:
        listener = self.listener
        if (
            listener is not None
            and listener.paused
            and len(self._entries) + listener.unstarted() <= self.resume_below
        ):
            listener.resume()

    def _on_probation(self, arrived_by: float) -> list[Member]:
        return [
            member
            for member, entry in self._entries.items()
            if entry.probation and entry.state in (FRESH, HEAD) and entry.arrived <= arrived_by
        ]

    def _stalled(self, now: float) -> list[Member]:
        return [member for member, entry in self._entries.items() if _stalled(member, entry, now)]

    def _evict_stalled_of(self, own: dict[Member, None], now: float) -> bool:
        for member in own:
            if _stalled(member, self._entries[member], now):
                self.evicted += 1
                self._close(member)
                return True
        return False

    def _close(self, member: Member) -> None:
        """Reset it, out of the count now (its descriptor goes with it)."""
        if self._forget(member) is not None:
            member.abort()

    def _forget(self, member: Member) -> Entry | None:
        """Out of every count; its entry, None if it was in none."""
        entry = self._entries.pop(member, None)
        if entry is None:
            return None
        if entry.state == IDLE:
            del self._idle[member]
        else:
            self._ungroup(member, entry)
        return entry

    def _unidle(self, member: Member, entry: Entry) -> None:
        """No longer among the idle: counted per address again."""
        del self._idle[member]
        if entry.group is not None:
            self._groups.setdefault(entry.group, {})[member] = None

    def _ungroup(self, member: Member, entry: Entry) -> None:
        if entry.group is None:
            return
        own = self._groups.get(entry.group)
        if own is not None:
            own.pop(member, None)
            if not own:
                del self._groups[entry.group]


def _stalled(member: Member, entry: Entry, now: float) -> bool:
    """No new byte for `STALL_S` since its first read was tried, its head
    not whole, and nothing of it waiting unread: a server behind on its
    reads (a long collection, a crowded loop) does not make its peers
    stalled."""
    return (
        entry.state in (FRESH, HEAD)
        and entry.read
        and now - entry.progress > STALL_S
        and not member.unread()
    )
