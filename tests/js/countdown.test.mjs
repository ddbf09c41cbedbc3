// node --test tests/js/: the countdown's parsing, arithmetic and words.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  countdownLines, countdownTarget, leftText, parseUntil, secondsLeft, splitSeconds, wallToEpochMs,
} from "../../static/js/countdown.js";

const EN_UNITS = { day: { one: "%(value)s day", other: "%(value)s days" } };
const RU_UNITS = { day: { one: "%(value)s день", few: "%(value)s дня", many: "%(value)s дней", other: "%(value)s дня" } };
const STRINGS = {
  units: EN_UNITS,
  countdownUntil: "Until %(moment)s",
  countdownPassed: "%(moment)s has passed",
  countdownInvalid: "The countdown needs a Moscow date and time such as 2027-01-01T00:00",
  countdownMoment: "%(date)s, %(time)s MSK",
};
const NEW_YEAR = Date.UTC(2026, 11, 31, 21, 0, 0); // 2027-01-01T00:00 MSK

test("the forms the server accepts, and nothing else", () => {
  assert.deepEqual(parseUntil("2027-01-01T00:00"), { y: 2027, mo: 1, d: 1, h: 0, mi: 0, s: 0 });
  assert.deepEqual(parseUntil("2027-01-01T00:00:30"), { y: 2027, mo: 1, d: 1, h: 0, mi: 0, s: 30 });
  assert.deepEqual(parseUntil("2027-03-08"), { y: 2027, mo: 3, d: 8, h: 0, mi: 0, s: 0 });
  for (const bad of ["", "tomorrow", "2027-02-30T00:00", "2027-01-01T24:00", "2027-1-1T00:00",
    "2027-01-01T00:60", "2027-01-01 00:00", "0000-01-01", "2027-01-01T00:00Z", null]) {
    assert.equal(parseUntil(bad), null, String(bad));
  }
});

test("the Moscow wall time is an instant at Moscow's offset", () => {
  assert.equal(wallToEpochMs(parseUntil("2027-01-01T00:00"), 10800), NEW_YEAR);
});

test("seconds left count to zero at the moment", () => {
  assert.equal(secondsLeft(NEW_YEAR, NEW_YEAR - 90_061_000), 90_061);
  assert.equal(secondsLeft(NEW_YEAR, NEW_YEAR - 1000), 1);
  assert.equal(secondsLeft(NEW_YEAR, NEW_YEAR), 0);
  assert.deepEqual(splitSeconds(90_061), { days: 1, hours: 1, minutes: 1, seconds: 1 });
  assert.deepEqual(splitSeconds(-5), { days: 0, hours: 0, minutes: 0, seconds: 0 });
});

test("what is left, with days in their plural forms", () => {
  assert.equal(leftText(90_061, EN_UNITS, "en"), "1 day 01:01:01");
  assert.equal(leftText(3 * 86400 + 59, RU_UNITS, "ru"), "3 дня 00:00:59");
  assert.equal(leftText(25 * 86400, RU_UNITS, "ru"), "25 дней 00:00:00");
  assert.equal(leftText(59, EN_UNITS, "en"), "00:00:59");
});

test("counting, passed, invalid", () => {
  const target = { targetMs: NEW_YEAR, moment: "January 1, 2027, 00:00 MSK" };
  assert.deepEqual(countdownLines(target, NEW_YEAR - 61_000, STRINGS, "en"),
    { label: "Until January 1, 2027, 00:00 MSK", left: "00:01:01" });
  assert.deepEqual(countdownLines(target, NEW_YEAR, STRINGS, "en"),
    { label: "January 1, 2027, 00:00 MSK has passed", left: "" });
  assert.deepEqual(countdownLines({ targetMs: NaN, moment: "" }, NEW_YEAR, STRINGS, "en"),
    { label: STRINGS.countdownInvalid, left: "" });
});

test("a page without the server's target (the offline copy) reads its URL", () => {
  const shortTime = (epochMs) => new Date(epochMs).toISOString().slice(11, 16);
  const fromUrl = countdownTarget(null, "?until=2027-01-01T00:00&kiosk=1", 10800, STRINGS, "en", shortTime);
  assert.deepEqual(fromUrl, { targetMs: NEW_YEAR, moment: "January 1, 2027, 00:00 MSK" });
  assert.equal(countdownTarget(null, "?kiosk=1", 10800, STRINGS, "en", shortTime), null);
  assert.ok(Number.isNaN(countdownTarget(null, "?until=soon", 10800, STRINGS, "en", shortTime).targetMs));
  const server = { targetMs: 1, moment: "x" };
  assert.equal(countdownTarget(server, "?until=2027-01-01T00:00", 10800, STRINGS, "en", shortTime), server);
});
