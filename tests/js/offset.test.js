// offset.js under Node: the NTP-style estimate, the tick bound, the suspend.
import assert from "node:assert/strict";
import { test } from "node:test";

import { OffsetEstimator, SLEEP_DRIFT, localNow } from "../../static/js/offset.js";

test("the lowest round trip wins", () => {
  const est = new OffsetEstimator(4);
  assert.equal(est.addSample(1000, 5050, 1100), true); // rtt 100: offset 4000
  est.addSample(2000, 6015, 2020); // rtt 20: offset 4005, the best
  est.addSample(3000, 7300, 3400); // rtt 400: ignored
  assert.deepEqual([est.offset, est.uncertainty], [4005, 10]);
});

test("a sample that makes no sense is refused", () => {
  const est = new OffsetEstimator();
  assert.equal(est.addSample(10, 5, 5), false); // negative round trip
  assert.equal(est.addSample(0, Number.NaN, 1), false);
  assert.equal(est.offset, null);
  assert.equal(est.uncertainty, Infinity);
});

test("old samples age out", () => {
  const est = new OffsetEstimator(2);
  est.addSample(0, 1000, 2); // rtt 2, the best, then pushed out
  est.addSample(10, 2000, 30);
  est.addSample(40, 3000, 60);
  assert.equal(est.samples.length, 2);
  assert.equal(est.uncertainty, 10);
});

test("a tick proves a lower bound on the offset", () => {
  const est = new OffsetEstimator();
  est.addSample(2000, 6015, 2020); // offset 4005
  assert.equal(est.observeTick(20000, 5000), true); // at least 15000: a jump forward
  assert.equal(est.offset, 15000);
  assert.equal(est.uncertainty, Infinity); // a bound, not an estimate
  assert.equal(est.observeTick(21000, 6500), false); // consistent: no change
  assert.equal(est.offset, 15000);
});

test("the server's own error widens the bound; null is not verified", () => {
  const est = new OffsetEstimator();
  est.addSample(1000, 5050, 1100); // rtt 100
  assert.deepEqual([est.verified, est.uncertainty], [false, 50]);
  est.setServerError(12);
  assert.deepEqual([est.verified, est.uncertainty], [true, 62]);
  est.setServerError(null);
  assert.equal(est.verified, false);
  est.setServerError(-1);
  assert.equal(est.verified, false);
});

test("after a suspend the offset carries across the gap, to 500 ppm", () => {
  const est = new OffsetEstimator();
  est.addSample(1000, 5050, 1100);
  est.setServerError(2);
  est.reanchor(60000);
  assert.deepEqual(
    [est.samples.length, est.offset, est.uncertainty],
    [0, 64000, 50 + 60000 * SLEEP_DRIFT + 2],
  );
  const empty = new OffsetEstimator();
  empty.reanchor(60000); // nothing to carry
  assert.equal(empty.offset, null);
});

test("localNow is epoch milliseconds", () => {
  assert.ok(Math.abs(localNow() - Date.now()) < 1000);
});
