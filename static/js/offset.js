// The device-to-server clock offset, estimated NTP-style.
//
// Each sample is one request/reply: sent at local t0, stamped by the server at
// serverMs, received at local t1. Assuming the server stamped it halfway
// through the round trip, offset = serverMs + rtt/2 - t1, with an error of at
// most rtt/2. The sample with the lowest round trip is the most precise, so
// that one wins. Local times come from a monotonic clock, so changes to the
// device clock after the page loaded cannot disturb the estimate.

/** Local time in epoch ms on a monotonic clock. */
export const localNow = () => performance.timeOrigin + performance.now();

// How well a device keeps time while asleep: 500 ppm, the frequency
// tolerance NTP (and the kernel's error estimate) assumes of any clock.
export const SLEEP_DRIFT = 500e-6;

export class OffsetEstimator {
  /** @param {number} keep how many recent samples compete (older ones age out, since device clocks drift) */
  constructor(keep = 10) {
    this.keep = keep;
    this.samples = [];
    this.fallback = null;
    this.fallbackUncertainty = Infinity;
    // The server's own error bound from its latest reply: a number of ms, or
    // null when the server cannot vouch for its time (unsynchronised, unknown).
    this.serverError = null;
  }

  /** The server can vouch for its time, so the device clock can be judged. */
  get verified() {
    return Number.isFinite(this.serverError);
  }

  /** What the server said about its own clock (error_ms; null: not verified). */
  setServerError(errorMs) {
    this.serverError = Number.isFinite(errorMs) && errorMs >= 0 ? errorMs : null;
  }

  /** Add one round trip; returns false for a sample that makes no sense. */
  addSample(t0, serverMs, t1) {
    const rtt = t1 - t0;
    if (![t0, serverMs, t1].every(Number.isFinite) || rtt < 0) return false;
    this.samples.push({ offset: serverMs + rtt / 2 - t1, rtt, at: t1 });
    if (this.samples.length > this.keep) this.samples.shift();
    return true;
  }

  /** The lowest-round-trip sample (the newest among equals), or null. */
  get best() {
    let best = null;
    for (const sample of this.samples) {
      if (best === null || sample.rtt <= best.rtt) best = sample;
    }
    return best;
  }

  /** Milliseconds to add to localNow() to get the server's time, or null. */
  get offset() {
    const best = this.best;
    return best ? best.offset : this.fallback;
  }

  /**
   * The largest error the current offset can have, in ms (Infinity if
   * unknown): half the best round trip, plus the server's own error bound.
   */
  get uncertainty() {
    const best = this.best;
    const transport = best ? best.rtt / 2 : this.fallbackUncertainty;
    return transport + (this.serverError ?? 0);
  }

  /**
   * The device was suspended (or its monotonic clock stalled) for stalledMs
   * while its wall clock ran on: every sample is stale by that much. Drop
   * them and carry the offset across the gap, trusting the wall clock for the
   * gap (to SLEEP_DRIFT), until a re-sync measures it again.
   */
  reanchor(stalledMs) {
    const offset = this.offset;
    if (offset === null || !Number.isFinite(stalledMs)) return;
    const best = this.best;
    const before = best ? best.rtt / 2 : this.fallbackUncertainty;
    this.samples = [];
    this.fallback = offset + stalledMs;
    this.fallbackUncertainty = before + Math.abs(stalledMs) * SLEEP_DRIFT;
  }

  /**
   * A tick for epochMs arrived at local time receivedAt. The server's clock
   * had passed epochMs by then, so the true offset is at least
   * epochMs - receivedAt. If the estimate is below that bound it is provably
   * wrong (the device slept, or its monotonic clock jumped): drop the old
   * samples, use the bound, and return true so the caller re-syncs.
   */
  observeTick(epochMs, receivedAt) {
    const bound = epochMs - receivedAt;
    const offset = this.offset;
    if (!Number.isFinite(bound) || (offset !== null && offset >= bound)) return false;
    this.samples = [];
    this.fallback = bound;
    this.fallbackUncertainty = Infinity; // a bound, not an estimate
    return true;
  }
}
