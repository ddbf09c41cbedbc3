// The page's retry schedules (static/js/backoff.js): `node --test tests/js/`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DOWN_CAP_MS,
  MAX_RETRY_AFTER_MS,
  backoffDelay,
  classifyProbe,
  retryAfterMs,
  retryDelay,
} from "../../static/js/backoff.js";

const top = () => 1;
const bottom = () => 0;
const schedule = (kind, n, random, retryAfter) =>
  Array.from({ length: n }, (_, attempt) => retryDelay(kind, attempt, random, retryAfter));

test("equal jitter: between half and all of the capped step", () => {
  assert.equal(backoffDelay(0, bottom), 250);
  assert.equal(backoffDelay(0, top), 500);
  assert.equal(backoffDelay(10, top), 10000);
  assert.equal(backoffDelay(10, bottom), 5000);
});

test("down: x2 a step, never longer than 4 s, so a restart is found within ~4 s", () => {
  assert.deepEqual(schedule("down", 7, top), [500, 1000, 2000, 4000, 4000, 4000, 4000]);
  assert.deepEqual(schedule("down", 5, bottom), [250, 500, 1000, 2000, 2000]);
  for (let attempt = 0; attempt < 100; attempt++) {
    assert.ok(retryDelay("down", attempt, Math.random) <= DOWN_CAP_MS);
  }
});

test("busy: at least Retry-After, then x4 a step up to a minute", () => {
  assert.deepEqual(schedule("busy", 4, top, 5000), [10000, 40000, 60000, 60000]);
  assert.deepEqual(schedule("busy", 4, bottom, 5000), [5000, 20000, 30000, 30000]);
  // A longer Retry-After is followed (up to its own cap), never cut short.
  assert.deepEqual(schedule("busy", 2, bottom, 60000), [60000, 60000]);
  // A busy answer with no usable wait still backs off as a refusal.
  assert.deepEqual(schedule("busy", 3, top, 0), [500, 2000, 8000]);
});

test("refused (the server answered, not for load) and offline: the long x4 schedule", () => {
  assert.deepEqual(schedule("refused", 6, top), [500, 2000, 8000, 32000, 60000, 60000]);
  assert.deepEqual(schedule("offline", 3, top), [500, 2000, 8000]);
});

test("opened, then lost before a tick: x2 up to 10 s", () => {
  assert.deepEqual(schedule("opened", 6, top), [500, 1000, 2000, 4000, 8000, 10000]);
});

test("Retry-After: seconds or an HTTP date, capped; anything else is none", () => {
  const now = Date.UTC(2026, 11, 2, 18, 0, 0);
  assert.equal(retryAfterMs("5", now), 5000);
  assert.equal(retryAfterMs(" 0 ", now), 0);
  assert.equal(retryAfterMs("Wed, 02 Dec 2026 18:00:07 GMT", now), 7000);
  assert.equal(retryAfterMs("Wed, 02 Dec 2026 17:00:00 GMT", now), 0); // in the past
  assert.equal(retryAfterMs("86400", now), MAX_RETRY_AFTER_MS);
  for (const bad of [null, undefined, "", "-5", "5.5", "soon", "1e3", "12345678901234567890x"]) {
    assert.equal(retryAfterMs(bad, now), null, String(bad));
  }
});

test("the probe's answer: busy, down or refused", () => {
  assert.deepEqual(classifyProbe(null), { kind: "down" });
  assert.deepEqual(classifyProbe({ status: 503, retryAfter: "5" }), {
    kind: "busy",
    retryAfterMs: 5000,
  });
  // A proxy's word that the server is not there (no Retry-After: not our refusal).
  assert.deepEqual(classifyProbe({ status: 503, retryAfter: null }), { kind: "down" });
  assert.deepEqual(classifyProbe({ status: 502, retryAfter: null }), { kind: "down" });
  assert.deepEqual(classifyProbe({ status: 504, retryAfter: "5" }), { kind: "down" });
  // The server is there and has room (426), or refused for another reason.
  for (const status of [426, 403, 404, 200, 500]) {
    assert.deepEqual(classifyProbe({ status, retryAfter: null }), { kind: "refused" }, status);
  }
});
