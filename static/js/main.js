// Wires the page: server-authoritative time, painted on the true second.
import { accuracyLine, serverClockFromDataset, serverClockFromWire } from "./accuracy.js";
import { ClockConnection } from "./connection.js";
import { countdownLines, countdownTarget } from "./countdown.js";
import { DifferenceLine } from "./difference.js";
import { setUpWallScreen } from "./kiosk.js";
import { OfflineShell, browserStorage } from "./offline.js";
import { OffsetEstimator, localNow } from "./offset.js";
import { ClockFace, MoscowFormat, SecondScheduler, moscowParts } from "./render.js";
import { rememberChoices } from "./settings.js";
import { pageData } from "./strings.js";
import { SunPanel } from "./sun.js";
import { hoursMinutesText } from "./units.js";

const SAMPLES_PER_SYNC = 5;
const RESYNC_EVERY_MS = 60_000;
// A suspend is noticed by the wall clock running ahead of the monotonic one
// (which stops while the device sleeps on some platforms) between checks.
const SUSPEND_CHECK_MS = 250;
const SUSPEND_MIN_MS = 1000;
// Language, 12/24 h and every string this script (and kiosk.js, offline.js)
// shows, from the server's page: /, and /embed with fewer elements.
const { lang, hours, flexibleDayPeriods, strings, countdown: serverCountdown } = pageData(document);
// Seconds off: ?seconds=0 or remembered (the server's page, or static/js/boot.js).
const seconds = document.documentElement.dataset.seconds !== "0";
const format = new MoscowFormat(lang, hours, seconds, flexibleDayPeriods);

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
const accuracyEl = document.getElementById("accuracy");
const fullscreenButton = document.getElementById("fullscreen");
const offline = new OfflineShell(app, strings, { hours, flexibleDayPeriods });

const estimator = new OffsetEstimator();
estimator.setServerError(parseFloat(app.dataset.serverErrorMs));
let serverClock = serverClockFromDataset(app.dataset);
const trueNow = () => localNow() + (estimator.offset ?? 0);
let utcOffsetS = Number(app.dataset.utcOffsetS);
const face = new ClockFace(document, strings.title);
const dayLength = ({ hours: h, minutes }) => hoursMinutesText(strings.units, h * 60 + minutes, lang);
const sun = new SunPanel(document, format, dayLength, fetchSun);
const difference = new DifferenceLine(document.getElementById("difference"), strings, lang);
const countdownEl = document.getElementById("countdown");
// A page from the offline cache carries the server's countdown of another visit: the URL decides.
const countdown = countdownTarget(
  offline.fromCache ? null : serverCountdown, location.search, utcOffsetS, strings, lang,
  (epochMs, offsetS) => format.shortTime(epochMs, offsetS),
);
const scheduler = new SecondScheduler(trueNow, (now) => {
  const parts = moscowParts(now, utcOffsetS, format);
  face.show(parts);
  sun.update(parts.ymd);
  difference.update(now, utcOffsetS);
  showCountdown(parts.secondMs);
});
const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
const connection = new ClockConnection(wsUrl, { onOpen: resync, onTick, onState }, localNow);
let syncing = false;
let connectionState = "connecting";

// A page from the service worker's cache carries an old server time: it runs
// on the offset measured last time instead (or the bare device clock).
if (offline.fromCache) estimator.fallback = offline.restoreOffset(localNow());
else seedFromPageLoad(Number(app.dataset.serverMs));
scheduler.refresh();
connection.start();
offline.registerWorker();
addEventListener("online", () => connection.retryNow());
addEventListener("offline", () => onState(connectionState));
setInterval(resync, RESYNC_EVERY_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    if (!checkForSuspend()) {
      scheduler.refresh();
      resync();
    }
  }
});
let lastCheck = { wall: Date.now(), mono: performance.now() };
setInterval(checkForSuspend, SUSPEND_CHECK_MS);
// A frozen tab (Chromium freezes hidden ones) or a page back from the
// back/forward cache missed ticks and may have lost its socket.
document.addEventListener("resume", () => checkForSuspend() || wake(0));
window.addEventListener("pageshow", (event) => {
  if (event.persisted) checkForSuspend() || wake(0);
});
setUpFullscreen();
rememberChoices(document, browserStorage());
// The full page only: /embed is a widget inside someone else's page, with no
// controls, no kiosk mode and no wake lock of its own.
const keepAwakeButton = document.getElementById("keep-awake");
if (keepAwakeButton) {
  setUpWallScreen({ app, button: keepAwakeButton, notice: document.getElementById("notice"), strings });
}

/**
 * The page's own HTTP request is the first sample: the server stamped
 * data-server-ms between the request start and the first response byte.
 */
function seedFromPageLoad(serverMs) {
  const [nav] = performance.getEntriesByType("navigation");
  if (nav && nav.responseStart > 0) {
    const origin = performance.timeOrigin;
    estimator.addSample(origin + nav.requestStart, serverMs, origin + nav.responseStart);
  } else {
    estimator.fallback = serverMs - localNow();
  }
}

/** A burst of sequential round trips; the lowest-latency one sets the offset. */
async function resync() {
  if (syncing) return;
  syncing = true;
  let synced = 0;
  try {
    for (let i = 0; i < SAMPLES_PER_SYNC; i += 1) {
      const sample = await connection.sync();
      if (!sample) break;
      estimator.setServerError(sample.errorMs);
      serverClock = serverClockFromWire(sample.clock, sample.errorMs);
      if (estimator.addSample(sample.t0, sample.serverMs, sample.t1)) synced += 1;
    }
  } finally {
    syncing = false;
  }
  if (synced > 0) offline.synced(trueNow(), Date.now(), estimator.uncertainty);
  scheduler.refresh();
  showAccuracy();
}

/** Re-anchor at once if the device slept since the last check; true if it did. */
function checkForSuspend() {
  const now = { wall: Date.now(), mono: performance.now() };
  const stalledMs = now.wall - lastCheck.wall - (now.mono - lastCheck.mono);
  lastCheck = now;
  if (stalledMs < SUSPEND_MIN_MS) return false;
  wake(stalledMs);
  return true;
}

/**
 * Back from a suspend or a freeze: carry the offset across the gap (the best
 * estimate until measured again), show it, reconnect at once if the socket
 * is dead, and re-sync.
 */
function wake(stalledMs) {
  if (stalledMs > 0) estimator.reanchor(stalledMs);
  scheduler.refresh();
  showAccuracy();
  connection.revive();
  resync();
}

function onTick(tick, receivedAt) {
  if (Number.isFinite(tick.utc_offset_s)) utcOffsetS = tick.utc_offset_s;
  if (estimator.observeTick(tick.epoch_ms, receivedAt)) resync();
  scheduler.refresh();
}

async function fetchSun() {
  const response = await fetch("/api/time", { cache: "no-store" });
  return response.ok ? (await response.json()).sun : null;
}

function showCountdown(secondMs) {
  if (!countdownEl || !countdown) return;
  const lines = countdownLines(countdown, secondMs, strings, lang);
  for (const [id, text] of [["countdown-label", lines.label], ["countdown-left", lines.left]]) {
    const line = document.getElementById(id);
    if (line.textContent !== text) line.textContent = text;
  }
  countdownEl.hidden = false;
}

function onState(state) {
  connectionState = state;
  if (!statusEl) return;
  const offlineText = offline.statusText(state, trueNow(), utcOffsetS);
  const shown = offlineText ? "offline" : state;
  const text = offlineText ?? strings[state] ?? "";
  if (statusEl.dataset.state !== shown) statusEl.dataset.state = shown;
  if (statusEl.textContent !== text) statusEl.textContent = text;
}

/** The accuracy line (accuracy.js): the device against the server, and the server's own error. */
function showAccuracy() {
  if (!accuracyEl) return;
  const transportMs = estimator.uncertainty - (estimator.serverError ?? 0);
  const line = accuracyLine({ deviceMs: Date.now() - trueNow(), transportMs, server: serverClock }, strings, lang);
  if (!line) return;
  if (accuracyEl.dataset.state !== line.state) accuracyEl.dataset.state = line.state;
  if (accuracyEl.textContent !== line.text) accuracyEl.textContent = line.text;
}

function setUpFullscreen() {
  if (!fullscreenButton || !document.fullscreenEnabled) return;
  fullscreenButton.hidden = false;
  fullscreenButton.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen();
  });
  document.addEventListener("fullscreenchange", () => {
    fullscreenButton.textContent = strings[document.fullscreenElement ? "exitFullscreen" : "fullscreen"];
  });
}
