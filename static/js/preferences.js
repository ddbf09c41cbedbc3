// The page's own option links (language, 12/24 h, theme, seconds) remember
// the choice: a click saves it (localStorage, mirrored into the cookie the
// server renders from: settings.js) and loads the page without that
// parameter, so the server renders it from the remembered choice and the
// address stays the visitor's own. Without JavaScript, or where storage is
// refused, the link's own URL shows the choice for that view.
import { SettingsStore, cookieString, withChoice } from "./settings.js";

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
