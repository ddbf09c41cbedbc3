"""What this layer needs to know, carried to every connection on Hypercorn's
own `Config` (each connection object is handed the config; no globals)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hypercorn.config import Config, Sockets

from ...core.budget import Limits
from ...core.config import Settings
from ...core.peers import NO_PROXIES, TrustedProxies
from ...core.security_headers import encoded
from .listen import Gate, long_queue
from .pending import Connections
from .shed import RefuseUpgrade

# Defaults have one home, Settings; a bare Options (tests) gets the same.
_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class Options:
    # A write the socket cannot take, or a close handshake the peer leaves
    # unanswered, is given this long before the connection is reset.
    send_timeout: float = _DEFAULTS.send_timeout
    # The budget for everything one websocket client sends (core/budget.py).
    limits: Limits = field(default_factory=_DEFAULTS.frame_limits)
    # Connections not carrying an open websocket, before the oldest is closed.
    max_pending: int = _DEFAULTS.max_pending_connections
    # The pending cap per address (IPv4, IPv6 /64), the peers exempt from it,
    # and the time a request head may take from its first byte (pending.py).
    max_pending_per_address: int = _DEFAULTS.max_pending_per_address
    trusted_proxies: TrustedProxies = NO_PROXIES
    head_timeout: float = _DEFAULTS.head_timeout
    # HTTP/2 in clear text (prior knowledge, `Upgrade: h2c`) is answered.
    http2: bool = False
    # Headers for the server's own responses (its 400/426/431, the
    # handshake refusals): the ones the app puts on every response.
    headers: tuple[tuple[bytes, bytes], ...] = ()
    # The app's load shedding (shed.py): asked with the path of a websocket
    # upgrade that opens a connection; True answers a canned 503 at once.
    refuse_upgrade: RefuseUpgrade | None = None
    # How many of the first binds the pending cap may pause (None: all).
    # The rest (the metrics listener) stay open when the public port is
    # full, so a scrape is answered during the very incident it should see.
    paused_binds: int | None = None

    @staticmethod
    def encode_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
        return encoded(headers)


class ServerConfig(Config):
    """Hypercorn's settings plus this layer's `Options`, its per-process
    count of pending connections and the gate of its listening sockets."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.gate = Gate()
        self.connections = Connections(
            options.max_pending,
            options.max_pending_per_address,
            options.head_timeout,
            listener=self.gate,
        )
        self.gate.full = self.connections.full

    def protections(self) -> dict[str, int]:
        """What this layer's protections did since start, by action (the
        app turns them into moscow_clock_protections_total)."""
        connections, gate = self.connections, self.gate
        return {
            "pending_evicted": connections.evicted,
            "pending_refused": connections.refused,
            "head_timed_out": connections.timed_out,
            "listener_paused": gate.pauses,
            "accept_failed": gate.errors.count,
        }

    def create_sockets(self) -> Sockets:
        """Hypercorn's sockets, each listening with the long kernel queue
        while asyncio takes `backlog` connections a round (listen.py)."""
        made = super().create_sockets()
        paused = self.options.paused_binds

        def gate(index: int) -> Gate | None:
            return self.gate if paused is None or index < paused else None

        return Sockets(
            [long_queue(sock, gate(i)) for i, sock in enumerate(made.secure_sockets)],
            [long_queue(sock, gate(i)) for i, sock in enumerate(made.insecure_sockets)],
            made.quic_sockets,
        )


DEFAULT = Options()


def options_of(config: Config) -> Options:
    """This layer's options (the defaults under a plain Hypercorn `Config`)."""
    return config.options if isinstance(config, ServerConfig) else DEFAULT
