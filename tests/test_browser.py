"""The page in a real Chromium, as a person leaves it open."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from moscow_clock.core.clock import moscow_time
from moscow_clock.core.clockstate import ClockState

from .support.browser import static_page, watch_console
from .support.clockstate import UNSYNCED, write_state
from .support.delay_proxy import DelayProxy
from .support.page import RECORD_FLIPS, Flip, median_error_ms, recorded_flips, wait_until_synced
from .support.server import ServerProcess
from .support.timing import scaled

pytestmark = pytest.mark.browser

Start = Callable[..., ServerProcess]


SYNCED_12MS = ClockState(synchronized=True, max_error_ms=12.0, estimated_error_ms=1.0)
UNKNOWN_STATE = ClockState(synchronized=None, max_error_ms=None, estimated_error_ms=None)


@pytest.fixture
def synced_server(start_server: Start, tmp_path: Path) -> ServerProcess:
    """A server whose clock is synchronised (12 ms maximum error), so the page
    may judge the device clock; this machine's own kernel clock is not."""
    state = tmp_path / "clock.json"
    write_state(state, SYNCED_12MS)
    return start_server(CLOCK_STATE_FILE=str(state))


async def open_clock(browser: Browser, url: str, skew_s: float = 0.0) -> tuple[Page, list[str]]:
    """Open the page (its device clock skewed by skew_s); returns it and its console errors."""
    page = await browser.new_page()
    problems: list[str] = watch_console(page, [])
    await page.add_init_script(RECORD_FLIPS)
    if skew_s:
        await page.clock.install(time=datetime.now(UTC) + timedelta(seconds=skew_s))
    await page.goto(url)
    return page, problems


async def watch_flips(page: Page, seconds: float) -> list[Flip]:
    await page.evaluate("window.__flips.length = 0")
    await asyncio.sleep(scaled(seconds))  # observing the page, not aiming at a boundary
    return await recorded_flips(page)


def assert_exact(flips: list[Flip], *, count: int) -> None:
    """Consecutive seconds, each the right Moscow time, flipped on the true boundary."""
    assert len(flips) >= count, flips
    seconds = [flip.second_ms for flip in flips]
    assert [b - a for a, b in itertools.pairwise(seconds)] == [1000.0] * (len(seconds) - 1)
    for flip in flips:
        assert flip.text == moscow_time(flip.second_ms).hms
        assert abs(flip.error_ms) < scaled(250), flips
    # The benchmark reports the real figure (target: median within 50 ms).
    # A page that trusts the device clock is off by whole seconds, one that
    # ignores the round trip by the one-way latency (150 ms in the proxy test).
    assert abs(median_error_ms(flips)) < scaled(75), flips


async def test_page_shows_live_moscow_time(browser: Browser, shared_server: ServerProcess) -> None:
    page, problems = await open_clock(browser, shared_server.url)
    await wait_until_synced(page)
    shown = await page.evaluate(
        "[document.getElementById('clock').textContent, Date.now(), document.title,"
        " document.getElementById('date').textContent]"
    )
    text, page_now, title, date = shown
    assert text in {moscow_time(page_now).hms, moscow_time(page_now - 100).hms}
    assert title == f"{text} · Moscow time"
    assert date == moscow_time(page_now).date_text("en")
    assert_exact(await watch_flips(page, 3.4), count=3)
    # The clock itself is not a live region: a screen reader is not told every second.
    assert await page.get_attribute("#clock", "aria-live") is None
    assert await page.get_attribute("#status", "role") == "status"
    # A wall clock: one click takes it full screen.
    await page.click("#fullscreen")
    await expect(page.locator("#fullscreen")).to_have_text("Exit full screen")
    assert await page.evaluate("document.fullscreenElement === document.documentElement")
    assert problems == []  # no CSP violation, no script error


@pytest.mark.parametrize("skew_s", [3600.0, -37.0], ids=["device-1h-ahead", "device-37s-behind"])
async def test_a_wrong_device_clock_does_not_matter(
    browser: Browser, synced_server: ServerProcess, skew_s: float
) -> None:
    page, problems = await open_clock(browser, synced_server.url, skew_s=skew_s)
    await wait_until_synced(page)
    assert_exact(await watch_flips(page, 3.4), count=3)
    accuracy = await page.text_content("#accuracy")
    assert accuracy is not None
    assert ("ahead" if skew_s > 0 else "behind") in accuracy
    assert problems == []


# Issue 20: unverified, the device is still measured against the server, and
# the server's own possible error is said (the kernel's 16 s here, or unknown).
UNVERIFIED = {
    "unsynchronised": (
        r"Your device clock is (3[67]) s behind the server's \(±(\d+(?:\.\d)?) ms\)\."
        r" The server's own clock is not verified: it may be off by up to 16 s\."
    ),
    "unknown": (
        r"Your device clock is (3[67]) s behind the server's \(±(\d+(?:\.\d)?) ms\)\."
        r" The server's own clock is not verified, and how far off it may be is unknown\."
    ),
}


@pytest.mark.parametrize(
    ("state", "skew_s"),
    [
        (SYNCED_12MS, 0.0),
        (SYNCED_12MS, -37.0),
        (UNSYNCED, -37.0),
        (UNKNOWN_STATE, -37.0),
    ],
    ids=["synchronised", "synchronised-device-behind", "unsynchronised", "unknown"],
)
async def test_accuracy_line_follows_the_servers_clock(
    browser: Browser, start_server: Start, tmp_path: Path, state: ClockState, skew_s: float
) -> None:
    """The "±" includes the server's own error; against an unverified server the
    device is measured against it, and the server's own error is stated."""
    state_file = tmp_path / "clock.json"
    write_state(state_file, state)
    server = start_server(CLOCK_STATE_FILE=str(state_file))
    page, problems = await open_clock(browser, server.url, skew_s=skew_s)
    await wait_until_synced(page)
    accuracy = await page.text_content("#accuracy")
    assert accuracy is not None
    if not state.synchronized:
        kind = "unknown" if state.synchronized is None else "unsynchronised"
        assert re.fullmatch(UNVERIFIED[kind], accuracy), accuracy
        assert await page.get_attribute("#accuracy", "data-state") == "unverified"
    else:
        # Whole seconds past ten ("37 s", not "37.0 s").
        verdict = r"exact" if skew_s == 0 else r"(3[67]) s behind"
        match = re.fullmatch(rf"Your device clock is {verdict} \(±(\d+(?:\.\d)?) ms\)", accuracy)
        assert match, accuracy
        bound_ms = float(match.groups()[-1])
        assert (
            12 <= bound_ms < 12 + scaled(28)
        )  # 12 ms from the server + half a loopback round trip
    # Whatever the server's state, the page shows the server's time.
    assert_exact(await watch_flips(page, 2.4), count=2)
    assert problems == []


class SleepyNetwork:
    """Relays the page's websockets through Playwright; `sleep()` silences
    every socket open now for good, as a suspend does to a live connection."""

    def __init__(self) -> None:
        self.sockets: list[dict[str, bool]] = []

    def relay(self, ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()
        link = {"dead": False}
        self.sockets.append(link)
        ws.on_message(lambda message: None if link["dead"] else upstream.send(message))
        upstream.on_message(lambda message: None if link["dead"] else ws.send(message))

    def sleep(self) -> None:
        for link in self.sockets:
            link["dead"] = True


async def shown_is_right(page: Page) -> bool:
    before = time.time() * 1000
    text = await page.text_content("#clock")
    after = time.time() * 1000
    return text in {moscow_time(before).hms, moscow_time(after).hms}


async def test_the_page_is_right_within_a_second_of_waking_from_sleep(
    browser: Browser, synced_server: ServerProcess
) -> None:
    """A suspend: the page's monotonic clock (performance.now) and its timers
    stand still for 6 s while the wall clock runs on, and the network drops
    the socket. Waking, the page must show the right second again within 1 s:
    long before its watchdog (4.5 s of silence, on the stalled clock) or a
    tick on a new connection would have put it right."""
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    network = SleepyNetwork()
    await page.route_web_socket(re.compile(r".*/ws$"), network.relay)
    await page.clock.install()
    await page.goto(synced_server.url)
    await wait_until_synced(page)
    assert await shown_is_right(page)

    # Sleep: page.clock stops performance.now() and every timer; the socket goes silent.
    await page.clock.pause_at(datetime.now(UTC) + timedelta(milliseconds=20))
    network.sleep()
    await asyncio.sleep(6)
    assert not await shown_is_right(page)  # frozen six seconds behind
    # Wake: the wall clock has run on (the RTC), the monotonic clock has not.
    await page.clock.set_system_time(datetime.now(UTC))
    await page.clock.resume()
    woke = time.monotonic()
    while not await shown_is_right(page):
        assert time.monotonic() - woke < scaled(1.0), await page.text_content("#clock")
        await asyncio.sleep(0.02)
    right_after_s = time.monotonic() - woke
    # It reconnected at once (the old socket is dead), re-synced, and stays right.
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'live'", timeout=scaled(1000)
    )
    assert len(network.sockets) == 2
    assert time.monotonic() - woke < scaled(1.5)
    print(f"\nright again {right_after_s * 1000:.0f} ms after waking")
    for _ in range(10):
        await asyncio.sleep(0.2)
        assert await shown_is_right(page)
    assert problems == []


async def test_network_latency_is_absorbed(browser: Browser, shared_server: ServerProcess) -> None:
    async with DelayProxy(shared_server.port, delay_s=0.150) as proxy:
        page, problems = await open_clock(browser, proxy.url, skew_s=-37.0)
        await wait_until_synced(page, timeout_ms=20000)
        assert_exact(await watch_flips(page, 4.4), count=4)
        assert problems == []
        await page.close()


async def test_reconnects_by_itself_after_a_server_restart(
    browser: Browser, start_server: Start
) -> None:
    first = start_server()
    page, _ = await open_clock(browser, first.url)
    await wait_until_synced(page)
    await page.evaluate("window.__sameDocument = true")

    assert first.stop() == 0
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'reconnecting'",
        timeout=scaled(5000),
    )
    # With the server gone the clock keeps running from the last offset.
    assert_exact(await watch_flips(page, 2.4), count=2)

    start_server(port=first.port)
    await page.wait_for_function(
        "() => document.getElementById('status').dataset.state === 'live'", timeout=scaled(15000)
    )
    assert await page.evaluate("window.__sameDocument === true")  # no reload
    assert_exact(await watch_flips(page, 2.4), count=2)


async def test_without_javascript_the_server_renders_the_time(
    browser: Browser, shared_server: ServerProcess
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    before = time.time() * 1000
    await page.goto(shared_server.url)
    text = await page.text_content("#clock")
    assert text in {moscow_time(before).hms, moscow_time(time.time() * 1000).hms}
    # The <noscript> refresh re-renders it from the server.
    await page.wait_for_function(
        f"() => document.getElementById('clock')?.textContent !== {text!r}", timeout=scaled(4000)
    )
    await context.close()


async def test_page_modules_units(browser: Browser) -> None:
    """The pure parts of the page's modules, run where they run: in the
    browser, from the files on disk (no server)."""
    page = await static_page(browser)
    results = await page.evaluate(
        """async () => {
      const { OffsetEstimator } = await import("/static/js/offset.js");
      const { moscowParts, msUntilNextSecond } = await import("/static/js/render.js");
      const { backoffDelay } = await import("/static/js/connection.js");

      const est = new OffsetEstimator(4);
      est.addSample(1000, 5050, 1100);  // rtt 100: offset 4000
      est.addSample(2000, 6015, 2020);  // rtt 20: offset 4005, the best
      est.addSample(3000, 7300, 3400);  // rtt 400: ignored
      const best = [est.offset, est.uncertainty];
      const rejected = est.addSample(10, 5, 5);  // negative round trip
      // A tick proves the offset is at least epoch - received: a jump forward.
      const corrected = est.observeTick(20000, 5000);
      const afterTick = est.offset;
      const quiet = est.observeTick(21000, 6500);  // consistent with 15000: no change

      // The server's own error widens the bound; null means "not verified".
      const srv = new OffsetEstimator();
      srv.addSample(1000, 5050, 1100);  // rtt 100
      const unverified = [srv.verified, srv.uncertainty];
      srv.setServerError(12);
      const verified = [srv.verified, srv.uncertainty];
      srv.setServerError(null);
      const lostIt = srv.verified;
      // After a 60 s suspend the offset carries across the gap, to 500 ppm.
      srv.setServerError(2);
      srv.reanchor(60000);
      const slept = [srv.samples.length, srv.offset, srv.uncertainty];

      const jitter = [0, 1, 2, 3, 10].map(
        (a) => [backoffDelay(a, () => 0), backoffDelay(a, () => 1)]);
      const steep = [0, 1, 2, 3, 4].map(
        (a) => [backoffDelay(a, () => 0, 500, 60000, 4), backoffDelay(a, () => 1, 500, 60000, 4)]);
      return {
        best, rejected, corrected, afterTick, quiet, unverified, verified, lostIt, slept,
        parts: moscowParts(Date.UTC(2026, 10, 26, 19, 40, 5, 999), 10800),
        before1970: moscowParts(-1, 10800).hms,
        untilNext: [msUntilNextSecond(1000), msUntilNextSecond(1999), msUntilNextSecond(-1)],
        jitter, steep,
      };
    }"""
    )
    assert results["best"] == [4005, 10]
    assert results["rejected"] is False
    assert results["corrected"] is True
    assert results["afterTick"] == 15000
    assert results["quiet"] is False
    assert results["unverified"] == [False, 50]
    assert results["verified"] == [True, 62]
    assert results["lostIt"] is False
    assert results["slept"] == [0, 64000, 50 + 30 + 2]
    assert results["parts"] == {
        "secondMs": 1795722005000,
        "hms": "22:40:05",
        "ymd": "2026-11-26",
        "text": "22:40:05",
        "digits": "22:40:05",
        "period": "",
        "iso": "2026-11-26T22:40:05+03:00",
        "date": "Thursday, November 26, 2026",
    }
    assert results["before1970"] == "02:59:59"
    assert results["untilNext"] == [1000, 1, 1]
    # Exponential, jittered between half and all of the step, capped at 10 s.
    assert results["jitter"] == [[250, 500], [500, 1000], [1000, 2000], [2000, 4000], [5000, 10000]]
    assert results["steep"] == [
        [250, 500],
        [1000, 2000],
        [4000, 8000],
        [16000, 32000],
        [30000, 60000],
    ]


async def test_after_a_connect_that_never_opened_the_probe_picks_the_backoff(
    browser: Browser,
) -> None:
    """A page cannot see a refused handshake's 503: refused and down both end
    in an error before open. The page then asks /ws over plain HTTP (the
    probe): busy (503 + Retry-After) waits at least Retry-After, then x4 a
    step to 60 s, so refused pages stop costing an overloaded server; no
    answer (down) backs off x2 to 4 s, so a restarted server is found soon; a
    server that answers otherwise (426, or an origin it refused) gets the long
    x4 schedule; one that opened and failed before a tick backs off to 10 s.
    (A fake WebSocket, a fake fetch and timers that record their delay and
    never fire: the page's real ClockConnection.)"""
    page = await static_page(browser)
    delays = await page.evaluate(
        """async () => {
      const { ClockConnection } = await import("/static/js/connection.js");
      const sockets = [];
      class FakeSocket {
        static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
        constructor() { this.readyState = 0; sockets.push(this); }
        close() { this.readyState = 3; }
        send() {}
      }
      let answer = null;  // what the probe gets: null = no answer at all
      const probes = [];
      window.fetch = async (url) => {
        probes.push(url);
        if (answer === null) throw new TypeError("Failed to fetch");
        return { status: answer[0], headers: new Headers(answer[1]) };
      };
      const timers = [];
      window.WebSocket = FakeSocket;
      window.setTimeout = (fn, ms) => timers.push(ms) - 1;
      window.clearTimeout = () => {};
      Math.random = () => 1;  // the top of each jittered range
      const states = [];
      const handlers = { onOpen() {}, onTick() {}, onState(s) { states.push(s); } };
      const connection = new ClockConnection("ws://clock.example/ws", handlers, () => 0);
      connection.start();
      const failures = async (n, probeAnswer) => {
        answer = probeAnswer;
        const delays = [];
        for (let i = 0; i < n; i++) {
          sockets.at(-1).onerror();  // an error before open
          while (typeof connection.retry !== "number") await new Promise((r) => queueMicrotask(r));
          delays.push(timers[connection.retry]);
          connection.connect("reconnecting");  // the retry timer firing
        }
        return delays;
      };
      const busy = await failures(5, [503, { "Retry-After": "5" }]);
      const busyState = states.at(-1);
      const down = await failures(6, null);
      const downState = states.at(-1);
      const proxyDown = await failures(2, [502, {}]);
      const refused = await failures(6, [426, {}]);
      const socket = sockets.at(-1);
      socket.readyState = 1;
      socket.onopen();
      socket.onclose({ code: 1006, reason: "" });  // opened, lost before a tick
      const opened = timers[connection.retry];
      return { busy, busyState, down, downState, proxyDown, refused, opened,
               probes: [...new Set(probes)] };
    }"""
    )
    await page.close()
    assert delays == {
        # Retry-After..2x, 4x..8x, then 30-60 s (the top of each range here).
        "busy": [10000, 40000, 60000, 60000, 60000],
        "busyState": "busy",
        # Nothing answers: x2 to 4 s, whatever the outage's length.
        "down": [500, 1000, 2000, 4000, 4000, 4000],
        "downState": "reconnecting",
        "proxyDown": [4000, 4000],  # a proxy's 502: the server is still not there
        # x4 a step: after ~0.4, 1.9, 7.9, 32 s (docs/PERFORMANCE.md, Overload).
        "refused": [500, 2000, 8000, 32000, 60000, 60000],
        "opened": 500,  # a new kind of failure starts its schedule afresh
        "probes": ["http://clock.example/ws"],
    }
