"""HTTP routes, kept thin (the websocket endpoint is endpoint.py)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, abort, current_app, jsonify, render_template, url_for

from ..core.clock import moscow_time, short_time_text, time_snapshot, uses_flexible_day_periods
from ..core.clockstate import PageClock, finite
from ..core.preferences import BadParameter, Display
from ..core.sun import day_length_parts, sun_day
from ..live.metrics import CONTENT_TYPE
from .face import (
    carried_args,
    countdown_context,
    face_context,
    face_strings,
    hours_minutes_text,
    page_option,
    page_until,
    units,
)
from .l10n import current_language, languages, page_display
from .l10n import gettext as _
from .runtime import current_runtime

blueprint = Blueprint("clock", __name__)

NO_STORE = {"Cache-Control": "no-store"}


@blueprint.get("/")
async def page() -> tuple[str, int, dict[str, str]]:
    display = _display(remembered=True)
    html = await render_template("index.html", **_clock_context(display, "clock.page"))
    return html, 200, NO_STORE


@blueprint.get("/embed")
async def embed() -> tuple[str, int, dict[str, str]]:
    """The compact clock for an <iframe>: the one page that may be framed."""
    display = _display()
    html = await render_template("embed.html", **_clock_context(display, "clock.embed"))
    csp = current_app.config["EMBED_CONTENT_SECURITY_POLICY"]
    return html, 200, {"Content-Security-Policy": csp, **NO_STORE}


@blueprint.get("/api/time")
async def api_time() -> tuple[Response, int, dict[str, str]]:
    runtime = current_runtime()
    now = runtime.clock()
    sun = sun_day(moscow_time(now).wall.date())
    body = {**time_snapshot(now), "sun": sun.as_json(), "clock": runtime.clock_monitor.report()}
    return jsonify(body), 200, NO_STORE


@blueprint.get("/healthz")
async def healthz() -> tuple[Response, int, dict[str, str]]:
    """Liveness only: the process answers. The clock's health is /readyz."""
    return jsonify(status="ok"), 200, NO_STORE


@blueprint.get("/readyz")
async def readyz() -> tuple[Response, int, dict[str, str]]:
    """Ready to be routed visitors: nothing shows this clock is off (or, with
    CLOCK_CHECK=strict, it is vouched for). See docs/clock.md."""
    monitor = current_runtime().clock_monitor
    reason = monitor.unready_reason()
    if reason is None:
        return jsonify(status="ready"), 200, NO_STORE
    body = {"status": "unready", "reason": reason, "clock": monitor.report()}
    return jsonify(body), 503, NO_STORE


@blueprint.get("/metrics")
async def metrics() -> tuple[bytes, int, dict[str, str]]:
    runtime = current_runtime()
    runtime.update_metrics()
    return runtime.metrics.render(), 200, {"Content-Type": CONTENT_TYPE, **NO_STORE}


@blueprint.get("/ws")
async def ws_over_plain_http() -> tuple[str, int, dict[str, str]]:
    """A plain GET where the websocket lives: say how to talk to it, or, while
    a handshake would be refused for capacity or load, the same 503 and
    Retry-After the handshake gets. A browser cannot read a refused
    handshake's status, so the page asks here (the probe of static/js/
    backoff.js) to tell a busy server from one that is down."""
    refusal = current_runtime().gate.refusal_for_load()
    if refusal is not None:
        return refusal.message, refusal.status, {**refusal.headers, **NO_STORE}
    return "this is a websocket endpoint\n", 426, {"Upgrade": "websocket", **NO_STORE}


def _display(remembered: bool = False) -> Display:
    try:
        return page_display(remembered)
    except BadParameter as error:
        abort(
            400,
            _("The parameter %(name)s takes %(allowed)s.")
            % {"name": error.name, "allowed": " | ".join(error.allowed)},
        )


def _setting_links(display: Display, endpoint: str) -> list[tuple[str, str, str, str]]:
    """The theme and seconds options: (name, value, URL). With JavaScript a
    click remembers the choice (static/js/settings.js); the URL alone
    works without it, for that view."""
    theme = display.theme or "auto"
    theme_next = {"auto": "light", "light": "dark", "dark": "auto"}[theme]
    theme_label = {
        "auto": _("Theme: automatic"),
        "light": _("Theme: light"),
        "dark": _("Theme: dark"),
    }[theme]
    seconds_next = "0" if display.seconds else "1"
    return [
        ("theme", theme_next, theme_label, url_for(endpoint, **_kept(display), theme=theme_next)),
        (
            "seconds",
            seconds_next,
            _("Hide seconds") if display.seconds else _("Show seconds"),
            url_for(endpoint, **_kept(display), seconds=seconds_next),
        ),
    ]


def _kept(display: Display) -> dict[str, Any]:
    kept: dict[str, Any] = {"lang": display.lang} if display.lang else {}
    if display.hours == 12:
        kept["hours"] = 12
    return kept


def day_length_text(seconds: int) -> str:
    return hours_minutes_text(*day_length_parts(seconds))


def accuracy_strings() -> dict[str, str]:
    """The accuracy line's sentences (static/js/accuracy.js). While the
    server's clock is vouched for the device is judged against true time;
    otherwise against the server's, followed by what is known of the
    server's own error — never more than the bounds say."""
    return {
        "exact": _("Your device clock is exact (%(uncertainty)s)"),
        "within": _("Your device clock is right to within %(uncertainty)s"),
        "ahead": _("Your device clock is %(amount)s ahead (%(uncertainty)s)"),
        "behind": _("Your device clock is %(amount)s behind (%(uncertainty)s)"),
        "agreesWithServer": _("Your device clock agrees with the server's (%(uncertainty)s)."),
        "aheadOfServer": _(
            "Your device clock is %(amount)s ahead of the server's (%(uncertainty)s)."
        ),
        "behindServer": _("Your device clock is %(amount)s behind the server's (%(uncertainty)s)."),
        "serverMayBeOff": _(
            "The server's own clock is not verified: it may be off by up to %(bound)s."
        ),
        "serverUnbounded": _(
            "The server's own clock is not verified, and how far off it may be is unknown."
        ),
        "serverBehind": _("The server's clock is %(amount)s behind the reference time."),
        "serverAhead": _("The server's clock is %(amount)s ahead of the reference time."),
        "serverNotExact": _("The server's clock is not exact: it may be off by up to %(bound)s."),
    }


def clock_attributes(page_clock: PageClock) -> dict[str, str]:
    """The server's clock as data attributes: its error bound while vouched
    for (`server-error-ms`, as before), its health, the bound in any state,
    and the NTP majority's offset (empty: none)."""
    return {
        "server-error-ms": _ms_text(page_clock.verified_error_ms),
        "clock-status": page_clock.health.value,
        "clock-bound-ms": _ms_text(page_clock.bound_ms),
        "clock-offset-ms": _ms_text(page_clock.offset_ms),
    }


def _ms_text(value: float | None) -> str:
    value = finite(value)
    return "" if value is None else f"{value:.3f}"


def _clock_context(display: Display, endpoint: str) -> dict[str, Any]:
    """What index.html and embed.html render: the second, the sun, the
    strings the page script shows, and links to the other languages/hours."""
    runtime = current_runtime()
    now_ms = runtime.clock()
    now = moscow_time(now_ms)
    lang = current_language()
    sun = sun_day(now.wall.date())
    # Links keep the visitor's other choices (an explicit language, 12 h).
    keep: dict[str, Any] = {"lang": display.lang} if display.lang else {}
    hours: dict[str, Any] = {"hours": 12} if display.hours == 12 else {}
    toggled: dict[str, Any] = {} if hours else {"hours": 12}
    carried: dict[str, Any] = carried_args()  # ?until= and ?diff= too
    countdown = countdown_context(page_until(), now.epoch_ms, lang, display.hours)
    return {
        **face_context(now, lang, display),
        "countdown": countdown,
        # The difference-from-you line: always on the page, an option in the embed.
        "show_difference": endpoint == "clock.page" or page_option("diff"),
        "now": now,
        "server_ms": now_ms,
        # The server's clock for the accuracy line (static/js/accuracy.js).
        "clock_attributes": clock_attributes(runtime.clock_monitor.page_clock),
        "lang": lang,
        "display": display,
        "clock_text": (
            now.clock_text(lang, display.hours)
            if display.seconds
            else short_time_text(now.wall, lang, display.hours)
        ),
        # A transparent embed takes the colour scheme it is told (?theme=),
        # light if told none: the host page's, not the visitor's system's.
        "theme": display.theme or ("light" if display.transparent else "auto"),
        "setting_links": _setting_links(display, endpoint),
        "date_text": now.date_text(lang),
        "sun": {
            "sunrise_iso": sun.sunrise.isoformat(timespec="seconds"),
            "sunset_iso": sun.sunset.isoformat(timespec="seconds"),
            "sunrise": short_time_text(sun.sunrise, lang, display.hours),
            "sunset": short_time_text(sun.sunset, lang, display.hours),
            "day_length": day_length_text(sun.day_length_s),
            "day_length_s": sun.day_length_s,
        },
        "other_languages": [
            (other, url_for(endpoint, **{**hours, **carried, "lang": other}))
            for other in languages()
            if other != lang
        ],
        "other_hours": (
            24 if display.hours == 12 else 12,
            url_for(endpoint, **keep, **toggled, **carried),
        ),
        "page_data": {
            "lang": lang,
            "hours": display.hours,
            "flexibleDayPeriods": display.hours == 12 and uses_flexible_day_periods(lang),
            "countdown": countdown
            and {"targetMs": countdown["target_ms"], "moment": countdown["moment"]},
            "units": units(lang),
            "strings": {
                **face_strings(lang),
                "title": _("Moscow time"),
                "connecting": _("Connecting…"),
                "live": _("Live"),
                "reconnecting": _("Reconnecting… the clock keeps running"),
                **accuracy_strings(),
                "busy": _("The server is busy — retrying shortly, the clock keeps running"),
                "fullscreen": _("Full screen"),
                "exitFullscreen": _("Exit full screen"),
                "offline": _("Offline — last synchronised %(when)s"),
                "offlineUnverified": _("Offline — showing this device's clock, not verified"),
                "wakeLockUnsupported": _("This browser cannot keep the screen on"),
                "wakeLockRefused": _("The browser did not allow keeping the screen on"),
            },
        },
    }
