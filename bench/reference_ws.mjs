// The second yardstick `make bench` can measure beside moscow_clock: the same
// clock on Node's `ws` library, as a careful author would write it. One timer
// wakes at each whole second and sends the tick to every client (ws writes
// each without a promise or task per client); every 20 s each client is
// pinged and one that did not answer the last ping is dropped (the `ws`
// README's heartbeat, the same schedule as the Python reference's
// keepalive); sync requests are answered as they arrive. No compression, the
// same 4 KB message limit, `/healthz` and `/metrics` (the client count) over
// plain HTTP, SIGTERM closes every websocket with 1001.
//
//     PORT=8001 node bench/reference_ws.mjs

import http from "node:http";
import { WebSocketServer } from "ws";

const TZ_OFFSET_S = 3 * 3600; // Moscow has had no DST since 2014
const clients = new Set();

function iso(epochMs) {
  const local = new Date(epochMs + TZ_OFFSET_S * 1000).toISOString().slice(0, 19);
  return `${local}+03:00`;
}

function tick(epochMs) {
  return JSON.stringify({
    type: "tick",
    epoch_ms: epochMs,
    iso: iso(epochMs),
    utc_offset_s: TZ_OFFSET_S,
    tz: "Europe/Moscow",
  });
}

function answer(data, isBinary) {
  if (isBinary) return { close: [1003, "binary messages are not supported"] };
  let request;
  try {
    request = JSON.parse(data.toString());
  } catch {
    return { close: [1008, "messages must be JSON objects"] };
  }
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    return { close: [1008, "messages must be JSON objects"] };
  }
  if (request.type !== "sync") return null;
  if (typeof request.t0 !== "number" || !Number.isFinite(request.t0)) {
    return { close: [1008, "sync needs a numeric t0"] };
  }
  return { reply: JSON.stringify({ type: "sync", t0: request.t0, server_ms: Date.now(), error_ms: null }) };
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096 });
wss.on("connection", (ws) => {
  ws.alive = true;
  clients.add(ws);
  ws.on("pong", () => {
    ws.alive = true;
  });
  ws.on("message", (data, isBinary) => {
    const verdict = answer(data, isBinary);
    if (verdict?.reply) ws.send(verdict.reply);
    else if (verdict?.close) ws.close(...verdict.close);
  });
  ws.on("close", () => clients.delete(ws));
  ws.on("error", () => clients.delete(ws));
});

const server = http.createServer((request, response) => {
  const path = request.url.split("?")[0];
  if (path === "/metrics") {
    response.end(`moscow_clock_websocket_clients ${clients.size}\n`);
  } else if (path === "/healthz") {
    response.end("ok\n");
  } else {
    response.writeHead(404).end("not found\n");
  }
});
server.on("upgrade", (request, socket, head) => {
  if (request.url.split("?")[0] !== "/ws") {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request));
});

function scheduleTick() {
  const next = Math.floor(Date.now() / 1000) * 1000 + 1000;
  setTimeout(() => {
    const text = tick(next);
    for (const ws of clients) ws.send(text);
    scheduleTick();
  }, next - Date.now());
}

const heartbeat = setInterval(() => {
  for (const ws of clients) {
    if (!ws.alive) {
      ws.terminate();
      continue;
    }
    ws.alive = false;
    ws.ping();
  }
}, 20_000);

process.on("SIGTERM", () => {
  clearInterval(heartbeat);
  for (const ws of clients) ws.close(1001, "going away");
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 10_000).unref();
});

server.listen({ port: Number(process.env.PORT), host: "127.0.0.1", backlog: 4096 }, scheduleTick);
