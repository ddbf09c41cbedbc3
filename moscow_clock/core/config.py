"""Settings from the environment, read and validated in one place.

A bad value stops start-up with one clear line instead of surfacing later as
an odd failure deep inside Hypercorn.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .budget import Limits
from .capacity import MOST_CONNECTIONS
from .clockstate import Check
from .origin import normalize_origin
from .peers import LOOPBACK, TrustedProxies
from .sntp import parse_servers

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: str = "info"
    access_log: bool = True
    # Seconds websockets get to go after SIGTERM (they are sent 1001) and
    # in-flight requests get to finish; the process is gone 1 s after that.
    graceful_timeout: float = 5.0
    # Incoming websocket messages are tiny `sync` requests; anything larger is
    # refused with close code 1009 (server/hypercorn/streams.py).
    ws_max_message_bytes: int = 4096
    # Websocket clients one process serves at once; past it a handshake gets
    # 503. Unset, the limits decide: the memory the process may use (cgroup
    # memory.max, or the machine's; core/capacity.py) and the open-files
    # limit (server/serve.py), both logged at start. Set, it is a cap of its
    # own, still lowered to fit them.
    max_connections: int = MOST_CONNECTIONS
    # Origins (scheme://host[:port]) besides the page's own that may open
    # /ws from a browser; "*" allows any. Guards against cross-site hijacking.
    allowed_origins: frozenset[str] = frozenset()
    # Origins whose pages may show /embed in a frame (CSP frame-ancestors);
    # "*" allows any, only when written. Unset or empty: none may (fails
    # closed). Every other page may never be framed.
    embed_origins: tuple[str, ...] = ()
    # Every websocket is pinged this often (server/pinger.py, one pinger per
    # process); a peer silent (no pong, no message) for three intervals is
    # closed, so vanished clients are reaped.
    ws_ping_interval: float = 20.0
    # A client whose socket takes no bytes for this long (it never reads, or
    # vanished mid-write), that leaves our ping or our close frame unanswered
    # this long, is cut off, so it cannot pin buffers or a shutdown indefinitely.
    send_timeout: float = 5.0
    # Load shedding: a websocket handshake is refused (503, Retry-After) while
    # the event loop's own lag (not a busy host's) has been over
    # LOOP_LAG_BUDGET seconds in each of the last two seconds, until it has
    # been under 80 % of it as long (live/admission.py); 0 turns it off.
    # Idle clients cost nothing toward it: only work the process cannot keep
    # up with does. Ticks a second apart and a page that shows its own
    # offset's second make half a second of lag the point where visitors
    # would notice (sync replies late), not a tick that is 100 ms later.
    # Near the memory limit (90 % of cgroup memory.max in use) it refuses too.
    loop_lag_budget: float = 0.5
    # Keep long-lived objects out of the garbage collector's full collections
    # (server/collector.py); false gives the interpreter's defaults back.
    gc_freeze: bool = True
    # Messages per second a websocket client may send (bursts of three
    # seconds' worth, at least 30, pass); a sustained flood is closed with 1008.
    ws_message_rate: float = 10.0
    # The budget for everything a websocket client sends (core/budget.py),
    # far above what a page uses (a sync every few seconds, a pong every
    # WS_PING_INTERVAL): frames per second of any kind (at least three per
    # message WS_MESSAGE_RATE allows) and their payload bytes per second (at
    # least 1 KiB per message), bursts of three seconds' worth; frames one
    # message may span and seconds it may take; pings answered per second.
    # Past it the connection is closed with 1008.
    ws_frame_rate: float = 30.0
    ws_byte_rate: float = 16384.0
    ws_max_fragments: int = 32
    ws_message_timeout: float = 5.0
    ws_pong_rate: float = 2.0
    # The budget the whole process shares (core/budget.py, `Inbound`):
    # messages and control frames per second it answers from all websocket
    # clients together before it sheds the heaviest senders (those over
    # their fair share, never one sending no more than a page does); 0 turns
    # it off. 2000: 10,000 pages send ~1,350 a second (five syncs a minute,
    # a pong per WS_PING_INTERVAL), and 2,000 answered take a small part of
    # a core (docs/PERFORMANCE.md, Figures the code cites), leaving the rest
    # to the ticks.
    inbound_rate: float = 2000.0
    # Connections that do not (yet) carry a websocket: requests, keep-alive,
    # handshakes. At it the listener pauses (newcomers wait in the kernel's
    # queue) and idle, then stalled ones make room, so idle sockets cannot
    # use up the descriptors.
    max_pending_connections: int = 512
    # Of those, the ones that have not finished a request, per client
    # address (IPv4, IPv6 /64): past it a newcomer closes one of the
    # address's stalled ones, or is on probation (server/hypercorn/pending.py).
    # Peers in FORWARDED_ALLOW_IPS (trusted proxies: IPs, CIDRs, "*") are
    # exempt; a request head not whole HEAD_TIMEOUT seconds after its first
    # byte is closed (docs/SECURITY.md).
    max_pending_per_address: int = 64
    forwarded_allow_ips: TrustedProxies = LOOPBACK
    head_timeout: float = 5.0
    # HTTP/2 in clear text (prior knowledge or `Upgrade: h2c`). Off: it has
    # none of the websocket guarantees above (docs/SECURITY.md).
    http2: bool = False
    # Emit logs as JSON lines (one object per line) for log shippers.
    log_json: bool = False
    # A listening socket inherited from a supervisor (WORKERS > 1) or a
    # socket-activating service manager; overrides HOST and PORT.
    listen_fd: int | None = None
    # The public origins (scheme://host[:port]) this service is reached at.
    # Unset: any Host is served. Set: a request whose Host is none of them
    # gets 421 (DNS rebinding: a foreign name pointed at this address), and
    # these origins may open /ws like ALLOWED_ORIGINS. /healthz and /readyz are exempt.
    public_origins: frozenset[str] = frozenset()
    # Serve /metrics only on this port (on METRICS_HOST, default HOST), and
    # 404 it on the public one; unset, /metrics is on the public port.
    metrics_host: str | None = None
    metrics_port: int | None = None
    # The metrics listener inherited from a supervisor (WORKERS > 1).
    metrics_fd: int | None = None
    # Read end of a pipe whose other end only the supervisor holds: when it
    # reads end-of-file the supervisor is gone (even SIGKILLed) and this
    # worker drains and exits. Set by the supervisor, not by operators.
    supervisor_fd: int | None = None
    # NTP servers (host or host:port) to compare the local clock with, every
    # NTP_INTERVAL seconds; none by default (the kernel's own state suffices).
    ntp_servers: tuple[tuple[str, int], ...] = ()
    ntp_interval: float = 64.0
    # The clock is judged off when the NTP majority puts it further than this
    # from true time, or the kernel (synchronised) bounds its error only
    # beyond it (docs/clock.md). CLOCK_CHECK decides what /readyz makes of
    # it: "on" fails only on such positive evidence (an unverified clock
    # stays ready and is reported), "strict" fails on anything not vouched
    # for, "off" never fails for the clock.
    clock_max_error_ms: float = 250.0
    clock_check: Check = Check.ON

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def metrics_bind(self) -> str | None:
        if self.metrics_port is None:
            return None
        raw = self.host if self.metrics_host is None else self.metrics_host
        host = f"[{raw}]" if ":" in raw else raw
        return f"{host}:{self.metrics_port}"

    def frame_limits(self) -> Limits:
        """The per-connection budget; never tighter than the message limit."""
        return Limits(
            frames_per_s=max(self.ws_frame_rate, 3 * self.ws_message_rate),
            bytes_per_s=max(self.ws_byte_rate, 1024 * self.ws_message_rate),
            fragments=self.ws_max_fragments,
            message_s=self.ws_message_timeout,
            pongs_per_s=self.ws_pong_rate,
            inbound_per_s=self.inbound_rate,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()
        port = _number(env, "PORT", defaults.port, low=0, high=65535)
        metrics_port = _optional_number(env, "METRICS_PORT", low=1, high=65535)
        if metrics_port is not None and metrics_port == port:
            raise ConfigError(f"METRICS_PORT={metrics_port} must differ from PORT")
        return cls(
            host=env.get("HOST", defaults.host).strip() or defaults.host,
            port=port,
            workers=_number(env, "WORKERS", defaults.workers, low=1, high=64),
            log_level=_choice(env, "LOG_LEVEL", defaults.log_level, LOG_LEVELS),
            access_log=_bool(env, "ACCESS_LOG", defaults.access_log),
            graceful_timeout=_number(
                env, "GRACEFUL_TIMEOUT", defaults.graceful_timeout, low=0.1, high=300.0
            ),
            ws_max_message_bytes=_number(
                env, "WS_MAX_MESSAGE_BYTES", defaults.ws_max_message_bytes, low=64, high=1 << 20
            ),
            max_connections=_number(
                env, "MAX_CONNECTIONS", defaults.max_connections, low=1, high=MOST_CONNECTIONS
            ),
            allowed_origins=_origins(env, "ALLOWED_ORIGINS"),
            embed_origins=_embed_origins(env, "EMBED_ORIGINS"),
            ws_ping_interval=_number(
                env, "WS_PING_INTERVAL", defaults.ws_ping_interval, low=0.5, high=3600.0
            ),
            send_timeout=_number(env, "SEND_TIMEOUT", defaults.send_timeout, low=0.5, high=3600.0),
            loop_lag_budget=_number(
                env, "LOOP_LAG_BUDGET", defaults.loop_lag_budget, low=0.0, high=60.0
            ),
            gc_freeze=_bool(env, "GC_FREEZE", defaults.gc_freeze),
            ws_message_rate=_number(
                env, "WS_MESSAGE_RATE", defaults.ws_message_rate, low=0.1, high=1e6
            ),
            ws_frame_rate=_number(env, "WS_FRAME_RATE", defaults.ws_frame_rate, low=1.0, high=1e7),
            ws_byte_rate=_number(env, "WS_BYTE_RATE", defaults.ws_byte_rate, low=64.0, high=1e10),
            ws_max_fragments=_number(
                env, "WS_MAX_FRAGMENTS", defaults.ws_max_fragments, low=1, high=1_000_000
            ),
            ws_message_timeout=_number(
                env, "WS_MESSAGE_TIMEOUT", defaults.ws_message_timeout, low=0.1, high=3600.0
            ),
            ws_pong_rate=_number(env, "WS_PONG_RATE", defaults.ws_pong_rate, low=0.01, high=1e6),
            inbound_rate=_number(env, "INBOUND_RATE", defaults.inbound_rate, low=0.0, high=1e9),
            max_pending_connections=_number(
                env,
                "MAX_PENDING_CONNECTIONS",
                defaults.max_pending_connections,
                low=1,
                high=1_000_000,
            ),
            max_pending_per_address=_number(
                env,
                "MAX_PENDING_PER_ADDRESS",
                defaults.max_pending_per_address,
                low=1,
                high=1_000_000,
            ),
            forwarded_allow_ips=_proxies(env, "FORWARDED_ALLOW_IPS"),
            head_timeout=_number(env, "HEAD_TIMEOUT", defaults.head_timeout, low=0.1, high=3600.0),
            http2=_bool(env, "HTTP2", defaults.http2),
            log_json=_bool(env, "LOG_JSON", defaults.log_json),
            listen_fd=_optional_number(env, "LISTEN_FD", low=0, high=1 << 20),
            public_origins=_origins(env, "PUBLIC_ORIGINS", wildcard=False),
            metrics_host=_raw(env, "METRICS_HOST"),
            metrics_port=metrics_port,
            metrics_fd=_optional_number(env, "METRICS_FD", low=0, high=1 << 20),
            supervisor_fd=_optional_number(env, "SUPERVISOR_FD", low=0, high=1 << 20),
            ntp_servers=_servers(env, "NTP_SERVERS"),
            ntp_interval=_number(env, "NTP_INTERVAL", defaults.ntp_interval, low=1.0, high=1e9),
            clock_max_error_ms=_number(
                env, "CLOCK_MAX_ERROR_MS", defaults.clock_max_error_ms, low=0.001, high=1e9
            ),
            clock_check=_check(env, "CLOCK_CHECK", defaults.clock_check),
        )


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or not value.strip() else value.strip()


def _number[N: (int, float)](
    env: Mapping[str, str], name: str, default: N, *, low: N, high: N
) -> N:
    raw = _raw(env, name)
    if raw is None:
        return default
    parse = type(default)
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    if not low <= value <= high:  # also rejects nan
        raise ConfigError(f"{name}={raw} is out of range {low}..{high}")
    return value


def _optional_number(env: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
    return None if _raw(env, name) is None else _number(env, name, 0, low=low, high=high)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false, on or off)")


def _check(env: Mapping[str, str], name: str, default: Check) -> Check:
    """on, strict or off; the booleans it used to take still mean on and off."""
    raw = _raw(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return Check.ON
    if lowered in ("0", "false", "no", "off"):
        return Check.OFF
    if lowered == "strict":
        return Check.STRICT
    raise ConfigError(f"{name}={raw!r} is not one of on, strict, off")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    if raw.lower() not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return raw.lower()


def _origins(env: Mapping[str, str], name: str, *, wildcard: bool = True) -> frozenset[str]:
    raw = _raw(env, name)
    if raw is None:
        return frozenset()
    origins = set()
    for item in raw.replace(",", " ").split():
        if item == "*" and wildcard:
            origins.add(item)
            continue
        normalized = normalize_origin(item)
        if normalized is None:
            raise ConfigError(f"{name}: {item!r} is not an origin like https://clock.example")
        origins.add(normalized)
    return frozenset(origins)


# What may stand in a CSP source expression for a host: letters, digits, dots,
# hyphens (a leading "*." for subdomains), or a bracketed IPv6 address. Nothing
# that could end the directive (";", ",", quotes, spaces) reaches the header.
_CSP_ORIGIN = re.compile(r"^https?://(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:\d+)?$")


def _embed_origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Frame ancestors for /embed: `*` or origins, as for ALLOWED_ORIGINS;
    none for an empty value or `'none'` written alone."""
    if (_raw(env, name) or "").strip() == "'none'":
        return ()
    origins = _origins(env, name)
    for origin in origins:
        if origin != "*" and not _CSP_ORIGIN.match(origin):
            raise ConfigError(f"{name}: {origin!r} is not an origin like https://clock.example")
    return tuple(sorted(origins))


def _proxies(env: Mapping[str, str], name: str) -> TrustedProxies:
    if name in env and not env[name].strip():
        return TrustedProxies()  # set empty: no peer is trusted, loopback included
    raw = _raw(env, name)
    if raw is None:
        return LOOPBACK
    try:
        return TrustedProxies.parse(raw)
    except ValueError as error:
        what = "is not an IP address, a CIDR network or *"
        raise ConfigError(f"{name}: {str(error)!r} {what}") from None


def _servers(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    raw = _raw(env, name)
    if raw is None:
        return ()
    try:
        return parse_servers(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {str(error)!r} is not host, host:port or [v6]:port") from None
