// node --test tests/js/: the difference-from-you line's arithmetic and words.
import assert from "node:assert/strict";
import { test } from "node:test";

import { differenceMinutes, differenceText, zoneOffsetMinutes } from "../../static/js/difference.js";

const UNITS = {
  en: { h: { one: "%(value)s h", other: "%(value)s h" }, min: { one: "%(value)s min", other: "%(value)s min" } },
  ru: {
    h: { one: "%(value)s ч", few: "%(value)s ч", many: "%(value)s ч", other: "%(value)s ч" },
    min: { one: "%(value)s мин", few: "%(value)s мин", many: "%(value)s мин", other: "%(value)s мин" },
  },
};
const STRINGS = {
  en: { units: UNITS.en, aheadOfYou: "%(amount)s ahead of you", behindYou: "%(amount)s behind you", sameAsYou: "Same time as you" },
  ru: { units: UNITS.ru, aheadOfYou: "На %(amount)s впереди вас", behindYou: "На %(amount)s позади вас", sameAsYou: "Время совпадает с вашим" },
};
const JULY = Date.UTC(2026, 6, 1, 12);
const JANUARY = Date.UTC(2026, 0, 15, 12);

test("zone offsets come from Intl, with DST and half-hour zones", () => {
  assert.equal(zoneOffsetMinutes(JULY, "Asia/Kolkata"), 330);
  assert.equal(zoneOffsetMinutes(JULY, "Asia/Kathmandu"), 345);
  assert.equal(zoneOffsetMinutes(JULY, "America/New_York"), -240);
  assert.equal(zoneOffsetMinutes(JANUARY, "America/New_York"), -300);
  assert.equal(zoneOffsetMinutes(JULY, "Europe/Moscow"), 180);
  assert.equal(zoneOffsetMinutes(JULY, "UTC"), 0);
  assert.equal(zoneOffsetMinutes(JULY, "America/St_Johns"), -150);
});

test("Moscow minus the device", () => {
  assert.equal(differenceMinutes(10800, 330), -150);
  assert.equal(differenceMinutes(10800, 420), -240);
  assert.equal(differenceMinutes(10800, -300), 480);
  assert.equal(differenceMinutes(10800, 180), 0);
});

test("the line in both languages", () => {
  assert.equal(differenceText(180, STRINGS.en, "en"), "3 h ahead of you");
  assert.equal(differenceText(180, STRINGS.ru, "ru"), "На 3 ч впереди вас");
  assert.equal(differenceText(-150, STRINGS.en, "en"), "2 h 30 min behind you");
  assert.equal(differenceText(-165, STRINGS.ru, "ru"), "На 2 ч 45 мин позади вас");
  assert.equal(differenceText(30, STRINGS.en, "en"), "30 min ahead of you");
  assert.equal(differenceText(0, STRINGS.en, "en"), "Same time as you");
  assert.equal(differenceText(0, STRINGS.ru, "ru"), "Время совпадает с вашим");
  assert.equal(differenceText(60, STRINGS.en, "en"), "1 h ahead of you");
});
