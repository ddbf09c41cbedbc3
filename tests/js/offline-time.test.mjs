// node --test tests/js/: "last synchronised <when>" in 12 h as the face writes it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatSyncedAt } from "../../static/js/offline.js";

const EVENING = Date.UTC(2026, 11, 2, 16, 5); // 19:05 MSK

test("12 h without a leading zero, Russian with its day periods", () => {
  const plain = (text) => text.replace(/[\u202f\u00a0]/g, " ");
  assert.equal(plain(formatSyncedAt(EVENING, EVENING, 10800, "en", 24)), "19:05");
  assert.equal(plain(formatSyncedAt(EVENING, EVENING, 10800, "en", 12)), "7:05 PM");
  assert.equal(plain(formatSyncedAt(EVENING, EVENING, 10800, "ru", 12, true)), "7:05 вечера");
  assert.equal(plain(formatSyncedAt(EVENING, EVENING, 10800, "ru", 24)), "19:05");
});
