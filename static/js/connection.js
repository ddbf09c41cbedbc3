// A websocket to the server that reconnects by itself, and the sync
// request/reply on top of it.

// The backoff's cap after a connection that opened (and then failed before
// a tick), and after one that never opened. A page cannot tell a handshake
// the server refused for load (503, Retry-After) from a server that is down:
// both are an error before open. An overloaded server is answering every
// such retry, so those wait up to a minute; a connection that was up is
// more likely a blip, and comes back sooner. Connects that never open also
// back off faster (x4 a step instead of x2: retries after ~0.4, 1.9, 7.9,
// 32 s, then every 30-60 s): with doubling, ten thousand refused pages each
// came back five times in their first 12 s, and that traffic alone stalled
// an overloaded server (docs/PERFORMANCE.md, Overload).
export const RETRY_CAP_MS = 10000;
export const NEVER_OPENED_CAP_MS = 60000;
export const NEVER_OPENED_GROWTH = 4;

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped,
 * with "equal jitter" so a thousand pages cut off by one restart don't all
 * come back in the same millisecond.
 */
export function backoffDelay(
  attempt,
  random = Math.random,
  baseMs = 500,
  capMs = RETRY_CAP_MS,
  growth = 2,
) {
  const ceiling = Math.min(capMs, baseMs * growth ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}

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
  }

  start() {
    this.connect("connecting");
  }

  connect(state) {
    clearTimeout(this.retry);
    this.handlers.onState(state);
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
    this.handlers.onState("reconnecting");
    const [cap, growth] = this.opened
      ? [RETRY_CAP_MS, 2]
      : [NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH];
    const delay =
      spreadMs > 0
        ? Math.random() * spreadMs
        : backoffDelay(this.attempt++, Math.random, 500, cap, growth);
    this.retry = setTimeout(() => this.connect("reconnecting"), delay);
  }
}
