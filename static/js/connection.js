// A websocket to the server that reconnects by itself, and the sync
// request/reply on top of it. When to retry, and telling a busy server from
// one that is down, is backoff.js.
import {
  NEVER_OPENED_CAP_MS,
  NEVER_OPENED_GROWTH,
  RETRY_CAP_MS,
  backoffDelay,
  classifyProbe,
  retryDelay,
} from "./backoff.js";

export { NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH, RETRY_CAP_MS, backoffDelay };

// The probe answers at once or the server is not there for this page.
const PROBE_TIMEOUT_MS = 5000;

/**
 * The spread a server going away asked for (1001, "... reconnect within N ms"),
 * capped at 30 s; 0 if it asked for none. A restart of a busy server would
 * otherwise bring every page back within the same half second.
 */
export function reconnectWithinMs(code, reason) {
  const asked = code === 1001 && /reconnect within (\d+) ms/.exec(reason || "");
  return asked ? Math.min(30000, Number(asked[1])) : 0;
}

export class ClockConnection {
  /**
   * @param {string} url websocket URL
   * @param {object} handlers onOpen(), onTick(tick, receivedAt), onState(state)
   * @param {() => number} now the local monotonic clock, in epoch ms
   */
  constructor(
    url,
    handlers,
    now,
    { silenceMs = 4500, connectTimeoutMs = 15000, syncTimeoutMs = 3000 } = {},
  ) {
    this.url = url;
    this.handlers = handlers;
    this.now = now;
    this.silenceMs = silenceMs;
    // A connect still waiting for the server's answer is in its queue: giving
    // up after 4.5 s (and coming back) only wasted the work it was about to do.
    this.connectTimeoutMs = connectTimeoutMs;
    this.syncTimeoutMs = syncTimeoutMs;
    this.socket = null;
    this.attempt = 0;
    this.opened = false; // the current (or last) socket opened
    this.watchdog = null;
    this.retry = null;
    this.pending = new Map();
    this.heardAt = Date.now(); // wall clock: it keeps running while the device sleeps
    // Why the last connects failed ("busy", "down", ...): each kind has its
    // own schedule, and a change of kind starts it from the beginning.
    this.failure = null;
    this.probeUrl = url.replace(/^ws/, "http");
  }

  start() {
    this.connect("connecting");
  }

  connect(state) {
    clearTimeout(this.retry);
    this.retry = null;
    this.handlers.onState(this.failure === "busy" && state === "reconnecting" ? "busy" : state);
    this.opened = false;
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.retryLater();
      return;
    }
    this.socket = socket;
    this.feedWatchdog(this.connectTimeoutMs); // bounds a connect that never completes
    socket.onopen = () => {
      this.opened = true;
      this.heardAt = Date.now();
      this.handlers.onState("live");
      this.feedWatchdog();
      this.handlers.onOpen();
    };
    socket.onmessage = (event) => this.receive(event.data, this.now());
    socket.onclose = (event) =>
      this.lost(socket, { spreadMs: reconnectWithinMs(event.code, event.reason) });
    socket.onerror = () => this.lost(socket);
  }

  receive(data, receivedAt) {
    this.heardAt = Date.now();
    this.feedWatchdog();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "tick") {
      // Only a ticking connection counts as healthy: a server that accepts
      // and closes at once (draining) keeps the backoff growing.
      this.attempt = 0;
      this.failure = null;
      this.handlers.onTick(message, receivedAt);
    } else if (message.type === "sync") {
      const waiter = this.pending.get(message.t0);
      if (waiter) {
        const errorMs = message.error_ms ?? null;
        waiter({ t0: message.t0, serverMs: message.server_ms, t1: receivedAt, errorMs, clock: message.clock ?? null });
      }
    }
  }

  /** One sync round trip; resolves to {t0, serverMs, t1}, or null on failure. */
  sync() {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return Promise.resolve(null);
    const t0 = this.now();
    return new Promise((resolve) => {
      const done = (sample) => {
        clearTimeout(timer);
        this.pending.delete(t0);
        resolve(sample);
      };
      const timer = setTimeout(() => done(null), this.syncTimeoutMs);
      this.pending.set(t0, done);
      try {
        socket.send(JSON.stringify({ type: "sync", t0 }));
      } catch {
        done(null);
      }
    });
  }

  feedWatchdog(ms = this.silenceMs) {
    clearTimeout(this.watchdog);
    // Ticks come every second; silence means a dead link that may never
    // report a close (a laptop that changed networks, a stalled proxy).
    this.watchdog = setTimeout(() => this.lost(this.socket), ms);
  }

  lost(socket, { now = false, spreadMs = 0 } = {}) {
    if (socket !== this.socket) return; // an old socket's late event
    this.socket = null;
    clearTimeout(this.watchdog);
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (socket.readyState !== WebSocket.CLOSED) socket.close();
    for (const waiter of this.pending.values()) waiter(null);
    if (now) this.connect("reconnecting");
    else this.retryLater(spreadMs);
  }

  /**
   * After a suspend or a freeze: timers (the watchdog, a pending retry) ran
   * on the monotonic clock, which stood still, so they would fire late. A
   * socket that has not been heard from for longer than the watchdog allows,
   * by the wall clock, is dead: reconnect now rather than when they fire.
   */
  revive() {
    const socket = this.socket;
    if (!socket) {
      this.attempt = 0;
      this.connect("reconnecting");
    } else if (socket.readyState > WebSocket.OPEN || Date.now() - this.heardAt > this.silenceMs) {
      this.attempt = 0;
      this.lost(socket, { now: true });
    }
  }

  /** The network is back ("online"): try now rather than wait out the backoff. */
  retryNow() {
    if (this.socket === null && this.retry !== null) this.connect("reconnecting");
  }

  retryLater(spreadMs = 0) {
    if (spreadMs > 0) {
      this.handlers.onState("reconnecting");
      this.schedule(Math.random() * spreadMs);
    } else if (this.opened) {
      this.handlers.onState("reconnecting");
      this.schedule(retryDelay(this.failedAs("opened"), this.attempt++));
    } else {
      this.probeThenRetry(); // the state stays as connect() set it until the probe answers
    }
  }

  /**
   * A connect failed before it opened: ask /ws over plain HTTP whether the
   * server is busy (503 with Retry-After), there but refusing us, or not
   * there at all, and wait as that kind of failure asks (backoff.js).
   */
  async probeThenRetry() {
    const probe = {};
    this.retry = probe; // a pending retry for retryNow(), cleared by connect()
    let outcome;
    if (globalThis.navigator?.onLine === false) outcome = { kind: "offline" };
    else outcome = classifyProbe(await this.probe());
    if (this.retry !== probe || this.socket !== null) return; // overtaken meanwhile
    const kind = this.failedAs(outcome.kind);
    this.handlers.onState(kind === "busy" ? "busy" : "reconnecting");
    this.schedule(retryDelay(kind, this.attempt++, Math.random, outcome.retryAfterMs ?? 0));
  }

  async probe() {
    try {
      // Credentials as the websocket's own (an auth proxy in front sees the same).
      const response = await fetch(this.probeUrl, {
        cache: "no-store",
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      return { status: response.status, retryAfter: response.headers.get("Retry-After") };
    } catch {
      return null; // no answer: the server (or the network to it) is down
    }
  }

  /** Records the kind of this failure; a new kind starts its schedule afresh. */
  failedAs(kind) {
    if (kind !== this.failure) this.attempt = 0;
    this.failure = kind;
    return kind;
  }

  schedule(delayMs) {
    this.retry = setTimeout(() => this.connect("reconnecting"), delayMs);
  }
}
