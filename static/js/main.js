// Wires the page: server-authoritative time, painted on the true second.
import { ClockConnection } from "./connection.js";
import { setUpWallScreen } from "./kiosk.js";
import { OfflineShell } from "./offline.js";
import { OffsetEstimator, localNow } from "./offset.js";
import { ClockFace, SecondScheduler, moscowParts } from "./render.js";
import { pageStrings } from "./strings.js";

const SAMPLES_PER_SYNC = 5;
const RESYNC_EVERY_MS = 60_000;
// A suspend is noticed by the wall clock running ahead of the monotonic one
// (which stops while the device sleeps on some platforms) between checks.
const SUSPEND_CHECK_MS = 250;
const SUSPEND_MIN_MS = 1000;
const STATUS_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting… the clock keeps running",
};

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
const accuracyEl = document.getElementById("accuracy");
const fullscreenButton = document.getElementById("fullscreen");
const strings = pageStrings(document);
const offline = new OfflineShell(app, strings);

const accuracyText = accuracyEl.dataset; // the sentences, from the server's page
const estimator = new OffsetEstimator();
estimator.setServerError(parseFloat(app.dataset.serverErrorMs));
const trueNow = () => localNow() + (estimator.offset ?? 0);
let utcOffsetS = Number(app.dataset.utcOffsetS);
const face = new ClockFace(document);
const scheduler = new SecondScheduler(trueNow, (now) => face.show(moscowParts(now, utcOffsetS)));
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
setUpWallScreen({
  app,
  button: document.getElementById("keep-awake"),
  notice: document.getElementById("notice"),
  strings,
});

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

function onState(state) {
  connectionState = state;
  const offlineText = offline.statusText(state, trueNow(), utcOffsetS);
  const shown = offlineText ? "offline" : state;
  const text = offlineText ?? STATUS_TEXT[state];
  if (statusEl.dataset.state !== shown) statusEl.dataset.state = shown;
  if (statusEl.textContent !== text) statusEl.textContent = text;
}

/**
 * How far the device clock is off, as time.is shows it, within the round
 * trip and the server's own error. A server that cannot vouch for its time
 * judges no one's clock.
 */
function showAccuracy() {
  if (!estimator.verified) {
    accuracyEl.dataset.state = "unverified";
    accuracyEl.textContent = accuracyText.unverified;
    return;
  }
  const uncertainty = estimator.uncertainty;
  if (!Number.isFinite(uncertainty)) return;
  const errorMs = Date.now() - trueNow();
  const exact = Math.abs(errorMs) <= Math.max(uncertainty, 20);
  const template = exact ? accuracyText.exact : errorMs > 0 ? accuracyText.ahead : accuracyText.behind;
  accuracyEl.dataset.state = exact ? "exact" : "off";
  accuracyEl.textContent = template
    .replace("{amount}", formatSeconds(Math.abs(errorMs)))
    .replace("{bound}", formatSeconds(uncertainty));
}

function formatSeconds(ms) {
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 120) return `${s.toFixed(1)} s`;
  const minutes = Math.round(s / 60);
  return minutes < 120 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}

function setUpFullscreen() {
  if (!document.fullscreenEnabled) return;
  fullscreenButton.hidden = false;
  fullscreenButton.addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen();
  });
  document.addEventListener("fullscreenchange", () => {
    fullscreenButton.textContent = document.fullscreenElement ? "Exit full screen" : "Full screen";
  });
}
