// A wall screen: ?kiosk=1 hides the controls and, when the pointer rests, the
// cursor, and keeps the screen on; otherwise a "Keep screen on" button does
// that. `f` toggles full screen in both.

const CURSOR_IDLE_MS = 3000;

export const isKiosk = (search) => new URLSearchParams(search).get("kiosk") === "1";

/**
 * The screen wake lock, held while wanted and the page is visible. Browsers
 * release it whenever the page is hidden, so it is asked for again each time
 * the page becomes visible. Problems are reported (not thrown) through
 * onProblem("unsupported" | "refused").
 */
export class ScreenWakeLock {
  constructor({ nav = navigator, doc = document, onChange = () => {}, onProblem = () => {} } = {}) {
    this.nav = nav;
    this.doc = doc;
    this.onChange = onChange;
    this.onProblem = onProblem;
    this.wanted = false;
    this.sentinel = null;
    this.requesting = false;
    doc.addEventListener("visibilitychange", () => this.acquire());
  }

  get supported() {
    return typeof this.nav.wakeLock?.request === "function";
  }

  get held() {
    return this.sentinel !== null && !this.sentinel.released;
  }

  async enable() {
    this.wanted = true;
    this.onChange();
    await this.acquire();
  }

  async disable() {
    this.wanted = false;
    const sentinel = this.sentinel;
    this.sentinel = null;
    this.onChange();
    if (sentinel && !sentinel.released) {
      try {
        await sentinel.release();
      } catch {
        // already gone
      }
    }
  }

  async acquire() {
    if (!this.wanted || this.held || this.requesting) return;
    if (this.doc.visibilityState !== "visible") return; // a hidden page is refused anyway
    if (!this.supported) {
      this.onProblem("unsupported");
      return;
    }
    this.requesting = true;
    try {
      const sentinel = await this.nav.wakeLock.request("screen");
      if (!this.wanted) {
        await sentinel.release();
        return;
      }
      this.sentinel = sentinel;
      sentinel.addEventListener?.("release", () => {
        if (this.sentinel === sentinel) this.sentinel = null;
        this.onChange();
      });
    } catch {
      // NotAllowedError: a hidden page, a battery saver, a permissions policy
      this.onProblem("refused");
    } finally {
      this.requesting = false;
      this.onChange();
    }
  }
}

export function toggleFullscreen(doc = document) {
  if (!doc.fullscreenEnabled) return;
  const change = doc.fullscreenElement ? doc.exitFullscreen() : doc.documentElement.requestFullscreen();
  change?.catch?.(() => {}); // refused (no user gesture): nothing to do
}

/**
 * Wires kiosk mode, the wake lock and the `f` key. `notice` is a polite
 * status element that says, once, why the screen cannot be kept on.
 */
export function setUpWallScreen({ app, button, notice, strings, doc = document, win = window }) {
  const kiosk = isKiosk(win.location.search);
  // The server marks it too (no flash of controls); this also covers a page
  // the service worker served from its cache for another query string.
  if (kiosk) app.dataset.kiosk = "";
  else delete app.dataset.kiosk;

  let told = false;
  const lock = new ScreenWakeLock({
    doc,
    onChange: () => button.setAttribute("aria-pressed", String(lock.wanted)),
    onProblem: (problem) => {
      if (told) return;
      const text = problem === "unsupported" ? strings.wakeLockUnsupported : strings.wakeLockRefused;
      if (!text) return;
      told = true;
      notice.textContent = text;
    },
  });

  if (kiosk) {
    lock.enable();
    hideIdleCursor(doc, win);
  } else if (lock.supported) {
    button.hidden = false;
    button.addEventListener("click", () => (lock.wanted ? lock.disable() : lock.enable()));
  }

  doc.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.repeat || event.ctrlKey || event.metaKey || event.altKey) {
      return;
    }
    // By the physical key too, so it works with a Russian layout (where it types "а").
    if (event.code !== "KeyF" && event.key !== "f" && event.key !== "F") return;
    if (event.target?.closest?.("input, textarea, select, [contenteditable]")) return;
    toggleFullscreen(doc);
  });
  return lock;
}

/** The cursor disappears after CURSOR_IDLE_MS without movement, and comes back on movement. */
function hideIdleCursor(doc, win) {
  const root = doc.documentElement;
  let timer = null;
  const wake = () => {
    if (root.dataset.cursor !== "shown") root.dataset.cursor = "shown";
    win.clearTimeout(timer);
    timer = win.setTimeout(() => {
      root.dataset.cursor = "hidden";
    }, CURSOR_IDLE_MS);
  };
  for (const type of ["pointermove", "pointerdown", "mousemove"]) {
    doc.addEventListener(type, wake, { passive: true });
  }
  wake();
}
