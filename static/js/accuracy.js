// The accuracy line: how far the device clock is from the server's, and how
// far the server's own clock may be from true time — never claiming more
// than the bounds say.
//
// The server tells its clock's state (docs/clock.md) in the page's data
// attributes and in every sync reply: "synchronised" (vouched for, within
// bound_ms of true time), "unverified" (nothing vouches for it; it may be
// off by up to bound_ms, or by an unknown amount when that is null) or
// "off" (NTP servers show it off by offset_ms: true minus the server's, so
// positive means the server is behind).
import { fill } from "./strings.js";
import { durationText } from "./units.js";

// A device clock within this of true time (and within the bound) is "exact";
// a bound wider than this may not be called exact, only "within ±".
export const EXACT_WITHIN_MS = 250;
// Below this the round trip, not the clock, decides: a few ms are "exact".
const NOISE_MS = 20;

const STATES = new Set(["synchronised", "unverified", "off"]);

/** The server's clock from the page's data attributes (data-clock-*). */
export function serverClockFromDataset(dataset) {
  return serverClockFromWire(
    { status: dataset.clockStatus, bound_ms: parseMs(dataset.clockBoundMs), offset_ms: parseMs(dataset.clockOffsetMs) },
    parseMs(dataset.serverErrorMs),
  );
}

/**
 * The server's clock from a sync reply's `clock` and `error_ms`; an older
 * server sends only error_ms (a number: vouched for; null: not).
 */
export function serverClockFromWire(clock, errorMs) {
  const number = (value) => (Number.isFinite(value) && value >= 0 ? value : null);
  if (clock && STATES.has(clock.status)) {
    return {
      status: clock.status,
      boundMs: number(clock.bound_ms),
      offsetMs: Number.isFinite(clock.offset_ms) ? clock.offset_ms : null,
    };
  }
  const bound = number(errorMs);
  return { status: bound === null ? "unverified" : "synchronised", boundMs: bound, offsetMs: null };
}

function parseMs(text) {
  return text === undefined || text === "" ? null : Number(text);
}

/**
 * {state, text} for the accuracy line, or null when nothing is measured yet.
 * deviceMs: the device clock minus the server's (positive: the device is
 * ahead); transportMs: how far that measurement may be off (half the best
 * round trip); server: serverClockFrom*().
 */
export function accuracyLine({ deviceMs, transportMs, server }, strings, lang) {
  if (!Number.isFinite(deviceMs) || !Number.isFinite(transportMs)) return null;
  const duration = (ms) => formatDuration(ms, strings, lang);
  if (server.status === "synchronised" && server.boundMs !== null) {
    const bound = transportMs + server.boundMs;
    const values = { uncertainty: `±${duration(bound)}`, amount: duration(Math.abs(deviceMs)) };
    if (Math.abs(deviceMs) <= Math.max(bound, NOISE_MS)) {
      const exact = bound <= EXACT_WITHIN_MS;
      return { state: exact ? "exact" : "within", text: fill(strings[exact ? "exact" : "within"], values) };
    }
    return { state: "off", text: fill(strings[deviceMs > 0 ? "ahead" : "behind"], values) };
  }
  // Not vouched for: the device against the server, then the server's own error.
  const values = { uncertainty: `±${duration(transportMs)}`, amount: duration(Math.abs(deviceMs)) };
  const agrees = Math.abs(deviceMs) <= Math.max(transportMs, NOISE_MS);
  const device = fill(strings[agrees ? "agreesWithServer" : deviceMs > 0 ? "aheadOfServer" : "behindServer"], values);
  let serverText;
  if (server.status === "off" && server.offsetMs !== null) {
    const key = server.offsetMs > 0 ? "serverBehind" : "serverAhead";
    serverText = fill(strings[key], { amount: duration(Math.abs(server.offsetMs)) });
  } else if (server.status === "off") {
    serverText = fill(strings.serverNotExact, { bound: duration(server.boundMs ?? Infinity) });
  } else if (server.boundMs !== null) {
    serverText = fill(strings.serverMayBeOff, { bound: duration(server.boundMs) });
  } else {
    serverText = strings.serverUnbounded;
  }
  return { state: server.status === "off" ? "server-off" : "unverified", text: `${device} ${serverText}` };
}

/** A duration in the page's language, plural forms and all (units.js); "?" when unbounded. */
export function formatDuration(ms, strings, lang) {
  return Number.isFinite(ms) ? durationText(strings.units, ms, lang) : "?";
}
