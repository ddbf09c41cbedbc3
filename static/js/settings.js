// The visitor's remembered choices: language, 12/24 h, theme and seconds.
//
// Kept in localStorage (SETTINGS_KEY, JSON) and mirrored into a cookie
// (COOKIE) that the server reads to render the page in them, so the first
// paint is already right; boot.js, a small blocking script in <head>, keeps
// the cookie in step and applies theme and seconds to a page the service
// worker kept. A URL parameter wins over a remembered choice for that view
// but is never remembered by itself: only the page's own option links are
// (a link from elsewhere must not change the visitor's clock). Pure functions
// and storage that never throws; tests/js/settings.test.mjs runs them in Node.

export const SETTINGS_KEY = "moscow-clock:settings";
export const COOKIE = "clock_settings";
// A year: a wall clock is set up once.
export const COOKIE_MAX_AGE_S = 365 * 86400;
export const CHOICES = {
  hours: ["24", "12"],
  theme: ["auto", "light", "dark"],
  seconds: ["1", "0"],
};
export const NAMES = ["lang", "hours", "theme", "seconds"];

const LANG = /^[a-z]{2,3}$/;

/** The valid choices in `values` (an object of strings); anything else dropped. */
export function validSettings(values) {
  const out = {};
  if (values === null || typeof values !== "object") return out;
  for (const name of NAMES) {
    const raw = values[name];
    if (typeof raw !== "string" && typeof raw !== "number") continue;
    const value = String(raw).trim().toLowerCase();
    if (name === "lang" ? LANG.test(value) : CHOICES[name].includes(value)) out[name] = value;
  }
  return out;
}

/** What the stored JSON holds, validated; {} for nothing, or damage. */
export function parseStored(raw) {
  if (typeof raw !== "string") return {};
  try {
    return validSettings(JSON.parse(raw));
  } catch {
    return {};
  }
}

/** The known parameters of a query string ("?lang=ru&hours=12"), validated. */
export function fromQuery(search) {
  const params = new URLSearchParams(search);
  const values = {};
  for (const name of NAMES) if (params.has(name)) values[name] = params.get(name);
  return validSettings(values);
}

/** The URL wins over what is remembered. */
export function effective(stored, query) {
  return { ...stored, ...query };
}

/** The cookie's value: the same query-string form the server parses. */
export function cookieValue(settings) {
  const valid = validSettings(settings);
  return NAMES.filter((name) => name in valid)
    .map((name) => `${name}=${valid[name]}`)
    .join("&");
}

/** The whole Set-Cookie string for document.cookie ("" value: delete it). */
export function cookieString(settings, secure) {
  const value = cookieValue(settings);
  const age = value ? COOKIE_MAX_AGE_S : 0;
  return `${COOKIE}=${value}; Path=/; Max-Age=${age}; SameSite=Lax${secure ? "; Secure" : ""}`;
}

/** The current value of our cookie in a document.cookie string, or null. */
export function readCookie(cookies) {
  for (const part of String(cookies ?? "").split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === COOKIE) return rest.join("=");
  }
  return null;
}

/** {name: value} with one choice changed ("auto" theme and 24 h are stored too). */
export function withChoice(stored, name, value) {
  return validSettings({ ...stored, [name]: value });
}

/** localStorage access that never throws (private modes, blocked storage). */
export class SettingsStore {
  constructor(storage) {
    this.storage = storage;
  }

  load() {
    try {
      return parseStored(this.storage?.getItem(SETTINGS_KEY) ?? null);
    } catch {
      return {};
    }
  }

  save(settings) {
    try {
      this.storage.setItem(SETTINGS_KEY, JSON.stringify(validSettings(settings)));
      return true;
    } catch {
      return false;
    }
  }
}

// The page's own option links (language, 12/24 h, theme, seconds) remember
// the choice: a click saves it (localStorage, mirrored into the cookie the
// server renders from) and loads the page without that
// parameter, so the server renders it from the remembered choice and the
// address stays the visitor's own. Without JavaScript, or where storage is
// refused, the link's own URL shows the choice for that view.
export function rememberChoices(doc, storage, location = doc.defaultView.location) {
  const store = new SettingsStore(storage);
  doc.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[data-setting]") : null;
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return; // a new tab
    const { setting, value } = link.dataset;
    const next = withChoice(store.load(), setting, value);
    if (next[setting] === undefined || !store.save(next)) return;
    doc.cookie = cookieString(next, location.protocol === "https:");
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.delete(setting);
    location.assign(url.href);
  });
}
