// Wires the page: server-authoritative time, painted on the true second.
import { ClockConnection } from "./connection.js";
import { OffsetEstimator, localNow } from "./offset.js";
import { ClockFace, MoscowFormat, SecondScheduler, fill, moscowParts } from "./render.js";
import { SunPanel } from "./sun.js";

const SAMPLES_PER_SYNC = 5;
const RESYNC_EVERY_MS = 60_000;
// Language, 12/24 h and every string this script shows, from the server's page.
const { lang, hours, strings } = JSON.parse(document.getElementById("page-data").textContent);
const format = new MoscowFormat(lang, hours);

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
const accuracyEl = document.getElementById("accuracy");
const fullscreenButton = document.getElementById("fullscreen");

const estimator = new OffsetEstimator();
const trueNow = () => localNow() + (estimator.offset ?? 0);
let utcOffsetS = Number(app.dataset.utcOffsetS);
const face = new ClockFace(document, strings.title);
const sun = new SunPanel(document, format, strings.dayLength, fetchSun);
const scheduler = new SecondScheduler(trueNow, (now) => {
  const parts = moscowParts(now, utcOffsetS, format);
  face.show(parts);
  sun.update(parts.ymd);
});
const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
const connection = new ClockConnection(wsUrl, { onOpen: resync, onTick, onState }, localNow);
let syncing = false;

seedFromPageLoad(Number(app.dataset.serverMs));
scheduler.refresh();
connection.start();
setInterval(resync, RESYNC_EVERY_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    scheduler.refresh();
    resync();
  }
});
setUpFullscreen();

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
  try {
    for (let i = 0; i < SAMPLES_PER_SYNC; i += 1) {
      const sample = await connection.sync();
      if (!sample) break;
      estimator.addSample(sample.t0, sample.serverMs, sample.t1);
    }
  } finally {
    syncing = false;
  }
  scheduler.refresh();
  showAccuracy();
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

function onState(state) {
  if (!statusEl || statusEl.dataset.state === state) return;
  statusEl.dataset.state = state;
  statusEl.textContent = strings[state];
}

/** How far the device clock is off, as time.is shows it. */
function showAccuracy() {
  const uncertainty = estimator.uncertainty;
  if (!accuracyEl || !Number.isFinite(uncertainty)) return;
  const errorMs = Date.now() - trueNow();
  const values = {
    uncertainty: `±${formatSeconds(uncertainty)}`,
    amount: formatSeconds(Math.abs(errorMs)),
  };
  const exact = Math.abs(errorMs) <= Math.max(uncertainty, 20);
  accuracyEl.textContent = fill(strings[exact ? "exact" : errorMs > 0 ? "ahead" : "behind"], values);
}

/** A duration with CLDR's unit names in the page's language ("5 ms", "5 мс"). */
function formatSeconds(ms) {
  const unit = (value, name, digits) =>
    new Intl.NumberFormat(lang, {
      style: "unit", unit: name, unitDisplay: "short",
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(value);
  if (ms < 1000) return ms < 10 ? unit(ms, "millisecond", 1) : unit(Math.round(ms), "millisecond", 0);
  const s = ms / 1000;
  if (s < 10) return unit(s, "second", 2);
  if (s < 120) return unit(s, "second", 1);
  const minutes = Math.round(s / 60);
  return minutes < 120 ? unit(minutes, "minute", 0) : unit(minutes / 60, "hour", 1);
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
