// "3 h ahead of you": how far Moscow's time is from the device's own zone,
// from Intl (the zone the browser runs in, and that zone's offset at this
// instant, so DST and half-hour zones come out right). Pure functions plus
// a small class that rewrites the line only when the difference changes.

import { hoursMinutesText } from "./units.js";
import { fill } from "./strings.js";

const offsetFormats = new Map();

/** The device's time zone as Intl reports it ("Asia/Kolkata"), or null. */
export function deviceTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone ?? null;
  } catch {
    return null;
  }
}

/** Minutes east of UTC of `timeZone` at `epochMs` ("GMT+05:30" -> 330), from Intl. */
export function zoneOffsetMinutes(epochMs, timeZone) {
  const key = timeZone ?? "";
  if (!offsetFormats.has(key)) {
    offsetFormats.set(
      key,
      new Intl.DateTimeFormat("en-US", { timeZone: timeZone ?? undefined, timeZoneName: "longOffset" }),
    );
  }
  const name = offsetFormats.get(key).formatToParts(new Date(epochMs))
    .find((part) => part.type === "timeZoneName")?.value ?? "GMT";
  const match = /^GMT(?:([+-])(\d{1,2})(?::(\d{2}))?)?$/.exec(name);
  if (!match || !match[1]) return 0;
  const minutes = Number(match[2]) * 60 + Number(match[3] ?? 0);
  return match[1] === "-" ? -minutes : minutes;
}

/** Moscow minus the device, in minutes: +180 when Moscow is 3 h ahead. */
export function differenceMinutes(moscowOffsetS, deviceOffsetMinutes) {
  return Math.round(moscowOffsetS / 60) - deviceOffsetMinutes;
}

/** The line: strings.sameAsYou, or aheadOfYou/behindYou with "%(amount)s". */
export function differenceText(minutes, strings, lang) {
  if (minutes === 0) return strings.sameAsYou ?? "";
  const amount = hoursMinutesText(strings.units, minutes, lang);
  return fill((minutes > 0 ? strings.aheadOfYou : strings.behindYou) ?? "", { amount });
}

export class DifferenceLine {
  constructor(element, strings, lang, zone = deviceTimeZone) {
    this.element = element;
    this.strings = strings;
    this.lang = lang;
    this.zone = zone;
    this.shown = null;
  }

  /** Called every shown second: a trip or a DST change shows within a second. */
  update(trueMs, moscowOffsetS) {
    if (!this.element) return;
    const timeZone = this.zone();
    const minutes = differenceMinutes(moscowOffsetS, zoneOffsetMinutes(trueMs, timeZone));
    const key = `${timeZone}|${minutes}`;
    if (key === this.shown) return;
    this.shown = key;
    this.element.textContent = differenceText(minutes, this.strings, this.lang);
    if (timeZone) this.element.title = timeZone;
  }
}
