// node --test tests/js/: numbers with units, plural forms by Intl.PluralRules.
import assert from "node:assert/strict";
import { test } from "node:test";

import { durationText, hoursMinutesText, unitText } from "../../static/js/units.js";

const forms = (one, few, many, other) => ({ one, few, many, other });
const RU = {
  ms: forms("%(value)s мс", "%(value)s мс", "%(value)s мс", "%(value)s мс"),
  s: forms("%(value)s с", "%(value)s с", "%(value)s с", "%(value)s с"),
  min: forms("%(value)s мин", "%(value)s мин", "%(value)s мин", "%(value)s мин"),
  h: forms("%(value)s ч", "%(value)s ч", "%(value)s ч", "%(value)s ч"),
  day: forms("%(value)s день", "%(value)s дня", "%(value)s дней", "%(value)s дня"),
};
const EN = {
  ms: { one: "%(value)s ms", other: "%(value)s ms" },
  s: { one: "%(value)s s", other: "%(value)s s" },
  min: { one: "%(value)s min", other: "%(value)s min" },
  h: { one: "%(value)s h", other: "%(value)s h" },
  day: { one: "%(value)s day", other: "%(value)s days" },
};

test("Russian plural forms by the number", () => {
  assert.equal(unitText(RU, "day", 1, "ru"), "1 день");
  assert.equal(unitText(RU, "day", 21, "ru"), "21 день");
  assert.equal(unitText(RU, "day", 3, "ru"), "3 дня");
  assert.equal(unitText(RU, "day", 5, "ru"), "5 дней");
  assert.equal(unitText(RU, "day", 11, "ru"), "11 дней");
  assert.equal(unitText(RU, "day", 112, "ru"), "112 дней");
  assert.equal(unitText(EN, "day", 1, "en"), "1 day");
  assert.equal(unitText(EN, "day", 2, "en"), "2 days");
});

test("durations as natives write them: an hour is 1 h, 37 s has no decimal", () => {
  assert.equal(durationText(EN, 3_600_000, "en"), "1 h");
  assert.equal(durationText(RU, 3_600_000, "ru"), "1 ч");
  assert.equal(durationText(EN, 3_900_000, "en"), "1 h 5 min");
  assert.equal(durationText(RU, 37_000, "ru"), "37 с");
  assert.equal(durationText(RU, 1250, "ru"), "1,25 с");
  assert.equal(durationText(EN, 1250, "en"), "1.25 s");
  assert.equal(durationText(EN, 4.25, "en"), "4.3 ms");
  assert.equal(durationText(EN, 120, "en"), "120 ms");
  assert.equal(durationText(EN, 720_000, "en"), "12 min");
  assert.equal(durationText(EN, -60_000, "en"), "1 min");
});

test("hours and minutes", () => {
  assert.equal(hoursMinutesText(EN, 444, "en"), "7 h 24 min");
  assert.equal(hoursMinutesText(RU, 45, "ru"), "45 мин");
  assert.equal(hoursMinutesText(EN, -180, "en"), "3 h");
});
