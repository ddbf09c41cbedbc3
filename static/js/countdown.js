// A countdown to a moment in Moscow time (`?until=2027-01-01T00:00`): the
// arithmetic and the words, pure so Node tests them; main.js repaints it on
// every true second. The server validates the parameter and renders the first
// text; a page from the offline cache reads it from its own URL instead.

import { unitText } from "./units.js";
import { fill } from "./strings.js";

// The form the server accepts (moscow_clock/core/countdown.py): a Moscow wall
// time to the minute or second, or a date (its midnight).
const UNTIL = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?$/;

const pad = (n) => String(n).padStart(2, "0");

/**
 * The wall time of `value` as {y, mo, d, h, mi, s}, or null if it is not one
 * (a malformed string, 2027-02-30, 24:00).
 */
export function parseUntil(value) {
  const match = UNTIL.exec(String(value ?? "").trim());
  if (!match) return null;
  const [y, mo, d, h, mi, s] = match.slice(1).map((part) => Number(part ?? 0));
  const check = new Date(Date.UTC(2000, mo - 1, d, h, mi, s));
  check.setUTCFullYear(y);
  const same = check.getUTCFullYear() === y && check.getUTCMonth() === mo - 1
    && check.getUTCDate() === d && check.getUTCHours() === h
    && check.getUTCMinutes() === mi && check.getUTCSeconds() === s;
  return y >= 1 && same ? { y, mo, d, h, mi, s } : null;
}

/** The instant (epoch ms) of a Moscow wall time, at Moscow's UTC offset. */
export function wallToEpochMs(wall, utcOffsetS) {
  const date = new Date(Date.UTC(2000, wall.mo - 1, wall.d, wall.h, wall.mi, wall.s));
  date.setUTCFullYear(wall.y);
  return date.getTime() - utcOffsetS * 1000;
}

/** Whole seconds from the shown second to the target; <= 0 once it is reached. */
export function secondsLeft(targetMs, shownSecondMs) {
  return Math.ceil((targetMs - shownSecondMs) / 1000);
}

/** {days, hours, minutes, seconds} of a positive number of seconds. */
export function splitSeconds(total) {
  const seconds = Math.max(0, Math.floor(total));
  return {
    days: Math.floor(seconds / 86400),
    hours: Math.floor((seconds % 86400) / 3600),
    minutes: Math.floor((seconds % 3600) / 60),
    seconds: seconds % 60,
  };
}

/** "29 days 06:12:05", "06:12:05": what is left, days by the plural rules. */
export function leftText(total, units, lang) {
  const { days, hours, minutes, seconds } = splitSeconds(total);
  const clock = `${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
  return days > 0 ? `${unitText(units, "day", days, lang)} ${clock}` : clock;
}

/**
 * The moment as words ("January 1, 2027, 00:00 MSK"), as the server's face.py
 * writes it; `shortTime(epochMs, offsetS)` writes hours and minutes (render.js).
 */
export function momentText(wall, lang, strings, shortTime) {
  const date = new Date(Date.UTC(2000, wall.mo - 1, wall.d, wall.h, wall.mi, wall.s));
  date.setUTCFullYear(wall.y);
  const day = new Intl.DateTimeFormat(lang, { dateStyle: "long", timeZone: "UTC" }).format(date);
  return fill(strings.countdownMoment ?? "%(date)s, %(time)s", { date: day, time: shortTime(date.getTime(), 0) })
    .replace(/[\u202f\u00a0]/g, " ");
}

/**
 * The two lines for the shown second: {label: "Until January 1, 2027, 00:00 MSK",
 * left: "29 days 06:12:05"}; once reached, the label says so and nothing is left.
 */
export function countdownLines({ targetMs, moment }, shownSecondMs, strings, lang) {
  if (!Number.isFinite(targetMs)) return { label: strings.countdownInvalid ?? "", left: "" };
  const left = secondsLeft(targetMs, shownSecondMs);
  if (left <= 0) return { label: fill(strings.countdownPassed ?? "", { moment }), left: "" };
  return { label: fill(strings.countdownUntil ?? "", { moment }), left: leftText(left, strings.units, lang) };
}

/** What the page counts down to: the server's validated target, else the URL's. */
export function countdownTarget(serverTarget, search, utcOffsetS, strings, lang, shortTime) {
  if (serverTarget && Number.isFinite(serverTarget.targetMs)) return serverTarget;
  const raw = new URLSearchParams(search).get("until");
  if (raw === null) return null;
  const wall = parseUntil(raw);
  if (!wall) return { targetMs: NaN, moment: "" };
  return { targetMs: wallToEpochMs(wall, utcOffsetS), moment: momentText(wall, lang, strings, shortTime) };
}
