// Turns the true time into what the page shows, and repaints it exactly when
// the true second changes.

const pad = (n) => String(n).padStart(2, "0");

// CLDR puts narrow/no-break spaces in some formats; browsers differ on keeping
// them, so the page and the server (clock.py) both use plain spaces.
const plainSpaces = (text) => text.replace(/[\u202f\u00a0]/g, " ");

/**
 * The CLDR formats of the server's page (clock.py), from the browser's Intl:
 * the clock is a Moscow wall time shifted into UTC, so Intl never consults the
 * browser's own zone database.
 */
export class MoscowFormat {
  /**
   * seconds: false leaves them out (?seconds=0); flexibleDayPeriods: "6:53 вечера"
   * rather than "PM" (clock.py's day_period_text).
   */
  constructor(lang = "en", hours = 24, seconds = true, flexibleDayPeriods = false) {
    const h12 = hours === 12;
    const hour = { hour: h12 ? "numeric" : "2-digit", hourCycle: h12 ? "h12" : "h23" };
    if (h12 && flexibleDayPeriods) hour.dayPeriod = "long";
    this.clock = new Intl.DateTimeFormat(lang, {
      ...hour, minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}), timeZone: "UTC",
    });
    this.short = new Intl.DateTimeFormat(lang, { ...hour, minute: "2-digit", timeZone: "UTC" });
    this.date = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeZone: "UTC" });
  }

  /** Hours:minutes of an instant given with its zone offset (sunrise, sunset). */
  shortTime(epochMs, utcOffsetS) {
    return plainSpaces(this.short.format(new Date(epochMs + utcOffsetS * 1000)));
  }
}

const DEFAULT_FORMAT = new MoscowFormat();

// The date opens a line: «Среда, 2 декабря 2026 г.» (clock.py's date_text).
const capitalised = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * The Moscow wall time for a true epoch-ms instant. The zone offset comes from
 * the server (tzdata there), not from the browser's zone database.
 */
export function moscowParts(trueMs, utcOffsetS, format = DEFAULT_FORMAT) {
  const secondMs = Math.floor(trueMs / 1000) * 1000;
  const wall = new Date(secondMs + utcOffsetS * 1000);
  const hms = `${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}:${pad(wall.getUTCSeconds())}`;
  const ymd = `${wall.getUTCFullYear()}-${pad(wall.getUTCMonth() + 1)}-${pad(wall.getUTCDate())}`;
  const sign = utcOffsetS < 0 ? "-" : "+";
  const abs = Math.abs(utcOffsetS);
  const zone = `${sign}${pad(Math.floor(abs / 3600))}:${pad(Math.floor((abs % 3600) / 60))}`;
  const { digits, period } = clockParts(format.clock.formatToParts(wall));
  return {
    secondMs,
    hms,
    ymd,
    iso: `${ymd}T${hms}${zone}`,
    text: period ? `${digits} ${period}` : digits,
    digits,
    period,
    date: capitalised(plainSpaces(format.date.format(wall))),
  };
}

/** The digits ("6:53:27") and the day period ("PM", "вечера"; "" in 24 h) of Intl's parts. */
export function clockParts(parts) {
  const period = parts.filter((part) => part.type === "dayPeriod").map((part) => part.value).join("");
  const digits = parts.filter((part) => part.type !== "dayPeriod").map((part) => part.value).join("");
  return { digits: plainSpaces(digits).trim(), period: plainSpaces(period).trim() };
}

/** Day length in hours and minutes, minutes rounded (as the server's sun.py). */
export function dayLengthParts(seconds) {
  const minutes = Math.floor((seconds + 30) / 60);
  return { hours: Math.floor(minutes / 60), minutes: minutes % 60 };
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

/** Writes a moment into the page's elements (the embed may have no date). */
export class ClockFace {
  constructor(doc, titleSuffix) {
    this.doc = doc;
    this.titleSuffix = titleSuffix;
    this.time = doc.getElementById("clock");
    this.digits = this.time.querySelector(".digits");
    this.period = this.time.querySelector(".period");
    this.date = doc.getElementById("date");
  }

  show(parts) {
    // 12 h: the day period in its own, smaller span (index.html); the text stays "6:53:27 PM".
    if (this.digits && this.period && parts.period) {
      if (this.digits.textContent !== parts.digits) this.digits.textContent = parts.digits;
      if (this.period.textContent !== parts.period) this.period.textContent = parts.period;
    } else if (this.time.textContent !== parts.text) {
      this.time.textContent = parts.text;
    }
    this.time.dateTime = parts.iso;
    if (this.date && this.date.textContent !== parts.date) this.date.textContent = parts.date;
    this.doc.title = `${parts.text} · ${this.titleSuffix}`;
  }
}
