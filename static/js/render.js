// Turns the true time into what the page shows, and repaints it exactly when
// the true second changes.

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December",
];

const pad = (n) => String(n).padStart(2, "0");

/**
 * The Moscow wall time for a true epoch-ms instant. The zone offset comes from
 * the server (tzdata there), not from the browser's zone database.
 */
export function moscowParts(trueMs, utcOffsetS) {
  const secondMs = Math.floor(trueMs / 1000) * 1000;
  const wall = new Date(secondMs + utcOffsetS * 1000);
  const hms = `${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}:${pad(wall.getUTCSeconds())}`;
  const ymd = `${wall.getUTCFullYear()}-${pad(wall.getUTCMonth() + 1)}-${pad(wall.getUTCDate())}`;
  const sign = utcOffsetS < 0 ? "-" : "+";
  const abs = Math.abs(utcOffsetS);
  const zone = `${sign}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}`;
  return {
    secondMs,
    hms,
    iso: `${ymd}T${hms}${zone}`,
    date: `${WEEKDAYS[wall.getUTCDay()]}, ${wall.getUTCDate()} ${MONTHS[wall.getUTCMonth()]} ${wall.getUTCFullYear()}`,
  };
}

/** Milliseconds from trueMs to the next whole second, in (0, 1000]. */
export function msUntilNextSecond(trueMs) {
  return 1000 - (((trueMs % 1000) + 1000) % 1000);
}

/**
 * Calls draw(trueMs) at every true second boundary. It never counts: each
 * wake-up reads the clock again, so a late or early timer, a throttled
 * background tab or a new offset cannot make it drift.
 */
export class SecondScheduler {
  constructor(trueNow, draw) {
    this.trueNow = trueNow;
    this.draw = draw;
    this.timer = null;
    this.shown = null;
  }

  /** Draw now and re-arm; call whenever the offset changes. */
  refresh() {
    clearTimeout(this.timer);
    const now = this.trueNow();
    const second = Math.floor(now / 1000);
    if (second !== this.shown) {
      this.shown = second;
      this.draw(now);
    }
    this.timer = setTimeout(() => this.refresh(), msUntilNextSecond(now));
  }
}

/** Writes a moment into the page's elements. */
export class ClockFace {
  constructor(doc) {
    this.doc = doc;
    this.time = doc.getElementById("clock");
    this.date = doc.getElementById("date");
  }

  show(parts) {
    if (this.time.textContent !== parts.hms) this.time.textContent = parts.hms;
    this.time.dateTime = parts.iso;
    if (this.date.textContent !== parts.date) this.date.textContent = parts.date;
    this.doc.title = `${parts.hms} · Moscow time`;
  }
}
