// When to try the websocket again, and why it failed: pure functions, no DOM
// (imported by connection.js, and by tests/js/backoff.test.mjs under Node).
//
// A browser cannot read the status of a refused websocket handshake: a server
// refusing for load (503, Retry-After) and a server that is not there both
// end in an error before open. After such an error the page asks /ws over
// plain HTTP (the probe): a server that is shedding answers 503 with
// Retry-After (the server's canned refusal, as cheap as the handshake's), one
// with room answers 426, and a stopped server answers nothing. Busy and down
// then back off differently:
// - busy: wait at least what Retry-After asked, then x4 a step up to a minute
//   (Retry-After..2x, 4x..8x, then 30-60 s), so refused pages stop costing an
//   overloaded server (docs/PERFORMANCE.md, Overload);
// - down (no answer, or a proxy's 502/504 or a 503 without Retry-After): x2 a
//   step capped at 4 s, so a restarted server is found within ~4 s whatever
//   the outage's length; a refused connect costs the server nothing;
// - up but refused for another reason (426: the server has room, or the
//   origin was refused): the long x4 schedule, as before the probe.

// After a websocket that opened (and then failed before a tick).
export const RETRY_CAP_MS = 10000;
// After a connect that never opened, refused by a server that answered.
export const NEVER_OPENED_CAP_MS = 60000;
export const NEVER_OPENED_GROWTH = 4;
// While nothing answers at all: found again within this of its return.
export const DOWN_CAP_MS = 4000;
// Retry-After beyond this is not followed (a proxy's hour-long value).
export const MAX_RETRY_AFTER_MS = 60000;

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
 * A Retry-After value in ms (delta-seconds or an HTTP date, RFC 9110
 * §10.2.3), capped; null if missing or unreadable.
 */
export function retryAfterMs(value, nowMs = Date.now()) {
  if (typeof value !== "string") return null;
  const text = value.trim();
  let ms;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const date = Date.parse(text);
    if (!/[a-z]/i.test(text) || Number.isNaN(date)) return null;
    ms = Math.max(0, date - nowMs);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

/**
 * What the probe's answer says: {kind: "busy", retryAfterMs} for the server's
 * load refusal, {kind: "refused"} for a server that answered otherwise, and
 * {kind: "down"} for no answer (null) or a proxy's word that the server is
 * not there.
 */
export function classifyProbe(response) {
  if (response === null) return { kind: "down" };
  const { status } = response;
  const wait = retryAfterMs(response.retryAfter ?? null);
  if (status === 503 && wait !== null) return { kind: "busy", retryAfterMs: wait };
  if (status === 502 || status === 503 || status === 504) return { kind: "down" };
  return { kind: "refused" };
}

/**
 * The delay before the next try after a failure of `kind`: "opened" (the
 * websocket had opened), "busy", "down", "refused" or "offline" (the browser
 * says there is no network: its "online" event retries at once anyway).
 */
export function retryDelay(kind, attempt, random = Math.random, retryAfter = 0) {
  switch (kind) {
    case "opened":
      return backoffDelay(attempt, random, 500, RETRY_CAP_MS, 2);
    case "down":
      return backoffDelay(attempt, random, 500, DOWN_CAP_MS, 2);
    case "busy":
      return Math.max(
        retryAfter,
        backoffDelay(
          attempt,
          random,
          Math.max(2 * retryAfter, 500),
          NEVER_OPENED_CAP_MS,
          NEVER_OPENED_GROWTH,
        ),
      );
    default:
      return backoffDelay(attempt, random, 500, NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH);
  }
}
