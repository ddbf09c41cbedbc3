// The remembered choices' format (static/js/settings.js): `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  COOKIE,
  SETTINGS_KEY,
  SettingsStore,
  cookieString,
  cookieValue,
  effective,
  fromQuery,
  parseStored,
  readCookie,
  validSettings,
  withChoice,
} from "../../static/js/settings.js";

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
}

test("only known names with valid values are kept", () => {
  assert.deepEqual(
    validSettings({ lang: "RU", hours: 12, theme: "Dark", seconds: "0", extra: "x" }),
    { lang: "ru", hours: "12", theme: "dark", seconds: "0" },
  );
  assert.deepEqual(validSettings({ lang: "ru-RU", hours: "13", theme: "blue", seconds: "no" }), {});
  assert.deepEqual(validSettings(null), {});
  assert.deepEqual(validSettings("lang=ru"), {});
  assert.deepEqual(validSettings({ lang: { toString: () => "ru" } }), {});
});

test("stored JSON: damage reads as nothing remembered", () => {
  assert.deepEqual(parseStored('{"theme":"dark","hours":"12"}'), { hours: "12", theme: "dark" });
  for (const raw of [null, "", "{", "[]", "42", '"dark"', '{"theme":"purple"}', "null"]) {
    assert.deepEqual(parseStored(raw), {}, String(raw));
  }
});

test("the URL wins over what is remembered", () => {
  const stored = { lang: "ru", hours: "12", theme: "dark" };
  const query = fromQuery("?hours=24&theme=bogus&kiosk=1");
  assert.deepEqual(query, { hours: "24" });
  assert.deepEqual(effective(stored, query), { lang: "ru", hours: "24", theme: "dark" });
});

test("the cookie carries the query-string form the server parses", () => {
  assert.equal(cookieValue({ theme: "dark", lang: "ru", seconds: "0", junk: "1" }), "lang=ru&theme=dark&seconds=0");
  assert.equal(cookieValue({}), "");
  assert.equal(
    cookieString({ hours: "12" }, true),
    `${COOKIE}=hours=12; Path=/; Max-Age=31536000; SameSite=Lax; Secure`,
  );
  assert.equal(cookieString({}, false), `${COOKIE}=; Path=/; Max-Age=0; SameSite=Lax`);
  assert.equal(readCookie(`a=1; ${COOKIE}=lang=ru&hours=12; b=2`), "lang=ru&hours=12");
  assert.equal(readCookie("a=1"), null);
  assert.equal(readCookie(undefined), null);
});

test("a choice replaces only its own setting", () => {
  assert.deepEqual(withChoice({ lang: "ru" }, "theme", "light"), { lang: "ru", theme: "light" });
  assert.deepEqual(withChoice({ lang: "ru" }, "theme", "purple"), { lang: "ru" });
});

test("the store round-trips and never throws", () => {
  const storage = new MemoryStorage();
  const store = new SettingsStore(storage);
  assert.deepEqual(store.load(), {});
  assert.equal(store.save({ theme: "dark", seconds: "0" }), true);
  assert.deepEqual(JSON.parse(storage.getItem(SETTINGS_KEY)), { theme: "dark", seconds: "0" });
  assert.deepEqual(store.load(), { theme: "dark", seconds: "0" });
  const broken = {
    getItem() {
      throw new Error("SecurityError");
    },
    setItem() {
      throw new Error("QuotaExceededError");
    },
  };
  assert.deepEqual(new SettingsStore(broken).load(), {});
  assert.equal(new SettingsStore(broken).save({ theme: "dark" }), false);
  assert.deepEqual(new SettingsStore(null).load(), {});
  assert.equal(new SettingsStore(null).save({ theme: "dark" }), false);
});
