// strings.js and sun.js's pure parts under Node.
import assert from "node:assert/strict";
import { test } from "node:test";

import { fill, pageData } from "../../static/js/strings.js";
import { isoOffsetS } from "../../static/js/sun.js";

const doc = (text, lang = "ru") => ({
  getElementById: (id) => (id === "page-data" && text !== null ? { textContent: text } : null),
  documentElement: { lang },
});

test("the page's data block, and safe defaults when it is missing or broken", () => {
  const defaults = { flexibleDayPeriods: false, countdown: null };
  const data = { lang: "ru", hours: 12, strings: { live: "В сети", units: {} } };
  assert.deepEqual(pageData(doc(JSON.stringify(data))), { ...defaults, ...data });
  const empty = (lang) => ({ ...defaults, lang, hours: 24, strings: { units: {} } });
  assert.deepEqual(pageData(doc(null, "en")), empty("en"));
  assert.deepEqual(pageData(doc("{broken", "ru")), empty("ru"));
  assert.deepEqual(pageData(doc("[1, 2]", "")), empty("en"));
  assert.deepEqual(pageData(doc('{"hours": "12", "strings": null}', "")).hours, 24);
});

test("python-format placeholders are filled; unknown ones are left", () => {
  assert.equal(fill("%(hours)d h %(minutes)d min", { hours: 7, minutes: 40 }), "7 h 40 min");
  assert.equal(fill("synchronised %(when)s", { when: "22:40" }), "synchronised 22:40");
  assert.equal(fill("%(missing)s and %(n)d", { n: 1 }), "%(missing)s and 1");
});

test("an ISO timestamp's zone offset in seconds", () => {
  assert.equal(isoOffsetS("2026-11-26T08:26:21+03:00"), 10800);
  assert.equal(isoOffsetS("2026-11-26T08:26:21-01:30"), -5400);
  assert.equal(isoOffsetS("2026-11-26T08:26:21Z"), 0);
});
