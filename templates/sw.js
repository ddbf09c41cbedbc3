// The service worker: the page opens without a network.
//
// "/" is network-first: online, the page always comes from the server (and is
// kept as the offline copy); offline, or with no answer in NETWORK_TIMEOUT_MS,
// the kept copy is served, marked data-source="cache" so the page knows its
// server-rendered time is old. The offline copy of "/" is the visitor's own
// page: only a navigation to "/" without a query is kept as it (the server
// renders it in the visitor's remembered choices, static/js/settings.js); a
// navigation with a query (a link from elsewhere, ?lang=ru&hours=12) is kept
// under its own address only, so it can be opened again offline, but never
// becomes what "/" shows. At most MAX_KEPT_QUERIES such copies are kept. Static files are cache-first from a cache named
// by VERSION, a hash of static/ that the server renders into this file: a
// deploy changes this file, the browser installs the new worker, which fetches
// the new files and deletes the old cache. A page whose X-Shell-Version is not
// VERSION means a deploy this worker predates: from then on it fetches static
// files from the network until its successor takes over. The first install
// takes the files from the HTTP cache the page has just filled (force-cache:
// no second download); an update fetches them afresh (reload).
const VERSION = {{ version | tojson }};
const PRECACHE = {{ precache | tojson }};
const CACHE_PREFIX = "moscow-clock-";
const CACHE = CACHE_PREFIX + VERSION;
const PAGE = "/";
const NETWORK_TIMEOUT_MS = 6000;
const MAX_KEPT_QUERIES = 4;
let outdated = false;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const first = !(await caches.keys()).some((name) => name.startsWith(CACHE_PREFIX));
      const cache = await caches.open(CACHE);
      const mode = first ? "force-cache" : "reload";
      await cache.addAll(PRECACHE.map((url) => new Request(url, { cache: mode })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(page(request));
  } else if (url.pathname.startsWith("/static/") && !url.search) {
    event.respondWith(asset(request));
  }
  // Everything else (the API, /ws, health, metrics) goes straight to the network.
});

async function page(request) {
  const cache = await caches.open(CACHE);
  const key = keptAs(new URL(request.url));
  const network = fetch(request).then(async (response) => {
    if (response.ok) {
      if (response.headers.get("X-Shell-Version") === VERSION) {
        await keep(cache, key, response.clone());
      } else {
        outdated = true;
        self.registration.update().catch(() => {});
      }
    }
    return response;
  });
  network.catch(() => {}); // a failure after the timeout is not an error: the kept copy answered
  try {
    const response = await Promise.race([network, timeout(NETWORK_TIMEOUT_MS)]);
    if (response && response.status < 500) return response;
  } catch {
    // no network: fall through to the kept copy
  }
  const kept = (await cache.match(key)) ?? (await cache.match(PAGE));
  if (kept) return markedAsCached(kept);
  return network; // nothing kept: the browser shows its own offline page
}

/** Where a navigation's page is kept: "/" for "/" alone, else its own address. */
function keptAs(url) {
  url.searchParams.sort();
  return url.search ? PAGE + url.search : PAGE;
}

/** Keeps a page; copies of addresses with a query are few, the oldest dropped. */
async function keep(cache, key, response) {
  await cache.put(key, response);
  if (key === PAGE) return;
  const withQuery = (await cache.keys()).filter((request) => new URL(request.url).search);
  for (const old of withQuery.slice(0, Math.max(0, withQuery.length - MAX_KEPT_QUERIES))) {
    await cache.delete(old);
  }
}

/** The kept page, marked so that its script does not take its time as now. */
async function markedAsCached(kept) {
  const html = (await kept.text()).replace('data-source="server"', 'data-source="cache"');
  const headers = new Headers(kept.headers);
  headers.delete("Content-Length");
  return new Response(html, { status: 200, statusText: "OK", headers });
}

async function asset(request) {
  const cache = await caches.open(CACHE);
  if (!outdated) {
    const hit = await cache.match(request);
    if (hit) return hit;
  }
  try {
    const response = await fetch(request);
    if (response.ok && !outdated) await cache.put(request, response.clone());
    return response;
  } catch (error) {
    const hit = await cache.match(request);
    if (hit) return hit;
    throw error;
  }
}

function timeout(ms) {
  return new Promise((resolve) => setTimeout(() => resolve(null), ms));
}
