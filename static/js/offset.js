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

export class OffsetEstimator {
  /** @param {number} keep how many recent samples compete (older ones age out, since device clocks drift) */
  constructor(keep = 10) {
    this.keep = keep;
    this.samples = [];
    this.fallback = null;
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

  /** The largest error the current offset can have, in ms (Infinity if unknown). */
  get uncertainty() {
    const best = this.best;
    return best ? best.rtt / 2 : Infinity;
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
    return true;
  }
}
