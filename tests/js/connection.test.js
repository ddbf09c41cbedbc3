// connection.js under Node: the backoff, the spread a server asks for, and
// the real ClockConnection over a fake WebSocket and timers that never fire.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  ClockConnection,
  NEVER_OPENED_CAP_MS,
  NEVER_OPENED_GROWTH,
  backoffDelay,
  reconnectWithinMs,
} from "../../static/js/connection.js";

test("exponential, jittered between half and all of the step, capped at 10 s", () => {
  const jitter = [0, 1, 2, 3, 10].map((a) => [backoffDelay(a, () => 0), backoffDelay(a, () => 1)]);
  assert.deepEqual(jitter, [[250, 500], [500, 1000], [1000, 2000], [2000, 4000], [5000, 10000]]);
  const steep = [0, 1, 2, 3, 4].map((a) => [
    backoffDelay(a, () => 0, 500, NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH),
    backoffDelay(a, () => 1, 500, NEVER_OPENED_CAP_MS, NEVER_OPENED_GROWTH),
  ]);
  assert.deepEqual(steep, [[250, 500], [1000, 2000], [4000, 8000], [16000, 32000], [30000, 60000]]);
});

test("a server going away may ask for a spread, capped at 30 s", () => {
  assert.equal(reconnectWithinMs(1001, "going away; reconnect within 12000 ms"), 12000);
  assert.equal(reconnectWithinMs(1001, "reconnect within 90000 ms"), 30000);
  assert.equal(reconnectWithinMs(1001, ""), 0);
  assert.equal(reconnectWithinMs(1001, undefined), 0);
  assert.equal(reconnectWithinMs(1000, "reconnect within 5000 ms"), 0);
});

const saved = {
  WebSocket: globalThis.WebSocket,
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  random: Math.random,
};

afterEach(() => {
  globalThis.WebSocket = saved.WebSocket;
  globalThis.setTimeout = saved.setTimeout;
  globalThis.clearTimeout = saved.clearTimeout;
  Math.random = saved.random;
});

test("a sync reply reaches its waiter with the receive time and the server's error", async () => {
  class FakeSocket {
    static OPEN = 1;
    constructor() {
      this.readyState = 1;
      this.sent = [];
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close() {}
  }
  globalThis.WebSocket = FakeSocket;
  globalThis.setTimeout = () => 0; // timers that never fire: nothing outlives the test
  globalThis.clearTimeout = () => {};
  const clock = 100;
  const ticks = [];
  const handlers = { onOpen() {}, onTick: (t, at) => ticks.push([t.epoch_ms, at]), onState() {} };
  const connection = new ClockConnection("ws://x/ws", handlers, () => clock);
  connection.start();
  const reply = connection.sync();
  const { t0 } = connection.socket.sent[0];
  connection.receive(JSON.stringify({ type: "sync", t0, server_ms: 5000, error_ms: 3 }), 140);
  assert.deepEqual(await reply, { t0: 100, serverMs: 5000, t1: 140, errorMs: 3, clock: null });
  connection.receive(JSON.stringify({ type: "tick", epoch_ms: 6000 }), 150);
  connection.receive("not json", 160);
  assert.deepEqual(ticks, [[6000, 150]]);
  connection.socket.readyState = 3;
  assert.equal(await connection.sync(), null); // not open: no request
});
