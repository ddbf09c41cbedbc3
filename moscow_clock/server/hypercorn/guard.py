"""Refuse to start on a Hypercorn this layer was not written for.

The subclasses here override, replace or lean on Hypercorn internals. A
rename would fail loudly at import; a change in behaviour would not: an
upstream fix inside a replaced method would be silently discarded, and a
method relied on could start doing something else. So at start-up the
installed version and a fingerprint of the source of every such function are
compared with the ones this layer was written against; a changed function,
or another series than 0.18, stops the process with one line that says what
to re-check.

A release of the same series that changed none of these functions starts as
it is. Otherwise, to move: read the diff of each function named in the
message against the override that uses it (`WHERE` says which), adjust the
override, then update `WRITTEN_FOR` and the fingerprints (run
`python -m moscow_clock.server.hypercorn.guard` to print the current ones)
and, for a new series, renovate.json's allowed range to match.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Mapping
from typing import Any

# The release the fingerprints were taken from. Any release of its series
# (0.18.x) whose fingerprints all match starts; another series is refused.
WRITTEN_FOR = "0.18.0"

# module:qualified name -> first 16 hex digits of the sha256 of its source.
FINGERPRINTS: Mapping[str, str] = {
    # Names rebound to construct the subclasses (install.py).
    "hypercorn.asyncio.run:worker_serve": "ae30269c42b95442",
    "hypercorn.asyncio.tcp_server:TCPServer.run": "9437d01a916d887b",
    "hypercorn.protocol:ProtocolWrapper.__init__": "df25e181b9e2e64d",
    "hypercorn.protocol:ProtocolWrapper.handle": "b03e2962872c85e8",
    "hypercorn.protocol.h11:H11Protocol._create_stream": "a2338a57ab343908",
    "hypercorn.protocol.h2:H2Protocol._create_stream": "91eb123ddf247ede",
    # listen.py: worker_serve (above) passes Config.backlog to start_server
    "hypercorn.config:Config.create_sockets": "3ba0bab3918e4238",
    # tcp.py (and the Updated(idle=...) events its pending count follows,
    # sent by H11Protocol._handle_events and _maybe_recycle)
    "hypercorn.protocol.h11:H11Protocol._maybe_recycle": "3ac53f52bc4e65de",
    "hypercorn.asyncio.tcp_server:TCPServer.__init__": "95a6f196b96bfa92",
    "hypercorn.asyncio.tcp_server:TCPServer.protocol_send": "06144915fc094c1b",
    "hypercorn.asyncio.tcp_server:TCPServer._close": "ea76225e14315206",
    "hypercorn.asyncio.tcp_server:TCPServer._read_data": "8e7ad8f4bfca2fd2",
    # inbox.py
    "hypercorn.asyncio.task_group:TaskGroup.spawn_app": "6606faaadfc368e3",
    "hypercorn.asyncio.task_group:TaskGroup.spawn": "7af0b6350dc69bfe",
    "hypercorn.asyncio.task_group:_handle": "e37cfe3db06eb470",
    "hypercorn.app_wrappers:ASGIWrapper.__call__": "5d03a825739dd4e8",
    # streams.py
    "hypercorn.protocol.ws_stream:WSStream.__init__": "3534d3ebe8f7a1a4",
    "hypercorn.protocol.ws_stream:WSStream.handle": "743209f49012b8c7",
    "hypercorn.protocol.ws_stream:WSStream.app_send": "a6dd1160bfc416e7",
    "hypercorn.protocol.ws_stream:WSStream._handle_events": "b90f3f595ff9fd47",
    "hypercorn.protocol.ws_stream:WSStream._send_wsproto_event": "3a4df3f0d2dfd314",
    "hypercorn.protocol.ws_stream:WSStream._send_error_response": "8b6acae9ca1ce378",
    "hypercorn.protocol.ws_stream:WSStream._accept": "144623ad2e13fc56",
    "hypercorn.protocol.ws_stream:Handshake.__init__": "2340bc6044f1de62",
    "hypercorn.protocol.ws_stream:Handshake.accept": "e163533bf7919793",
    "hypercorn.protocol.ws_stream:Handshake.is_valid": "fa339f39b4dc32d5",
    "hypercorn.protocol.ws_stream:WebsocketBuffer": "31c9b1345f308f4c",
    # h11.py
    "hypercorn.protocol.h11:H11Protocol._handle_events": "bd4a76b2837e8722",
    "hypercorn.protocol.h11:H11Protocol._check_protocol": "f95f6b38f43c62aa",
    "hypercorn.protocol.h11:H11Protocol.stream_send": "56a36254a368d71a",
    "hypercorn.protocol.h11:H11Protocol._send_error_response": "58c2b47ae295d000",
    "hypercorn.protocol.h11:H11Protocol.__init__": "c7c989fd6a352626",
    "hypercorn.protocol.h11:H11WSConnection": "33372cf689429978",
}

# Internals of Python and wsproto that optional parts lean on: memory
# savings (a deque that allocates 760 bytes up front swapped for a list; a
# read without the stream reader's coroutine frames), a tick written
# straight to the socket, and pausing the listener at the pending cap.
# Where one matches none of its reviewed versions, that part is skipped,
# not the start refused (the cap then closes newcomers instead of letting
# them wait), and the start-up log says so (`skipped`). Each name maps to
# the fingerprints of the versions read against the code that leans on it:
# Python 3.13.0's first, then later 3.13 releases' where the function
# changed (3.13.5 is the distroless image's Debian Python; 3.13.18 is
# Debian's newest 3.13). tests/test_images.py checks both images' Pythons.
OPTIONAL: Mapping[str, tuple[str, ...]] = {
    # tcp.py: the stream protocol's drain waiters
    "asyncio.streams:FlowControlMixin.__init__": ("a49ad305ef96ee00",),
    "asyncio.streams:FlowControlMixin.resume_writing": ("de83ae4da74c2231",),
    "asyncio.streams:FlowControlMixin.connection_lost": ("8251f6b1e110d757",),
    "asyncio.streams:FlowControlMixin._drain_helper": ("567c79b19c953058",),
    # tcp.py: the read loop's wait on the stream reader's future, as read()
    # and _wait_for_data() do it, and what wakes it
    "asyncio.streams:StreamReader.read": ("b3e781f2317fe198",),
    "asyncio.streams:StreamReader._wait_for_data": ("3064c5757b9dd9af",),
    "asyncio.streams:StreamReader._maybe_resume_transport": ("9f458ca68d19a38e",),
    "asyncio.streams:StreamReader._wakeup_waiter": ("6d54176c6257ad87",),
    "asyncio.streams:StreamReader.feed_data": ("f1dc194f7bceb07d",),
    "asyncio.streams:StreamReader.feed_eof": ("ca005b01cc4e3406",),
    "asyncio.streams:StreamReader.set_exception": ("95a5674b533992dc",),
    # listen.py: pausing the listener (asyncio's reader of the listening
    # socket, kept and put back: its key's data, the handle's callback and
    # arguments; accept() called on our socket, "nothing to accept" ending a round)
    "asyncio.selector_events:BaseSelectorEventLoop._add_reader": ("84bfb60f3b40bfe1",),
    "asyncio.selector_events:BaseSelectorEventLoop._start_serving": ("5b4f8624acd2d619",),
    # 3.13.18: up to backlog + 1 accepts a round, and an aborted connection
    # is skipped rather than ending the round; "nothing to accept" still ends it
    "asyncio.selector_events:BaseSelectorEventLoop._accept_connection": (
        "0cc21edb204919f0",
        "f1350ef04c78b13a",
    ),
    "asyncio.selector_events:events.Handle.__init__": ("30d3624f79a99a60",),
    # tcp.py: the socket transport's write buffer (every method that touches
    # it), and write_now's send() when that buffer is empty
    "asyncio.selector_events:_SelectorTransport.__init__": ("862e8f93f96152fa",),
    "asyncio.selector_events:_SelectorTransport.get_write_buffer_size": ("45e1a4fae4b5b821",),
    "asyncio.selector_events:_SelectorTransport.close": ("92ff882936b07fb4",),
    "asyncio.selector_events:_SelectorTransport._force_close": ("9e332a61659ed7d4",),
    # 3.13.18: only the TypeError's wording
    "asyncio.selector_events:_SelectorSocketTransport.write": (
        "1b7042f45fbf2e07",
        "73788f7edf74c2d1",
    ),
    "asyncio.selector_events:_SelectorSocketTransport._get_sendmsg_buffer": ("511c2226935b6b6e",),
    "asyncio.selector_events:_SelectorSocketTransport._write_sendmsg": ("445ad99e8cf8203f",),
    "asyncio.selector_events:_SelectorSocketTransport._adjust_leftover_buffer": (
        "c46d5b608f824f6d",
    ),
    "asyncio.selector_events:_SelectorSocketTransport._write_send": ("86130b899dde9b57",),
    "asyncio.selector_events:_SelectorSocketTransport.write_eof": ("becc27c51a224058",),
    # 3.13.5: pauses the protocol when the rest is buffered, as write() does;
    # 3.13.18: also drops the data once the connection is lost, as write() does
    "asyncio.selector_events:_SelectorSocketTransport.writelines": (
        "0828825f7b24199d",
        "1f889cedc25c6e2c",
        "99170307df3006db",
    ),
    "asyncio.selector_events:_SelectorSocketTransport._make_empty_waiter": ("1fd589622109468d",),
    # 3.13.5: `_write_ready` is cleared when the connection is lost, not on
    # close (write_now never calls it; a closing transport is never written)
    "asyncio.selector_events:_SelectorSocketTransport.close": (
        "c6a8c534261c152f",
        "1aea5d92f4274d96",
    ),
    "asyncio.selector_events:_SelectorSocketTransport.__init__": ("f65ef871d8329c07",),
    # streams.py: wsproto's event queue
    "wsproto.connection:Connection.__init__": ("2aa4c1439d32bd59",),
    "wsproto.connection:Connection.receive_data": ("046f0bbb05b365e3",),
    "wsproto.connection:Connection.events": ("e4d77be0bfef1af2",),
}

# Which of this layer's modules depends on each (for the message).
WHERE = {
    "tcp_server": "tcp.py",
    "task_group": "inbox.py",
    "app_wrappers": "inbox.py",
    "ws_stream": "streams.py",
    "h11": "h11.py",
    "h2": "install.py",
    "run": "install.py",
    "protocol": "install.py",
    "config": "options.py",
    "selector_events": "listen.py",
}


class GuardError(RuntimeError):
    """The installed Hypercorn is not the one this layer was written for."""


def fingerprint(target: str) -> str:
    """The fingerprint of `module:qualified.name`; "missing" if it is gone."""
    module_name, _, qualname = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
            if isinstance(obj, type) and obj.__module__.startswith(__package__ or "-"):
                obj = obj.__mro__[1]  # a name install() rebinds: Hypercorn's class under it
        source = inspect.getsource(obj)
    except (ImportError, AttributeError, OSError, TypeError):
        return "missing"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@functools.cache
def holds(*prefixes: str) -> bool:
    """Every `OPTIONAL` name that starts with one of `prefixes` has the
    fingerprint of one of its reviewed versions."""
    names = [name for name in OPTIONAL if name.startswith(prefixes)]
    return bool(names) and all(fingerprint(name) in OPTIONAL[name] for name in names)


def skipped() -> list[str]:
    """The `OPTIONAL` names matching none of their reviewed versions: the
    parts that lean on them are off in this process."""
    return [name for name, digests in OPTIONAL.items() if fingerprint(name) not in digests]


def installed_version() -> str:
    return importlib.metadata.version("hypercorn")


def series(version: str) -> str:
    """`0.18` from `0.18.1`: releases within one series may differ only where
    the fingerprints would see it, or not at all."""
    return ".".join(version.split(".")[:2])


def check(
    version: str | None = None,
    expected: Mapping[str, str] = FINGERPRINTS,
    written_for: str = WRITTEN_FOR,
) -> None:
    """Raise `GuardError` (one line) unless Hypercorn is as expected: the
    series this layer was written for, with every fingerprint the same (a
    patch release that changed none of these functions starts)."""
    version = installed_version() if version is None else version
    changed = sorted(name for name, digest in expected.items() if fingerprint(name) != digest)
    same_series = series(version) == series(written_for)
    if same_series and not changed:
        return
    if changed:
        where = sorted(
            {WHERE.get(name.split(":")[0].rsplit(".", 1)[-1], "install.py") for name in changed}
        )
        what = (
            f"re-check {', '.join(changed)} against moscow_clock/server/hypercorn/"
            f"{{{','.join(where)}}}"
        )
    else:
        what = "re-check every function listed in moscow_clock/server/hypercorn/guard.py"
    raise GuardError(
        f"Hypercorn {version} is installed but moscow_clock/server/hypercorn was written for "
        f"{written_for} (any {series(written_for)}.x with the same fingerprints); {what}, "
        "then update guard.py"
    )


def main() -> int:
    """Print the current fingerprints (for updating FINGERPRINTS)."""
    print(f"WRITTEN_FOR = {installed_version()!r}")
    for name in FINGERPRINTS:
        print(f'    "{name}": "{fingerprint(name)}",')
    print("OPTIONAL:")
    for name in OPTIONAL:
        print(f'    "{name}": "{fingerprint(name)}",')
    return 0


if __name__ == "__main__":
    sys.exit(main())
