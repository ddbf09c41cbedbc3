// Offline: the service worker, and the last measured offset kept across
// visits, so that a page opened without a network still shows the true time
// (the device clock corrected by that offset) and says how old it is.

import { fill } from "./strings.js";

const KEY = "moscow-clock:offset";
const FORMAT = 1;
// Beyond these a stored value is not a measurement but damage.
const MAX_OFFSET_MS = 366 * 86_400_000;
const MAX_UNCERTAINTY_MS = 3_600_000;
const EARLIEST_SYNC_MS = Date.UTC(2024, 0, 1);
// A sync "in the future" of the corrected device clock by more than this
// means the device clock was set back since: its offset no longer applies.
const FUTURE_TOLERANCE_MS = 60_000;

/** window.localStorage, or null where it is disabled (private modes, blocked storage). */
export function browserStorage() {
  try {
    return window.localStorage ?? null;
  } catch {
    return null;
  }
}

/**
 * The offset between true time and this device's wall clock (Date.now()),
 * as last measured: {offsetMs, uncertaintyMs, syncedAt (true epoch ms)}.
 * Storage may be missing, full or hold anything: it never throws.
 */
export class OffsetStore {
  constructor(storage) {
    this.storage = storage;
  }

  /** The stored measurement, or null if there is none or it cannot be right. */
  load(deviceNow = Date.now()) {
    let raw;
    try {
      raw = this.storage?.getItem(KEY) ?? null;
    } catch {
      return null;
    }
    if (raw === null) return null;
    const value = parseMeasurement(raw);
    if (value === null) {
      this.clear(); // corrupted: do not trip over it on every visit
      return null;
    }
    if (value.syncedAt > deviceNow + value.offsetMs + FUTURE_TOLERANCE_MS) return null;
    return value;
  }

  /** Returns false when it could not be stored (no storage, quota full). */
  save(offsetMs, uncertaintyMs, syncedAt) {
    const value = { v: FORMAT, offsetMs, uncertaintyMs, syncedAt };
    if (parseMeasurement(JSON.stringify(value)) === null) return false;
    try {
      this.storage.setItem(KEY, JSON.stringify(value));
      return true;
    } catch {
      return false;
    }
  }

  clear() {
    try {
      this.storage?.removeItem(KEY);
    } catch {
      // nothing to do: storage is unusable
    }
  }
}

function parseMeasurement(raw) {
  let value;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object" || value.v !== FORMAT) return null;
  const { offsetMs, uncertaintyMs, syncedAt } = value;
  if (![offsetMs, uncertaintyMs, syncedAt].every(Number.isFinite)) return null;
  if (Math.abs(offsetMs) > MAX_OFFSET_MS) return null;
  if (uncertaintyMs < 0 || uncertaintyMs > MAX_UNCERTAINTY_MS) return null;
  if (syncedAt < EARLIEST_SYNC_MS) return null;
  return { offsetMs, uncertaintyMs, syncedAt };
}

/**
 * "When" for "last synchronised <when>": the Moscow wall time of syncedAt,
 * with the date too if that was another day, in the page's language.
 */
export function formatSyncedAt(syncedAt, nowMs, utcOffsetS, locale, hours = 24, flexibleDayPeriods = false) {
  const shift = utcOffsetS * 1000;
  const day = (ms) => Math.floor((ms + shift) / 86_400_000);
  const hourCycle = hours === 12 ? "h12" : "h23";
  // 12 h as the face writes it: "8:05 PM", «8:05 вечера» (render.js's MoscowFormat).
  const hour = hours === 12 ? "numeric" : "2-digit";
  const options = { hour, minute: "2-digit", hourCycle, timeZone: "UTC" };
  if (hours === 12 && flexibleDayPeriods) options.dayPeriod = "long";
  if (day(syncedAt) !== day(nowMs)) Object.assign(options, { day: "numeric", month: "long" });
  try {
    return new Intl.DateTimeFormat(locale || undefined, options).format(syncedAt + shift);
  } catch {
    return new Intl.DateTimeFormat(undefined, options).format(syncedAt + shift);
  }
}

/**
 * What the page knows about being offline: whether it came from the service
 * worker's cache, the last sync, and what the status line should then say.
 */
export class OfflineShell {
  constructor(
    app,
    strings,
    {
      store = new OffsetStore(browserStorage()), nav = navigator, hours = 24, flexibleDayPeriods = false,
    } = {},
  ) {
    this.app = app;
    this.strings = strings;
    this.hours = hours;
    this.flexibleDayPeriods = flexibleDayPeriods;
    this.store = store;
    this.nav = nav;
    // The worker marks a page it served from its cache: its server time is old.
    this.fromCache = app.dataset.source === "cache";
    this.lastSyncAt = null;
    this.restored = null;
  }

  /**
   * For a cached page: the offset to add to localNow() (the stored one, else
   * 0: the device clock, said to be unverified). Call before the first paint.
   */
  restoreOffset(localNowMs, deviceNowMs = Date.now()) {
    this.restored = this.store.load(deviceNowMs);
    if (this.restored) this.lastSyncAt = this.restored.syncedAt;
    this.app.dataset.source = this.restored ? "cache-corrected" : "cache-unverified";
    // offsetMs is relative to Date.now(); the page's clock is localNow().
    return (this.restored?.offsetMs ?? 0) + (deviceNowMs - localNowMs);
  }

  /** A sync burst succeeded: remember it, for this page and the next visit. */
  synced(trueNowMs, deviceNowMs, uncertaintyMs) {
    this.fromCache = false;
    this.lastSyncAt = trueNowMs;
    this.store.save(trueNowMs - deviceNowMs, uncertaintyMs, trueNowMs);
  }

  /** The status text for a connection state, or null when not offline. */
  statusText(state, trueNowMs, utcOffsetS) {
    if (state === "live") {
      this.fromCache = false;
      return null;
    }
    if (!this.fromCache && this.nav.onLine !== false) return null;
    if (this.lastSyncAt === null) return this.strings.offlineUnverified ?? null;
    const lang = document.documentElement.lang;
    const when = formatSyncedAt(
      this.lastSyncAt, trueNowMs, utcOffsetS, lang, this.hours, this.flexibleDayPeriods,
    );
    return this.strings.offline ? fill(this.strings.offline, { when }) : null;
  }

  /** Install the service worker; without one the page still works online. */
  registerWorker() {
    const url = this.app.dataset.serviceWorker;
    if (!url || !("serviceWorker" in this.nav)) return;
    try {
      this.nav.serviceWorker
        .register(url, { scope: "/", updateViaCache: "none" })
        .catch(() => {});
    } catch {
      // a sandboxed or opaque-origin page: no worker, no offline copy
    }
  }
}
