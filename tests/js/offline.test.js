// offline.js's pure parts under Node: the kept offset over fake storage.
import assert from "node:assert/strict";
import { test } from "node:test";

import { OffsetStore, formatSyncedAt } from "../../static/js/offline.js";

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
  removeItem(key) {
    this.items.delete(key);
  }
}

const SYNCED = Date.UTC(2026, 10, 26, 19, 40);

test("a measurement is kept and read back", () => {
  const store = new OffsetStore(new MemoryStorage());
  assert.equal(store.load(), null);
  assert.equal(store.save(3_600_000, 12, SYNCED), true);
  assert.deepEqual(store.load(SYNCED), { offsetMs: 3_600_000, uncertaintyMs: 12, syncedAt: SYNCED });
});

test("damage is removed, nonsense is not stored, a clock set back is not trusted", () => {
  const storage = new MemoryStorage();
  const store = new OffsetStore(storage);
  storage.setItem("moscow-clock:offset", "{not json");
  assert.equal(store.load(), null);
  assert.equal(storage.getItem("moscow-clock:offset"), null);
  assert.equal(store.save(Number.NaN, 1, SYNCED), false);
  assert.equal(store.save(1, -1, SYNCED), false);
  assert.equal(store.save(1, 1, Date.UTC(2000, 0, 1)), false);
  store.save(0, 5, SYNCED);
  assert.equal(store.load(SYNCED - 3_600_000), null); // synced "in the future": set back since
});

test("no storage, or storage that throws, never throws", () => {
  const broken = {
    getItem() {
      throw new Error("SecurityError");
    },
    setItem() {
      throw new Error("QuotaExceededError");
    },
    removeItem() {
      throw new Error("SecurityError");
    },
  };
  for (const storage of [null, broken]) {
    const store = new OffsetStore(storage);
    assert.equal(store.load(), null);
    assert.equal(store.save(0, 5, SYNCED), false);
    store.clear();
  }
});

test("when it last synchronised: the time, and the date if it was another day", () => {
  assert.equal(formatSyncedAt(SYNCED, SYNCED + 60_000, 10800, "en"), "22:40");
  assert.equal(formatSyncedAt(SYNCED, SYNCED + 60_000, 10800, "en", 12), "10:40 PM");
  assert.equal(formatSyncedAt(SYNCED, SYNCED + 86_400_000, 10800, "en"), "November 26 at 22:40");
  assert.match(formatSyncedAt(SYNCED, SYNCED + 86_400_000, 10800, "ru"), /26 ноября/);
});
