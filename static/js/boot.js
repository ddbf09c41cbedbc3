// The visitor's remembered choices, applied before the first paint: a
// classic script in <head>, on purpose blocking (a module would run after the
// page had painted, and the strict CSP allows no inline script). It
// - applies theme and seconds (the URL's, else the remembered ones) to <html>,
//   for a page the server rendered without them (one the service worker kept);
// - keeps the cookie the server renders from in step with localStorage
//   (static/js/settings.js has the format; this file repeats only the checks,
//   as it cannot import);
// - if the server rendered another language or 12/24 h than the remembered
//   one because the cookie was missing, loads the page again, once.
(function () {
  "use strict";
  var KEY = "moscow-clock:settings";
  var COOKIE = "clock_settings";
  var ALLOWED = {
    lang: /^[a-z]{2,3}$/,
    hours: /^(12|24)$/,
    theme: /^(auto|light|dark)$/,
    seconds: /^[01]$/,
  };
  var NAMES = ["lang", "hours", "theme", "seconds"];
  var root = document.documentElement;
  var stored = {};
  try {
    stored = JSON.parse(window.localStorage.getItem(KEY) || "{}") || {};
  } catch {
    stored = {};
  }
  var query = new URLSearchParams(location.search);
  function valid(name, value) {
    return typeof value === "string" && ALLOWED[name].test(value) ? value : null;
  }
  function choice(name) {
    var fromUrl = query.has(name) ? valid(name, (query.get(name) || "").toLowerCase()) : null;
    return fromUrl || valid(name, stored[name]);
  }
  // What this script finds wins over what the server rendered from the cookie
  // (the two differ only if the cookie is stale, or the page a kept copy).
  ["theme", "seconds"].forEach(function (name) {
    var value = choice(name);
    if (value) root.setAttribute("data-" + name, value);
    else root.removeAttribute("data-" + name);
  });

  var parts = [];
  NAMES.forEach(function (name) {
    var value = valid(name, stored[name]);
    if (value) parts.push(name + "=" + value);
  });
  var value = parts.join("&");
  var current = null;
  document.cookie.split(";").forEach(function (part) {
    var pair = part.trim().split("=");
    if (pair[0] === COOKIE) current = pair.slice(1).join("=");
  });
  if (current === (value || null)) return;
  var secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie =
    COOKIE + "=" + value + "; Path=/; Max-Age=" + (value ? 31536000 : 0) + "; SameSite=Lax" + secure;
  // Rendered without the remembered language or hours: once more, with them.
  var stale = ["lang", "hours"].some(function (name) {
    var want = valid(name, stored[name]);
    var shown = name === "lang" ? root.lang : root.getAttribute("data-hours");
    return want && !query.has(name) && shown && want !== shown;
  });
  try {
    if (stale && navigator.onLine !== false && !window.sessionStorage.getItem(KEY)) {
      window.sessionStorage.setItem(KEY, "reloaded");
      location.replace(location.href);
    }
  } catch {
    // no session storage: no second try either
  }
})();
