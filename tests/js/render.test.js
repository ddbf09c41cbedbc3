// render.js under Node: Moscow wall time from a true instant, the next boundary.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  MoscowFormat,
  dayLengthParts,
  moscowParts,
  msUntilNextSecond,
} from "../../static/js/render.js";

test("Moscow's wall time from a true instant and the server's offset", () => {
  assert.deepEqual(moscowParts(Date.UTC(2026, 10, 26, 19, 40, 5, 999), 10800), {
    secondMs: 1795722005000,
    hms: "22:40:05",
    ymd: "2026-11-26",
    text: "22:40:05",
    digits: "22:40:05",
    period: "",
    iso: "2026-11-26T22:40:05+03:00",
    date: "Thursday, November 26, 2026",
  });
  assert.equal(moscowParts(-1, 10800).hms, "02:59:59"); // before 1970: floor, not truncate
  assert.equal(moscowParts(0, 4 * 3600).iso, "1970-01-01T04:00:00+04:00");
  assert.equal(moscowParts(0, -5400).iso, "1969-12-31T22:30:00-01:30");
});

test("12 hours and Russian come from the same formats", () => {
  const instant = Date.UTC(2026, 10, 26, 19, 40, 5);
  assert.equal(moscowParts(instant, 10800, new MoscowFormat("en", 12)).text, "10:40:05 PM");
  const ru = moscowParts(instant, 10800, new MoscowFormat("ru", 24));
  assert.equal(ru.text, "22:40:05");
  assert.match(ru.date, /26 ноября 2026/);
  assert.equal(new MoscowFormat("en", 24).shortTime(Date.UTC(2026, 10, 26, 5, 26), 10800), "08:26");
});

test("milliseconds to the next whole second are in (0, 1000]", () => {
  assert.deepEqual([1000, 1999, -1, 0, 1500].map(msUntilNextSecond), [1000, 1, 1, 1000, 500]);
});

test("day length in hours and minutes, minutes rounded", () => {
  assert.deepEqual(dayLengthParts(27622), { hours: 7, minutes: 40 });
  assert.deepEqual(dayLengthParts(29), { hours: 0, minutes: 0 });
  assert.deepEqual(dayLengthParts(30), { hours: 0, minutes: 1 });
  assert.deepEqual(dayLengthParts(86400), { hours: 24, minutes: 0 });
});
