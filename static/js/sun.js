// Keeps "sunrise, sunset, day length" on today's Moscow date: after Moscow
// midnight the page asks /api/time for the new day, without a reload.
import { dayLengthParts } from "./render.js";

const RETRY_MS = 5000;

/** Seconds east of UTC in an ISO 8601 timestamp's offset ("+03:00"). */
export function isoOffsetS(iso) {
  const match = /([+-])(\d\d):(\d\d)$/.exec(iso);
  if (!match) return 0;
  const seconds = Number(match[2]) * 3600 + Number(match[3]) * 60;
  return match[1] === "-" ? -seconds : seconds;
}

export class SunPanel {
  /**
   * format: a MoscowFormat; dayLengthText: {hours, minutes} -> "7 h 40 min"
   * (units.js, plural forms from the catalogue); fetchSun: () => Promise of /api/time's "sun".
   */
  constructor(doc, format, dayLengthText, fetchSun, now = () => performance.now()) {
    this.sunrise = doc.getElementById("sunrise");
    this.sunset = doc.getElementById("sunset");
    this.dayLength = doc.getElementById("day-length");
    this.format = format;
    this.dayLengthText = dayLengthText;
    this.fetchSun = fetchSun;
    this.now = now;
    this.day = this.sunrise ? this.sunrise.dateTime.slice(0, 10) : null;
    this.busy = false;
    this.notBefore = 0;
  }

  /** Called with each shown second's Moscow date (YYYY-MM-DD). */
  async update(ymd) {
    if (!this.sunrise || ymd === this.day || this.busy || this.now() < this.notBefore) return;
    this.busy = true;
    try {
      const sun = await this.fetchSun();
      // The server may not be past midnight yet (a few ms): try again soon.
      if (sun && sun.sunrise.slice(0, 10) === ymd) {
        this.show(sun);
        this.day = ymd;
      } else {
        this.notBefore = this.now() + RETRY_MS;
      }
    } catch {
      this.notBefore = this.now() + RETRY_MS;
    } finally {
      this.busy = false;
    }
  }

  show(sun) {
    for (const [element, iso] of [[this.sunrise, sun.sunrise], [this.sunset, sun.sunset]]) {
      element.dateTime = iso;
      element.textContent = this.format.shortTime(Date.parse(iso), isoOffsetS(iso));
    }
    this.dayLength.dateTime = `PT${sun.day_length_s}S`;
    this.dayLength.textContent = this.dayLengthText(dayLengthParts(sun.day_length_s));
  }
}
